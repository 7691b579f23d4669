"""Tests of lvmlib.vae against torch.distributions, Monte Carlo and exact PPCA answers."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Categorical, Independent, MultivariateNormal, Normal, kl_divergence

from lvmlib.vae import (
    VAE,
    BernoulliDecoder,
    CategoricalDecoder,
    Encoder,
    GaussianDecoder,
    VAEConfig,
    make_mlp,
    reparameterize,
)

DT = torch.float64


def small_config(**kw):
    base = dict(D=6, M=2, H=8, device="cpu")
    base.update(kw)
    return VAEConfig(**base)


# ----------------------------------------------------------------------------- config
def test_config_defaults_and_frozen():
    c = VAEConfig(D=64, M=2)
    assert (c.H, c.n_hidden_layers, c.activation, c.likelihood, c.n_levels, c.variance, c.sigma2, c.beta, c.device) == (
        256, 1, "relu", "bernoulli", 17, "fixed", 1.0, 1.0, "auto")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.M = 3


@pytest.mark.parametrize(
    "field, value",
    [
        ("D", 0), ("D", 2.0), ("M", -1), ("M", True), ("H", 0), ("n_hidden_layers", -1), ("n_hidden_layers", 1.5),
        ("activation", "sigmoid"), ("likelihood", "poisson"), ("n_levels", 1), ("variance", "free"),
        ("sigma2", 0.0), ("sigma2", float("nan")), ("beta", -0.1), ("beta", float("inf")), ("prior", "flow"), ("n_components", 0),
    ],
)
def test_config_rejects_bad_fields_naming_them(field, value):
    with pytest.raises(ValueError, match=field):
        small_config(**{field: value})


def test_config_rejects_non_string_device():
    with pytest.raises(TypeError, match="device"):
        small_config(device=0)


# ----------------------------------------------------------------------------- building blocks
def test_make_mlp_depth_and_activation():
    lin = make_mlp(5, 3, H=7, n_hidden_layers=0)
    assert len(lin) == 1 and isinstance(lin[0], nn.Linear) and lin[0].in_features == 5 and lin[0].out_features == 3
    lecture = make_mlp(5, 4, H=7, n_hidden_layers=1)  # Linear(D, H) -> ReLU -> Linear(H, 2M)
    assert [type(m) for m in lecture] == [nn.Linear, nn.ReLU, nn.Linear]
    book = make_mlp(5, 4, H=7, n_hidden_layers=2, activation="leaky_relu")
    assert [type(m) for m in book] == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.LeakyReLU, nn.Linear]
    assert book(torch.zeros(2, 3, 5)).shape == (2, 3, 4)


def test_reparameterize_moments_and_gradients():
    mu_z = torch.tensor([[1.0, -2.0, 0.5]], requires_grad=True)
    log_var = torch.tensor([[0.0, math.log(4.0), math.log(0.25)]], requires_grad=True)
    n = 40000
    z = reparameterize(mu_z.expand(n, 3), log_var.expand(n, 3), generator=torch.Generator().manual_seed(0))
    var = torch.exp(log_var.detach())[0]
    assert torch.all((z.mean(0) - mu_z[0]).abs() < 5 * torch.sqrt(var / n))
    assert torch.all((z.var(0) / var - 1).abs() < 5 * math.sqrt(2 / n))
    # gradients flow to both parameters: dz/dmu = 1, dz/dlog_var = 0.5 * sigma * eps
    eps = (z.detach() - mu_z.detach()) / torch.exp(0.5 * log_var.detach())
    z.sum().backward()
    torch.testing.assert_close(mu_z.grad, torch.full((1, 3), float(n)))
    torch.testing.assert_close(log_var.grad[0], (0.5 * torch.exp(0.5 * log_var.detach()) * eps).sum(0), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="same shape"):
        reparameterize(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(TypeError, match="tensors"):
        reparameterize(np.zeros((2, 3)), torch.zeros(2, 3))


def test_encoder_outputs_sample_and_log_prob():
    torch.manual_seed(0)
    enc = Encoder(D=5, M=3, H=8)
    x = torch.rand(4, 5)
    mu_z, log_var = enc(x)
    assert mu_z.shape == log_var.shape == (4, 3)
    h = enc.net(x)
    torch.testing.assert_close(mu_z, h[:, :3])  # first half means, second half log-variances
    torch.testing.assert_close(log_var, h[:, 3:])
    z = enc.sample(x, K=7)
    assert z.shape == (7, 4, 3)
    assert enc.sample(mu_z=mu_z, log_var=log_var).shape == (4, 3)
    ref = Normal(mu_z, torch.exp(0.5 * log_var)).log_prob(z).sum(-1)
    torch.testing.assert_close(enc.log_prob(z, mu_z, log_var), ref)
    with pytest.raises(ValueError, match="either x"):
        enc.sample()
    with pytest.raises(ValueError, match="D=5"):
        enc(torch.rand(4, 6))


# ----------------------------------------------------------------------------- decoders
def test_bernoulli_decoder_log_prob_matches_torch():
    torch.manual_seed(0)
    dec = BernoulliDecoder(D=6, M=2, H=8)
    z = 3 * torch.randn(5, 4, 2)  # (K, B, M) with a sample dimension
    x = (torch.rand(4, 6) > 0.5).float()
    logits = dec(z)
    ref = Bernoulli(logits=logits).log_prob(x.expand(5, 4, 6)).sum(-1)
    out = dec.log_prob(x, z)
    assert out.shape == (5, 4)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(dec.log_prob(x, params=logits), ref)
    # grey levels in [0, 1]: x log p + (1 - x) log(1 - p), stable for large logits
    xg = torch.rand(4, 6)
    p = torch.sigmoid(logits.double())
    ref_g = (xg * torch.log(p) + (1 - xg) * torch.log1p(-p)).sum(-1)
    torch.testing.assert_close(dec.log_prob(xg, z).double(), ref_g, rtol=1e-4, atol=1e-4)
    big = torch.full((1, 6), 200.0)
    assert torch.isfinite(dec.log_prob(torch.zeros(1, 6), params=big)).all()
    torch.testing.assert_close(dec.mean(z), torch.sigmoid(logits))
    s = dec.sample(z[0])
    assert s.shape == (4, 6) and set(s.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("variance", ["fixed", "learned"])
def test_gaussian_decoder_log_prob_matches_torch(variance):
    torch.manual_seed(0)
    dec = GaussianDecoder(D=6, M=2, H=8, variance=variance, sigma2=0.3)
    z = torch.randn(3, 4, 2)
    x = torch.randn(4, 6)
    mean = dec(z)
    ref = Normal(mean, math.sqrt(0.3)).log_prob(x).sum(-1)
    torch.testing.assert_close(dec.log_prob(x, z), ref)
    torch.testing.assert_close(dec.log_prob(x, params=mean), ref)
    params = dict(dec.named_parameters())
    assert ("log_var_x" in params) == (variance == "learned")
    if variance == "learned":
        dec.log_prob(x, z).sum().backward()
        assert dec.log_var_x.grad is not None and torch.all(dec.log_var_x.grad != 0)
    # samples: mean(z) plus noise of variance sigma2
    zz = torch.zeros(20000, 2)
    s = dec.sample(zz, generator=torch.Generator().manual_seed(1))
    assert torch.all((s.var(0) / 0.3 - 1).abs() < 5 * math.sqrt(2 / 20000))
    torch.testing.assert_close(dec.mean(zz), dec(zz))


def test_lecture_unit_variance_decoder_is_log_normal_with_variance_one():
    dec = GaussianDecoder(D=3, M=1, H=4)  # N(x | theta(z), 1) as on the slide
    z, x = torch.randn(2, 1), torch.randn(2, 3)
    ref = Normal(dec(z), 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(dec.log_prob(x, z), ref)


def test_categorical_decoder_log_prob_matches_torch():
    torch.manual_seed(0)
    L = 17
    dec = CategoricalDecoder(D=6, M=2, H=8, n_levels=L)
    z = torch.randn(3, 4, 2)
    x = torch.randint(0, L, (4, 6))
    logits = dec(z)
    assert logits.shape == (3, 4, 6, L)
    # the reshape puts pixel d's L logits at net output positions d*L .. d*L + L - 1
    torch.testing.assert_close(logits[1, 2, 3], dec.net(z)[1, 2, 3 * L : 4 * L])
    ref = Categorical(logits=logits).log_prob(x.expand(3, 4, 6)).sum(-1)
    torch.testing.assert_close(dec.log_prob(x, z), ref)
    torch.testing.assert_close(dec.log_prob(x.float(), params=logits), ref)  # float levels are fine
    # E[x|z] in level units against Monte Carlo
    z1 = torch.randn(1, 2)
    draws = dec.sample(z1.expand(20000, 2), generator=torch.Generator().manual_seed(0))
    assert draws.min() >= 0 and draws.max() <= L - 1 and torch.equal(draws, draws.round())
    sd = draws.std(0)
    assert torch.all((draws.mean(0) - dec.mean(z1)[0]).abs() < 5 * sd / math.sqrt(20000) + 1e-6)
    with pytest.raises(ValueError, match="integer levels"):
        dec.log_prob(x.float() + 0.5, z)
    with pytest.raises(ValueError, match="0..16"):
        dec.log_prob(x + L, z)


def test_decoder_needs_exactly_one_of_z_and_params():
    dec = BernoulliDecoder(D=3, M=2, H=4)
    with pytest.raises(ValueError, match="exactly one"):
        dec.log_prob(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="exactly one"):
        dec.log_prob(torch.zeros(1, 3), torch.zeros(1, 2), params=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="M=2"):
        dec(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="D=3"):
        dec.log_prob(torch.zeros(1, 4), torch.zeros(1, 2))


# ----------------------------------------------------------------------------- the VAE
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "categorical"])
def test_vae_forward_terms_and_gradients(likelihood):
    torch.manual_seed(0)
    cfg = small_config(likelihood=likelihood, beta=0.5, n_levels=5, variance="learned")
    vae = VAE(cfg)
    if likelihood == "categorical":
        x = torch.randint(0, 5, (7, 6))
    else:
        x = torch.rand(7, 6)
    out = vae(x, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "elbo", "re", "kl"}
    assert out["elbo"].shape == out["re"].shape == out["kl"].shape == (7,) and out["loss"].shape == ()
    torch.testing.assert_close(out["elbo"], out["re"] - out["kl"])
    torch.testing.assert_close(out["loss"], -(out["re"] - 0.5 * out["kl"]).mean())
    # the KL is analytic: compare with torch.distributions
    mu_z, log_var = vae.encode(x)
    q = Independent(Normal(mu_z, torch.exp(0.5 * log_var)), 1)
    p = Independent(Normal(torch.zeros(2), torch.ones(2)), 1)
    torch.testing.assert_close(out["kl"], kl_divergence(q, p))
    # RE is log p(x|z) at z = mu_z + sigma * eps with the same draw
    z = reparameterize(mu_z, log_var, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["re"], vae.decoder.log_prob(x, z))
    out["loss"].backward()
    for name, prm in vae.named_parameters():
        assert prm.grad is not None, name
    assert isinstance(out["loss"].item(), float)


def test_vae_encoder_input_scaling_for_categorical():
    vae = VAE(small_config(likelihood="categorical", n_levels=17))
    x = torch.randint(0, 17, (3, 6))
    torch.testing.assert_close(vae.encoder_input(x), x.float() / 16)
    torch.testing.assert_close(vae.encode(x)[0], vae.encoder(x.float() / 16)[0])
    x_np = np.random.default_rng(0).integers(0, 17, (3, 6))
    assert vae(x_np)["elbo"].shape == (3,)  # numpy input works


def test_vae_sample_reconstruct_encode_shapes_and_device():
    vae = VAE(small_config(likelihood="bernoulli"))
    assert vae.device == torch.device("cpu")
    s = vae.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 6) and torch.all((s >= 0) & (s <= 1))
    assert set(vae.sample(5, mean=False).unique().tolist()) <= {0.0, 1.0}
    x = torch.rand(4, 6)
    mu_z, _ = vae.encode(x)
    torch.testing.assert_close(vae.reconstruct(x), vae.decoder.mean(mu_z))
    assert vae.reconstruct(x, sample_z=True).shape == (4, 6)
    # multi-sample ELBO is consistent with the single-sample one in expectation (same KL)
    e = vae.elbo(x, K=10)
    torch.testing.assert_close(e["kl"], vae(x)["kl"])


def test_vae_bad_inputs():
    vae = VAE(small_config(likelihood="bernoulli"))
    with pytest.raises(ValueError, match="D=6"):
        vae(torch.rand(3, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        vae(2 * torch.ones(3, 6))
    with pytest.raises(TypeError, match="x must be"):
        vae([[0.0] * 6])
    with pytest.raises(TypeError, match="VAEConfig"):
        VAE({"D": 6, "M": 2})
    cat = VAE(small_config(likelihood="categorical", n_levels=17))
    with pytest.raises(ValueError, match="integer levels"):
        cat(torch.rand(3, 6))
    with pytest.raises(ValueError, match="0..16"):
        cat(torch.full((3, 6), 17))


# ----------------------------------------------------------------------------- linear VAE = PPCA
def _ppca_digits(M):
    from lvmlib.data import load_digits
    from lvmlib.ppca import closed_form

    X = torch.as_tensor(load_digits(scale="unit"), dtype=DT)[:300]
    W, mu, sigma2 = closed_form(X, M)
    return X, W.to(DT), mu.to(DT), float(sigma2)


def _linear_vae_at_ppca_optimum(W, mu, sigma2, variance):
    """A linear VAE (n_hidden_layers=0) whose decoder is PPCA's and whose encoder outputs the
    exact posterior mean M^-1 W^T (x - mu) and the posterior variances diag(sigma2 M^-1)."""
    D, M = W.shape
    vae = VAE(VAEConfig(D=D, M=M, n_hidden_layers=0, likelihood="gaussian", variance=variance, sigma2=sigma2, device="cpu")).double()
    M_mat = W.T @ W + sigma2 * torch.eye(M, dtype=DT)
    A = torch.linalg.solve(M_mat, W.T)  # (M, D)
    enc, dec = vae.encoder.net[0], vae.decoder.net[0]
    with torch.no_grad():
        enc.weight[:M] = A
        enc.bias[:M] = -A @ mu
        enc.weight[M:] = 0.0
        enc.bias[M:] = torch.log(torch.diagonal(sigma2 * torch.linalg.inv(M_mat)))
        dec.weight.copy_(W)
        dec.bias.copy_(mu)
    return vae


@pytest.mark.parametrize("M, variance", [(1, "fixed"), (1, "learned"), (2, "fixed")])
def test_linear_vae_at_ppca_solution_has_elbo_equal_to_log_likelihood(M, variance):
    from lvmlib.variational import gaussian_elbo_linear

    X, W, mu, s2 = _ppca_digits(M)
    # the closed-form W has orthogonal columns, so M_mat is diagonal and p(z|x) is a diagonal Gaussian
    WtW = W.T @ W
    torch.testing.assert_close(WtW, torch.diag(torch.diagonal(WtW)), atol=1e-10, rtol=0)
    ref = MultivariateNormal(mu, covariance_matrix=W @ W.T + s2 * torch.eye(64, dtype=DT)).log_prob(X)
    vae = _linear_vae_at_ppca_optimum(W, mu, s2, variance)
    with torch.no_grad():
        mu_z, log_var = vae.encode(X)
        # the encoder is the exact posterior, so q(z|x) = p(z|x)
        post = MultivariateNormal(mu_z, covariance_matrix=torch.diag_embed(log_var.exp()))
        M_mat = WtW + s2 * torch.eye(M, dtype=DT)
        exact = MultivariateNormal(torch.linalg.solve(M_mat, W.T @ (X - mu).T).T, covariance_matrix=s2 * torch.linalg.inv(M_mat))
        torch.testing.assert_close(kl_divergence(post, exact), torch.zeros(len(X), dtype=DT), atol=1e-9, rtol=0)
        # (1) closed-form ELBO of this q
        exact_elbo = gaussian_elbo_linear(X, W, mu, s2, mu_z, log_var)["elbo"]
        torch.testing.assert_close(exact_elbo, ref, atol=1e-5, rtol=0)
        # (2) the VAE's own Monte Carlo ELBO with MC KL: at the exact posterior
        #     log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z, so one sample is exact
        mc = vae.elbo(X, K=1, analytic_kl=False)["elbo"]
        torch.testing.assert_close(mc, ref, atol=1e-5, rtol=0)
        # (3) with the analytic KL only the RE term is random: many samples approach log p(x)
        K = 2000
        ana = vae.elbo(X[:20], K=K, analytic_kl=True)
        z = vae.encoder.sample(mu_z=mu_z[:20], log_var=log_var[:20], K=K)
        sd = vae.decoder.log_prob(X[:20], z).std(0)
        assert torch.all((ana["elbo"] - ref[:20]).abs() < 5 * sd / math.sqrt(K))
        # (4) importance sampling with the exact posterior: every weight is p(x)
        torch.testing.assert_close(vae.log_px(X[:50], K=10, chunk=3), ref[:50], atol=1e-5, rtol=0)


def test_vae_uses_monte_carlo_kl_for_a_prior_without_closed_form():
    from lvmlib.priors import Prior

    class WidePrior(Prior):  # N(0, 4 I), deliberately without analytic_kl
        def sample(self, n, generator=None):
            return 2.0 * torch.randn(n, self.M, generator=generator)

        def log_prob(self, z):
            return Normal(0.0, 2.0).log_prob(z).sum(-1)

    torch.manual_seed(0)
    vae = VAE(small_config(likelihood="gaussian"))
    vae.prior = WidePrior(2)
    x = torch.rand(5, 6)
    out = vae(x, generator=torch.Generator().manual_seed(0))
    mu_z, log_var = vae.encode(x)
    z = reparameterize(mu_z, log_var, generator=torch.Generator().manual_seed(0))
    q = Normal(mu_z, torch.exp(0.5 * log_var))
    torch.testing.assert_close(out["kl"], q.log_prob(z).sum(-1) - Normal(0.0, 2.0).log_prob(z).sum(-1))
    assert vae.sample(3).shape == (3, 6)


def test_vae_state_dict_round_trip_with_weights_only(tmp_path):
    cfg = small_config(likelihood="gaussian", variance="learned", n_hidden_layers=2, activation="leaky_relu")
    vae = VAE(cfg)
    with torch.no_grad():
        vae.decoder.log_var_x.fill_(-1.0)
    torch.save({"model": vae.state_dict(), "config": dataclasses.asdict(cfg)}, tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    back = VAE(VAEConfig(**ckpt["config"]))
    back.load_state_dict(ckpt["model"])
    x = torch.rand(4, 6)
    torch.testing.assert_close(back.encode(x), vae.encode(x))
    torch.testing.assert_close(back.decoder.log_var_x, torch.full((6,), -1.0))


# ----------------------------------------------------------------------------- validation: check_data, check=
class _NoHostReads:
    """Makes every read of a tensor's values on the host (bool(), item(), int(), float(), tolist(),
    numpy()) raise, as a stand-in for a host-device synchronisation on a GPU."""

    def __init__(self, monkeypatch):
        def refuse(self, *args, **kwargs):
            raise AssertionError("a tensor's value was read on the host")

        for attr in ("__bool__", "item", "__int__", "__float__", "__index__", "tolist", "numpy"):
            monkeypatch.setattr(torch.Tensor, attr, refuse)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "categorical"])
def test_check_data_returns_what_forward_expects(likelihood):
    vae = VAE(small_config(likelihood=likelihood, n_levels=5))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (7, 6), generator=g) if likelihood == "categorical" else torch.rand(7, 6, generator=g, dtype=DT)
    xc = vae.check_data(x.numpy())
    assert xc.shape == (7, 6) and xc.device == vae.device
    assert xc.dtype == (torch.int64 if likelihood == "categorical" else vae.dtype)
    torch.testing.assert_close(xc.to(DT), x.to(DT), rtol=1e-6, atol=1e-7)
    # the checked data gives the same loss with and without per-batch checks
    a = vae(xc, generator=torch.Generator().manual_seed(1), check=False)
    b = vae(xc, generator=torch.Generator().manual_seed(1), check=True)
    for k in ("loss", "elbo", "re", "kl"):
        torch.testing.assert_close(a[k], b[k])


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "categorical"])
def test_forward_check_false_reads_no_values_on_the_host(likelihood, monkeypatch):
    vae = VAE(small_config(likelihood=likelihood, n_levels=5))
    x = vae.check_data(torch.randint(0, 2, (4, 6)))
    _NoHostReads(monkeypatch)
    out = vae(x, check=False)  # would raise on any bool()/item()/tolist() of a tensor
    assert out["elbo"].shape == (4,)
    with pytest.raises(AssertionError, match="read on the host"):
        vae(x, check=True)  # the check=True path does look at the values (the test's own control)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_forward_check_false_does_not_synchronise_on_cuda():
    vae = VAE(small_config(device="cuda"))
    x = vae.check_data(torch.rand(8, 6))
    torch.cuda.set_sync_debug_mode("error")
    try:
        vae(x, check=False)["loss"].backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize(
    "likelihood, x, match",
    [
        ("bernoulli", torch.tensor([[0.5, float("nan"), 0, 1, 0, 1]]), r"x must be finite, got 1 NaN"),
        ("gaussian", torch.tensor([[0.5, float("inf"), 0, 1, 0, 1]]), r"x must be finite, got 1 NaN or infinite"),
        ("categorical", torch.tensor([[0.5, 1, 0, 1, 0, 1]]), r"x must hold integer levels 0\.\.4 \(whole numbers\)"),
        ("categorical", torch.tensor([[-1, 1, 0, 1, 0, 1]]), r"x must hold integer levels 0\.\.4"),
        ("bernoulli", torch.tensor([[-0.1, 1, 0, 1, 0, 1]]), r"x must lie in \[0, 1\].*got values in \[-0\.1, 1\]"),
    ],
)
def test_forward_check_true_refuses_bad_values(likelihood, x, match):
    vae = VAE(small_config(likelihood=likelihood, n_levels=5))
    for call in (vae.check_data, vae, vae.elbo, vae.encode, vae.reconstruct, lambda v: vae.log_px(v, K=2)):
        with pytest.raises(ValueError, match=match):
            call(x)


def test_forward_check_false_skips_only_the_value_checks():
    vae = VAE(small_config(likelihood="bernoulli"))
    x = torch.rand(3, 6)
    x[0, 0] = float("nan")
    # documented: check=False trusts the values (they were validated once with check_data) ...
    assert torch.isnan(vae(x, check=False)["loss"])
    # ... but the cheap structural checks stay
    with pytest.raises(ValueError, match=r"x must hold at least one row \(N >= 1\)"):
        vae(torch.zeros(0, 6), check=False)
    with pytest.raises(ValueError, match=r"x must have shape \(N, D=6\)"):
        vae(torch.zeros(3, 5), check=False)
    with pytest.raises(TypeError, match="x must be a torch.Tensor or numpy array"):
        vae([[0.0] * 6], check=False)


def test_check_data_names_the_argument():
    vae = VAE(small_config())
    with pytest.raises(ValueError, match=r"x_val must hold at least one row"):
        vae.check_data(torch.zeros(0, 6), name="x_val")
    with pytest.raises(ValueError, match=r"x_train must be finite"):
        vae.check_data(torch.full((2, 6), float("nan")), name="x_train")
    with pytest.raises(TypeError, match=r"x_train must hold real numbers"):
        vae.check_data(torch.zeros(2, 6, dtype=torch.complex64), name="x_train")
    with pytest.raises(TypeError, match=r"x must be a numeric array.*dtype object"):
        vae.check_data(np.array([[None] * 6]))

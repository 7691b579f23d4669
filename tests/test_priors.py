"""Tests of lvmlib.priors against torch.distributions and Monte Carlo."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from lvmlib.priors import Prior, StandardNormalPrior, make_prior


def test_log_prob_matches_torch_normal():
    prior = StandardNormalPrior(5)
    z = 2.0 * torch.randn(7, 3, 5, generator=torch.Generator().manual_seed(0))
    ref = Normal(0.0, 1.0).log_prob(z).sum(-1)
    out = prior.log_prob(z)
    assert out.shape == (7, 3)
    torch.testing.assert_close(out, ref)
    # the constant enters once per vector: log N(0 | 0, I_M) = -M/2 log(2 pi)
    torch.testing.assert_close(prior.log_prob(torch.zeros(1, 5)), torch.tensor([-2.5 * math.log(2 * math.pi)]))


def test_sample_shape_device_dtype_and_moments():
    prior = StandardNormalPrior(3)
    z = prior.sample(40000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (40000, 3) and z.dtype == torch.float32 and z.device == prior.device
    # Monte Carlo: mean 0 (sd 1/sqrt(n)), variance 1 (sd sqrt(2/n))
    assert torch.all(z.mean(0).abs() < 5 / math.sqrt(40000))
    assert torch.all((z.var(0) - 1).abs() < 5 * math.sqrt(2 / 40000))
    cov = torch.cov(z.T)
    assert torch.all((cov - torch.eye(3)).abs() < 5 * math.sqrt(2 / 40000))
    # the generator makes draws reproducible; the prior follows .to(dtype)
    a = prior.sample(4, generator=torch.Generator().manual_seed(3))
    b = prior.sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert prior.to(torch.float64).sample(2).dtype == torch.float64


def test_analytic_kl_matches_torch_kl_divergence():
    prior = StandardNormalPrior(4)
    assert prior.supports_analytic_kl
    g = torch.Generator().manual_seed(1)
    mu_z = torch.randn(6, 4, generator=g)
    log_var = torch.randn(6, 4, generator=g)
    q = Independent(Normal(mu_z, torch.exp(0.5 * log_var)), 1)
    p = Independent(Normal(torch.zeros(4), torch.ones(4)), 1)
    torch.testing.assert_close(prior.analytic_kl(mu_z, log_var), kl_divergence(q, p))


def test_prior_has_no_learnable_parameters_and_state_dict_is_empty():
    prior = StandardNormalPrior(2)
    assert list(prior.parameters()) == []
    assert prior.state_dict() == {}


def test_base_class_interface_and_factory():
    assert isinstance(make_prior("standard_normal", 3), StandardNormalPrior)
    base = Prior(2)
    with pytest.raises(NotImplementedError):
        base.sample(1)
    with pytest.raises(NotImplementedError):
        base.log_prob(torch.zeros(1, 2))
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        base.analytic_kl(torch.zeros(1, 2), torch.zeros(1, 2))
    assert not base.supports_analytic_kl


@pytest.mark.parametrize("M", [0, -1, 1.5, True, "2", None])
def test_bad_M(M):
    with pytest.raises(ValueError, match="M"):
        StandardNormalPrior(M)


def test_bad_inputs():
    prior = StandardNormalPrior(3)
    with pytest.raises(ValueError, match="n"):
        prior.sample(0)
    with pytest.raises(ValueError, match="n"):
        prior.sample(2.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., M=3\)"):
        prior.log_prob(torch.zeros(5, 2))
    with pytest.raises(TypeError, match="z"):
        prior.log_prob([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="log_var"):
        prior.analytic_kl(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="prior must be one of"):
        make_prior("flow", 3)


# ----------------------------------------------------------------------------- learnable priors
from torch.distributions import Categorical, MixtureSameFamily  # noqa: E402

from lvmlib.gaussian import log_normal_diag  # noqa: E402
from lvmlib.priors import MixtureOfGaussiansPrior, VampPrior, mixture_log_prob  # noqa: E402


def _torch_mixture(means, log_vars, weights):
    """The same mixture built independently: MixtureSameFamily over Independent Normals."""
    comp = Independent(Normal(means, torch.exp(0.5 * log_vars)), 1)
    return MixtureSameFamily(Categorical(probs=weights), comp)


def _spread_mog(M=3, K=4, seed=0):
    torch.manual_seed(seed)
    prior = MixtureOfGaussiansPrior(M, K).double()
    with torch.no_grad():
        prior.means.mul_(2.0)
        prior.log_vars.copy_(torch.randn(K, M, dtype=torch.float64) * 0.7)
        prior.logits.copy_(torch.randn(K, dtype=torch.float64))
    return prior


def _encoder(D, M, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 2 * M)).double()

    def encode(u):
        return torch.chunk(net(u), 2, dim=-1)

    return net, encode


def test_mog_log_prob_matches_mixture_same_family():
    prior = _spread_mog()
    z = 2.5 * torch.randn(7, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    means, log_vars, w = prior.components()
    ref = _torch_mixture(means, log_vars, w).log_prob(z)
    out = prior.log_prob(z)
    assert out.shape == (7, 5)
    torch.testing.assert_close(out, ref)
    assert torch.allclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    # a mixture per dimension (logsumexp per coordinate, then a sum) is a different density
    per_dim = torch.logsumexp(Normal(means, torch.exp(0.5 * log_vars)).log_prob(z.unsqueeze(-2)) + torch.log(w)[:, None], -2).sum(-1)
    assert (per_dim - ref).abs().max() > 0.1


def test_mixture_log_prob_is_stable_far_from_every_component():
    means, log_vars = torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    z = torch.tensor([[300.0, -300.0]], dtype=torch.float64)
    out = mixture_log_prob(z, means, log_vars, torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64)))
    torch.testing.assert_close(out, Normal(0.0, 1.0).log_prob(z.double()).sum(-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_inputs_take_the_matrix_product_path_and_agree(monkeypatch, dtype):
    from lvmlib import priors

    g = torch.Generator().manual_seed(3)
    K, M = 50, 6
    means = 2.0 * torch.randn(K, M, generator=g, dtype=torch.float64)
    log_vars = -6.0 * torch.rand(K, M, generator=g, dtype=torch.float64)  # narrow components, as the VampPrior's
    w = torch.softmax(torch.randn(K, generator=g, dtype=torch.float64), 0)
    z = means[torch.arange(40) % K] + 0.05 * torch.randn(40, M, generator=g, dtype=torch.float64)  # near the means
    z = torch.cat([z, 3.0 * torch.randn(40, M, generator=g, dtype=torch.float64)]).reshape(4, 20, M)
    ref = _torch_mixture(means, log_vars, w).log_prob(z)
    direct = priors.mixture_log_prob(z.to(dtype), means.to(dtype), log_vars.to(dtype), torch.log(w).to(dtype))
    monkeypatch.setattr(priors, "DIRECT_TABLE_LIMIT", 10)  # force the expanded form
    calls = []
    monkeypatch.setattr(priors, "log_normal_diag", lambda *a, **k: calls.append(a) or log_normal_diag(*a, **k))
    fast = priors.mixture_log_prob(z.to(dtype), means.to(dtype), log_vars.to(dtype), torch.log(w).to(dtype))
    assert not calls and fast.shape == (4, 20) and fast.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-3) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(fast.double(), ref, **tol)
    torch.testing.assert_close(fast, direct, **tol)
    # gradients flow through the expanded form as through the direct one
    m = means.clone().requires_grad_(True)
    priors.mixture_log_prob(z, m, log_vars, torch.log(w)).sum().backward()
    m_ref = means.clone().requires_grad_(True)
    _torch_mixture(m_ref, log_vars, w).log_prob(z).sum().backward()
    torch.testing.assert_close(m.grad, m_ref.grad)
    # a NaN in z is named (by its own name, whichever path computes the densities)
    bad = z.clone()
    bad[2, 7, 1] = float("nan")
    with pytest.raises(ValueError, match="argument z must be finite"):
        priors.mixture_log_prob(bad, means, log_vars, torch.log(w))


def test_vamp_log_prob_matches_mixture_of_encoder_posteriors():
    D, M, K = 5, 3, 6
    net, encode = _encoder(D, M)
    prior = VampPrior(M, D, encode, n_components=K).double()
    u = torch.rand(K, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    prior.init_pseudo_inputs(u)
    assert torch.equal(prior.pseudo_inputs.detach(), u)
    z = 2.0 * torch.randn(4, 9, M, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    mu, log_var = encode(u)
    ref = _torch_mixture(mu, log_var, torch.full((K,), 1.0 / K, dtype=torch.float64)).log_prob(z)
    torch.testing.assert_close(prior.log_prob(z), ref)
    # the prior's state is its pseudo-inputs alone; the encoder is not a sub-module of the prior
    assert list(prior.state_dict()) == ["pseudo_inputs"]
    assert [n for n, _ in prior.named_parameters()] == ["pseudo_inputs"]
    # gradients reach both the pseudo-inputs and the encoder
    prior.log_prob(z).sum().backward()
    assert prior.pseudo_inputs.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def _histogram_check(prior, n=200_000, lim=7.0, bins=14, seed=0):
    """Sample frequencies in a grid of 2-D cells against the integral of exp(log_prob) over each cell."""
    z = prior.sample(n, generator=torch.Generator().manual_seed(seed)).double()
    assert z.shape == (n, 2)
    edges = torch.linspace(-lim, lim, bins + 1, dtype=torch.float64)
    ix = torch.bucketize(z[:, 0].contiguous(), edges) - 1
    iy = torch.bucketize(z[:, 1].contiguous(), edges) - 1
    inside = (ix >= 0) & (ix < bins) & (iy >= 0) & (iy < bins)
    counts = torch.zeros(bins, bins, dtype=torch.float64)
    counts.index_put_((ix[inside], iy[inside]), torch.ones(int(inside.sum()), dtype=torch.float64), accumulate=True)
    freq = counts / n
    # midpoint rule on a fine grid: 20 x 20 points per cell
    fine = 20
    h = 2 * lim / (bins * fine)
    g = torch.linspace(-lim + h / 2, lim - h / 2, bins * fine, dtype=torch.float64)
    gx, gy = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        dens = torch.exp(prior.log_prob(torch.stack([gx, gy], -1).to(prior.dtype)).double()) * h * h
    prob = dens.reshape(bins, fine, bins, fine).sum((1, 3))
    assert prob.sum() > 0.99  # the grid holds (almost) all the mass
    sd = torch.sqrt(prob * (1 - prob) / n)
    assert torch.all((freq - prob).abs() < 5 * sd + 2e-4), float(((freq - prob).abs() - 5 * sd).max())


def test_mog_samples_follow_log_prob():
    prior = _spread_mog(M=2, K=3, seed=4)
    with torch.no_grad():
        prior.means.clamp_(-3, 3)
        prior.log_vars.clamp_(-1.5, 0.5)
    _histogram_check(prior)


def test_vamp_samples_follow_log_prob():
    D, M, K = 4, 2, 5
    _, encode = _encoder(D, M, seed=1)
    prior = VampPrior(M, D, encode, n_components=K).double()
    prior.init_pseudo_inputs(torch.rand(K, D, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))
    _histogram_check(prior)


def test_learnable_priors_sample_shapes_and_reproducibility():
    prior = MixtureOfGaussiansPrior(3, 5)
    a = prior.sample(6, generator=torch.Generator().manual_seed(0))
    b = prior.sample(6, generator=torch.Generator().manual_seed(0))
    assert a.shape == (6, 3) and torch.equal(a, b) and not a.requires_grad
    assert not prior.supports_analytic_kl
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        prior.analytic_kl(torch.zeros(1, 3), torch.zeros(1, 3))


def test_monte_carlo_kl_converges_to_the_analytic_kl_for_the_standard_prior():
    from lvmlib.variational import elbo_terms

    prior = StandardNormalPrior(3).double()
    g = torch.Generator().manual_seed(0)
    mu_z = torch.randn(4, 3, dtype=torch.float64, generator=g)
    log_var = 0.5 * torch.randn(4, 3, dtype=torch.float64, generator=g)
    x = torch.zeros(4, 1)

    def zero_lik(x, z):
        return torch.zeros(z.shape[:2], dtype=z.dtype)

    exact = prior.analytic_kl(mu_z, log_var)
    errors = []
    for K in (10, 1000, 100_000):
        mc = elbo_terms(x, mu_z, log_var, zero_lik, prior, K=K, analytic_kl=False, generator=g)["kl"]
        errors.append(float((mc - exact).abs().max()))
    # the error of a K-sample mean shrinks like 1/sqrt(K); the per-sample sd here is below 3
    assert errors[-1] < 5 * 3 / math.sqrt(100_000)
    assert errors[-1] < errors[0]


def test_factory_builds_the_learnable_priors():
    assert isinstance(make_prior("mog", 2, n_components=3), MixtureOfGaussiansPrior)
    _, encode = _encoder(4, 2)
    vp = make_prior("vamp", 2, n_components=3, D=4, encoder=encode)
    assert isinstance(vp, VampPrior) and vp.pseudo_inputs.shape == (3, 4)
    with pytest.raises(ValueError, match="encoder"):
        make_prior("vamp", 2)


@pytest.mark.parametrize("K", [0, -2, 1.5, True])
def test_bad_n_components(K):
    with pytest.raises(ValueError, match="n_components"):
        MixtureOfGaussiansPrior(2, K)
    with pytest.raises(ValueError, match="n_components"):
        VampPrior(2, 4, lambda u: (u, u), K)


def test_vamp_bad_inputs():
    with pytest.raises(TypeError, match="encoder"):
        VampPrior(2, 4, None, 3)
    with pytest.raises(ValueError, match="D"):
        VampPrior(2, 0, lambda u: (u, u), 3)
    _, encode = _encoder(4, 2)
    prior = VampPrior(2, 4, encode, 3).double()
    with pytest.raises(ValueError, match=r"\(n_components, D\)"):
        prior.init_pseudo_inputs(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="finite"):
        prior.init_pseudo_inputs(torch.full((3, 4), float("nan")))
    wrong = VampPrior(3, 4, encode, 3).double()  # the encoder gives M = 2, the prior expects 3
    with pytest.raises(ValueError, match="M=3"):
        wrong.log_prob(torch.zeros(1, 3, dtype=torch.float64))


class _ModuleEncoder(nn.Module):
    """The encoder of ``_encoder`` as a module (encoder_gradient=False needs one)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, u):
        return torch.chunk(self.net(u), 2, dim=-1)


def test_vamp_without_encoder_gradient_same_density_gradient_to_pseudo_inputs_only():
    D, M, K = 5, 3, 4
    net, encode = _encoder(D, M, seed=3)
    u = torch.rand(K, D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    z = 1.5 * torch.randn(6, M, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    prior = VampPrior(M, D, _ModuleEncoder(net), n_components=K, encoder_gradient=False).double()
    prior.init_pseudo_inputs(u)
    assert not prior.encoder_gradient and "encoder_gradient=False" in repr(prior)
    # the reference: torch's mixture of the encoder's posteriors, built from a leaf copy of u
    u_ref = u.clone().requires_grad_(True)
    mu, log_var = encode(u_ref)
    ref = _torch_mixture(mu, log_var, torch.full((K,), 1.0 / K, dtype=torch.float64)).log_prob(z)
    (grad_u,) = torch.autograd.grad(ref.sum(), u_ref)
    out = prior.log_prob(z)
    torch.testing.assert_close(out, ref.detach())
    for p in net.parameters():
        p.grad = None
    out.sum().backward()
    # d log p / d u is the full one (the encoder's map is differentiated), the encoder's weights get nothing
    torch.testing.assert_close(prior.pseudo_inputs.grad, grad_u)
    assert all(p.grad is None for p in net.parameters())
    # sampling and the state are as with encoder gradients
    assert list(prior.state_dict()) == ["pseudo_inputs"]
    assert prior.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, M)


def test_vamp_encoder_gradient_bad_arguments():
    net, encode = _encoder(4, 2)
    with pytest.raises(TypeError, match="encoder_gradient must be True or False"):
        VampPrior(2, 4, _ModuleEncoder(net), 3, encoder_gradient="no")
    with pytest.raises(TypeError, match="nn.Module"):
        VampPrior(2, 4, encode, 3, encoder_gradient=False)  # a plain function has no weights to detach
    assert make_prior("vamp", 2, D=4, encoder=_ModuleEncoder(net), encoder_gradient=False).encoder_gradient is False


def test_vamp_without_encoder_gradient_cuts_only_the_path_through_the_components():
    """encoder_gradient=False: log p(z) still reaches the encoder through z = mu + sigma eps (not zero);
    only the path through the components mu(u_k), lv(u_k) stops at the encoder's weights."""
    from lvmlib.vae import VAE, VAEConfig, reparameterize

    torch.manual_seed(0)
    model = VAE(VAEConfig(D=6, M=2, H=8, prior="vamp", n_components=4, vamp_encoder_gradient=False, device="cpu"))
    x = torch.rand(5, 6)
    w = model.encoder.net[0].weight
    mu, lv = model.encoder(x)
    z = reparameterize(mu, lv, generator=torch.Generator().manual_seed(1))
    (through_z,) = torch.autograd.grad(model.prior.log_prob(z).sum(), w)
    assert through_z.norm() > 1e-3  # not zero
    (components_only,) = torch.autograd.grad(model.prior.log_prob(z.detach()).sum(), w, allow_unused=True)
    assert components_only is None or components_only.abs().max() == 0
    u = model.prior.pseudo_inputs
    (to_u,) = torch.autograd.grad(model.prior.log_prob(z.detach()).sum(), u)
    assert to_u.norm() > 0  # the pseudo-inputs still learn
    model_t = VAE(VAEConfig(D=6, M=2, H=8, prior="vamp", n_components=4, device="cpu"))
    model_t.load_state_dict(model.state_dict())
    (with_path,) = torch.autograd.grad(model_t.prior.log_prob(z.detach()).sum(), model_t.encoder.net[0].weight)
    assert with_path.norm() > 1e-3  # with True, the components' path reaches the encoder too

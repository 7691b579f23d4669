"""The two-level hierarchical VAE: its ELBO's terms, exactness on a linear-Gaussian hierarchy,
the importance-sampled log-likelihood, KL weight, and training with checkpoints and resume."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from lvmlib.hierarchical import HierarchicalVAE, HierarchicalVAEConfig
from lvmlib.priors import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from lvmlib.training import TrainConfig, load_checkpoint, train
from lvmlib.vae import reparameterize


def cfg(**kw):
    base = dict(D=6, M=3, M2=2, H=8, likelihood="bernoulli", device="cpu", n_components=3)
    base.update(kw)
    return HierarchicalVAEConfig(**base)


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return torch.as_tensor((rng.random((n, 6)) > 0.5).astype(np.float32))


def test_config_validation():
    with pytest.raises(ValueError, match="M2"):
        cfg(M2=0)
    with pytest.raises(ValueError, match="M2"):
        cfg(M2=1.5)
    with pytest.raises(TypeError, match="HierarchicalVAEConfig"):
        from lvmlib.vae import VAEConfig
        HierarchicalVAE(VAEConfig(D=6, M=2))


@pytest.mark.parametrize("prior, cls", [("standard_normal", StandardNormalPrior), ("mog", MixtureOfGaussiansPrior),
                                        ("vamp", VampPrior)])
def test_forward_terms_match_an_independent_computation(prior, cls):
    torch.manual_seed(0)
    model = HierarchicalVAE(cfg(prior=prior))
    assert isinstance(model.prior, cls) and model.prior.M == 2
    x = data(5)
    out = model(x, generator=torch.Generator().manual_seed(3))
    # redo the computation with torch.distributions and the same noise
    g = torch.Generator().manual_seed(3)
    mu1, lv1 = model.encoder(x)
    z1 = reparameterize(mu1, lv1, generator=g)
    mu2, lv2 = model.encoder_top(z1)
    z2 = reparameterize(mu2, lv2, generator=g)
    mup, lvp = model.conditional_prior(z2)
    N = lambda m, lv: Normal(m, torch.exp(0.5 * lv))  # noqa: E731
    re = torch.distributions.Bernoulli(logits=model.decoder(z1)).log_prob(x).sum(-1)
    kl_z1 = N(mu1, lv1).log_prob(z1).sum(-1) - N(mup, lvp).log_prob(z1).sum(-1)
    if prior == "standard_normal":
        kl_z2 = torch.distributions.kl_divergence(N(mu2, lv2), Normal(0.0, 1.0)).sum(-1)
    else:
        kl_z2 = N(mu2, lv2).log_prob(z2).sum(-1) - model.prior.log_prob(z2)
    torch.testing.assert_close(out["re"], re)
    torch.testing.assert_close(out["kl_z1"], kl_z1)
    torch.testing.assert_close(out["kl_z2"], kl_z2)
    # the ELBO is the sum of its named terms
    torch.testing.assert_close(out["kl"], out["kl_z1"] + out["kl_z2"])
    torch.testing.assert_close(out["elbo"], out["re"] - out["kl_z1"] - out["kl_z2"])
    torch.testing.assert_close(out["loss"], -out["elbo"].mean())
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name


def _linear_hierarchy(D=3, a=1.3, b=0.4, s1=0.6, sigma2=0.5, seed=0):
    """A linear-Gaussian hierarchy with 1-D z1 and z2, and its exact posterior built into the encoders.

    z2 ~ N(0, 1); z1 | z2 ~ N(a z2 + b, s1); x | z1 ~ N(W z1 + c, sigma2 I). Then
    p(z1|x) and p(z2|z1) are 1-D Gaussians, linear in their inputs, so q = the exact posterior
    and every importance weight equals p(x).
    """
    torch.manual_seed(seed)
    model = HierarchicalVAE(cfg(D=D, M=1, M2=1, n_hidden_layers=0, likelihood="gaussian", sigma2=sigma2)).double()
    W = torch.randn(D, 1, dtype=torch.float64)
    c = torch.randn(D, dtype=torch.float64)
    v1 = a**2 + s1  # the marginal variance of z1
    P = 1 / v1 + float((W**2).sum()) / sigma2  # posterior precision of z1 given x
    P2 = 1 + a**2 / s1  # posterior precision of z2 given z1
    with torch.no_grad():
        dec = model.decoder.net[0]
        dec.weight.copy_(W)
        dec.bias.copy_(c)
        cp = model.conditional_prior.net[0]  # p(z1|z2): [mean, log-var]
        cp.weight.copy_(torch.tensor([[a], [0.0]]))
        cp.bias.copy_(torch.tensor([b, math.log(s1)]))
        enc = model.encoder.net[0]  # q(z1|x) = p(z1|x)
        enc.weight.copy_(torch.cat([W.T / (sigma2 * P), torch.zeros(1, D, dtype=torch.float64)]))
        enc.bias.copy_(torch.tensor([(b / v1 - float(W[:, 0] @ c) / sigma2) / P, -math.log(P)]))
        top = model.encoder_top.net[0]  # q(z2|z1) = p(z2|z1)
        top.weight.copy_(torch.tensor([[a / (s1 * P2)], [0.0]]))
        top.bias.copy_(torch.tensor([-a * b / (s1 * P2), -math.log(P2)]))
    px = MultivariateNormal(W[:, 0] * b + c, v1 * W @ W.T + sigma2 * torch.eye(D, dtype=torch.float64))
    return model, px


def test_exact_on_a_linear_gaussian_hierarchy():
    model, px = _linear_hierarchy()
    x = px.sample((50,))
    exact = px.log_prob(x)
    with torch.no_grad():
        # q is the posterior: every importance weight is p(x), so L_K is exact for any K
        torch.testing.assert_close(model.log_importance_weights(x, K=4), exact.expand(4, 50))
        torch.testing.assert_close(model.log_px(x, K=10, chunk=3), exact)
        # and the ELBO is tight: its terms (kl_z2 in closed form) average to log p(x)
        elbo = model.elbo(x, K=20000, generator=torch.Generator().manual_seed(2))["elbo"]
        torch.testing.assert_close(elbo, exact, atol=0.03, rtol=0)
        single = model(x.repeat(2000, 1))["elbo"].reshape(2000, 50)
        assert torch.all((single.mean(0) - exact).abs() < 5 * single.std(0) / math.sqrt(2000))
    # and sampling from the model follows p(x): mean and covariance
    xs = model.sample(40000, mean=False, generator=torch.Generator().manual_seed(1))
    se = torch.sqrt(px.covariance_matrix.diagonal() / 40000)
    assert torch.all((xs.mean(0) - px.mean).abs() < 5 * se)
    assert torch.all((torch.cov(xs.T) - px.covariance_matrix).abs() < 0.05 * px.covariance_matrix.abs().max())


def test_elbo_is_a_lower_bound_of_the_importance_sampled_log_likelihood():
    torch.manual_seed(0)
    model = HierarchicalVAE(cfg(prior="mog", H=16))
    x = data(30)
    with torch.no_grad():
        elbos = model(x.repeat(400, 1))["elbo"].reshape(400, 30)  # 400 single-sample ELBOs of each x
        elbo_mean = elbos.mean(0)
        log_px_1 = model.log_importance_weights(x, K=400).mean(0)  # 400 draws of L_1
        log_px = model.log_px(x, K=2000, chunk=500, generator=torch.Generator().manual_seed(0))
    se = elbos.std(0) / math.sqrt(400)
    # L_1 is the ELBO: two independent estimates of the same number
    assert torch.all((log_px_1 - elbo_mean).abs() < 6 * se + 1e-6)
    # L_K with K = 2000 lies above the ELBO, by more than the noise for the average
    assert torch.all(log_px > elbo_mean - 5 * se)
    assert (log_px - elbo_mean).mean() > 5 * se.mean()


def test_kl_weight_beta_and_the_reconstruction_term_alone():
    x = data(8)
    for beta, w in [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (3.0, 0.5)]:
        torch.manual_seed(0)
        model = HierarchicalVAE(cfg(beta=beta))
        model.kl_weight = w
        out = model(x, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out["loss"], -(out["re"] - beta * w * out["kl"]).mean())
        torch.testing.assert_close(out["elbo"], out["re"] - out["kl"])
        if beta * w == 0:
            torch.testing.assert_close(out["loss"], -out["re"].mean())


def test_sampling_shapes_and_categorical_inputs():
    torch.manual_seed(0)
    model = HierarchicalVAE(cfg(likelihood="categorical", n_levels=5, prior="vamp"))
    x = torch.as_tensor(np.random.default_rng(0).integers(0, 5, size=(10, 6)))
    model.init_prior(x)
    z1, z2 = model.sample_latents(4)
    assert z1.shape == (4, 3) and z2.shape == (4, 2)
    assert model.sample(4).shape == (4, 6) and model.reconstruct(x[:3]).shape == (3, 6)
    assert model.log_px(x, K=5).shape == (10,)
    with pytest.raises(ValueError, match="levels"):
        model(x + 10)
    with pytest.raises(ValueError, match="K"):
        model.elbo(x, K=0)


@pytest.mark.parametrize("prior", ["standard_normal", "vamp"])
def test_checkpoints_resume_exactly(tmp_path, prior):
    x, xv = data(48), data(16, seed=1)
    tc = TrainConfig(progress=False, device="cpu", batch_size=16, max_epochs=6, patience=None, seed=0, lr=5e-3)

    def fresh(seed=0):
        torch.manual_seed(seed)
        m = HierarchicalVAE(cfg(prior=prior))
        m.init_prior(x)
        return m

    full = fresh()
    res_full = train(full, x, xv, tc)
    path = tmp_path / "ckpt.pt"

    def stop_after_3(info):
        if info.epoch == 3:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train(fresh(), x, xv, tc, checkpoint=path, callbacks=[stop_after_3])
    resumed = fresh(seed=123)
    res = train(resumed, x, xv, tc, checkpoint=path, resume_from=path)
    assert res.history["train"]["kl_z2"] == res_full.history["train"]["kl_z2"]
    assert res.history["val"]["loss"] == res_full.history["val"]["loss"]
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    ck = load_checkpoint(path)
    assert ck["model_class"] == "HierarchicalVAE" and ck["model_config"]["M2"] == 2


def test_command_line_trains_resumes_and_reloads_the_new_models(tmp_path, capsys):
    from lvmlib.training import load_vae, main

    out = tmp_path / "run"
    common = ["--dataset", "digits", "--latent", "4", "--hidden", "16", "--layers", "1", "--no-progress",
              "--eval-samples", "5", "--out", str(out), "--prior", "vamp", "--components", "5", "--hierarchical",
              "--latent-top", "3", "--warmup", "2", "--patience", "50"]
    assert main(common + ["--epochs", "2"]) == 0
    first = load_checkpoint(out / "checkpoint.pt")
    assert first["model_class"] == "HierarchicalVAE" and first["epoch"] == 2
    assert first["model_config"]["prior"] == "vamp" and first["model_config"]["M2"] == 3
    assert main(common + ["--epochs", "3", "--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3
    model = load_vae(out / "checkpoint.pt")
    assert isinstance(model, HierarchicalVAE) and isinstance(model.prior, VampPrior)
    assert model.prior.pseudo_inputs.shape == (5, 64)
    # the pseudo-inputs started as training images (x / 16), not as noise in [0, 1]
    summary = __import__("json").loads((out / "summary.json").read_text())
    assert math.isfinite(summary["test_neg_log_px"]) and summary["test_neg_log_px"] > 0
    mog = tmp_path / "mog"
    assert main(["--dataset", "digits", "--latent", "4", "--hidden", "16", "--layers", "1", "--no-progress",
                 "--eval-samples", "5", "--out", str(mog), "--prior", "mog", "--components", "3", "--epochs", "2"]) == 0
    assert isinstance(load_vae(mog / "checkpoint.pt").prior, MixtureOfGaussiansPrior)
    vamp = tmp_path / "vamp"
    assert main(["--dataset", "digits", "--latent", "4", "--hidden", "16", "--layers", "1", "--no-progress",
                 "--eval-samples", "5", "--out", str(vamp), "--prior", "vamp", "--components", "3", "--epochs", "1",
                 "--no-vamp-encoder-gradient"]) == 0
    assert load_checkpoint(vamp / "checkpoint.pt")["model_config"]["vamp_encoder_gradient"] is False
    assert load_vae(vamp / "checkpoint.pt").prior.encoder_gradient is False


def test_top_vamp_without_encoder_gradient():
    torch.manual_seed(0)
    a = HierarchicalVAE(cfg(prior="vamp"))
    b = HierarchicalVAE(cfg(prior="vamp", vamp_encoder_gradient=False))
    b.load_state_dict(a.state_dict())
    assert not b.prior.encoder_gradient
    z2 = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    # the reference: the mixture of q(z2 | z1 = mu_z1(u_k)) computed from the two encoders directly
    u = a.prior.pseudo_inputs.detach().clone().requires_grad_(True)
    mu_1, _ = a.encoder(u)
    m, lv = a.encoder_top(mu_1)
    ref = torch.logsumexp(Normal(m, torch.exp(0.5 * lv)).log_prob(z2.unsqueeze(1)).sum(-1), 1) - math.log(3)
    (grad_u,) = torch.autograd.grad(ref.sum(), u)
    out = b.prior.log_prob(z2)
    torch.testing.assert_close(out, ref.detach())
    out.sum().backward()
    torch.testing.assert_close(b.prior.pseudo_inputs.grad, grad_u)
    assert all(p.grad is None for p in [*b.encoder.parameters(), *b.encoder_top.parameters()])
    # the forward pass is the same as with encoder gradients; the state holds each encoder once
    x = data(6)
    oa, ob = (m_(x, generator=torch.Generator().manual_seed(3)) for m_ in (a, b))
    torch.testing.assert_close(ob["loss"], oa["loss"])
    assert not any(k.startswith("prior.encoder") for k in b.state_dict())

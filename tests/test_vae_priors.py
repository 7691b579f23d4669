"""The VAE with learnable priors (mixture of Gaussians, VampPrior), its KL weight, and training them."""

import copy
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from lvmlib.priors import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from lvmlib.training import TrainConfig, load_checkpoint, load_vae, train
from lvmlib.vae import VAE, VAEConfig, reparameterize


def cfg(**kw):
    base = dict(D=6, M=2, H=8, likelihood="bernoulli", device="cpu", n_components=3)
    base.update(kw)
    return VAEConfig(**base)


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return torch.as_tensor((rng.random((n, 6)) > 0.5).astype(np.float32))


@pytest.mark.parametrize("prior, cls", [("standard_normal", StandardNormalPrior), ("mog", MixtureOfGaussiansPrior),
                                        ("vamp", VampPrior)])
def test_config_builds_the_prior(prior, cls):
    torch.manual_seed(0)
    model = VAE(cfg(prior=prior))
    assert isinstance(model.prior, cls) and model.kl_weight == 1.0
    if prior != "standard_normal":
        assert model.prior.K == 3


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_monte_carlo_kl_for_learnable_priors(prior):
    torch.manual_seed(0)
    model = VAE(cfg(prior=prior))
    x = data(5)
    out = model(x, generator=torch.Generator().manual_seed(0))
    mu_z, log_var = model.encode(x)
    z = reparameterize(mu_z, log_var, generator=torch.Generator().manual_seed(0))
    log_q = Normal(mu_z, torch.exp(0.5 * log_var)).log_prob(z).sum(-1)
    torch.testing.assert_close(out["kl"], log_q - model.prior.log_prob(z))
    torch.testing.assert_close(out["elbo"], out["re"] - out["kl"])
    # the loss trains the prior's parameters too
    out["loss"].backward()
    for p in model.prior.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    # the K-sample ELBO averages the Monte Carlo KL over K draws: its spread shrinks with K
    with torch.no_grad():
        kl1 = torch.stack([model.elbo(x, K=1)["kl"] for _ in range(200)])
        kl50 = torch.stack([model.elbo(x, K=50)["kl"] for _ in range(200)])
    assert torch.all(kl50.std(0) < kl1.std(0) / 4)
    assert torch.all((kl50.mean(0) - kl1.mean(0)).abs() < 5 * kl1.std(0) / math.sqrt(200) + 1e-6)


def test_vamp_init_prior_takes_encoder_inputs_of_training_rows():
    torch.manual_seed(0)
    model = VAE(cfg(prior="vamp", likelihood="categorical", n_levels=5, n_components=4))
    x = torch.as_tensor(np.random.default_rng(0).integers(0, 5, size=(10, 6)))
    model.init_prior(x, generator=torch.Generator().manual_seed(1))
    u = model.prior.pseudo_inputs.detach()
    rows = x.double() / 4  # the categorical encoder sees x / (L - 1)
    for k in range(4):
        assert torch.any(torch.all((rows - u[k].double()).abs() < 1e-6, dim=1)), k
    assert len({tuple(r.tolist()) for r in u}) == 4 or len({tuple(r.tolist()) for r in rows}) < 10
    # fewer rows than components: drawn with replacement
    model.init_prior(x[:2])
    assert u.shape == model.prior.pseudo_inputs.shape
    # priors without data-dependent initialisation are left alone
    mog = VAE(cfg(prior="mog"))
    before = {k: v.clone() for k, v in mog.state_dict().items()}
    mog.init_prior(data(4))
    assert all(torch.equal(v, mog.state_dict()[k]) for k, v in before.items())


def test_vamp_state_dict_holds_the_encoder_once_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = VAE(cfg(prior="vamp"))
    model.init_prior(data(10))
    keys = list(model.state_dict())
    assert "prior.pseudo_inputs" in keys and not any(k.startswith("prior.encoder") for k in keys)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    torch.manual_seed(7)
    back = VAE(cfg(prior="vamp"))
    back.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    z = torch.randn(4, 2)
    torch.testing.assert_close(back.prior.log_prob(z), model.prior.log_prob(z))
    # the rebuilt prior follows the rebuilt model's own encoder
    with torch.no_grad():
        back.encoder.net[0].bias.add_(1.0)
    assert not torch.allclose(back.prior.log_prob(z), model.prior.log_prob(z))


@pytest.mark.parametrize("prior", ["standard_normal", "mog"])
def test_kl_weight_and_beta_scale_the_kl_in_the_loss_only(prior):
    torch.manual_seed(0)
    x = data(8)
    for beta, w in [(1.0, 1.0), (0.0, 1.0), (2.0, 0.25), (1.0, 0.0)]:
        model = VAE(cfg(prior=prior, beta=beta))
        model.kl_weight = w
        out = model(x, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out["loss"], -(out["re"] - beta * w * out["kl"]).mean())
        torch.testing.assert_close(out["elbo"], out["re"] - out["kl"])  # the ELBO keeps weight 1
        if beta * w == 0:
            torch.testing.assert_close(out["loss"], -out["re"].mean())  # the reconstruction term alone


def _quiet(**kw):
    base = dict(progress=False, device="cpu", batch_size=16, max_epochs=6, patience=None, seed=0, lr=5e-3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_learnable_prior_checkpoints_resume_exactly_and_reload(tmp_path, prior):
    x, xv = data(48), data(16, seed=1)

    def fresh(seed=0):
        torch.manual_seed(seed)
        m = VAE(cfg(prior=prior))
        m.init_prior(x)
        return m

    full = fresh()
    res_full = train(full, x, xv, _quiet())
    path = tmp_path / "ckpt.pt"

    def stop_after_3(info):
        if info.epoch == 3:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train(fresh(), x, xv, _quiet(), checkpoint=path, callbacks=[stop_after_3])
    resumed = fresh(seed=123)
    res = train(resumed, x, xv, _quiet(), checkpoint=path, resume_from=path)
    assert res.history["train"]["loss"] == res_full.history["train"]["loss"]
    assert res.history["val"]["loss"] == res_full.history["val"]["loss"]
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert load_checkpoint(path)["model_config"]["prior"] == prior
    back = load_vae(path)
    z = torch.randn(5, 2)
    torch.testing.assert_close(back.prior.log_prob(z), full.prior.log_prob(z))


def test_vamp_without_encoder_gradient_trains_the_encoder_from_q_alone():
    torch.manual_seed(0)
    with_grad = VAE(cfg(prior="vamp", beta=1.5))
    without = VAE(cfg(prior="vamp", beta=1.5, vamp_encoder_gradient=False))
    without.load_state_dict(with_grad.state_dict())
    assert with_grad.prior.encoder_gradient and not without.prior.encoder_gradient
    x = data(7)
    outs = [m(x, generator=torch.Generator().manual_seed(2)) for m in (with_grad, without)]
    for k in ("loss", "elbo", "re", "kl"):  # the same values: only the gradients differ
        torch.testing.assert_close(outs[1][k], outs[0][k])
    outs[1]["loss"].backward()
    # the reference: the same loss with log p(z) evaluated by a frozen copy of the encoder
    ref = VAE(cfg(prior="vamp", beta=1.5))
    ref.load_state_dict(with_grad.state_dict())
    frozen = copy.deepcopy(ref.encoder).requires_grad_(False)
    mu_z, log_var = ref.encoder(x)
    z = reparameterize(mu_z, log_var, generator=torch.Generator().manual_seed(2))
    m_u, lv_u = frozen(ref.prior.pseudo_inputs)
    log_p = torch.logsumexp(Normal(m_u, torch.exp(0.5 * lv_u)).log_prob(z.unsqueeze(1)).sum(-1), 1) - math.log(3)
    log_q = Normal(mu_z, torch.exp(0.5 * log_var)).log_prob(z).sum(-1)
    loss = -(ref.decoder.log_prob(x, z) - 1.5 * (log_q - log_p)).mean()
    torch.testing.assert_close(loss, outs[1]["loss"])
    loss.backward()
    for (name, p), q in zip(without.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    # and it differs from Tomczak & Welling's gradient, which also reaches the encoder through the prior
    outs[0]["loss"].backward()
    assert not torch.allclose(with_grad.encoder.net[0].weight.grad, without.encoder.net[0].weight.grad)
    torch.testing.assert_close(with_grad.decoder.net[0].weight.grad, without.decoder.net[0].weight.grad)


def test_vamp_encoder_gradient_config_checks_and_checkpoint(tmp_path):
    with pytest.raises(TypeError, match="vamp_encoder_gradient"):
        cfg(prior="vamp", vamp_encoder_gradient="yes")
    with pytest.raises(TypeError, match="vamp_encoder_gradient"):
        cfg(prior="vamp", vamp_encoder_gradient=1)
    assert cfg(prior="vamp", vamp_encoder_gradient=np.bool_(False)).vamp_encoder_gradient is False
    x, xv = data(32), data(8, seed=1)
    torch.manual_seed(0)
    model = VAE(cfg(prior="vamp", vamp_encoder_gradient=False))
    model.init_prior(x)
    path = tmp_path / "ckpt.pt"
    train(model, x, xv, _quiet(max_epochs=2), checkpoint=path)
    back = load_vae(path)
    assert back.config.vamp_encoder_gradient is False and back.prior.encoder_gradient is False
    z = torch.randn(5, 2)
    torch.testing.assert_close(back.prior.log_prob(z), model.prior.log_prob(z))

"""Normalizing flows for the posterior (lvmlib.flows): each step's log-det against the autograd Jacobian
and Pyro's transforms, densities that integrate to 1, the planar constraint, and the VAE with a flow
posterior (its ELBO, importance sampling, the inference-gap API, training, checkpoints, the command line)."""

import json
import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from lvmlib.flows import (
    FlowVAE,
    HouseholderFlow,
    IAFFlow,
    PlanarFlow,
    householder_step,
    iaf_step,
    log_px_from_params,
    make_flow,
    planar_inverse,
    planar_step,
    planar_u_hat,
)
from lvmlib.training import TrainConfig, load_checkpoint, load_vae, train
from lvmlib.training.cli import main
from lvmlib.vae import VAE, VAEConfig

FLOW_NAMES = ["planar", "householder", "iaf"]
DT = torch.float64


from training_helpers import one_thread  # noqa: E402,F401  (an autouse fixture)


def g(seed):
    return torch.Generator().manual_seed(seed)


def jac_log_det(f, z):
    """log|det df/dz| per row of z (B, M), from the autograd Jacobian of one row at a time."""
    out = []
    for i in range(z.shape[0]):
        J = jacobian(lambda zi: f(zi.unsqueeze(0), i)[0].squeeze(0), z[i])
        out.append(torch.linalg.slogdet(J)[1])
    return torch.stack(out)


def cfg(posterior="planar", K=2, **kw):
    base = dict(D=6, M=2, H=8, likelihood="bernoulli", device="cpu", posterior=posterior,
                flow_length=None if posterior == "gaussian" else K)
    base.update(kw)
    return VAEConfig(**base)


def data(n=40, seed=0, D=6):
    rng = np.random.default_rng(seed)
    return torch.as_tensor((rng.random((n, D)) > 0.5).astype(np.float32))


# ------------------------------------------------------------------------ the steps' log-dets


@pytest.mark.parametrize("M", [1, 2, 5])
def test_planar_log_det_matches_autograd_jacobian(M):
    B = 4
    z, w, u = (torch.randn(B, M, generator=g(s), dtype=DT) * 2 for s in (1, 2, 3))
    b = torch.randn(B, generator=g(4), dtype=DT)
    _, log_det = planar_step(z, w, u, b)
    ref = jac_log_det(lambda zi, i: planar_step(zi, w[i], u[i], b[i]), z)
    torch.testing.assert_close(log_det, ref)
    assert log_det.shape == (B,)


@pytest.mark.parametrize("M", [1, 3, 6])
def test_householder_is_a_reflection_with_log_det_zero(M):
    B = 3
    z, v = torch.randn(B, M, generator=g(1), dtype=DT), torch.randn(B, M, generator=g(2), dtype=DT)
    z_new, log_det = householder_step(z, v)
    ref = jac_log_det(lambda zi, i: householder_step(zi, v[i]), z)
    torch.testing.assert_close(log_det, ref, atol=1e-10, rtol=0)
    # a reflection: its own inverse, keeps lengths, det = -1 (so |det| = 1)
    torch.testing.assert_close(householder_step(z_new, v)[0], z)
    torch.testing.assert_close(z_new.norm(dim=-1), z.norm(dim=-1))
    J = jacobian(lambda zi: householder_step(zi, v[0])[0], z[0])
    torch.testing.assert_close(torch.linalg.det(J), torch.tensor(-1.0, dtype=DT))


@pytest.mark.parametrize("name", FLOW_NAMES)
@pytest.mark.parametrize("M", [1, 3])
def test_whole_flow_log_det_matches_autograd_jacobian(name, M):
    torch.manual_seed(0)
    flow = make_flow(name, M=M, K=3, feature_dim=5).to(DT)
    with torch.no_grad():  # away from the near-identity start, so that the check has something to see
        for p in flow.parameters():
            p.add_(0.5 * torch.randn(p.shape, dtype=DT, generator=g(7)))
    B = 4
    h = torch.randn(B, 5, generator=g(1), dtype=DT)
    params = flow.params(h)
    z0 = torch.randn(B, M, generator=g(2), dtype=DT)
    zK, log_det = flow(z0, params)

    def f(zi, i):
        return flow(zi, {k: v[i : i + 1] for k, v in params.items()})

    ref = jac_log_det(f, z0)
    torch.testing.assert_close(log_det, ref)
    if name != "householder":
        assert ref.abs().max() > 1e-3  # not the identity
    # the inverse undoes it
    torch.testing.assert_close(flow.inverse(zK, params), z0, atol=1e-8, rtol=1e-6)


def test_iaf_jacobian_is_triangular_in_its_order_and_log_det_is_sum_log_sigma():
    torch.manual_seed(0)
    flow = IAFFlow(M=4, K=2, feature_dim=3).to(DT)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.5 * torch.randn(p.shape, dtype=DT, generator=g(3)))
    params = flow.params(torch.randn(1, 3, dtype=DT, generator=g(1)))
    z = torch.randn(1, 4, dtype=DT, generator=g(2))
    for k, order in ((0, [0, 1, 2, 3]), (1, [3, 2, 1, 0])):
        J = jacobian(lambda zi: flow.step(k, zi.unsqueeze(0), params)[0].squeeze(0), z[0])
        Jo = J[order][:, order]
        torch.testing.assert_close(torch.triu(Jo, 1), torch.zeros_like(Jo), atol=1e-12, rtol=0)
        m, s = flow.mades[k](z, params["h"])
        torch.testing.assert_close(torch.diagonal(Jo), torch.sigmoid(s)[0][order])
        _, ld = iaf_step(z, m, s)
        torch.testing.assert_close(ld, torch.log(torch.sigmoid(s)).sum(-1))


# ------------------------------------------------------------------------ against Pyro


def test_planar_and_householder_agree_with_pyro():
    pyro_planar = pytest.importorskip("pyro.distributions.transforms.planar")
    pyro_householder = pytest.importorskip("pyro.distributions.transforms.householder")
    B, M = 5, 3
    z, w, u = (torch.randn(B, M, generator=g(s), dtype=DT) * 1.5 for s in (1, 2, 3))
    u[0] = -5 * w[0]  # w.u well below -1: the constraint is active
    b = torch.randn(B, generator=g(4), dtype=DT)
    ours, ld = planar_step(z, w, u, b)
    t = pyro_planar.ConditionedPlanar((b.unsqueeze(-1), u, w))
    theirs = t(z)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ld, t.log_abs_det_jacobian(z, theirs))
    torch.testing.assert_close(planar_u_hat(w, u), t.u_hat(u, w))

    v = torch.randn(B, 2, M, generator=g(5), dtype=DT)  # two reflections per point
    y = z
    for k in range(2):
        y, ld = householder_step(y, v[:, k])
        assert torch.equal(ld, torch.zeros(B, dtype=DT))
    th = pyro_householder.ConditionedHouseholder(v)
    torch.testing.assert_close(y, th(z))
    torch.testing.assert_close(th.log_abs_det_jacobian(z, y), torch.zeros(B, dtype=DT))


def test_iaf_step_agrees_with_pyros_stable_affine_autoregressive():
    pyro_t = pytest.importorskip("pyro.distributions.transforms")
    torch.manual_seed(0)
    flow = IAFFlow(M=3, K=1, feature_dim=2).to(DT)
    params = flow.params(torch.randn(4, 2, dtype=DT, generator=g(1)))
    z = torch.randn(4, 3, dtype=DT, generator=g(2))

    class Arn(torch.nn.Module):  # our MADE, in the form Pyro's stable transform reads (it adds 2 to s)
        def forward(self, x):
            m, s = flow.mades[0](x, params["h"])
            return m, s - 2.0

    t = pyro_t.AffineAutoregressive(Arn(), stable=True)
    ours, ld = flow(z, params)
    theirs = t(z)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ld, t.log_abs_det_jacobian(z, theirs))


# ------------------------------------------------------------------------ densities and invertibility


@pytest.mark.parametrize("name", ["gaussian"] + FLOW_NAMES)
def test_flow_posterior_density_integrates_to_one_on_a_grid(name):
    torch.manual_seed(3)
    model = VAE(cfg(name, K=3)).double()
    if name != "gaussian":
        with torch.no_grad():
            for p in model.flow.parameters():
                p.add_(0.5 * torch.randn(p.shape, dtype=DT, generator=g(5)))
    x = data(2, D=6).double()
    params = {k: v.detach() for k, v in model.posterior_params(x).items()}
    params["mu"] = torch.zeros_like(params["mu"])
    params["log_var"] = torch.full_like(params["log_var"], math.log(0.3))
    n, L = 241, 6.0
    ax = torch.linspace(-L, L, n, dtype=DT)
    grid = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 1, 2).expand(-1, 2, 2)
    with torch.no_grad():
        log_q = model.log_q_from_params(grid, params)  # (n^2, 2)
    mass = log_q.exp().sum(0) * (ax[1] - ax[0]) ** 2
    torch.testing.assert_close(mass, torch.ones(2, dtype=DT), atol=5e-3, rtol=0)
    # the density at a sample is the one the sampler reports
    z, lq = model.sample_q_from_params(params, 5, generator=g(1))
    with torch.no_grad():
        torch.testing.assert_close(model.log_q_from_params(z, params), lq.detach(), atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("scale", [1.0, 10.0, 1e3])
def test_planar_stays_invertible_for_random_and_extreme_parameters(scale):
    B, M = 200, 3
    w = torch.randn(B, M, generator=g(1), dtype=DT) * scale
    u = torch.randn(B, M, generator=g(2), dtype=DT) * scale
    u[:50] = -scale * 7 * w[:50]  # w.u far below -1
    w[50:60] *= 1e-4  # nearly zero w
    b = torch.randn(B, generator=g(3), dtype=DT) * scale
    u_hat = planar_u_hat(w, u)
    # w.u_hat = -1 + softplus(w.u) > -1 in exact arithmetic; for w.u << 0 it rounds to -1, where
    # a - tanh(a + b) is still strictly increasing (its slope vanishes at one point only); the
    # rounding of w.u + (m - w.u) is relative to |w.u|
    wu = (w * u).sum(-1).abs()
    assert ((w * u_hat).sum(-1) >= -1 - 1e-14 * (1 + wu)).all()
    # along w the map is a + c tanh(a + b) with c = w.u_hat: strictly increasing on a fine line
    c = (w * u_hat).sum(-1, keepdim=True)
    a = torch.linspace(-50, 50, 20001, dtype=DT) * max(scale, 1.0)
    along = a + c * torch.tanh(a + b.unsqueeze(-1))
    assert (along.diff(dim=-1) > 0).all()
    # z -> z' -> z recovers the point, and the log-det is finite
    z = torch.randn(B, M, generator=g(4), dtype=DT) * 3
    z_new, ld = planar_step(z, w, u, b)
    assert torch.isfinite(ld).all()
    torch.testing.assert_close(planar_inverse(z_new, w, u, b), z, atol=1e-6 * scale, rtol=1e-6)


def test_planar_without_the_constraint_can_fold_space():
    # the check above can fail: with w.u < -1 and no constraint, the map along w turns back
    w = torch.tensor([[1.0, 0.0]], dtype=DT)
    u = torch.tensor([[-3.0, 0.0]], dtype=DT)
    a = torch.linspace(-3, 3, 601, dtype=DT).unsqueeze(-1) * torch.tensor([1.0, 0.0], dtype=DT)
    z_new, ld = planar_step(a, w, u, torch.tensor(0.0, dtype=DT), constrain=False)
    assert (z_new[:, 0].diff() < 0).any()
    z_ok, _ = planar_step(a, w, u, 0.0)
    assert (z_ok[:, 0].diff() > 0).all()


# ------------------------------------------------------------------------ the VAE with a flow posterior


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_config_builds_a_flow_vae(name):
    model = VAE(cfg(name, K=3))
    assert isinstance(model, FlowVAE) and model.flow.K == 3
    assert type(VAE(cfg("gaussian"))) is VAE
    out = model(data(7))
    assert set(out) == {"loss", "elbo", "re", "kl"} and out["elbo"].shape == (7,) and out["loss"].dim() == 0
    torch.testing.assert_close(out["elbo"], out["re"] - out["kl"])


@pytest.mark.parametrize("name", ["gaussian"] + FLOW_NAMES)
def test_elbo_below_importance_sampled_log_px(name):
    torch.manual_seed(0)
    model = VAE(cfg(name, K=2, M=3)).double()
    x = data(30).double()
    torch.manual_seed(1)
    elbo = model.elbo(x, K=2000)["elbo"]
    log_px = model.log_px(x, K=2000, generator=g(2))
    assert (elbo <= log_px + 1e-6).all()
    assert (log_px - elbo).mean() > 1e-3  # a real gap for an untrained encoder
    # the same with the params API, and log p(x) from the encoder's params
    params = model.posterior_params(x)
    e2 = model.elbo_from_params(x, params, n_samples=2000, generator=g(3))
    torch.testing.assert_close(e2.mean(), elbo.mean(), atol=0.05, rtol=0)
    l2 = log_px_from_params(model, x, params, K=2000, generator=g(4))
    torch.testing.assert_close(l2.mean(), log_px.mean(), atol=0.05, rtol=0)


@pytest.mark.parametrize("name", ["gaussian"] + FLOW_NAMES)
def test_params_api_shapes_and_gradients(name):
    torch.manual_seed(0)
    model = VAE(cfg(name, K=2))
    x = data(5)
    params = model.posterior_params(x)
    assert all(v.shape[0] == 5 for v in params.values())
    assert {"mu", "log_var"} <= set(params)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    z, log_q = model.sample_q_from_params(leaves, 4, generator=g(1))
    assert z.shape == (4, 5, 2) and log_q.shape == (4, 5)
    elbo = model.elbo_from_params(x, leaves, n_samples=3, generator=g(2))
    assert elbo.shape == (5,)
    grads = torch.autograd.grad(elbo.sum(), list(leaves.values()))
    assert all(torch.isfinite(gr).all() for gr in grads)
    assert grads[0].abs().sum() > 0
    # each point's ELBO depends on its own params only
    gi = torch.autograd.grad(model.elbo_from_params(x, leaves, generator=g(2))[0], leaves["mu"])[0]
    assert gi[1:].abs().sum() == 0 and gi[0].abs().sum() > 0


def test_gaussian_params_api_matches_torch_distributions():
    torch.manual_seed(0)
    model = VAE(cfg("gaussian"))
    params = model.posterior_params(data(4))
    z, log_q = model.sample_q_from_params(params, 6, generator=g(1))
    q = torch.distributions.Normal(params["mu"], torch.exp(0.5 * params["log_var"]))
    torch.testing.assert_close(log_q, q.log_prob(z).sum(-1))
    torch.testing.assert_close(model.log_q_from_params(z, params), log_q)


@pytest.mark.slow
def test_flow_vae_forward_has_no_graph_breaks():
    import torch._dynamo

    torch._dynamo.reset()
    for name in FLOW_NAMES:
        model = VAE(cfg(name, K=2))
        explanation = torch._dynamo.explain(model)(data(8), check=False)
        assert explanation.graph_break_count == 0, (name, explanation.break_reasons)
        assert explanation.graph_count == 1
    torch._dynamo.reset()


def quiet(**kw):
    base = dict(max_epochs=10, patience=50, batch_size=16, lr=1e-2, device="cpu", progress=False, seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_flow_vae_trains_checkpoints_resumes_exactly_and_reloads(tmp_path, name):
    x, xv = data(48), data(16, seed=1)

    def fresh(seed=0):
        torch.manual_seed(seed)
        return VAE(cfg(name, K=2))

    full = fresh()
    res_full = train(full, x, xv, quiet())
    assert res_full.history["train"]["loss"][-1] < res_full.history["train"]["loss"][0]
    path = tmp_path / "ckpt.pt"

    def stop_after_3(info):
        if info.epoch == 3:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train(fresh(), x, xv, quiet(), checkpoint=path, callbacks=[stop_after_3])
    resumed = fresh(seed=123)
    res = train(resumed, x, xv, quiet(), checkpoint=path, resume_from=path)
    assert res.history["val"]["loss"] == res_full.history["val"]["loss"]
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    ck = load_checkpoint(path)
    assert ck["model_class"] == "FlowVAE" and ck["model_config"]["posterior"] == name
    back = load_vae(path)
    assert isinstance(back, FlowVAE) and back.config.flow_length == 2
    p1, p2 = full.eval().posterior_params(xv), back.posterior_params(xv)
    for k in p1:
        torch.testing.assert_close(p1[k], p2[k])


@pytest.mark.slow
def test_command_line_trains_a_flow_vae_and_resumes(tmp_path):
    out = tmp_path / "iaf"
    common = ["--dataset", "digits", "--latent", "3", "--hidden", "16", "--layers", "1", "--no-progress",
              "--eval-samples", "5", "--out", str(out), "--flow", "iaf", "--flow-length", "2", "--patience", "50"]
    assert main(common + ["--epochs", "2"]) == 0
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["model_class"] == "FlowVAE" and ck["model_config"]["posterior"] == "iaf"
    assert ck["model_config"]["flow_length"] == 2
    assert main(common + ["--epochs", "3", "--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3
    assert isinstance(load_vae(out / "checkpoint.pt"), FlowVAE)
    summary = json.loads((out / "summary.json").read_text())
    assert math.isfinite(summary["test_neg_log_px"]) and summary["test_neg_log_px"] > 0


# ------------------------------------------------------------------------ bad input


def test_bad_configs_name_the_argument():
    with pytest.raises(ValueError, match="VAEConfig.posterior must be one of"):
        cfg("sylvester")
    with pytest.raises(ValueError, match="flow_length .* integer >= 1 .*planar"):
        cfg("planar", K=0)
    with pytest.raises(ValueError, match="flow_length .* integer >= 1"):
        cfg("iaf", K=None)
    with pytest.raises(ValueError, match="flow_length .* integer >= 1"):
        cfg("householder", K=2.5)
    with pytest.raises(ValueError, match="flow_length must be None for posterior='gaussian'"):
        cfg("gaussian", flow_length=3)
    from lvmlib.hierarchical import HierarchicalVAE, HierarchicalVAEConfig

    with pytest.raises(ValueError, match="supports only posterior='gaussian'"):
        HierarchicalVAE(HierarchicalVAEConfig(D=6, M=2, H=8, device="cpu", posterior="planar", flow_length=2))
    with pytest.raises(ValueError, match="flow name must be one of"):
        make_flow("radial", 2, 2, 4)
    with pytest.raises(ValueError, match="K \\(the flow length\\) must be a positive integer"):
        PlanarFlow(2, 0, 4)


def test_bad_step_inputs_and_bad_command_lines(tmp_path, capsys):
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="w must have shape"):
        planar_step(z, torch.randn(4, 2), torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="v of shape .* does not broadcast"):
        householder_step(z, torch.randn(5, 3))
    with pytest.raises(TypeError, match="z must be a torch.Tensor"):
        householder_step(np.zeros((4, 3)), torch.randn(3))
    with pytest.raises(TypeError, match="constrain must be True or False"):
        planar_step(z, torch.randn(3), torch.randn(3), 0.0, constrain="yes")
    model = VAE(cfg("planar"))
    with pytest.raises(NotImplementedError, match="flow posterior has no KL"):
        model.kl(torch.zeros(2, 2), torch.zeros(2, 2))
    params = model.posterior_params(data(3))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample_q_from_params(params, 0)
    with pytest.raises(ValueError, match="params hold 3 points but x has 5"):
        model.elbo_from_params(data(5), params)
    with pytest.raises(SystemExit):
        main(["--flow-length", "3", "--out", str(tmp_path / "a")])
    assert "--flow-length 3 needs --flow" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--flow", "planar", "--flow-length", "0", "--out", str(tmp_path / "b")])
    assert "--flow-length" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--flow", "radial", "--out", str(tmp_path / "c")])
    assert "--flow" in capsys.readouterr().err

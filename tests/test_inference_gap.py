"""The exact 2-D posterior on a grid and the inference gap (lvmlib.posterior_grid, lvmlib.inference_gap).

References: the linear-Gaussian marginal and posterior in closed form (lvmlib.gaussian, Bishop
2.115-2.117) for a linear decoder; importance sampling for a non-linear VAE; scipy's dblquad.
"""

import copy
import math

import numpy as np
import pytest
import torch

from lvmlib import inference_gap, posterior_grid as pg, vae
from lvmlib.gaussian import linear_gaussian_marginal, linear_gaussian_posterior, log_normal_diag, log_normal_full


from training_helpers import one_thread  # noqa: E402,F401  (an autouse fixture)


def linear_vae(seed=0, D=5, sigma2=0.5):
    torch.manual_seed(seed)
    model = vae.VAE(vae.VAEConfig(D=D, M=2, n_hidden_layers=0, likelihood="gaussian", sigma2=sigma2, device="cpu"))
    model.double()
    return model


def exact_linear(model, x):
    lin = model.decoder.net[0]
    W, b = lin.weight.detach(), lin.bias.detach()  # (D, 2), (D,)
    D = W.shape[0]
    sigma2 = float(model.decoder.log_var_x[0].exp())
    L = torch.eye(D, dtype=W.dtype) / sigma2
    mean, cov = linear_gaussian_marginal(torch.zeros(2, dtype=W.dtype), torch.eye(2, dtype=W.dtype), W, b, L)
    return log_normal_full(x, mean, cov), (W, b, L)


@pytest.fixture(scope="module")
def small_vae():
    torch.manual_seed(0)
    model = vae.VAE(vae.VAEConfig(D=6, M=2, H=16, likelihood="bernoulli", device="cpu"))
    x = (torch.rand(5, 6, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    return model, x


def test_grid_log_px_equals_the_linear_gaussian_marginal_within_its_reported_error():
    model = linear_vae()
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    grid = pg.posterior_grid(model, x, n=200, limits=((-7, 7), (-7, 7)))
    exact, _ = exact_linear(model, x)
    err = (grid.log_px - exact).abs()
    assert torch.all(err <= grid.resolution_error + 1e-9), (err, grid.resolution_error)
    assert torch.all(err < 1e-4)
    assert grid.prior_mass_outside < 1e-10 and torch.all(grid.edge_ratio < 1e-8)


def test_a_coarse_grid_reports_a_larger_error_that_still_bounds_the_true_one():
    model = linear_vae(sigma2=0.05)
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    exact, _ = exact_linear(model, x)
    fine = pg.posterior_grid(model, x, n=200, limits=((-6, 6), (-6, 6)))
    coarse = pg.posterior_grid(model, x, n=40, limits=((-6, 6), (-6, 6)))
    assert torch.all(coarse.resolution_error > fine.resolution_error)
    assert torch.all((coarse.log_px - exact).abs() <= coarse.resolution_error)


def test_grid_posterior_matches_the_exact_gaussian_posterior_and_a_tight_box_is_flagged():
    model = linear_vae()
    x = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    grid = pg.posterior_grid(model, x, n=160, limits=((-6, 6), (-6, 6)))
    _, (W, b, L) = exact_linear(model, x)
    m, S = linear_gaussian_posterior(x, torch.zeros(2, dtype=W.dtype), torch.eye(2, dtype=W.dtype), W, b, L)
    pts = grid.points.reshape(-1, 1, 2)  # (P, 1, 2)
    exact = log_normal_full(pts, m, S).T.reshape(2, 161, 161)
    assert torch.allclose(grid.log_posterior, exact, atol=1e-4)
    tight = pg.posterior_grid(model, x, n=40, limits=((-0.5, 0.5), (-0.5, 0.5)))
    assert tight.prior_mass_outside > 0.5 and torch.all(tight.edge_ratio > 0.3)


def test_kl_by_quadrature_equals_log_px_minus_elbo(small_vae):
    """Notebook 04's identity log p(x) = ELBO + KL(q || p(z|x)), on a non-linear model."""
    model, x = small_vae
    model = copy.deepcopy(model).double()
    grid = pg.posterior_grid(model, x, n=240, limits=((-6, 6), (-6, 6)))
    with torch.no_grad():
        mu, lv = model.encode(x)
        log_q = log_normal_diag(grid.points.reshape(-1, 1, 2), mu, lv).T.reshape(len(x), 241, 241)
        kl, kl_err = grid.kl(log_q)
        # the ELBO exactly (analytic KL to the prior, RE by quadrature under q on the same grid)
        log_prior = model.prior.log_prob(grid.points.reshape(-1, 2)).reshape(1, 241, 241)
        re = log_q.exp() * (grid.log_joint - log_prior)  # q(z) log p(x|z)
        w = pg.trapezoid_log_weights(241, 241).exp()
        re = (w * re).sum((-2, -1)) * grid.cell_area
        elbo = re - model.kl(mu, lv)
    gap = grid.log_px - elbo
    assert torch.all(kl > 0)
    tol = kl_err + grid.resolution_error + 1e-6
    assert torch.all((kl - gap).abs() <= tol), (kl, gap, tol)


def test_grid_log_px_agrees_with_importance_sampling_on_a_small_vae(small_vae):
    model, x = small_vae
    grid = pg.posterior_grid(model, x, n=200, limits=((-6, 6), (-6, 6)))
    lp = model.log_px(x, K=20000, generator=torch.Generator().manual_seed(0)).double()
    assert torch.allclose(grid.log_px, lp, atol=2e-2), (grid.log_px, lp)


def test_grid_log_integral_against_scipy_dblquad():
    scipy_integrate = pytest.importorskip("scipy.integrate")
    f = lambda a, b: math.exp(-0.5 * ((a - 0.3) ** 2 / 0.4 + (b + 0.2) ** 2 / 0.9) + 0.3 * a * b * math.exp(-a * a))
    ref, _ = scipy_integrate.dblquad(lambda b, a: f(a, b), -5, 5, -5, 5)
    z = torch.linspace(-5, 5, 401, dtype=torch.float64)
    Z1, Z2 = torch.meshgrid(z, z, indexing="ij")
    log_f = torch.tensor([[math.log(f(a, b)) for b in z.tolist()] for a in z.tolist()], dtype=torch.float64)
    h = 10 / 400
    assert abs(float(pg.grid_log_integral(log_f, h, h)) - math.log(ref)) < 1e-5


def test_gap_ordering_holds_up_to_the_reported_error(small_vae):
    model, x = small_vae
    model = copy.deepcopy(model)
    with torch.no_grad():  # an encoder that misses every posterior: a large amortisation gap
        model.encoder.net[-1].bias[:2] += 1.5
    r = inference_gap.inference_gaps(model, x, K=2000, n_elbo=2000, steps=150, lr=0.05,
                                     generator=torch.Generator().manual_seed(0))
    z = 4.0
    assert torch.all(r.elbo_star >= r.elbo_phi - z * r.amortisation_se)
    assert torch.all(r.log_px >= r.elbo_star - z * r.approximation_se)
    # the shifted encoder is far from each point's best Gaussian: the amortisation gap is clearly positive
    assert r.amortisation.mean() > 10 * r.summary()["amortisation"]["mc_se"]
    # against the grid's exact log p(x)
    grid = pg.posterior_grid(model, x, n=200, limits=((-6, 6), (-6, 6)))
    assert torch.all((r.log_px.double() - grid.log_px).abs() <= z * r.log_px_se.double() + 1e-2)
    s = r.summary()
    assert set(s) == {"log_px", "elbo_star", "elbo_phi", "approximation", "amortisation"}
    assert s["approximation"]["mean"] == pytest.approx(s["log_px"]["mean"] - s["elbo_star"]["mean"], abs=1e-4)


def test_the_refined_gaussian_is_the_exact_posterior_for_a_linear_model():
    """For a linear-Gaussian model with a diagonal posterior, q* reaches the exact posterior's best
    diagonal fit: its ELBO is within the estimator's error of the analytic optimum."""
    model = linear_vae(D=4)
    with torch.no_grad():
        model.decoder.net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.5], [0.3, 0.0], [0.0, -0.8]], dtype=torch.float64))
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    star = inference_gap.refine_posterior(model, x, steps=600, lr=0.05, n_samples=16, generator=torch.Generator().manual_seed(1))
    mu, lv = star["mu"], star["log_var"]
    _, (W, b, L) = exact_linear(model, x)
    m, S = linear_gaussian_posterior(x, torch.zeros(2, dtype=W.dtype), torch.eye(2, dtype=W.dtype), W, b, L)
    # the columns of W are orthogonal, so the posterior covariance is diagonal and q* can equal it
    assert torch.allclose(mu, m, atol=0.05)
    assert torch.allclose(lv.exp(), torch.diagonal(S, dim1=-2, dim2=-1).expand_as(lv), rtol=0.15)


def test_refinement_leaves_every_model_weight_and_grad_untouched(small_vae):
    model, x = small_vae
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    params = inference_gap.refine_posterior(model, x, steps=20, lr=0.1)
    assert model.training  # the mode is restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert all(not p.requires_grad for p in params.values())
    mu0, lv0 = model.encode(x)
    assert not torch.allclose(params["mu"], mu0)


def test_zero_steps_returns_the_encoders_output(small_vae):
    model, x = small_vae
    p = inference_gap.refine_posterior(model, x, steps=0)
    mu, lv = p["mu"], p["log_var"]
    mu0, lv0 = model.encode(x)
    assert torch.equal(mu, mu0) and torch.equal(lv, lv0)


class EncodeOnly(torch.nn.Module):
    """A model with only encode(x) (no posterior_params): the Gaussian path of inference_gap, written
    without the contract, must give the same answers as the VAE's own contract methods."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.prior = base.prior

    def check_data(self, x, name="x"):
        return self.base.check_data(x, name)

    def log_px_given_z(self, x, z):
        return self.base.log_px_given_z(x, z)

    def encode(self, x):
        return self.base.encode(x)


def test_the_encode_only_path_and_the_contract_path_agree(small_vae):
    model, x = small_vae
    a = inference_gap.inference_gaps(model, x, K=3000, n_elbo=3000, steps=50, generator=torch.Generator().manual_seed(0))
    b = inference_gap.inference_gaps(EncodeOnly(model), x, K=3000, n_elbo=3000, steps=50,
                                     generator=torch.Generator().manual_seed(0))
    for name in ("log_px", "elbo_phi", "elbo_star"):
        va, vb = getattr(a, name), getattr(b, name)
        se = getattr(a, f"{name}_se") + getattr(b, f"{name}_se")
        assert torch.all((va - vb).abs() <= 5 * se + 0.05), name


@pytest.mark.parametrize("flow", ["planar", "householder"])
def test_gaps_of_a_flow_posterior(small_vae, flow):
    torch.manual_seed(0)
    model = vae.VAE(vae.VAEConfig(D=6, M=2, H=16, likelihood="bernoulli", posterior=flow, flow_length=2, device="cpu"))
    _, x = small_vae
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = inference_gap.inference_gaps(model, x, K=2000, n_elbo=2000, steps=60, generator=torch.Generator().manual_seed(0))
    assert set(r.params_star) >= {"mu", "log_var"} and len(r.params_star) > 2  # the flow's parameters were refined too
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.all(r.elbo_star >= r.elbo_phi - 4 * r.amortisation_se)
    grid = pg.posterior_grid(model, x, n=200, limits=((-6, 6), (-6, 6)))
    assert torch.all(grid.log_px >= r.elbo_star.double() - 4 * r.elbo_star_se.double())


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": -1}, "steps"), ({"steps": 2.5}, "steps"), ({"lr": 0.0}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"n_samples": 0}, "n_samples"), ({"params": {"mu": torch.zeros(2, 2), "log_var": torch.zeros(2, 2)}}, "params"),
])
def test_refine_posterior_refuses_bad_input(small_vae, kwargs, match):
    model, x = small_vae
    with pytest.raises(ValueError, match=match):
        inference_gap.refine_posterior(model, x, **kwargs)


def test_bad_input_errors(small_vae):
    model, x = small_vae
    with pytest.raises(TypeError, match="model"):
        inference_gap.refine_posterior(object(), x)
    with pytest.raises(ValueError, match="x"):
        inference_gap.refine_posterior(model, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="K"):
        inference_gap.inference_gaps(model, x, K=1)
    with pytest.raises(ValueError, match="n must be an even"):
        pg.posterior_grid(model, x, n=51)
    with pytest.raises(ValueError, match="limits"):
        pg.posterior_grid(model, x, limits=((1, -1), (0, 1)))
    with pytest.raises(ValueError, match="M = 2"):
        pg.posterior_grid(vae.VAE(vae.VAEConfig(D=6, M=3, H=8, device="cpu")), x)
    with pytest.raises(ValueError, match="shape"):
        pg.kl_q_posterior(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4), 1.0, 1.0)
    with pytest.raises(FloatingPointError, match="lr"):
        inference_gap.refine_posterior(model, x, steps=50, lr=1e30)


def test_the_zoomed_grid_agrees_with_the_full_grid(small_vae):
    model, x = small_vae
    model = copy.deepcopy(model)
    with torch.no_grad():  # sharper posteriors than the untrained model's
        model.decoder.net[-1].weight.mul_(8.0)
    full = pg.posterior_grid(model, x, n=300, limits=((-6, 6), (-6, 6)))
    lp, err, edge = pg.zoomed_log_px(model, x, n=60, coarse_n=24, limits=((-6, 6), (-6, 6)))
    assert torch.allclose(lp, full.log_px, atol=1e-3 + float(full.resolution_error.max())), (lp, full.log_px)
    assert torch.all(edge < 1e-6)
    with pytest.raises(ValueError, match="drop"):
        pg.zoomed_log_px(model, x, drop=0)

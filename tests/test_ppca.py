"""Tests of lvmlib.ppca against torch.distributions, scipy, scikit-learn and exact PPCA answers."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SkPCA
from torch.distributions import MultivariateNormal

from lvmlib.gaussian import linear_gaussian_posterior
from lvmlib.ppca import (
    PPCA,
    C_inverse,
    M_matrix,
    NotFittedError,
    closed_form,
    covariance,
    em_step,
    fit_em,
    fit_gradient,
    log_likelihood,
    posterior,
)

DT = torch.float64
ROOT = Path(__file__).resolve().parents[1]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _random_params(D, M, seed=0, sigma2=0.3):
    g = _gen(seed)
    W = torch.randn(D, M, generator=g, dtype=DT)
    mu = torch.randn(D, generator=g, dtype=DT)
    return W, mu, torch.tensor(sigma2, dtype=DT)


def _ppca_data(N=400, D=8, M=2, seed=0, sigma2=0.5):
    """Data drawn from a PPCA model: x = W z + mu + noise (numpy, float64)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, M)) * np.linspace(1.5, 0.8, M)
    mu = rng.normal(size=D)
    X = rng.normal(size=(N, M)) @ W.T + mu + math.sqrt(sigma2) * rng.normal(size=(N, D))
    return X


@pytest.fixture(scope="module")
def digits():
    return load_digits().data  # (1797, 64), integers 0..16 as float64


@pytest.fixture(scope="module")
def small():
    return _ppca_data()


# ----------------------------------------------------------------------------- M and C^-1
def test_M_matrix_and_covariance():
    W, _, s2 = _random_params(6, 2)
    torch.testing.assert_close(M_matrix(W, s2), W.T @ W + 0.3 * torch.eye(2, dtype=DT))
    torch.testing.assert_close(covariance(W, s2), W @ W.T + 0.3 * torch.eye(6, dtype=DT))


def test_C_inverse_matches_explicit_inverse_and_lecture_form_is_wrong():
    W, _, s2 = _random_params(7, 3, sigma2=0.4)
    C = W @ W.T + s2 * torch.eye(7, dtype=DT)
    ref = torch.linalg.inv(C)
    torch.testing.assert_close(C_inverse(W, s2), ref, rtol=1e-10, atol=1e-12)
    # the lecture's sigma^-1 I - sigma^-2 W M^-1 W^T is not the inverse
    Minv = torch.linalg.inv(M_matrix(W, s2))
    lecture = torch.eye(7, dtype=DT) / math.sqrt(0.4) - W @ Minv @ W.T / 0.4
    assert (lecture - ref).abs().max() > 0.1


# ----------------------------------------------------------------------------- log-likelihood
@pytest.mark.parametrize("D, M, N", [(5, 2, 40), (64, 10, 30), (784, 20, 12)])
def test_log_likelihood_matches_full_covariance_references(D, M, N):
    W, mu, s2 = _random_params(D, M, seed=D)
    X = torch.randn(N, D, generator=_gen(1), dtype=DT) * 2.0 + mu
    got = log_likelihood(X, W, mu, s2)
    assert got.shape == (N,)
    C = W @ W.T + s2 * torch.eye(D, dtype=DT)
    ref = MultivariateNormal(mu, C).log_prob(X)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
    if D <= 64:
        ref_sp = scipy.stats.multivariate_normal(mu.numpy(), C.numpy()).logpdf(X.numpy())
        np.testing.assert_allclose(got.numpy(), ref_sp, rtol=1e-9)


def test_log_likelihood_accepts_numpy_and_float32():
    W, mu, s2 = _random_params(4, 1)
    X = np.random.default_rng(0).normal(size=(6, 4))
    a = log_likelihood(X, W.numpy(), mu.numpy(), 0.3)
    assert a.dtype == DT
    assert log_likelihood(X.astype(np.float32), W.numpy(), mu.numpy(), 0.3).dtype == DT  # NumPy -> float64
    b = log_likelihood(torch.as_tensor(X, dtype=torch.float32), W.float(), mu.float(), 0.3)
    assert b.dtype == torch.float32
    torch.testing.assert_close(b.double(), a, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- closed form
@pytest.mark.parametrize("which", ["digits", "small"])
def test_closed_form_unbiased_matches_sklearn_pca(which, digits, small):
    X, M = (digits, 10) if which == "digits" else (small, 2)
    sk = SkPCA(n_components=M, svd_solver="full").fit(X)
    model = PPCA(M).fit(X, normalization="unbiased")
    ours = model.log_likelihood(X).numpy()
    np.testing.assert_allclose(ours, sk.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(model.C.numpy(), sk.get_covariance(), rtol=1e-8, atol=1e-10 * sk.noise_variance_)
    np.testing.assert_allclose(model.sigma2.item(), sk.noise_variance_, rtol=1e-10)
    assert model.score(X) == pytest.approx(sk.score(X), rel=1e-8)


def test_closed_form_ml_versus_unbiased(small):
    N = small.shape[0]
    W1, mu1, s1 = closed_form(small, 2, "ml")
    W2, mu2, s2 = closed_form(small, 2, "unbiased")
    torch.testing.assert_close(mu1, mu2)
    torch.testing.assert_close(s2, s1 * N / (N - 1))
    torch.testing.assert_close(W2 @ W2.T + s2 * torch.eye(8, dtype=DT), (W1 @ W1.T + s1 * torch.eye(8, dtype=DT)) * N / (N - 1))


def test_closed_form_wide_data_uses_all_discarded_dimensions():
    # N < D: S has rank N - 1; sigma2 averages over all D - M discarded eigenvalues (zeros included)
    X = _ppca_data(N=12, D=30, M=3, seed=4)
    W, mu, s2 = closed_form(X, 3)
    S = np.cov(X, rowvar=False, bias=True)
    lam = np.sort(np.linalg.eigvalsh(S))[::-1]
    np.testing.assert_allclose(s2.item(), lam[3:].sum() / 27, rtol=1e-10)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh((W @ W.T).numpy()))[::-1][:3], lam[:3] - s2.item(), rtol=1e-9)
    # it is the maximum of the likelihood: zero gradient in W and sigma2
    W_ = W.clone().requires_grad_(True)
    s2_ = s2.clone().requires_grad_(True)
    gW, gs2 = torch.autograd.grad(log_likelihood(X, W_, mu, s2_).sum(), (W_, s2_))
    assert gW.abs().max() < 1e-7 and gs2.abs() < 1e-7
    assert log_likelihood(X, W, mu, s2 * 1.01).sum() < log_likelihood(X, W, mu, s2).sum()
    # scikit-learn averages over the min(N, D) - M computed eigenvalues only, not over D - M
    sk = SkPCA(n_components=3, svd_solver="full").fit(X)
    assert sk.noise_variance_ > 1.5 * s2.item() * 12 / 11


def test_closed_form_ml_is_a_stationary_point_and_a_maximum(small):
    W, mu, s2 = closed_form(small, 2, "ml")
    X = torch.as_tensor(small)
    W_ = W.clone().requires_grad_(True)
    mu_ = mu.clone().requires_grad_(True)
    s2_ = s2.clone().requires_grad_(True)
    total = log_likelihood(X, W_, mu_, s2_).sum()
    gW, gmu, gs2 = torch.autograd.grad(total, (W_, mu_, s2_))
    # relative to the size of the gradient at a slightly different point
    W2 = (W * 1.1).requires_grad_(True)
    ref = torch.autograd.grad(log_likelihood(X, W2, mu, s2).sum(), W2)[0].abs().max()
    assert ref > 1.0
    assert gW.abs().max() < 1e-8 * ref and gmu.abs().max() < 1e-8 * ref and gs2.abs() < 1e-8 * ref
    best = total.item()
    g = _gen(5)
    for _ in range(5):
        dW = 0.05 * torch.randn(W.shape, generator=g, dtype=DT)
        assert log_likelihood(X, W + dW, mu, s2).sum() < best
        assert log_likelihood(X, W, mu + 0.05 * torch.randn(8, generator=g, dtype=DT), s2).sum() < best
    assert log_likelihood(X, W, mu, s2 * 1.05).sum() < best
    assert log_likelihood(X, W, mu, s2 * 0.95).sum() < best
    # the unbiased solution has a (slightly) lower training likelihood than the ML one
    assert PPCA(2).fit(small, normalization="unbiased").log_likelihood(small).sum() < best


def test_closed_form_columns_are_principal_directions(digits):
    W, mu, s2 = closed_form(digits, 5)
    sk = SkPCA(n_components=5, svd_solver="full").fit(digits)
    U = W / W.norm(dim=0)
    # the same directions up to sign, in the same order
    np.testing.assert_allclose(np.abs((U.T.numpy() * sk.components_).sum(1)), np.ones(5), rtol=1e-8)
    norms2 = (W.norm(dim=0) ** 2).numpy()
    N = digits.shape[0]
    np.testing.assert_allclose(norms2, sk.explained_variance_ * (N - 1) / N - s2.item(), rtol=1e-8)


# ----------------------------------------------------------------------------- EM and gradient
def test_em_step_fixed_point_at_closed_form(small):
    W, mu, s2 = closed_form(small, 2, "ml")
    W1, s21 = em_step(small, W, mu, s2)
    torch.testing.assert_close(W1 @ W1.T, W @ W.T, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(s21, s2, rtol=1e-10, atol=0)


def test_em_step_increases_likelihood_and_matches_explicit_formulas(small):
    X = torch.as_tensor(small)
    N, D = X.shape
    W, _, s2 = _random_params(D, 2, seed=7, sigma2=2.0)
    mu = X.mean(0)
    W1, s21 = em_step(X, W, mu, s2)
    # Bishop 12.54-12.57 written out per sample, with an explicit M^-1
    Minv = torch.linalg.inv(W.T @ W + s2 * torch.eye(2, dtype=DT))
    Xc = X - mu
    Ez = Xc @ W @ Minv  # (N, 2)
    Ezz = s2 * Minv + Ez[:, :, None] * Ez[:, None, :]  # (N, 2, 2)
    W_ref = (Xc[:, :, None] * Ez[:, None, :]).sum(0) @ torch.linalg.inv(Ezz.sum(0))
    s2_ref = (
        (Xc**2).sum(1) - 2 * ((Ez @ W_ref.T) * Xc).sum(1) + torch.einsum("nij,ji->n", Ezz, W_ref.T @ W_ref)
    ).sum() / (N * D)
    torch.testing.assert_close(W1, W_ref)
    torch.testing.assert_close(s21, s2_ref)
    before = log_likelihood(X, W, mu, s2).mean()
    after = log_likelihood(X, W1, mu, s21).mean()
    assert after > before


@pytest.fixture(scope="module")
def fits(small):
    ml = log_likelihood(small, *closed_form(small, 2, "ml")).mean().item()
    em = fit_em(small, 2, n_iter=2000, tol=1e-9, generator=_gen(0))
    gr = fit_gradient(small, 2, n_steps=300, lr=0.03, generator=_gen(0))
    return ml, em, gr


def test_em_and_gradient_reach_the_closed_form(small, fits):
    ml, em, gr = fits
    W_ml, _, s2_ml = closed_form(small, 2, "ml")
    for fit in (em, gr):
        assert abs(fit.history[-1] - ml) < 1e-3
        assert log_likelihood(small, fit.W, fit.mu, fit.sigma2).mean().item() == pytest.approx(fit.history[-1], abs=1e-9)
        # W is found up to a rotation: W W^T is unique
        torch.testing.assert_close(fit.W @ fit.W.T, W_ml @ W_ml.T, rtol=0, atol=2e-3 * (W_ml**2).sum().item())
        assert abs(fit.sigma2.item() - s2_ml.item()) < 1e-3 * s2_ml.item() + 1e-6
    # EM never decreases the likelihood
    assert np.all(np.diff(em.history) > -1e-9)
    assert em.history[-1] > em.history[0] + 1.0


def test_rotation_of_W_leaves_likelihood_unchanged(small):
    W, mu, s2 = closed_form(small, 2)
    theta = 0.7
    R = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=DT)
    torch.testing.assert_close(log_likelihood(small, W @ R, mu, s2), log_likelihood(small, W, mu, s2))
    assert not torch.allclose(W @ R, W)


def test_gradient_fit_minibatches_and_progress(small):
    res = fit_gradient(small, 2, n_steps=60, lr=0.05, batch_size=64, generator=_gen(1), progress=True)
    assert len(res.history) == 61
    assert log_likelihood(small, res.W, res.mu, res.sigma2).mean() > res.history[0] + 1.0
    assert res.sigma2 > 0


def test_em_tol_stops_early_and_init_pair(small):
    W_ml, _, s2_ml = closed_form(small, 2)
    res = fit_em(small, 2, n_iter=50, tol=1e-6, init=(W_ml, s2_ml))
    assert len(res.history) == 2  # one step, no gain: stop


def test_iterative_fits_on_wide_data_reach_the_closed_form():
    # N < D: the gradient fit works per sample (no D x D scatter matrix); EM is O(N D M)
    X = _ppca_data(N=20, D=30, M=3, seed=4)
    ml = log_likelihood(X, *closed_form(X, 3)).mean().item()
    em = fit_em(X, 3, n_iter=3000, tol=1e-9, generator=_gen(0))
    gr = fit_gradient(X, 3, n_steps=300, generator=_gen(0))
    assert abs(em.history[-1] - ml) < 1e-3 and abs(gr.history[-1] - ml) < 1e-3


def test_float32_tensors_stay_float32(small):
    X32 = torch.as_tensor(small, dtype=torch.float32)
    res = fit_em(X32, 2, n_iter=200, tol=1e-7, generator=_gen(0))
    assert res.W.dtype == torch.float32 and res.sigma2.dtype == torch.float32
    W, mu, s2 = closed_form(X32, 2)
    assert W.dtype == torch.float32
    ref = log_likelihood(small, *closed_form(small, 2)).mean().item()
    assert log_likelihood(X32, W, mu, s2).mean().item() == pytest.approx(ref, abs=1e-4)
    model = PPCA(2, dtype=torch.float32).fit(small)
    assert model.W.dtype == torch.float32 and model.score(small) == pytest.approx(ref, abs=1e-4)


def test_callback_stops_the_fit(small):
    seen = []

    def stop_at_three(t, ll):
        seen.append((t, ll))
        return t == 3

    res = fit_em(small, 2, n_iter=100, tol=None, generator=_gen(0), callback=stop_at_three)
    assert len(res.history) == 4 and [t for t, _ in seen] == [0, 1, 2, 3]
    assert [ll for _, ll in seen] == res.history
    res = fit_gradient(small, 2, n_steps=100, generator=_gen(0), callback=stop_at_three)
    assert len(res.history) == 4
    with pytest.raises(TypeError, match="callback"):
        fit_em(small, 2, callback=3)


def test_ppca_class_fit_methods_agree(small):
    ml = PPCA(2).fit(small).score(small)
    em = PPCA(2).fit(small, method="em", n_iter=2000, tol=1e-8, generator=_gen(0))
    gr = PPCA(2).fit(small, method="gradient", n_steps=300, generator=_gen(0))
    assert em.score(small) == pytest.approx(ml, abs=1e-3) and em.history and em.method == "em"
    assert gr.score(small) == pytest.approx(ml, abs=1e-3) and len(gr.history) == 301


# ----------------------------------------------------------------------------- posterior
def test_posterior_matches_linear_gaussian_and_explicit_bayes(small):
    X = torch.as_tensor(small[:20])
    W, mu, s2 = closed_form(small, 2)
    mean, cov = posterior(X, W, mu, s2)
    assert mean.shape == (20, 2) and cov.shape == (2, 2)
    # generic linear-Gaussian posterior: p(z) = N(0, I), p(x | z) = N(W z + mu, sigma2 I)
    m_ref, c_ref = linear_gaussian_posterior(
        X, torch.zeros(2, dtype=DT), torch.eye(2, dtype=DT), W, mu, torch.eye(8, dtype=DT) / s2
    )
    torch.testing.assert_close(mean, m_ref)
    torch.testing.assert_close(cov, c_ref)
    # explicit Bayes on the joint Gaussian of (z, x): Cov(z, x) = W^T, Cov(x) = C
    C = (W @ W.T + s2 * torch.eye(8, dtype=DT)).numpy()
    Wn = W.numpy()
    gain = np.linalg.solve(C, Wn).T  # W^T C^-1
    np.testing.assert_allclose(mean.numpy(), (X.numpy() - mu.numpy()) @ gain.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.eye(2) - gain @ Wn, rtol=1e-9, atol=1e-12)
    # lecture erratum: sigma^-2 M is the precision, not the covariance
    lecture = (M_matrix(W, s2) / s2).numpy()
    assert np.abs(lecture - cov.numpy()).max() > 1.0
    np.testing.assert_allclose(np.linalg.inv(lecture), cov.numpy(), rtol=1e-9)


def test_posterior_monte_carlo():
    # sample (z, x) from the model and regress z on x: slope and residual covariance
    W, mu, s2 = _random_params(4, 2, seed=8, sigma2=0.5)
    model = PPCA.from_params(W, mu, s2)
    x, z = model.sample(100_000, generator=_gen(9))
    design = torch.cat([x, torch.ones(len(x), 1, dtype=DT)], 1)  # (n, 5)
    coef = torch.linalg.lstsq(design, z).solution  # (5, 2)
    x_test = model.sample(5, generator=_gen(10))[0]
    mean, cov = model.posterior(x_test)
    pred = torch.cat([x_test, torch.ones(5, 1, dtype=DT)], 1) @ coef
    assert (pred - mean).abs().max() < 0.03
    resid = z - design @ coef
    torch.testing.assert_close(torch.cov(resid.T), cov, rtol=0.03, atol=0.003)


# ----------------------------------------------------------------------------- class methods
def test_sampling_matches_mu_and_C():
    W, mu, s2 = _random_params(5, 2, seed=11, sigma2=0.5)
    model = PPCA.from_params(W, mu, s2)
    n = 100_000
    x, z = model.sample(n, generator=_gen(12))
    assert x.shape == (n, 5) and z.shape == (n, 2)
    C = model.C
    var = torch.diagonal(C)
    assert ((x.mean(0) - mu).abs() < 5 * torch.sqrt(var / n)).all()
    se = torch.sqrt((var[:, None] * var[None, :] + C**2) / n)
    assert ((torch.cov(x.T) - C).abs() < 5 * se).all()
    assert (z.mean(0).abs() < 5 / math.sqrt(n)).all()
    # x | z: residual around W z + mu has variance sigma2 in every direction
    resid = x - model.decode(z)
    torch.testing.assert_close(torch.cov(resid.T), s2 * torch.eye(5, dtype=DT), rtol=0, atol=5 * 0.5 * math.sqrt(2 / n))


def test_sample_reproducible_with_generator():
    model = PPCA.from_params(*_random_params(3, 1))
    a = model.sample(4, generator=_gen(3))[0]
    b = model.sample(4, generator=_gen(3))[0]
    torch.testing.assert_close(a, b)
    assert model.sample_z(7).shape == (7, 1)
    assert model.sample_x_given_z(torch.zeros(2, 1, dtype=DT)).shape == (2, 3)


def test_encode_decode_reconstruct(digits):
    model = PPCA(10).fit(digits)
    X = digits[:15]
    z = model.encode(X)
    assert z.shape == (15, 10)
    Xt = torch.as_tensor(X)
    Minv = torch.linalg.inv(model.M_mat)
    torch.testing.assert_close(z, (Xt - model.mu) @ model.W @ Minv)
    torch.testing.assert_close(model.decode(z), z @ model.W.T + model.mu)
    rec = model.reconstruct(X)
    assert rec.shape == (15, 64)
    # more components reconstruct better
    err10 = ((rec - Xt) ** 2).mean()
    err30 = ((PPCA(30).fit(digits).reconstruct(X) - Xt) ** 2).mean()
    assert err30 < err10 < ((Xt - model.mu) ** 2).mean()


def test_state_dict_round_trip(tmp_path, small):
    model = PPCA(2).fit(small)
    path = tmp_path / "ppca.pt"
    torch.save(model.state_dict(), path)
    loaded = PPCA.from_state_dict(torch.load(path, weights_only=True))
    torch.testing.assert_close(loaded.log_likelihood(small), model.log_likelihood(small))
    assert "PPCA(n_components=2" in repr(loaded) and "not fitted" in repr(PPCA(3))


# ----------------------------------------------------------------------------- bad inputs
def test_not_fitted_errors():
    model = PPCA(2)
    for call in (
        lambda: model.log_likelihood(np.zeros((3, 4))),
        lambda: model.score(np.zeros((3, 4))),
        lambda: model.posterior(np.zeros((3, 4))),
        lambda: model.encode(np.zeros((3, 4))),
        lambda: model.decode(np.zeros((3, 2))),
        lambda: model.sample(3),
        lambda: model.M_mat,
        lambda: model.state_dict(),
    ):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()


@pytest.mark.parametrize(
    "n_components, exc, msg",
    [(0, ValueError, "at least 1"), (2.0, TypeError, "integer"), (True, TypeError, "integer"), (-1, ValueError, "at least 1")],
)
def test_bad_n_components_in_constructor(n_components, exc, msg):
    with pytest.raises(exc, match=msg) as info:
        PPCA(n_components)
    assert "n_components" in str(info.value)


def test_bad_fit_inputs(small):
    with pytest.raises(ValueError, match="n_components must be smaller than the data dimension D=8"):
        PPCA(8).fit(small)
    with pytest.raises(ValueError, match="n_components"):
        closed_form(small, 9)
    with pytest.raises(ValueError, match="at least 2 samples"):
        PPCA(1).fit(small[:1])
    bad = small.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        PPCA(2).fit(bad)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_em(bad, 2)
    with pytest.raises(ValueError, match=r"X must be a 2-D array"):
        PPCA(2).fit(small[0])
    with pytest.raises(ValueError, match="method"):
        PPCA(2).fit(small, method="svd")
    with pytest.raises(ValueError, match="normalization"):
        PPCA(2).fit(small, normalization="biased")
    with pytest.raises(ValueError, match="normalization='unbiased' applies to method='closed_form'"):
        PPCA(2).fit(small, method="em", normalization="unbiased")
    with pytest.raises(TypeError, match="X must be"):
        PPCA(2).fit("data")
    with pytest.raises(ValueError, match="almost\\) no variance"):
        closed_form(_ppca_data(N=4, D=10, M=2), 3)  # 4 points span only 3 directions
    with pytest.raises(ValueError, match="lr"):
        fit_gradient(small, 2, lr=-1.0)
    with pytest.raises(ValueError, match="n_iter"):
        fit_em(small, 2, n_iter=-3)
    with pytest.raises(ValueError, match="init"):
        fit_em(small, 2, init="pca")


def test_bad_parameter_shapes(small):
    W, mu, s2 = closed_form(small, 2)
    with pytest.raises(ValueError, match="W has D=7 rows but X has 8 columns"):
        log_likelihood(small, W[:7], mu, s2)
    with pytest.raises(ValueError, match=r"mu must have shape \(D,\)"):
        log_likelihood(small, W, mu[:5], s2)
    with pytest.raises(ValueError, match="W must be a 2-D"):
        posterior(small, W[:, 0], mu, s2)
    for bad in (0.0, -1.0, float("nan"), torch.ones(2, dtype=DT)):
        with pytest.raises(ValueError, match="sigma2"):
            log_likelihood(small, W, mu, bad)
    with pytest.raises(ValueError, match="sigma2"):
        PPCA.from_params(W, mu, 0.0)
    with pytest.raises(ValueError, match="sigma2"):
        C_inverse(W, -0.1)
    model = PPCA(2).fit(small)
    with pytest.raises(ValueError, match="X must have D=8 columns"):
        model.log_likelihood(small[:, :5])
    with pytest.raises(ValueError, match=r"z must have shape \(n, M\) with M=2"):
        model.decode(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(0)
    with pytest.raises(TypeError, match="method='closed_form' takes no extra keywords"):
        PPCA(2).fit(small, n_iter=3)


# ----------------------------------------------------------------------------- benchmark script
@pytest.mark.slow
def test_benchmark_quick_run(tmp_path):
    script = ROOT / "benchmarks" / "bench_ppca.py"
    out = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "ppca.md").read_text()
    assert "scikit-learn" in text and "ratio" in text

"""Tests of lvmlib.gaussian against torch.distributions, scipy and Monte Carlo."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from lvmlib.gaussian import (
    LOG_2PI,
    kl_normal_diag,
    linear_gaussian_marginal,
    linear_gaussian_posterior,
    log_normal_diag,
    log_normal_full,
    log_normal_standard,
)

DT = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _spd(n, g, batch=(), jitter=0.5):
    B = torch.randn(*batch, n, n, generator=g, dtype=DT)
    return B @ B.mT / n + jitter * torch.eye(n, dtype=DT)


# ----------------------------------------------------------------------------- diagonal
def test_log_normal_diag_matches_torch_normal_and_mvn():
    g = _gen(1)
    x = torch.randn(6, 4, 5, generator=g, dtype=DT)
    mu = torch.randn(4, 5, generator=g, dtype=DT)
    log_var = torch.randn(4, 5, generator=g, dtype=DT)
    got = log_normal_diag(x, mu, log_var)
    assert got.shape == (6, 4)
    ref = Normal(mu, torch.exp(0.5 * log_var)).log_prob(x).sum(-1)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    mvn = MultivariateNormal(mu, covariance_matrix=torch.diag_embed(torch.exp(log_var)))
    torch.testing.assert_close(got, mvn.log_prob(x), rtol=1e-10, atol=1e-10)


def test_log_normal_diag_constant_once_per_vector_not_per_element():
    # the known peer fault: -D/2 log(2 pi) added for every element (D times too often)
    x = torch.zeros(3, 7, dtype=DT)
    got = log_normal_diag(x, torch.zeros(7, dtype=DT), torch.zeros(7, dtype=DT))
    torch.testing.assert_close(got, torch.full((3,), -3.5 * LOG_2PI, dtype=DT))
    wrong = -0.5 * 7 * LOG_2PI * 7
    assert not torch.allclose(got, torch.full((3,), wrong, dtype=DT))


def test_log_normal_diag_broadcasts_scalar_log_var_and_numpy_inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3))
    mu = rng.normal(size=3)
    got = log_normal_diag(x, mu, np.array(0.3))
    assert isinstance(got, torch.Tensor) and got.dtype == DT and got.shape == (10,)
    ref = scipy.stats.multivariate_normal(mu, math.exp(0.3) * np.eye(3)).logpdf(x)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_log_normal_diag_gradients_match_torch():
    g = _gen(2)
    x = torch.randn(4, 3, generator=g, dtype=DT)
    mu = torch.randn(3, generator=g, dtype=DT, requires_grad=True)
    lv = torch.randn(3, generator=g, dtype=DT, requires_grad=True)
    gm, gl = torch.autograd.grad(log_normal_diag(x, mu, lv).sum(), (mu, lv))
    rm, rl = torch.autograd.grad(Normal(mu, torch.exp(0.5 * lv)).log_prob(x).sum(), (mu, lv))
    torch.testing.assert_close(gm, rm)
    torch.testing.assert_close(gl, rl)


def test_log_normal_diag_bad_shapes():
    with pytest.raises(ValueError, match="broadcast"):
        log_normal_diag(torch.zeros(4, 3), torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="x"):
        log_normal_diag(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.0))
    with pytest.raises(TypeError, match="mu"):
        log_normal_diag(torch.zeros(3), "zero", torch.zeros(3))


def test_log_normal_standard_matches_torch():
    x = torch.randn(5, 2, 9, generator=_gen(3), dtype=DT)
    ref = Normal(torch.zeros(()), torch.ones(())).log_prob(x).sum(-1)
    torch.testing.assert_close(log_normal_standard(x), ref)
    ref2 = MultivariateNormal(torch.zeros(9, dtype=DT), torch.eye(9, dtype=DT)).log_prob(x)
    torch.testing.assert_close(log_normal_standard(x), ref2)


# ----------------------------------------------------------------------------- full
def test_log_normal_full_matches_torch_and_scipy():
    g = _gen(4)
    D = 6
    cov = _spd(D, g)
    mu = torch.randn(D, generator=g, dtype=DT)
    x = torch.randn(20, D, generator=g, dtype=DT)
    got = log_normal_full(x, mu, cov)
    torch.testing.assert_close(got, MultivariateNormal(mu, cov).log_prob(x), rtol=1e-12, atol=1e-12)
    ref = scipy.stats.multivariate_normal(mu.numpy(), cov.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-11)


def test_log_normal_full_batched_covariances_broadcast():
    g = _gen(5)
    covs = _spd(4, g, batch=(3,))  # (3, 4, 4)
    mus = torch.randn(3, 4, generator=g, dtype=DT)
    x = torch.randn(7, 1, 4, generator=g, dtype=DT)  # broadcasts against the 3 Gaussians
    got = log_normal_full(x, mus, covs)
    assert got.shape == (7, 3)
    ref = MultivariateNormal(mus, covs).log_prob(x)
    torch.testing.assert_close(got, ref)
    # several leading dimensions in x, one shared covariance
    x4 = torch.randn(2, 5, 3, 4, generator=g, dtype=DT)
    torch.testing.assert_close(log_normal_full(x4, mus, covs), MultivariateNormal(mus, covs).log_prob(x4))
    torch.testing.assert_close(log_normal_full(x4, mus[0], covs[0]), MultivariateNormal(mus[0], covs[0]).log_prob(x4))


def test_log_normal_full_float32_numpy():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 3)).astype(np.float32)
    cov = A @ A.T + np.eye(3, dtype=np.float32)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    got = log_normal_full(x, np.zeros(3, np.float32), cov)
    assert got.dtype == torch.float32
    ref = scipy.stats.multivariate_normal(np.zeros(3), cov.astype(np.float64)).logpdf(x.astype(np.float64))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5)


@pytest.mark.parametrize(
    "cov, msg",
    [
        (torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=DT), "not symmetric"),
        (torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=DT), "positive definite"),
        (torch.zeros(2, 2, dtype=DT), "positive definite"),
        (torch.ones(2, 3, dtype=DT), "square"),
        (torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]], dtype=DT), "NaN"),
    ],
)
def test_log_normal_full_rejects_bad_covariance(cov, msg):
    with pytest.raises(ValueError, match=msg) as info:
        log_normal_full(torch.zeros(2, dtype=DT), torch.zeros(2, dtype=DT), cov)
    assert "cov" in str(info.value)


def test_log_normal_full_dimension_mismatch():
    with pytest.raises(ValueError, match="D=3"):
        log_normal_full(torch.zeros(2, dtype=DT), torch.zeros(2, dtype=DT), torch.eye(3, dtype=DT))


# ----------------------------------------------------------------------------- KL
def test_kl_normal_diag_matches_torch_kl():
    g = _gen(6)
    mq, lq, mp, lp = (torch.randn(5, 4, generator=g, dtype=DT) for _ in range(4))
    ref = kl_divergence(Normal(mq, torch.exp(0.5 * lq)), Normal(mp, torch.exp(0.5 * lp)))  # (5, 4)
    torch.testing.assert_close(kl_normal_diag(mq, lq, mp, lp, reduce=False), ref)
    torch.testing.assert_close(kl_normal_diag(mq, lq, mp, lp), ref.sum(-1))


def test_kl_normal_diag_default_prior_is_standard_normal():
    g = _gen(7)
    mq, lq = torch.randn(8, 3, generator=g, dtype=DT), torch.randn(8, 3, generator=g, dtype=DT)
    ref = kl_divergence(Normal(mq, torch.exp(0.5 * lq)), Normal(torch.zeros(()), torch.ones(()))).sum(-1)
    torch.testing.assert_close(kl_normal_diag(mq, lq), ref)
    # KL(q || q) = 0 and KL >= 0
    torch.testing.assert_close(kl_normal_diag(mq, lq, mq, lq), torch.zeros(8, dtype=DT))
    assert (kl_normal_diag(mq, lq) >= 0).all()


def test_kl_normal_diag_monte_carlo():
    g = _gen(8)
    mq, lq = torch.tensor([0.3, -1.0], dtype=DT), torch.tensor([-0.5, 0.4], dtype=DT)
    mp, lp = torch.tensor([1.0, 0.0], dtype=DT), torch.tensor([0.2, -0.3], dtype=DT)
    n = 200_000
    z = mq + torch.exp(0.5 * lq) * torch.randn(n, 2, generator=g, dtype=DT)
    diff = log_normal_diag(z, mq, lq) - log_normal_diag(z, mp, lp)
    se = diff.std() / math.sqrt(n)
    assert abs(diff.mean() - kl_normal_diag(mq, lq, mp, lp)) < 5 * se


def test_kl_normal_diag_bad_arguments():
    with pytest.raises(ValueError, match="mu_p"):
        kl_normal_diag(torch.zeros(2), torch.zeros(2), mu_p=torch.zeros(2))
    with pytest.raises(TypeError, match="reduce"):
        kl_normal_diag(torch.zeros(2), torch.zeros(2), reduce="sum")


# ----------------------------------------------------------------------------- linear-Gaussian
def _linear_gaussian_problem(seed=9, Dx=3, Dy=4):
    g = _gen(seed)
    mu = torch.randn(Dx, generator=g, dtype=DT)
    Lambda = _spd(Dx, g, jitter=1.0)
    A = torch.randn(Dy, Dx, generator=g, dtype=DT)
    b = torch.randn(Dy, generator=g, dtype=DT)
    L = _spd(Dy, g, jitter=2.0)
    return mu, Lambda, A, b, L


def _joint_numpy(mu, Lambda, A, b, L):
    """Mean and covariance of (x, y) from the model, with plain numpy inverses."""
    mu, Lambda, A, b, L = (t.numpy() for t in (mu, Lambda, A, b, L))
    Sxx = np.linalg.inv(Lambda)
    Syy = np.linalg.inv(L) + A @ Sxx @ A.T
    Sxy = Sxx @ A.T
    mean = np.concatenate([mu, A @ mu + b])
    cov = np.block([[Sxx, Sxy], [Sxy.T, Syy]])
    return mean, cov


def test_linear_gaussian_marginal_exact_joint():
    mu, Lambda, A, b, L = _linear_gaussian_problem()
    mean_y, cov_y = linear_gaussian_marginal(mu, Lambda, A, b, L)
    mean, cov = _joint_numpy(mu, Lambda, A, b, L)
    np.testing.assert_allclose(mean_y.numpy(), mean[3:], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov_y.numpy(), cov[3:, 3:], rtol=1e-10, atol=1e-12)


def test_linear_gaussian_marginal_monte_carlo():
    mu, Lambda, A, b, L = _linear_gaussian_problem()
    g = _gen(10)
    n = 200_000
    x = mu + torch.linalg.solve_triangular(
        torch.linalg.cholesky(Lambda).mT, torch.randn(3, n, generator=g, dtype=DT), upper=True
    ).mT  # (n, 3) ~ N(mu, Lambda^-1)
    noise = torch.linalg.solve_triangular(
        torch.linalg.cholesky(L).mT, torch.randn(4, n, generator=g, dtype=DT), upper=True
    ).mT  # (n, 4) ~ N(0, L^-1)
    y = x @ A.mT + b + noise
    mean_y, cov_y = linear_gaussian_marginal(mu, Lambda, A, b, L)
    var = torch.diagonal(cov_y)
    assert ((y.mean(0) - mean_y).abs() < 5 * torch.sqrt(var / n)).all()
    emp = torch.cov(y.T)
    se = torch.sqrt((var[:, None] * var[None, :] + cov_y**2) / n)  # std. error of a covariance entry
    assert ((emp - cov_y).abs() < 5 * se).all()


def test_linear_gaussian_posterior_matches_joint_conditioning():
    mu, Lambda, A, b, L = _linear_gaussian_problem()
    y = torch.randn(5, 4, generator=_gen(11), dtype=DT)
    mean_x, cov_x = linear_gaussian_posterior(y, mu, Lambda, A, b, L)
    assert mean_x.shape == (5, 3) and cov_x.shape == (3, 3)
    m, S = _joint_numpy(mu, Lambda, A, b, L)
    Sxx, Sxy, Syy = S[:3, :3], S[:3, 3:], S[3:, 3:]
    gain = np.linalg.solve(Syy, Sxy.T).T  # Sxy Syy^-1
    ref_mean = m[:3] + (y.numpy() - m[3:]) @ gain.T
    ref_cov = Sxx - gain @ Sxy.T
    np.testing.assert_allclose(mean_x.numpy(), ref_mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cov_x.numpy(), ref_cov, rtol=1e-10, atol=1e-12)


def test_linear_gaussian_posterior_monte_carlo_regression():
    # E[x | y] is linear in y and Cov[x | y] is the residual covariance of regressing x on y
    mu, Lambda, A, b, L = _linear_gaussian_problem(seed=12, Dx=2, Dy=3)
    g = _gen(13)
    n = 200_000
    x = mu + torch.linalg.solve_triangular(
        torch.linalg.cholesky(Lambda).mT, torch.randn(2, n, generator=g, dtype=DT), upper=True
    ).mT  # (n, 2)
    y = x @ A.mT + b + torch.linalg.solve_triangular(
        torch.linalg.cholesky(L).mT, torch.randn(3, n, generator=g, dtype=DT), upper=True
    ).mT  # (n, 3)
    design = torch.cat([y, torch.ones(n, 1, dtype=DT)], dim=1)  # (n, 4)
    coef = torch.linalg.lstsq(design, x).solution  # (4, 2)
    resid = x - design @ coef
    y_test = torch.randn(4, 3, generator=g, dtype=DT) + b
    mean_x, cov_x = linear_gaussian_posterior(y_test, mu, Lambda, A, b, L)
    pred = torch.cat([y_test, torch.ones(4, 1, dtype=DT)], dim=1) @ coef
    assert (pred - mean_x).abs().max() < 0.02
    torch.testing.assert_close(torch.cov(resid.T), cov_x, rtol=0.02, atol=0.002)


def test_linear_gaussian_bad_inputs():
    mu, Lambda, A, b, L = _linear_gaussian_problem()
    with pytest.raises(ValueError, match="Lambda"):
        linear_gaussian_marginal(mu, -Lambda, A, b, L)
    with pytest.raises(ValueError, match="L "):
        linear_gaussian_marginal(mu, Lambda, A, b, L + torch.triu(torch.ones_like(L), 1))
    with pytest.raises(ValueError, match="Dx=3"):
        linear_gaussian_marginal(mu[:2], Lambda, A, b, L)
    with pytest.raises(ValueError, match="Dy=4"):
        linear_gaussian_posterior(torch.zeros(3, dtype=DT), mu, Lambda, A, b, L)
    with pytest.raises(ValueError, match="A must be a matrix"):
        linear_gaussian_marginal(mu, Lambda, b, b, L)

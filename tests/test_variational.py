"""Tests of lvmlib.variational against independent references.

References: torch.distributions (Normal, MultivariateNormal, kl_divergence), NumPy/SciPy
log-mean-exp, Monte Carlo averages, and the exact answers of the linear-Gaussian model
(probabilistic PCA), where log p(x), p(z|x) and every KL are known in closed form.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from lvmlib.priors import StandardNormalPrior
from lvmlib.variational import (
    active_units,
    elbo_terms,
    gaussian_elbo_linear,
    iwae_bound,
    kl_per_dimension,
    kl_posterior_linear,
    log_importance_weights,
    log_px_importance,
)

DT = torch.float64


# ----------------------------------------------------------------------------- a PPCA problem
def ppca_problem(D=6, M=3, B=8, sigma2=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, M, generator=g, dtype=DT)
    mu = torch.randn(D, generator=g, dtype=DT)
    z = torch.randn(B, M, generator=g, dtype=DT)
    x = z @ W.T + mu + math.sqrt(sigma2) * torch.randn(B, D, generator=g, dtype=DT)
    return x, W, mu, sigma2


def exact_log_px(x, W, mu, sigma2):
    """log N(x | mu, W W^T + sigma2 I) with torch.distributions (the reference)."""
    C = W @ W.T + sigma2 * torch.eye(W.shape[0], dtype=W.dtype)
    return MultivariateNormal(mu, covariance_matrix=C).log_prob(x)


def exact_posterior(x, W, mu, sigma2):
    """p(z|x) = N(M^-1 W^T (x - mu), sigma2 M^-1), written out directly (Bishop 12.42)."""
    M_mat = W.T @ W + sigma2 * torch.eye(W.shape[1], dtype=W.dtype)
    M_inv = torch.linalg.inv(M_mat)
    return (x - mu) @ W @ M_inv.T, sigma2 * M_inv


class LinearGaussianModel:
    """PPCA seen as a latent variable model with a diagonal-Gaussian proposal q(z|x).

    q has the exact posterior mean and an inflated diagonal variance (a deliberately
    imperfect proposal so that importance sampling has something to do).
    """

    def __init__(self, W, mu, sigma2, inflate=1.5):
        self.W, self.mu, self.sigma2, self.inflate = W, mu, sigma2, inflate
        self.prior = StandardNormalPrior(W.shape[1]).to(DT)
        self.calls = []

    def encode(self, x):
        mean, cov = exact_posterior(x, self.W, self.mu, self.sigma2)
        log_var = torch.log(self.inflate * torch.diagonal(cov)).expand_as(mean)
        return mean, log_var

    def log_px_given_z(self, x, z):
        self.calls.append(z.clone())
        mean = z @ self.W.T + self.mu  # (K, B, D)
        return Normal(mean, math.sqrt(self.sigma2)).log_prob(x).sum(-1)


# ----------------------------------------------------------------------------- exact ELBO on PPCA
def test_elbo_equals_log_px_at_exact_full_covariance_posterior():
    x, W, mu, s2 = ppca_problem()
    mean, cov = exact_posterior(x, W, mu, s2)
    L = torch.linalg.cholesky(cov)
    out = gaussian_elbo_linear(x, W, mu, s2, mean, q_scale_tril=L)
    ref = exact_log_px(x, W, mu, s2)
    torch.testing.assert_close(out["elbo"], ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["elbo"], out["re"] - out["kl"])
    torch.testing.assert_close(kl_posterior_linear(x, W, mu, s2, mean, q_scale_tril=L), torch.zeros(len(x), dtype=DT), atol=1e-8, rtol=0)


def test_elbo_is_below_log_px_and_gap_is_kl_to_posterior_for_perturbed_q():
    x, W, mu, s2 = ppca_problem(seed=1)
    mean, cov = exact_posterior(x, W, mu, s2)
    ref = exact_log_px(x, W, mu, s2)
    post = MultivariateNormal(mean, covariance_matrix=cov)
    g = torch.Generator().manual_seed(5)
    # (a) a full-covariance q: shifted mean, a different Cholesky factor per data point
    q_mean = mean + 0.3 * torch.randn(mean.shape, generator=g, dtype=DT)
    A = 0.2 * torch.randn(len(x), 3, 3, generator=g, dtype=DT)
    L = torch.linalg.cholesky(cov + A @ A.mT)
    out = gaussian_elbo_linear(x, W, mu, s2, q_mean, q_scale_tril=L)
    kl_ref = kl_divergence(MultivariateNormal(q_mean, scale_tril=L), post)
    assert torch.all(out["elbo"] < ref)
    torch.testing.assert_close(ref - out["elbo"], kl_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(kl_posterior_linear(x, W, mu, s2, q_mean, q_scale_tril=L), kl_ref, atol=1e-8, rtol=1e-8)
    # (b) a diagonal q (the VAE's family): the posterior's marginal variances, shifted mean
    q_log_var = torch.log(torch.diagonal(cov)).expand_as(mean) + 0.1 * torch.randn(mean.shape, generator=g, dtype=DT)
    out = gaussian_elbo_linear(x, W, mu, s2, q_mean, q_log_var)
    q = MultivariateNormal(q_mean, covariance_matrix=torch.diag_embed(q_log_var.exp()))
    assert torch.all(out["elbo"] < ref)
    torch.testing.assert_close(ref - out["elbo"], kl_divergence(q, post), atol=1e-5, rtol=0)
    torch.testing.assert_close(kl_posterior_linear(x, W, mu, s2, q_mean, q_log_var), kl_divergence(q, post))
    # the KL term of the ELBO is KL(q || N(0, I))
    prior = MultivariateNormal(torch.zeros(3, dtype=DT), torch.eye(3, dtype=DT))
    torch.testing.assert_close(out["kl"], kl_divergence(q, prior))


def test_linear_elbo_agrees_with_ppca_module_and_numpy_inputs():
    from lvmlib import ppca

    x, W, mu, s2 = ppca_problem(seed=2)
    mean, cov = ppca.posterior(x, W, mu, s2)
    out = gaussian_elbo_linear(x.numpy(), W.numpy(), mu.numpy(), s2, mean.numpy(), q_scale_tril=torch.linalg.cholesky(cov).numpy())
    assert out["elbo"].dtype == DT
    torch.testing.assert_close(out["elbo"], ppca.log_likelihood(x, W, mu, s2), atol=1e-5, rtol=0)


def test_monte_carlo_elbo_matches_closed_form_linear_elbo():
    x, W, mu, s2 = ppca_problem(B=4, seed=3)
    mean, cov = exact_posterior(x, W, mu, s2)
    q_mean = mean + 0.2
    q_log_var = torch.log(torch.diagonal(cov)).expand_as(mean) + 0.3

    def log_px_given_z(x_, z):
        return Normal(z @ W.T + mu, math.sqrt(s2)).log_prob(x_).sum(-1)

    exact = gaussian_elbo_linear(x, W, mu, s2, q_mean, q_log_var)
    K = 20000
    g = torch.Generator().manual_seed(0)
    mc = elbo_terms(x, q_mean, q_log_var, log_px_given_z, None, K=K, generator=g)
    # the KL is analytic here, so it is exact; RE is a mean of K samples
    torch.testing.assert_close(mc["kl"], exact["kl"])
    z = q_mean + torch.exp(0.5 * q_log_var) * torch.randn(K, *q_mean.shape, generator=g, dtype=DT)
    sd = log_px_given_z(x, z).std(0)
    assert torch.all((mc["re"] - exact["re"]).abs() < 5 * sd / math.sqrt(K))
    assert torch.all((mc["elbo"] - exact["elbo"]).abs() < 5 * sd / math.sqrt(K))


# ----------------------------------------------------------------------------- elbo_terms
def test_elbo_terms_analytic_kl_matches_torch_and_mc_kl_matches_analytic():
    g = torch.Generator().manual_seed(0)
    B, M = 5, 4
    mu_z = torch.randn(B, M, generator=g, dtype=DT)
    log_var = 0.5 * torch.randn(B, M, generator=g, dtype=DT)
    x = torch.zeros(B, 1, dtype=DT)

    def log_px_given_z(x_, z):
        return -(z**2).sum(-1)  # any function of z; only its shape (K, B) matters here

    q = Normal(mu_z, torch.exp(0.5 * log_var))
    kl_ref = kl_divergence(q, Normal(torch.zeros_like(mu_z), torch.ones_like(mu_z))).sum(-1)
    for prior in (None, StandardNormalPrior(M).to(DT)):
        out = elbo_terms(x, mu_z, log_var, log_px_given_z, prior, K=3, generator=g)
        torch.testing.assert_close(out["kl"], kl_ref)
        assert out["re"].shape == (B,) and out["elbo"].shape == (B,)
    K = 40000
    g1 = torch.Generator().manual_seed(1)
    mc = elbo_terms(x, mu_z, log_var, log_px_given_z, None, K=K, analytic_kl=False, generator=g1)
    # sample standard deviation of log q - log p, to size the tolerance
    z = q.sample((K,))
    per = q.log_prob(z).sum(-1) - Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.all((mc["kl"] - kl_ref).abs() < 5 * per.std(0) / math.sqrt(K))
    torch.testing.assert_close(mc["elbo"], mc["re"] - mc["kl"])


def test_elbo_terms_uses_monte_carlo_kl_for_a_prior_without_closed_form():
    class WideNormalPrior:  # N(0, 4 I) with log_prob only
        def log_prob(self, z):
            return Normal(0.0, 2.0).log_prob(z).sum(-1)

    g = torch.Generator().manual_seed(0)
    mu_z = torch.randn(3, 2, generator=g, dtype=DT)
    log_var = torch.full((3, 2), -0.5, dtype=DT)
    K = 40000
    out = elbo_terms(torch.zeros(3, 1), mu_z, log_var, lambda x, z: z.sum(-1), WideNormalPrior(), K=K, generator=g)
    q = Normal(mu_z, torch.exp(0.5 * log_var))
    ref = kl_divergence(q, Normal(torch.zeros_like(mu_z), 2.0 * torch.ones_like(mu_z))).sum(-1)
    z = q.sample((K,))
    sd = (q.log_prob(z).sum(-1) - Normal(0.0, 2.0).log_prob(z).sum(-1)).std(0)
    assert torch.all((out["kl"] - ref).abs() < 5 * sd / math.sqrt(K))


def test_elbo_terms_gradients_flow_through_reparameterization():
    mu_z = torch.zeros(2, 3, dtype=DT, requires_grad=True)
    log_var = torch.zeros(2, 3, dtype=DT, requires_grad=True)
    out = elbo_terms(torch.zeros(2, 1), mu_z, log_var, lambda x, z: -(z - 1.0).pow(2).sum(-1), K=4)
    out["elbo"].sum().backward()
    assert mu_z.grad is not None and torch.all(mu_z.grad != 0)
    assert log_var.grad is not None and torch.all(log_var.grad != 0)


# ----------------------------------------------------------------------------- IWAE
def test_iwae_bound_matches_scipy_log_mean_exp_and_is_stable():
    g = torch.Generator().manual_seed(0)
    log_w = 3.0 * torch.randn(50, 4, generator=g, dtype=DT) - 5000.0  # exp() underflows to 0
    ref = logsumexp(log_w.numpy(), axis=0) - np.log(50)
    out = iwae_bound(log_w)
    assert torch.all(torch.isfinite(out))
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-9)
    torch.testing.assert_close(iwae_bound(log_w[:1]), log_w[0])  # K = 1 is the ELBO sample
    # L_K is at least the average log-weight (Jensen)
    assert torch.all(out >= log_w.mean(0))


def _weight_variance(model, x, ref, K=100000, seed=123):
    """Var_q(w / p(x)): sizes the Monte Carlo error of the log p(x) estimate, sd ~ sqrt(var / K)."""
    mean, log_var = model.encode(x)
    log_w = log_importance_weights(x, mean, log_var, model.log_px_given_z, model.prior, K=K, generator=torch.Generator().manual_seed(seed))
    return torch.exp(log_w - ref).var(0)  # (B,)


def test_iwae_estimate_increases_with_K_and_converges_to_exact_ppca_log_px():
    x, W, mu, s2 = ppca_problem(D=5, M=2, B=6, sigma2=0.4, seed=4)
    ref = exact_log_px(x, W, mu, s2)
    model = LinearGaussianModel(W, mu, s2, inflate=2.0)  # a loose diagonal proposal
    # E[L_K] for several K from one pool of N log-weights cut into N/K groups of K;
    # the standard error of each group mean is about sqrt(Var(w)/N), the same for every K
    N = 200000
    mean, log_var = model.encode(x)
    log_w = log_importance_weights(x, mean, log_var, model.log_px_given_z, model.prior, K=N, generator=torch.Generator().manual_seed(0))
    expected = {}
    for K in (1, 10, 100, 1000):
        groups = log_w.reshape(N // K, K, -1)  # (N/K, K, B)
        expected[K] = (torch.logsumexp(groups, dim=1) - math.log(K)).mean(0)  # mean of L_K over groups (B,)
    gap = {K: (ref - v).mean().item() for K, v in expected.items()}  # averaged over the 6 points
    assert gap[1] > 0.2  # the ELBO of this q is clearly below log p(x)
    assert gap[1] > gap[10] > gap[100]  # E[L_K] rises with K (Burda et al. 2016, Thm 1)
    var_w = _weight_variance(model, x, ref)
    assert torch.all((expected[1000] - ref).abs() < 5 * torch.sqrt(var_w / N) + var_w / 2000)
    K = 5000
    est = log_px_importance(model, x, K=K, chunk=1000, generator=torch.Generator().manual_seed(1))
    tol = 5 * torch.sqrt(var_w / K)  # about 0.04 nats here
    assert torch.all(tol < 0.05)
    assert torch.all((est - ref).abs() < tol)


def test_log_px_importance_chunks_combine_exactly():
    x, W, mu, s2 = ppca_problem(D=4, M=2, B=5, seed=6)
    model = LinearGaussianModel(W, mu, s2)
    K, chunk = 23, 7  # uneven chunks: 7 + 7 + 7 + 2
    est = log_px_importance(model, x, K=K, chunk=chunk, batch_size=None, generator=torch.Generator().manual_seed(0))
    z = torch.cat(model.calls)  # every z the estimator drew, (K, B, M)
    assert z.shape == (K, 5, 2) and [len(c) for c in model.calls] == [7, 7, 7, 2]
    mean, log_var = model.encode(x)
    log_w = (
        Normal(z @ W.T + mu, math.sqrt(s2)).log_prob(x).sum(-1)
        + Normal(0.0, 1.0).log_prob(z).sum(-1)
        - Normal(mean, torch.exp(0.5 * log_var)).log_prob(z).sum(-1)
    )
    ref = logsumexp(log_w.numpy(), axis=0) - np.log(K)
    np.testing.assert_allclose(est.numpy(), ref, rtol=0, atol=1e-10)


def test_log_px_importance_chunked_and_unchunked_agree_statistically_and_batches_match():
    x, W, mu, s2 = ppca_problem(D=4, M=2, B=9, seed=7)
    model = LinearGaussianModel(W, mu, s2)
    K = 2000
    a = log_px_importance(model, x, K=K, chunk=K, generator=torch.Generator().manual_seed(0))
    b = log_px_importance(model, x, K=K, chunk=64, batch_size=4, generator=torch.Generator().manual_seed(1))
    assert a.shape == b.shape == (9,)
    ref = exact_log_px(x, W, mu, s2)
    sd = torch.sqrt(_weight_variance(model, x, ref) / K)  # Monte Carlo error of one estimate
    assert torch.all((a - b).abs() < 5 * math.sqrt(2) * sd)
    assert torch.all((a - ref).abs() < 5 * sd) and torch.all((b - ref).abs() < 5 * sd)


def test_log_importance_weights_shape_and_mean_weight_is_px():
    x, W, mu, s2 = ppca_problem(D=3, M=1, B=2, seed=8)
    model = LinearGaussianModel(W, mu, s2, inflate=2.0)
    mean, log_var = model.encode(x)
    log_w = log_importance_weights(x, mean, log_var, model.log_px_given_z, model.prior, K=200000, generator=torch.Generator().manual_seed(0))
    assert log_w.shape == (200000, 2)
    w_ratio = torch.exp(log_w - exact_log_px(x, W, mu, s2))  # E_q[w] / p(x) = 1
    assert torch.all((w_ratio.mean(0) - 1).abs() < 5 * w_ratio.std(0) / math.sqrt(200000))


# ----------------------------------------------------------------------------- collapse diagnostics
def test_kl_per_dimension_matches_torch():
    g = torch.Generator().manual_seed(0)
    mu_z = torch.randn(30, 4, generator=g)
    log_var = torch.randn(30, 4, generator=g)
    ref = kl_divergence(Normal(mu_z, torch.exp(0.5 * log_var)), Normal(0.0, 1.0)).mean(0)
    torch.testing.assert_close(kl_per_dimension(mu_z, log_var), ref)


def test_active_units_on_partly_collapsed_encoder_outputs():
    g = torch.Generator().manual_seed(0)
    N = 500
    mu_z = torch.stack(
        [
            torch.randn(N, generator=g),  # active, Var = 1
            0.5 * torch.randn(N, generator=g),  # active, Var = 0.25
            0.03 * torch.randn(N, generator=g),  # collapsed-ish, Var ~ 1e-3 < 1e-2
            torch.full((N,), 0.7),  # fully collapsed: the mean never moves
        ],
        dim=1,
    )
    count, A = active_units(mu_z)
    assert count == 2
    np.testing.assert_allclose(A.numpy(), np.var(mu_z.numpy(), axis=0), rtol=1e-5, atol=1e-9)
    assert active_units(mu_z, threshold=1e-4)[0] == 3
    assert active_units(mu_z.numpy(), threshold=0.5)[0] == 1


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    mu_z, log_var = torch.zeros(3, 2), torch.zeros(3, 2)
    f = lambda x, z: z.sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="K"):
        elbo_terms(None, mu_z, log_var, f, K=0)
    with pytest.raises(ValueError, match="log_var"):
        elbo_terms(None, mu_z, torch.zeros(3, 3), f)
    with pytest.raises(ValueError, match="mu_z"):
        elbo_terms(None, torch.zeros(3), torch.zeros(3), f)
    with pytest.raises(TypeError, match="log_px_given_z"):
        elbo_terms(None, mu_z, log_var, "not callable")
    with pytest.raises(ValueError, match=r"\(K, B\)"):
        elbo_terms(None, mu_z, log_var, lambda x, z: z.sum((-1, -2)))
    with pytest.raises(ValueError, match="log_w"):
        iwae_bound(torch.zeros(5))
    with pytest.raises(TypeError, match="model"):
        log_px_importance(object(), torch.zeros(2, 2))
    x, W, mu, s2 = ppca_problem(D=4, M=2, B=3)
    model = LinearGaussianModel(W, mu, s2)
    with pytest.raises(ValueError, match="chunk"):
        log_px_importance(model, x, K=10, chunk=0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        log_px_importance(model, x[0], K=10)
    with pytest.raises(ValueError, match="threshold"):
        active_units(torch.zeros(4, 2), threshold=0)
    with pytest.raises(ValueError, match="N >= 2"):
        active_units(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="exactly one"):
        gaussian_elbo_linear(x, W, mu, s2, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="sigma2"):
        gaussian_elbo_linear(x, W, mu, -1.0, torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="q_mean"):
        gaussian_elbo_linear(x, W, mu, s2, torch.zeros(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="q_scale_tril"):
        kl_posterior_linear(x, W, mu, s2, torch.zeros(3, 2), q_scale_tril=-torch.eye(2, dtype=DT))
    with pytest.raises(ValueError, match="mu"):
        gaussian_elbo_linear(x, W, mu[:2], s2, torch.zeros(3, 2), torch.zeros(3, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_log_px_importance_runs_on_the_gpu():
    from lvmlib.vae import VAE, VAEConfig

    vae = VAE(VAEConfig(D=8, M=2, H=16, likelihood="gaussian", device="cuda"))
    x = torch.randn(5, 8, device="cuda")
    est = log_px_importance(vae, x, K=300, chunk=64, generator=torch.Generator(device="cuda").manual_seed(0))
    assert est.device.type == "cuda" and est.shape == (5,) and torch.all(torch.isfinite(est))
    cpu = log_px_importance(vae.cpu(), x.cpu(), K=300, chunk=300)
    assert torch.all((est.cpu() - cpu).abs() < 0.5)

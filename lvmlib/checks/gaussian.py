"""Checks for the exercises on Gaussians and the linear-Gaussian model (notebook 01).

Each check runs the learner's function and :mod:`lvmlib.gaussian`'s reference on
random inputs (float64 tensors), and names the mistake when a wrong answer matches
a typical one. Usage in a notebook::

    from lvmlib import checks
    linear_gaussian_marginal = checks.gaussian.check_linear_gaussian_marginal(linear_gaussian_marginal)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from lvmlib import gaussian
from lvmlib.checks._core import Case, check_function

__all__ = [
    "check_log_normal_full",
    "check_linear_gaussian_marginal",
    "check_linear_gaussian_posterior",
]

LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- random inputs
def random_spd(rng: np.random.Generator, n: int, *, scale: float = 1.0) -> torch.Tensor:
    """A random, well-conditioned symmetric positive-definite (n, n) float64 tensor."""
    B = rng.normal(size=(n, n))
    mat = scale * (B @ B.T / n + 0.5 * np.eye(n))  # (n, n), eigenvalues >= 0.5 * scale
    return torch.as_tensor(mat, dtype=torch.float64)


def _tensor(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.as_tensor(scale * rng.normal(size=shape), dtype=torch.float64)


def _linear_gaussian_params(rng: np.random.Generator):
    """mu (Dx,), Lambda (Dx, Dx), A (Dy, Dx), b (Dy,), L (Dy, Dy) with Dx != Dy."""
    Dx = int(rng.integers(2, 4))
    Dy = Dx + int(rng.integers(1, 3))
    mu = _tensor(rng, Dx)
    Lambda = random_spd(rng, Dx, scale=float(rng.uniform(0.5, 3.0)))
    A = _tensor(rng, Dy, Dx)
    b = _tensor(rng, Dy)
    L = random_spd(rng, Dy, scale=float(rng.uniform(0.5, 3.0)))
    return mu, Lambda, A, b, L


# ----------------------------------------------------------------------------- log N(x | mu, cov)
def _log_normal_full_cases(rng: np.random.Generator) -> Case:
    D = int(rng.integers(2, 5))
    N = int(rng.integers(3, 7))
    mu = _tensor(rng, D)
    cov = random_spd(rng, D, scale=float(rng.uniform(0.3, 2.0)))
    x = mu + _tensor(rng, N, D)
    return Case((x, mu, cov))


def _lnf_parts(x, mu, cov):
    diff = x - mu  # (N, D)
    quad = (diff @ torch.linalg.inv(cov) * diff).sum(-1)  # (N,)
    logdet = torch.linalg.slogdet(cov)[1]
    return diff, quad, logdet, x.shape[-1]


def _lnf_const_per_element(x, mu, cov):
    _, quad, logdet, D = _lnf_parts(x, mu, cov)
    return -0.5 * D * D * LOG_2PI - 0.5 * logdet - 0.5 * quad


def _lnf_const_once(x, mu, cov):
    _, quad, logdet, D = _lnf_parts(x, mu, cov)
    return -0.5 * LOG_2PI - 0.5 * logdet - 0.5 * quad


def _lnf_full_logdet(x, mu, cov):
    _, quad, logdet, D = _lnf_parts(x, mu, cov)
    return -0.5 * D * LOG_2PI - logdet - 0.5 * quad


def _lnf_cov_not_inverted(x, mu, cov):
    diff, _, logdet, D = _lnf_parts(x, mu, cov)
    return -0.5 * D * LOG_2PI - 0.5 * logdet - 0.5 * (diff @ cov * diff).sum(-1)


def _lnf_no_half(x, mu, cov):
    _, quad, logdet, D = _lnf_parts(x, mu, cov)
    return -0.5 * D * LOG_2PI - 0.5 * logdet - quad


def check_log_normal_full(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``log_normal_full(x, mu, cov)`` -> (N,) log N(x_n | mu, cov) (Bishop 2.43)."""
    return check_function(
        learner, gaussian.log_normal_full, _log_normal_full_cases,
        name="log_normal_full", seed=seed, strict=strict,
        known_mistakes={
            "the constant -D/2 log(2 pi) was added once per element (giving -D^2/2 log 2 pi); "
            "it belongs once per vector.": _lnf_const_per_element,
            "the constant is -D/2 log(2 pi), not -1/2 log(2 pi): one factor per dimension.": _lnf_const_once,
            "the log-determinant needs the factor 1/2: -1/2 log|cov|.": _lnf_full_logdet,
            "the quadratic form uses the INVERSE covariance: (x - mu)^T cov^-1 (x - mu).": _lnf_cov_not_inverted,
            "the quadratic form needs the factor 1/2.": _lnf_no_half,
        },
        hint="log N(x | mu, S) = -D/2 log(2 pi) - 1/2 log|S| - 1/2 (x - mu)^T S^-1 (x - mu), one value per row of x.",
    )


# ----------------------------------------------------------------------------- marginal p(y), Bishop 2.115
def _marginal_cases(rng: np.random.Generator) -> Case:
    return Case(_linear_gaussian_params(rng))


def _marg_precisions_as_covariances(mu, Lambda, A, b, L):
    return A @ mu + b, L + A @ Lambda @ A.T


def _marg_no_noise(mu, Lambda, A, b, L):
    return A @ mu + b, A @ torch.linalg.inv(Lambda) @ A.T


def _marg_no_b(mu, Lambda, A, b, L):
    return A @ mu, torch.linalg.inv(L) + A @ torch.linalg.inv(Lambda) @ A.T


def _marg_lambda_not_inverted(mu, Lambda, A, b, L):
    return A @ mu + b, torch.linalg.inv(L) + A @ Lambda @ A.T


def check_linear_gaussian_marginal(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``linear_gaussian_marginal(mu, Lambda, A, b, L)`` -> (mean_y, cov_y) (Bishop 2.115).

    p(x) = N(mu, Lambda^-1), p(y | x) = N(A x + b, L^-1)  =>  p(y) = N(A mu + b, L^-1 + A Lambda^-1 A^T).
    """
    return check_function(
        learner, gaussian.linear_gaussian_marginal, _marginal_cases,
        name="linear_gaussian_marginal", seed=seed, strict=strict,
        known_mistakes={
            "Lambda and L are PRECISIONS (inverse covariances): the covariance is L^-1 + A Lambda^-1 A^T, "
            "not L + A Lambda A^T.": _marg_precisions_as_covariances,
            "the noise covariance L^-1 of p(y | x) is missing from cov_y.": _marg_no_noise,
            "the offset b is missing from the mean (and the mean is A mu + b).": _marg_no_b,
            "Lambda is the PRECISION of p(x): the term is A Lambda^-1 A^T, not A Lambda A^T.": _marg_lambda_not_inverted,
        },
        hint="mean_y = A mu + b; cov_y = L^-1 + A Lambda^-1 A^T (Lambda and L are precisions).",
    )


# ----------------------------------------------------------------------------- posterior p(x | y), Bishop 2.116-2.117
def _posterior_cases(rng: np.random.Generator) -> Case:
    mu, Lambda, A, b, L = _linear_gaussian_params(rng)
    N = int(rng.integers(2, 5))
    y = b + _tensor(rng, N, A.shape[0], scale=1.5)  # (N, Dy)
    return Case((y, mu, Lambda, A, b, L))


def _post_parts(y, mu, Lambda, A, b, L):
    precision = Lambda + A.T @ L @ A  # (Dx, Dx)
    Sigma = torch.linalg.inv(precision)
    return precision, Sigma


def _post_precision_returned(y, mu, Lambda, A, b, L):
    precision, Sigma = _post_parts(y, mu, Lambda, A, b, L)
    mean = ((y - b) @ L @ A + Lambda @ mu) @ Sigma  # (N, Dx); Sigma, L, Lambda symmetric
    return mean, precision


def _post_no_prior_mean(y, mu, Lambda, A, b, L):
    _, Sigma = _post_parts(y, mu, Lambda, A, b, L)
    return ((y - b) @ L @ A) @ Sigma, Sigma


def _post_no_b(y, mu, Lambda, A, b, L):
    _, Sigma = _post_parts(y, mu, Lambda, A, b, L)
    return (y @ L @ A + Lambda @ mu) @ Sigma, Sigma


def _post_covariances_as_precisions(y, mu, Lambda, A, b, L):
    Lam_inv, L_inv = torch.linalg.inv(Lambda), torch.linalg.inv(L)
    Sigma = torch.linalg.inv(Lam_inv + A.T @ L_inv @ A)
    return ((y - b) @ L_inv @ A + Lam_inv @ mu) @ Sigma, Sigma


def _post_prior_mean_unweighted(y, mu, Lambda, A, b, L):
    _, Sigma = _post_parts(y, mu, Lambda, A, b, L)
    return ((y - b) @ L @ A) @ Sigma + mu, Sigma


def check_linear_gaussian_posterior(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``linear_gaussian_posterior(y, mu, Lambda, A, b, L)`` -> (mean (N, Dx), cov (Dx, Dx)).

    Bishop 2.116-2.117: p(x | y) = N(Sigma {A^T L (y - b) + Lambda mu}, Sigma), Sigma = (Lambda + A^T L A)^-1.
    """
    return check_function(
        learner, gaussian.linear_gaussian_posterior, _posterior_cases,
        name="linear_gaussian_posterior", seed=seed, strict=strict,
        known_mistakes={
            "the returned matrix is the posterior PRECISION Lambda + A^T L A; the covariance is its inverse "
            "Sigma = (Lambda + A^T L A)^-1 (the lecture makes the same slip for PPCA).": _post_precision_returned,
            "the prior's contribution Lambda mu is missing from the mean.": _post_no_prior_mean,
            "the offset b must be subtracted: A^T L (y - b).": _post_no_b,
            "Lambda and L are precisions already; do not invert them before use.": _post_covariances_as_precisions,
            "the prior mean enters as Sigma Lambda mu, not as + mu.": _post_prior_mean_unweighted,
        },
        hint="Sigma = (Lambda + A^T L A)^-1 and mean = Sigma (A^T L (y - b) + Lambda mu), one row per y.",
    )

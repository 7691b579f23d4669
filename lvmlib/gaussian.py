"""Gaussian building blocks of the lecture: log-densities, KL, linear-Gaussian identities.

Everything in the lecture is Gaussian ("REMEMBER: Everything is Gaussian!"), and the
linear-Gaussian model (Bishop, PRML 2.113-2.117, reproduced in the lecture) is the
bridge to probabilistic PCA. This module gives

- ``log_normal_diag``, ``log_normal_standard``, ``log_normal_full``: log-densities,
  batched over leading dimensions, summed over the last (event) dimension;
- ``kl_normal_diag``: the analytic KL divergence between diagonal Gaussians (the KL term
  of the ELBO);
- ``linear_gaussian_marginal`` and ``linear_gaussian_posterior``: p(y) and p(x | y) for
  p(x) = N(mu, Lambda^-1), p(y | x) = N(A x + b, L^-1).

Variances are passed as LOG-variances (``log_var``) throughout the course. Full
covariances go through a Cholesky factor and triangular solves; no explicit inverse is
formed unless the returned quantity is itself a covariance. Inputs may be NumPy arrays
or tensors; results are tensors on the inputs' device.

Bad input is an error that names the argument: shapes that do not broadcast, a
covariance that is not symmetric positive definite, and NaN or infinite values (a
log-density of NaN is never returned). The value check looks at the result once (one
reduction); ``check=False`` skips it, for inner loops whose inputs are known to be finite
(it then costs no host-device synchronisation on a GPU).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "LOG_2PI",
    "log_normal_diag",
    "log_normal_standard",
    "log_normal_full",
    "kl_normal_diag",
    "linear_gaussian_marginal",
    "linear_gaussian_posterior",
]

LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- helpers
def _as_float_tensors(optional=(), **named):
    """Convert each named argument to a floating tensor; all share one dtype and device.

    NumPy arrays keep their float precision (float64 stays float64); integer or boolean
    inputs become torch's default float dtype. ``None`` is passed through for the names in
    ``optional`` and is an error for the others.
    """
    out = {}
    for name, value in named.items():
        if value is None:
            if name not in optional:
                raise TypeError(f"{name} must be a NumPy array or a torch tensor, got None")
            out[name] = None
            continue
        if isinstance(value, torch.Tensor):
            t = value
        elif isinstance(value, (np.ndarray, np.generic, float, int, list, tuple)):
            try:
                t = torch.as_tensor(np.asarray(value))
            except (TypeError, ValueError) as err:
                raise TypeError(f"{name} must be a numeric array or tensor, got {type(value).__name__}") from err
        else:
            raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(value).__name__}")
        if t.is_complex():
            raise TypeError(f"{name} must be real, got dtype {t.dtype}")
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        out[name] = t
    tensors = [t for t in out.values() if t is not None]
    if tensors:
        dtype = tensors[0].dtype
        for t in tensors[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        device = next((t.device for t in tensors if t.device.type != "cpu"), tensors[0].device)
        out = {k: (None if v is None else v.to(device=device, dtype=dtype)) for k, v in out.items()}
    return out


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _broadcast_shape(**shapes) -> torch.Size:
    """The broadcast of the named shapes, or a ValueError that lists them."""
    try:
        return torch.broadcast_shapes(*shapes.values())
    except RuntimeError as err:
        listed = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
        raise ValueError(f"the shapes of {listed} do not broadcast against each other") from err


def _not_finite(t: torch.Tensor) -> bool:
    if t.device.type == "meta":  # a tensor with a shape and no values (the checks' device test): nothing to read
        return False
    return not bool(torch.isfinite(t).all())


def _explain_non_finite(results, inputs: dict, what: str) -> None:
    """Raise a ValueError naming the input that made a result NaN or infinite.

    Called with the results and the named inputs of a computation; does nothing when every
    result is finite. A NaN or infinite input is named; a log-variance of -inf is a zero
    variance (no density). When every input is finite and a result is NaN, the computation
    overflowed in the inputs' dtype, and the error says so. A result of -inf from finite
    inputs (a density that underflows to 0) is returned, not an error.
    """
    if not any(_not_finite(r) for r in results):
        return
    for name, t in inputs.items():
        if t is None or not _not_finite(t):
            continue
        if name.startswith("log_var") and bool((t == -torch.inf).any()):
            raise ValueError(
                f"{name} must be finite: log_var = -inf is a variance of 0, which has no density "
                f"(use a small finite log-variance such as -20)"
            )
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite, got {n_bad} NaN or infinite value(s)")
    if any(bool(torch.isnan(r).any()) for r in results):
        dtype = next(t for t in inputs.values() if t is not None).dtype
        raise ValueError(
            f"{what} overflowed in {dtype} although every input is finite (variances or values "
            f"too extreme for this precision); use float64 or less extreme log-variances"
        )


def _check_at_least_1d(name: str, t: torch.Tensor) -> None:
    if t.dim() < 1:
        raise ValueError(f"{name} must have at least one dimension (the event dimension last), got a scalar")


def _check_square(name: str, t: torch.Tensor) -> None:
    if t.dim() < 2 or t.shape[-1] != t.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (..., n, n), got shape {tuple(t.shape)}")


def _cholesky_spd(name: str, mat: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a symmetric positive-definite matrix, or a clear error."""
    _check_square(name, mat)
    if not torch.isfinite(mat).all():
        raise ValueError(f"{name} contains NaN or inf")
    scale = mat.abs().amax().clamp_min(torch.finfo(mat.dtype).tiny)
    tol = math.sqrt(torch.finfo(mat.dtype).eps) * scale
    if ((mat - mat.mT).abs() > tol).any():
        raise ValueError(f"{name} must be symmetric positive definite; it is not symmetric")
    chol, info = torch.linalg.cholesky_ex(mat)
    if (info != 0).any():
        raise ValueError(
            f"{name} must be symmetric positive definite; its Cholesky factorisation failed "
            "(it has a zero or negative eigenvalue)"
        )
    return chol


def _solve_vectors(chol: torch.Tensor, v: torch.Tensor, solve) -> torch.Tensor:
    """Apply a matrix solve ``solve(chol, B)`` to the vectors v (..., n).

    The vectors' extra leading dimensions become columns of B, so one factor serves many
    vectors without being copied once per vector.
    """
    n = chol.shape[-1]
    k = chol.dim() - 2
    batch = torch.broadcast_shapes(v.shape[:-1], chol.shape[:-2])
    inner, outer = batch[len(batch) - k :], batch[: len(batch) - k]
    cols = v.expand(*batch, n).reshape(-1, *inner, n)  # (E, *inner, n), E = prod(outer)
    out = solve(chol.expand(*inner, n, n), cols.movedim(0, -1))  # (*inner, n, E)
    return out.movedim(-1, 0).reshape(*outer, *inner, n)  # (..., n)


def _solve_lower(chol, B):
    return torch.linalg.solve_triangular(chol, B, upper=False)


def _cholesky_solve(chol, B):
    return torch.cholesky_solve(B, chol)


# ----------------------------------------------------------------------------- densities
def log_normal_diag(x, mu, log_var, *, check: bool = True) -> torch.Tensor:
    """Log-density of a Gaussian with diagonal covariance, summed over the last dimension.

    log N(x | mu, diag(exp(log_var)))
        = -D/2 log(2 pi) - 1/2 sum_d [ log_var_d + (x_d - mu_d)^2 / exp(log_var_d) ]

    The constant -D/2 log(2 pi) appears once per vector (not once per element).
    ``mu`` and ``log_var`` broadcast against ``x`` (e.g. a scalar log-variance).

    Inputs:  x (..., D), mu (..., D) or broadcastable, log_var (..., D) or broadcastable, all
             finite; check: verify that (raises ValueError naming the argument; see the module
             docstring), False to skip.
    Returns: (...,) one log-density per vector (the broadcast leading shape).
    """
    _check_flag("check", check)
    t = _as_float_tensors(x=x, mu=mu, log_var=log_var)
    x, mu, log_var = t["x"], t["mu"], t["log_var"]
    _check_at_least_1d("x", x)
    shape = _broadcast_shape(x=x.shape, mu=mu.shape, log_var=log_var.shape)
    D = shape[-1]
    per_dim = log_var + (x - mu) ** 2 * torch.exp(-log_var)  # (..., D) after broadcasting
    per_dim = per_dim.expand(shape)  # (..., D)
    out = -0.5 * (D * LOG_2PI + per_dim.sum(dim=-1))
    if check:
        _explain_non_finite([out], t, "log_normal_diag")
    return out


def log_normal_standard(x, *, check: bool = True) -> torch.Tensor:
    """Log-density of the standard normal N(0, I), summed over the last dimension.

    log N(x | 0, I) = -D/2 log(2 pi) - 1/2 ||x||^2   (the prior p(z) of PPCA and the VAE)

    Inputs:  x (..., D) finite; check: verify that (False to skip).
    Returns: (...,).
    """
    _check_flag("check", check)
    x = _as_float_tensors(x=x)["x"]
    _check_at_least_1d("x", x)
    D = x.shape[-1]
    out = -0.5 * (D * LOG_2PI + (x**2).sum(dim=-1))
    if check:
        _explain_non_finite([out], {"x": x}, "log_normal_standard")
    return out


def log_normal_full(x, mu, cov, *, check: bool = True) -> torch.Tensor:
    """Log-density of a Gaussian with a full covariance, through its Cholesky factor.

    With cov = L L^T (L lower triangular) and r = L^-1 (x - mu) (a triangular solve):

    log N(x | mu, cov) = -D/2 log(2 pi) - sum_d log L_dd - 1/2 ||r||^2

    (Bishop 2.43; log|cov| = 2 sum_d log L_dd.) The covariance is never inverted.

    Inputs:  x (..., D), mu (D,) or (..., D), cov (D, D) or (..., D, D) symmetric
             positive definite; leading dimensions broadcast; x and mu finite (check=True
             verifies it; the covariance is always checked).
    Returns: (...,).
    Raises:  ValueError when cov is not square, not symmetric or not positive definite, when
             the shapes do not match, or when x or mu holds NaN or inf.
    """
    _check_flag("check", check)
    t = _as_float_tensors(x=x, mu=mu, cov=cov)
    x, mu, cov = t["x"], t["mu"], t["cov"]
    _check_at_least_1d("x", x)
    chol = _cholesky_spd("cov", cov)  # (..., D, D)
    D = cov.shape[-1]
    if x.shape[-1] != D or mu.shape[-1:] != (D,):
        raise ValueError(
            f"x {tuple(x.shape)} and mu {tuple(mu.shape)} must end in D={D}, the size of cov {tuple(cov.shape)}"
        )
    _broadcast_shape(**{"x (batch)": x.shape[:-1], "mu (batch)": mu.shape[:-1], "cov (batch)": cov.shape[:-2]})
    r = _solve_vectors(chol, x - mu, _solve_lower)  # (..., D) = L^-1 (x - mu)
    half_logdet = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(dim=-1)  # (batch of cov,)
    out = -0.5 * D * LOG_2PI - half_logdet - 0.5 * (r**2).sum(dim=-1)
    if check:
        _explain_non_finite([out], {"x": x, "mu": mu}, "log_normal_full")
    return out


# ----------------------------------------------------------------------------- KL
def kl_normal_diag(mu_q, log_var_q, mu_p=None, log_var_p=None, *, reduce: bool = True, check: bool = True) -> torch.Tensor:
    """Analytic KL(q || p) between diagonal Gaussians q = N(mu_q, var_q), p = N(mu_p, var_p).

    Per dimension:
        KL_d = 1/2 [ log_var_p - log_var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1 ]
    With p the standard normal (the default, the prior of the VAE) this is
        KL_d = 1/2 [ var_q + mu_q^2 - 1 - log_var_q ],
    the KL term of the lecture's ELBO.

    Inputs:  mu_q (..., D), log_var_q (..., D), mu_p and log_var_p (..., D) or broadcastable
             or None (p = N(0, I)), all finite; reduce=True sums over the last dimension;
             check: verify the values are finite (False to skip, see the module docstring).
    Returns: (...,) when reduce=True, (..., D) per-dimension values otherwise.
    """
    _check_flag("reduce", reduce)
    _check_flag("check", check)
    if (mu_p is None) != (log_var_p is None):
        raise ValueError("give both mu_p and log_var_p, or neither (then p is the standard normal)")
    t = _as_float_tensors(("mu_p", "log_var_p"), mu_q=mu_q, log_var_q=log_var_q, mu_p=mu_p, log_var_p=log_var_p)
    mu_q, log_var_q, mu_p, log_var_p = t["mu_q"], t["log_var_q"], t["mu_p"], t["log_var_p"]
    _check_at_least_1d("mu_q", mu_q)
    _broadcast_shape(**{k: v.shape for k, v in t.items() if v is not None})
    if mu_p is None:
        kl = 0.5 * (torch.exp(log_var_q) + mu_q**2 - 1.0 - log_var_q)  # (..., D)
    else:
        kl = 0.5 * (
            log_var_p - log_var_q + (torch.exp(log_var_q) + (mu_q - mu_p) ** 2) * torch.exp(-log_var_p) - 1.0
        )  # (..., D)
    out = kl.sum(dim=-1) if reduce else kl
    if check:
        _explain_non_finite([out], t, "kl_normal_diag")
    return out


# ----------------------------------------------------------------------------- linear-Gaussian
def _check_linear_gaussian(mu, Lambda, A, b, L):
    for name, t in (("mu", mu), ("Lambda", Lambda), ("A", A), ("b", b), ("L", L)):
        if _not_finite(t):
            raise ValueError(f"{name} must be finite, got {int((~torch.isfinite(t)).sum())} NaN or infinite value(s)")
    _check_at_least_1d("mu", mu)
    _check_at_least_1d("b", b)
    _check_square("Lambda", Lambda)
    _check_square("L", L)
    if A.dim() < 2:
        raise ValueError(f"A must be a matrix (..., Dy, Dx), got shape {tuple(A.shape)}")
    Dy, Dx = A.shape[-2], A.shape[-1]
    if mu.shape[-1] != Dx or Lambda.shape[-1] != Dx:
        raise ValueError(
            f"mu {tuple(mu.shape)} and Lambda {tuple(Lambda.shape)} must match Dx={Dx}, "
            f"the number of columns of A {tuple(A.shape)}"
        )
    if b.shape[-1] != Dy or L.shape[-1] != Dy:
        raise ValueError(
            f"b {tuple(b.shape)} and L {tuple(L.shape)} must match Dy={Dy}, the number of rows of A {tuple(A.shape)}"
        )
    _broadcast_shape(**{
        "mu (batch)": mu.shape[:-1], "Lambda (batch)": Lambda.shape[:-2], "A (batch)": A.shape[:-2],
        "b (batch)": b.shape[:-1], "L (batch)": L.shape[:-2],
    })


def linear_gaussian_marginal(mu, Lambda, A, b, L):
    """Marginal p(y) of the linear-Gaussian model (Bishop 2.115, lecture eq. 2.115).

    p(x) = N(x | mu, Lambda^-1),  p(y | x) = N(y | A x + b, L^-1)   (precisions Lambda, L)
    p(y) = N(y | A mu + b,  L^-1 + A Lambda^-1 A^T)

    A Lambda^-1 A^T is computed as V^T V with V = chol(Lambda)^-1 A^T (a triangular solve).
    PPCA is the case mu = 0, Lambda = I, A = W, b = mu_x, L = sigma^-2 I.

    Inputs:  mu (..., Dx), Lambda (..., Dx, Dx), A (..., Dy, Dx), b (..., Dy), L (..., Dy, Dy).
    Returns: mean_y (..., Dy), cov_y (..., Dy, Dy).
    """
    t = _as_float_tensors(mu=mu, Lambda=Lambda, A=A, b=b, L=L)
    mu, Lambda, A, b, L = t["mu"], t["Lambda"], t["A"], t["b"], t["L"]
    _check_linear_gaussian(mu, Lambda, A, b, L)
    chol_lam = _cholesky_spd("Lambda", Lambda)  # (..., Dx, Dx)
    chol_L = _cholesky_spd("L", L)  # (..., Dy, Dy)
    mean_y = (A @ mu.unsqueeze(-1)).squeeze(-1) + b  # (..., Dy)
    batch = torch.broadcast_shapes(chol_lam.shape[:-2], A.shape[:-2])
    Dy, Dx = A.shape[-2], A.shape[-1]
    V = torch.linalg.solve_triangular(
        chol_lam.expand(*batch, Dx, Dx), A.mT.expand(*batch, Dx, Dy), upper=False
    )  # (..., Dx, Dy)
    cov_y = torch.cholesky_inverse(chol_L) + V.mT @ V  # (..., Dy, Dy); L^-1 is itself a covariance
    _explain_non_finite([mean_y, cov_y], t, "linear_gaussian_marginal")
    return mean_y, cov_y


def linear_gaussian_posterior(y, mu, Lambda, A, b, L):
    """Posterior p(x | y) of the linear-Gaussian model (Bishop 2.116-2.117).

    p(x) = N(x | mu, Lambda^-1),  p(y | x) = N(y | A x + b, L^-1)
    p(x | y) = N(x | Sigma {A^T L (y - b) + Lambda mu}, Sigma),  Sigma = (Lambda + A^T L A)^-1

    The mean is a Cholesky solve with the posterior precision Lambda + A^T L A; Sigma is
    formed from the same factor (it is the returned covariance). For PPCA this gives
    p(z | x) = N(M^-1 W^T (x - mu), sigma^2 M^-1).

    Inputs:  y (..., Dy) (e.g. (N, Dy) observations sharing one model), mu (Dx,) or (..., Dx),
             Lambda (..., Dx, Dx), A (..., Dy, Dx), b (..., Dy), L (..., Dy, Dy).
    Returns: mean (..., Dx) one posterior mean per y, cov (..., Dx, Dx) (shared by all y
             when the parameters have no batch dimensions).
    """
    t = _as_float_tensors(y=y, mu=mu, Lambda=Lambda, A=A, b=b, L=L)
    y, mu, Lambda, A, b, L = t["y"], t["mu"], t["Lambda"], t["A"], t["b"], t["L"]
    _check_linear_gaussian(mu, Lambda, A, b, L)
    _check_at_least_1d("y", y)
    if y.shape[-1] != A.shape[-2]:
        raise ValueError(f"y {tuple(y.shape)} must end in Dy={A.shape[-2]}, the number of rows of A")
    if _not_finite(y):
        raise ValueError(f"y must be finite, got {int((~torch.isfinite(y)).sum())} NaN or infinite value(s)")
    _broadcast_shape(**{"y (batch)": y.shape[:-1], "b (batch)": b.shape[:-1], "mu (batch)": mu.shape[:-1],
                        "A (batch)": A.shape[:-2]})
    _cholesky_spd("Lambda", Lambda)
    _cholesky_spd("L", L)
    precision = Lambda + A.mT @ L @ A  # (..., Dx, Dx)
    chol = _cholesky_spd("Lambda + A^T L A", precision)  # (..., Dx, Dx)
    rhs = ((y - b).unsqueeze(-2) @ L.mT @ A).squeeze(-2)  # (..., Dx): A^T L (y - b)
    rhs = rhs + (Lambda @ mu.unsqueeze(-1)).squeeze(-1)  # (..., Dx): + Lambda mu
    mean = _solve_vectors(chol, rhs, _cholesky_solve)  # (..., Dx)
    cov = torch.cholesky_inverse(chol)  # (..., Dx, Dx)
    _explain_non_finite([mean, cov], t, "linear_gaussian_posterior")
    return mean, cov

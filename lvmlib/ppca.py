"""Probabilistic PCA (Tipping & Bishop, 1999; Bishop, PRML 12.2): the lecture's PPCA part.

The model (lecture "PPCA: probabilistic principal component analysis"), W is D x M:

    p(z)     = N(z | 0, I)
    p(x | z) = N(x | W z + mu, sigma2 I)
    p(x)     = N(x | mu, C),            C = W W^T + sigma2 I        (D x D)
    p(z | x) = N(z | M^-1 W^T (x - mu), sigma2 M^-1),  M = W^T W + sigma2 I   (M x M)

Everything is computed through the small matrix M (``M_mat`` in code): the Woodbury
identity C^-1 = sigma^-2 (I - W M^-1 W^T) and the determinant lemma
log|C| = (D - M) log sigma2 + log|M| give the log-likelihood in O(N D M + M^3), never
forming or inverting the D x D matrix C.

Two errata of the lecture are corrected here (and said so where they matter):

1. the lecture prints C^-1 = sigma^-1 I - sigma^-2 W M^-1 W^T; the correct form is
   sigma^-2 (I - W M^-1 W^T) (see ``C_inverse``);
2. the lecture writes p(z | x) = N(M^-1 W^T (x - mu), sigma^-2 M); sigma^-2 M is the
   posterior PRECISION, the covariance is sigma2 M^-1 (see ``posterior``).

Functional core (used by the exercises and by the class):
``M_matrix``, ``covariance``, ``C_inverse``, ``log_likelihood``, ``posterior``,
``closed_form``, ``em_step``, ``fit_em``, ``fit_gradient``. The class ``PPCA`` wraps them
with fit / log_likelihood / posterior / encode / decode / reconstruct / sample.

Inputs may be NumPy arrays or tensors. NumPy arrays (and integer tensors) become float64
tensors (PPCA works in float64 by default); floating tensors keep their dtype and device,
and parameters follow the data's dtype and device.

Bad data is an error that says what is wrong with it (a ValueError, never a bare linear
algebra error): NaN or inf values, values whose squares overflow (or underflow) the dtype,
data without variance, too few rows for n_components (N - 1 <= M: the centred rows span at
most N - 1 directions, so sigma2_ML = 0; all three fitting methods refuse it), a starting
W0 of rank < M for the iterative fits (W = 0 is a saddle point that EM and the gradient
never leave; a rank-deficient W0 stays rank-deficient), and a fit whose sigma2 collapses or
whose likelihood stops being finite (e.g. a too large learning rate).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
import torch

from lvmlib.gaussian import LOG_2PI
from lvmlib.runtime import progress_bar

__all__ = [
    "NotFittedError",
    "FitResult",
    "M_matrix",
    "covariance",
    "C_inverse",
    "log_likelihood",
    "posterior",
    "closed_form",
    "em_step",
    "fit_and_score",
    "em_until_converged",
    "fit_em",
    "fit_gradient",
    "PPCA",
]

NORMALIZATIONS = ("ml", "unbiased")
METHODS = ("closed_form", "em", "gradient")


class NotFittedError(RuntimeError):
    """Raised when a PPCA model is used before ``fit`` (or ``from_params``)."""


class FitResult(NamedTuple):
    """Result of ``fit_em`` / ``fit_gradient``; unpacks as ``W, mu, sigma2, history``.

    W (D, M), mu (D,), sigma2 (0-d tensor), history: list of the mean log-likelihood
    (nats per sample) after 0, 1, 2, ... iterations (history[0] is the initial value).
    """

    W: torch.Tensor
    mu: torch.Tensor
    sigma2: torch.Tensor
    history: list


# ============================================================================ input checks
def _to_tensor(name: str, value, dtype: torch.dtype | None = None) -> torch.Tensor:
    """NumPy/list/scalar -> float64 tensor; floating tensors keep dtype unless ``dtype`` given."""
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, (np.ndarray, np.generic, list, tuple, float, int)) and not isinstance(value, bool):
        try:
            t = torch.as_tensor(np.asarray(value))
            if dtype is None and t.is_floating_point():
                t = t.to(torch.float64)  # PPCA works in double precision by default
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a numeric array or tensor, got {type(value).__name__}") from err
    else:
        raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(value).__name__}")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def _check_data(X, name: str = "X", min_samples: int = 1, dtype: torch.dtype | None = None) -> torch.Tensor:
    """X as a finite 2-D (N, D) floating tensor with at least ``min_samples`` rows."""
    X = _to_tensor(name, X, dtype)
    if X.dim() != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, D), got shape {tuple(X.shape)}")
    if X.shape[0] < min_samples:
        raise ValueError(f"{name} must have at least {min_samples} samples (rows), got N={X.shape[0]}")
    if X.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature (column), got D={X.shape[1]}")
    # NaN/inf propagate through a sum: one cheap reduction, the elementwise test only if needed
    if not torch.isfinite(X.sum()) and not torch.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return X


def _check_n_components(n_components, D: int | None = None) -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise TypeError(f"n_components must be an integer, got {n_components!r}")
    n_components = int(n_components)
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}")
    if D is not None and n_components >= D:
        raise ValueError(
            f"n_components must be smaller than the data dimension D={D} (PPCA needs discarded "
            f"directions to estimate sigma2), got {n_components}"
        )
    return n_components


def _check_sigma2(sigma2, like: torch.Tensor) -> torch.Tensor:
    s2 = _to_tensor("sigma2", sigma2).to(device=like.device, dtype=like.dtype)
    if s2.numel() != 1:
        raise ValueError(f"sigma2 must be a positive scalar, got shape {tuple(s2.shape)}")
    s2 = s2.reshape(())  # ()
    if not torch.isfinite(s2) or s2.item() <= 0:
        raise ValueError(f"sigma2 must be a positive finite scalar, got {s2.item()!r}")
    tiny = torch.finfo(s2.dtype).tiny
    if s2.item() < tiny:
        raise ValueError(
            f"sigma2 must be at least {tiny:.3g}, the smallest normal number of {s2.dtype}, got {s2.item()!r}"
        )
    return s2


def _check_params(W, mu=None, sigma2=None, X: torch.Tensor | None = None):
    """Validate W (D, M), mu (D,), sigma2 > 0 against each other and against X (N, D)."""
    like = X
    W = _to_tensor("W", W)
    if W.dim() != 2:
        raise ValueError(f"W must be a 2-D array of shape (D, M), got shape {tuple(W.shape)}")
    if like is not None:
        W = W.to(device=like.device, dtype=like.dtype)
    if not torch.isfinite(W).all():
        raise ValueError("W contains NaN or inf values")
    D, M = W.shape
    if X is not None and X.shape[1] != D:
        raise ValueError(f"W has D={D} rows but X has {X.shape[1]} columns; W must be (D, M) with D = X.shape[1]")
    out = [W]
    if mu is not None:
        mu = _to_tensor("mu", mu).to(device=W.device, dtype=W.dtype)
        if mu.shape != (D,):
            raise ValueError(f"mu must have shape (D,) = ({D},) to match W {tuple(W.shape)}, got {tuple(mu.shape)}")
        if not torch.isfinite(mu).all():
            raise ValueError("mu contains NaN or inf values")
        out.append(mu)
    if sigma2 is not None:
        out.append(_check_sigma2(sigma2, W))
    return out


def _check_spread(Xc: torch.Tensor, name: str = "X", centre: str = "the mean") -> torch.Tensor:
    """The total squared deviation ||X - mean||^2 of centred data, or a ValueError saying why
    the data cannot be fitted: its squares overflow or underflow the dtype, or it has no variance."""
    total = _sq_norm(Xc)
    if not torch.isfinite(total):
        raise ValueError(
            f"{name} has values too large for {Xc.dtype}: the sum of squared deviations from {centre} overflows "
            f"(largest deviation {Xc.abs().max().item():.3g}); rescale {name} (e.g. standardise it)"
        )
    if total.item() == 0:
        top = Xc.abs().max().item()
        if top > 0:
            raise ValueError(
                f"{name} has values too small for {Xc.dtype}: their squared deviations from {centre} underflow to 0 "
                f"(largest deviation {top:.3g}); rescale {name} (e.g. standardise it)"
            )
        raise ValueError(f"{name} has no variance: every row equals {centre}, so there is nothing for PPCA to fit")
    return total


def _check_enough_rows(N: int, D: int, M: int, name: str = "X") -> None:
    """N centred rows span at most N - 1 directions: with N - 1 <= M nothing is left for sigma2."""
    if N - 1 <= M:
        raise ValueError(
            f"{name} has (almost) no variance outside n_components={M} directions: its N={N} centred rows span at "
            f"most N - 1 = {N - 1} directions, so sigma2_ML = 0 and the likelihood has no maximum; "
            f"use n_components < N - 1 = {N - 1} (or more rows than n_components + 1; D={D})"
        )


def _cholesky(A: torch.Tensor, what: str, hint: str) -> torch.Tensor:
    """Cholesky factor of the symmetric positive-definite ``A``, or a ValueError naming it."""
    if not bool(torch.isfinite(A).all()):
        raise ValueError(f"{what} is not finite (it overflowed): {hint}")
    try:
        return torch.linalg.cholesky(A)
    except torch.linalg.LinAlgError as err:
        raise ValueError(f"{what} is not positive definite in {A.dtype}: {hint}") from err


_HINT_PARAMS = "W's entries are too large or sigma2 too small for this precision (W^T W + sigma2 I must be positive definite)"


def _check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


# ============================================================================ functional core
def M_matrix(W, sigma2) -> torch.Tensor:
    """M = W^T W + sigma2 I, the M x M matrix through which PPCA computes everything.

    (Lecture: "where M = W^T W + sigma^2 I"; Bishop 12.41.)

    Inputs:  W (D, M), sigma2 positive scalar.
    Returns: (M, M).
    """
    W, s2 = _check_params(W, sigma2=sigma2)
    return _M(W, s2)


def _M(W: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    M = W.shape[1]
    return W.mT @ W + s2 * torch.eye(M, dtype=W.dtype, device=W.device)  # (M, M)


def covariance(W, sigma2) -> torch.Tensor:
    """The marginal covariance C = W W^T + sigma2 I of p(x) = N(mu, C) (Bishop 12.36).

    Forms a D x D matrix: for teaching, plots and tests with small D.

    Inputs:  W (D, M), sigma2 positive scalar.
    Returns: (D, D).
    """
    W, s2 = _check_params(W, sigma2=sigma2)
    D = W.shape[0]
    return W @ W.mT + s2 * torch.eye(D, dtype=W.dtype, device=W.device)  # (D, D)


def C_inverse(W, sigma2) -> torch.Tensor:
    """The precision C^-1 through M (Woodbury identity; Bishop 12.40):

        C^-1 = sigma^-2 (I - W M^-1 W^T),    M = W^T W + sigma2 I.

    Lecture erratum: the slide prints C^-1 = sigma^-1 I - sigma^-2 W M^-1 W^T; the first
    term must be sigma^-2 I (the factor sigma^-2 multiplies both terms).

    Only an M x M system is solved, but the result is D x D: meant for teaching and for
    small D. ``log_likelihood`` never forms it.

    Inputs:  W (D, M), sigma2 positive scalar.
    Returns: (D, D).
    """
    W, s2 = _check_params(W, sigma2=sigma2)
    D = W.shape[0]
    chol = _cholesky(_M(W, s2), "M = W^T W + sigma2 I", _HINT_PARAMS)  # (M, M)
    Minv_Wt = torch.cholesky_solve(W.mT, chol)  # (M, D) = M^-1 W^T
    eye = torch.eye(D, dtype=W.dtype, device=W.device)
    return (eye - W @ Minv_Wt) / s2  # (D, D)


def _sq_norm(A: torch.Tensor, dim=None) -> torch.Tensor:
    """Squared Euclidean norm (of rows with dim=1, of everything with dim=None)."""
    if A.requires_grad:  # the plain sum of squares has a gradient at zero too
        return (A * A).sum() if dim is None else (A * A).sum(dim=dim)
    return torch.linalg.vector_norm(A, dim=dim) ** 2  # one pass, no temporary (N, D) array


def _project(Xc: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """W^T (x_n - mu) for every row, as an (M, N) matrix (the layout the solves below use)."""
    return W.mT @ Xc.mT  # (M, N)


def _gram(Xc: torch.Tensor) -> torch.Tensor:
    """Xc^T Xc (D, D). On the CPU, NumPy's ``A.T @ A`` calls BLAS's symmetric rank-k update
    (half the work of a general product); elsewhere (GPU, autograd) a torch product."""
    if Xc.device.type == "cpu" and not Xc.requires_grad and Xc.dtype in (torch.float32, torch.float64):
        a = Xc.detach().numpy()
        return torch.from_numpy(a.T @ a)  # (D, D)
    return Xc.mT @ Xc  # (D, D)


def _loglik_centered(Xc: torch.Tensor, W: torch.Tensor, s2: torch.Tensor, PT: torch.Tensor | None = None):
    """Per-sample log N(x | mu, C) for centred data Xc = X - mu (no input checks).

    PT = W^T Xc^T (M, N) may be passed in when already computed. Returns (ll (N,), chol of M).
    """
    N, D = Xc.shape
    M = W.shape[1]
    if PT is None:
        PT = _project(Xc, W)  # (M, N)
    chol = _cholesky(_M(W, s2), "M = W^T W + sigma2 I", _HINT_PARAMS)  # (M, M)
    R = torch.linalg.solve_triangular(chol, PT, upper=False)  # (M, N) = L^-1 W^T (x - mu)
    quad = (_sq_norm(Xc, dim=1) - (R * R).sum(dim=0)) / s2  # (N,)
    logdet = (D - M) * torch.log(s2) + 2.0 * torch.log(torch.diagonal(chol)).sum()  # log|C|
    return -0.5 * (D * LOG_2PI + logdet + quad), chol


def _mean_loglik_from_cov(S: torch.Tensor, trace_S: torch.Tensor, W: torch.Tensor, s2: torch.Tensor):
    """Mean log-likelihood of centred data from its (1/N) scatter matrix S (D, D), O(D^2 M).

    mean_n (x_n - mu)^T C^-1 (x_n - mu) = tr(C^-1 S) = (tr S - tr(M^-1 W^T S W)) / sigma2.
    """
    D, M = W.shape
    chol = _cholesky(_M(W, s2), "M = W^T W + sigma2 I", _HINT_PARAMS)  # (M, M)
    G = W.mT @ (S @ W)  # (M, M)
    tr_quad = (trace_S - torch.diagonal(torch.cholesky_solve(G, chol)).sum()) / s2
    logdet = (D - M) * torch.log(s2) + 2.0 * torch.log(torch.diagonal(chol)).sum()
    return -0.5 * (D * LOG_2PI + logdet + tr_quad)


def log_likelihood(X, W, mu, sigma2) -> torch.Tensor:
    """Per-sample marginal log-likelihood log p(x_n) = log N(x_n | mu, C), C = W W^T + sigma2 I.

    Lecture: ln p(X | mu, W, sigma2) = -ND/2 ln(2 pi) - N/2 ln|C| - 1/2 sum_n (x_n - mu)^T C^-1 (x_n - mu).
    Computed through M = W^T W + sigma2 I = L L^T (Cholesky), never forming C:

        (x - mu)^T C^-1 (x - mu) = ( ||x - mu||^2 - ||L^-1 W^T (x - mu)||^2 ) / sigma2   (Woodbury)
        log|C| = (D - M) log sigma2 + log|M|                                      (determinant lemma)

    Cost O(N D M + M^3). Differentiable (autograd) in W, mu and sigma2.

    Inputs:  X (N, D), W (D, M), mu (D,), sigma2 positive scalar.
    Returns: (N,) log-likelihood of each row of X, in nats.
    """
    X = _check_data(X)
    W, mu, s2 = _check_params(W, mu, sigma2, X=X)
    ll, _ = _loglik_centered(X - mu, W, s2)
    return ll


def posterior(X, W, mu, sigma2):
    """The exact posterior p(z | x) = N(z | M^-1 W^T (x - mu), sigma2 M^-1) (Bishop 12.42).

    Lecture erratum: the slide writes the covariance as sigma^-2 M; that is the posterior
    precision. The covariance is sigma2 M^-1, the same for every x.

    Inputs:  X (N, D), W (D, M), mu (D,), sigma2 positive scalar.
    Returns: mean (N, M) (row n is E[z | x_n]), cov (M, M).
    """
    X = _check_data(X)
    W, mu, s2 = _check_params(W, mu, sigma2, X=X)
    return _posterior_centered(X - mu, W, s2)


def _posterior_centered(Xc, W, s2):
    chol = _cholesky(_M(W, s2), "M = W^T W + sigma2 I", _HINT_PARAMS)  # (M, M)
    mean = torch.cholesky_solve(_project(Xc, W), chol).mT  # (N, M) = (M^-1 W^T (x - mu))^T
    cov = s2 * torch.cholesky_inverse(chol)  # (M, M)
    return mean, cov


def _fix_signs(U: torch.Tensor) -> torch.Tensor:
    """Flip each column so that its largest-magnitude entry is positive (a deterministic R = I)."""
    idx = U.abs().argmax(dim=0)  # (M,)
    signs = torch.sign(U[idx, torch.arange(U.shape[1], device=U.device)])  # (M,)
    signs[signs == 0] = 1.0
    return U * signs


def closed_form(X, n_components: int, normalization: str = "ml"):
    """The maximum-likelihood PPCA solution (Tipping & Bishop; Bishop 12.45-12.46; lecture):

        mu_ML     = mean of the data
        W_ML      = U_M (L_M - sigma2 I)^{1/2} R,   R = I here
        sigma2_ML = 1/(D - M) sum_{i=M+1}^{D} lambda_i   (the average discarded variance)

    where lambda_1 >= ... >= lambda_D are the eigenvalues of the sample covariance S,
    U_M (D, M) its leading eigenvectors and L_M = diag(lambda_1..lambda_M).

    normalization: "ml" uses S = 1/N sum (x_n - x_bar)(x_n - x_bar)^T (the lecture's S, the
    maximum of the likelihood); "unbiased" uses 1/(N - 1) (what scikit-learn's PCA uses, so
    that PCA(n_components=M).score_samples gives the same log-likelihoods).

    Computation: when N >= D, the eigen-decomposition (``torch.linalg.eigh``) of the D x D
    matrix S (cost O(N D^2 + D^3)); when N < D, the thin SVD of the centred data (cost
    O(N^2 D)); the eigenvalues not seen then are zero. sigma2 uses trace(S) minus the top
    M eigenvalues, which counts every discarded eigenvalue up to D (zeros included).
    Each column of U_M has its largest-magnitude entry positive.

    Inputs:  X (N, D) with N >= 2, n_components = M with 1 <= M < D, normalization.
    Returns: W (D, M), mu (D,), sigma2 (0-d tensor).
    Raises:  ValueError when the data has no variance outside M directions (sigma2 = 0).
    """
    X = _check_data(X, min_samples=2)
    M = _check_n_components(n_components, X.shape[1])
    _check_choice("normalization", normalization, NORMALIZATIONS)
    _check_enough_rows(X.shape[0], X.shape[1], M)
    return _closed_form(X, M, normalization)


def _closed_form(X: torch.Tensor, M: int, normalization: str):
    """``closed_form`` for checked inputs."""
    N, D = X.shape
    denom = N if normalization == "ml" else N - 1
    mu = X.mean(dim=0)  # (D,)
    Xc = X - mu  # (N, D)
    _check_spread(Xc)
    if N >= D:
        S = _gram(Xc) / denom  # (D, D)
        try:
            evals, evecs = torch.linalg.eigh(S)  # ascending
        except torch.linalg.LinAlgError as err:
            raise ValueError(
                f"the eigen-decomposition of X's covariance did not converge in {X.dtype} (values spread over "
                f"{Xc.abs().max().item():.3g} down to tiny ones); rescale X or use float64"
            ) from err
        lam = evals.flip(0)[:M]  # (M,) largest first
        U = evecs[:, -M:].flip(1)  # (D, M)
        total = torch.diagonal(S).sum()
    else:
        try:
            _, s, Vh = torch.linalg.svd(Xc, full_matrices=False)  # s (N,), Vh (N, D)
        except torch.linalg.LinAlgError as err:
            raise ValueError(f"the SVD of the centred X did not converge in {X.dtype}; rescale X or use float64") from err
        lam = (s[:M] ** 2) / denom  # (M,)
        U = Vh[:M].mT  # (D, M)
        total = _sq_norm(Xc) / denom
    sigma2 = (total - lam.sum()) / (D - M)
    scale = total / D
    if not sigma2 > 1e-12 * scale:
        raise ValueError(
            f"the data has (almost) no variance outside {M} directions (sigma2 = {sigma2.item():.3g}); "
            f"use a smaller n_components (N={N}, D={D})"
        )
    U = _fix_signs(U)
    W = U * torch.sqrt(torch.clamp(lam - sigma2, min=0.0))  # (D, M) = U_M (L_M - sigma2 I)^{1/2}
    return W, mu, sigma2


def fit_and_score(X_train, X_test, n_components: int) -> dict:
    """The whole closed-form PPCA fit on ``X_train`` and its held-out score on ``X_test``
    (notebook 02's core exercise):

        mu, W, sigma2 = the maximum-likelihood solution on X_train (``closed_form``, S with 1/N)
        test_loglik   = 1/N_test sum_n ln N(x_n | mu, W W^T + sigma2 I)   over the rows of X_test

    Inputs:  X_train (N, D), X_test (N_test, D), n_components = M with 1 <= M < D.
    Returns: {"W": (D, M), "mu": (D,), "sigma2": 0-d, "test_loglik": 0-d (nats per held-out row)}.
    """
    X_test = _check_data(X_test, "X_test")
    W, mu, sigma2 = closed_form(X_train, n_components)
    if X_test.shape[1] != W.shape[0]:
        raise ValueError(f"X_test must have D = {W.shape[0]} columns like X_train, got {X_test.shape[1]}")
    return {"W": W, "mu": mu, "sigma2": sigma2, "test_loglik": log_likelihood(X_test.to(W.dtype), W, mu, sigma2).mean()}


def em_until_converged(X, W0, sigma2_0, tol: float = 1e-6, max_iter: int = 500) -> dict:
    """EM for PPCA from (W0, sigma2_0) until the mean log-likelihood stops rising (notebook 03's core exercise).

    mu = the mean of X (its ML value, fixed). history[0] is the mean log-likelihood (nats per
    row) at the start, history[t] after t EM steps. Stopping rule: stop after the first step t
    whose gain history[t] - history[t-1] is below ``tol``, or after ``max_iter`` steps.

    Inputs:  X (N, D), W0 (D, M), sigma2_0 > 0, tol > 0, max_iter >= 1.
    Returns: {"W": (D, M), "sigma2": 0-d, "history": (n_steps + 1,), "n_steps": int}.
    """
    X = _check_data(X, min_samples=2)
    _check_tol(tol)
    _check_positive_int("max_iter", max_iter)
    mu = X.mean(dim=0)  # (D,)
    W, s2 = _check_params(W0, sigma2=sigma2_0, X=X)
    history = [log_likelihood(X, W, mu, s2).mean()]
    for _ in range(max_iter):
        W, s2 = em_step(X, W, mu, s2)
        history.append(log_likelihood(X, W, mu, s2).mean())
        if history[-1] - history[-2] < tol:
            break
    return {"W": W, "sigma2": s2, "history": torch.stack(history), "n_steps": len(history) - 1}


def _em_update(Xc, W, s2, PT, sq_norm_total):
    """One EM update given PT = W^T Xc^T (M, N); returns (W_new, sigma2_new). O(N D M)."""
    N, D = Xc.shape
    chol = _cholesky(_M(W, s2), "M = W^T W + sigma2 I", _HINT_PARAMS)  # (M, M)
    EzT = torch.cholesky_solve(PT, chol)  # (M, N): column n is E[z_n] = M^-1 W^T (x_n - mu)
    sum_Ezz = N * s2 * torch.cholesky_inverse(chol) + EzT @ EzT.mT  # (M, M): sum_n E[z_n z_n^T]
    BT = EzT @ Xc  # (M, D): B = sum_n (x_n - mu) E[z_n]^T, transposed
    chol_zz = _cholesky(
        sum_Ezz, "sum_n E[z_n z_n^T]",
        "the data or W is too extreme for this precision (rescale X), or X has too little variance for n_components",
    )  # (M, M)
    W_newT = torch.cholesky_solve(BT, chol_zz)  # (M, D) = (B (sum E[zz^T])^-1)^T
    s2_new = (sq_norm_total - 2.0 * (W_newT * BT).sum() + ((W_newT @ W_newT.mT) * sum_Ezz).sum()) / (N * D)
    return W_newT.mT.contiguous(), s2_new  # (D, M), ()


def em_step(X, W, mu, sigma2):
    """One EM iteration for PPCA (Tipping & Bishop; Bishop 12.54-12.57), O(N D M) (never D x D).

    E-step, with M = W^T W + sigma2 I:
        E[z_n]       = M^-1 W^T (x_n - mu)
        E[z_n z_n^T] = sigma2 M^-1 + E[z_n] E[z_n]^T
    M-step:
        W_new      = [sum_n (x_n - mu) E[z_n]^T] [sum_n E[z_n z_n^T]]^-1
        sigma2_new = 1/(N D) sum_n { ||x_n - mu||^2 - 2 E[z_n]^T W_new^T (x_n - mu)
                                     + Tr(E[z_n z_n^T] W_new^T W_new) }
    mu is not updated (its ML value is the sample mean, whatever W and sigma2 are).

    Inputs:  X (N, D), W (D, M), mu (D,), sigma2 positive scalar.
    Returns: W_new (D, M), sigma2_new (0-d tensor).
    """
    X = _check_data(X, min_samples=2)
    W, mu, s2 = _check_params(W, mu, sigma2, X=X)
    Xc = X - mu  # (N, D)
    return _em_update(Xc, W, s2, _project(Xc, W), _check_spread(Xc, centre="mu"))


def _init_params(init, Xc: torch.Tensor, M: int, generator):
    """Initial (W, sigma2) for iterative fits: "random" or a user-given (W0, sigma2_0).

    A given W0 must have rank M: W = 0 is a stationary point (a saddle) of the likelihood
    that neither EM nor the gradient leaves, and a W0 of rank r < M keeps them in r dimensions.
    """
    N, D = Xc.shape
    var = _check_spread(Xc) / (N * D)  # average variance per dimension
    if isinstance(init, str):
        _check_choice("init", init, ("random",))
        W0 = torch.randn(D, M, generator=generator, dtype=Xc.dtype, device="cpu").to(Xc.device)
        W0 = W0 * torch.sqrt(var / M)  # (D, M): W W^T carries about the data's scale
        return W0, var.clone()
    if not isinstance(init, (tuple, list)) or len(init) != 2:
        raise TypeError("init must be 'random' or a pair (W0, sigma2_0)")
    W0, s20 = _check_params(init[0], sigma2=init[1], X=Xc)
    if W0.shape[1] != M:
        raise ValueError(f"init W0 has {W0.shape[1]} columns, expected n_components={M}")
    rank = int(torch.linalg.matrix_rank(W0.cpu()))
    if rank < M:
        raise ValueError(
            f"init W0 must have rank n_components={M} (linearly independent columns), got rank {rank}: "
            + ("W0 = 0 is a saddle point of the likelihood (E[z|x] = 0, so EM and the gradient never move W); "
               if rank == 0 else "a rank-deficient W0 stays rank-deficient (EM and the gradient keep it in a saddle); ")
            + "start from init='random' or a W0 of full rank"
        )
    return W0.clone(), s20.clone()


def _progress(iterable, progress: bool, desc: str):
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    if not progress:
        return iterable
    return progress_bar(iterable, desc=desc)


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _fit_failed(method: str, t: int, why: str, hint: str):
    return ValueError(f"{method} failed at iteration {t}: {why}; {hint}")


def _check_positive_int(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")
    return int(value)


def _check_tol(tol):
    if tol is None:
        return None
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 <= tol < math.inf:
        raise ValueError(f"tol must be a non-negative finite number or None, got {tol!r}")
    return float(tol)


def fit_em(
    X,
    n_components: int,
    n_iter: int = 1000,
    tol: float | None = 1e-8,
    *,
    init="random",
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback=None,
) -> FitResult:
    """Fit PPCA by EM (``em_step`` repeated), O(N D M) per iteration.

    mu is the sample mean; W, sigma2 start from ``init`` and climb the likelihood
    monotonically to the maximum-likelihood solution (up to a rotation R of W),
    i.e. ``closed_form(X, M, "ml")``.

    Inputs:  X (N, D) with N >= 2; n_components = M (1 <= M < D); n_iter: the most EM steps;
             tol: stop when the mean log-likelihood rises by less than tol nats/sample in a
             step (None: run all n_iter steps); init: "random" (W ~ N(0, var/M), sigma2 =
             average variance; seeded by ``generator``) or a pair (W0, sigma2_0);
             progress: show a tqdm bar; callback: None or a function callback(t, mean_loglik)
             called after each evaluation (t = steps done); returning True stops the fit there
             (e.g. to stop at a target likelihood, or to plot live).
    Returns: FitResult(W (D, M), mu (D,), sigma2 (0-d), history) with history[t] the mean
             log-likelihood after t steps (history[0]: at the initial values).
    """
    X = _check_data(X, min_samples=2)
    N, D = X.shape
    M = _check_n_components(n_components, D)
    n_iter = _check_positive_int("n_iter", n_iter, allow_zero=True)
    tol = _check_tol(tol)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(t, mean_loglik) or None, got {callback!r}")
    _check_generator(generator)
    _check_enough_rows(N, D, M)
    mu = X.mean(dim=0)  # (D,)
    Xc = X - mu  # (N, D)
    sq_norm_total = _check_spread(Xc)
    W, s2 = _init_params(init, Xc, M, generator)
    floor = 1e-12 * sq_norm_total.item() / (N * D)  # sigma2 below this: no variance left outside W
    history: list[float] = []
    bar = _progress(range(n_iter + 1), progress, "PPCA EM")
    for t in bar:
        PT = _project(Xc, W)  # (M, N), shared by the likelihood and the E-step
        try:
            ll, _ = _loglik_centered(Xc, W, s2, PT)
        except ValueError as err:
            raise _fit_failed("EM", t, str(err), "rescale X or start from init='random'") from err
        history.append(ll.mean().item())
        if not math.isfinite(history[-1]):
            raise _fit_failed("EM", t, f"the mean log-likelihood is {history[-1]}", "rescale X (e.g. standardise it)")
        if progress:
            bar.set_postfix(loglik=f"{history[-1]:.4f}")
        stop = callback is not None and bool(callback(t, history[-1]))
        if stop or t == n_iter or (tol is not None and t > 0 and history[-1] - history[-2] < tol):
            break
        try:
            W, s2 = _em_update(Xc, W, s2, PT, sq_norm_total)
        except ValueError as err:
            raise _fit_failed("EM", t + 1, str(err), "rescale X or use fewer n_components") from err
        if not s2.item() > floor:
            raise _fit_failed(
                "EM", t + 1, f"sigma2 collapsed to {s2.item():.3g}",
                f"X has (almost) no variance outside n_components={M} directions; use a smaller n_components",
            )
    if progress:
        bar.close()
    return FitResult(W, mu, s2, history)


def fit_gradient(
    X,
    n_components: int,
    n_steps: int = 1000,
    lr: float = 0.03,
    *,
    batch_size: int | None = None,
    tol: float | None = None,
    lr_decay: bool = True,
    init="random",
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback=None,
) -> FitResult:
    """Fit PPCA by gradient ascent (Adam) on the exact log-likelihood ``log_likelihood``.

    mu is fixed at the sample mean (its ML value). The free parameters are W and
    log sigma2 (so sigma2 = exp(log sigma2) stays positive). To make ``lr`` independent of
    the data's units, the optimiser works on the data divided by one scalar
    s = sqrt(average variance) (W / s and log(sigma2 / s^2)); the reported likelihoods
    are those of the original data (log p(x) = log p(x / s) - D log s).

    Inputs:  X (N, D) with N >= 2; n_components = M (1 <= M < D); n_steps: optimiser steps;
             lr: Adam's learning rate; batch_size: None for the full batch, else minibatches
             drawn without replacement (an epoch's worth of batches per step cycle) -
             stochastic gradients as the lecture suggests for large N; tol: stop when a
             full-batch step raises the mean log-likelihood by less than tol (None: never);
             lr_decay: cosine-decay the learning rate to 0 over n_steps (helps land on the
             optimum); init, generator, progress, callback: as in ``fit_em``.
    Returns: FitResult(W (D, M), mu (D,), sigma2 (0-d), history) with history[t] the mean
             log-likelihood (full batch, or of the minibatch when batch_size is set) at the
             parameters before step t+1; the last entry is at the returned parameters.
    """
    X = _check_data(X, min_samples=2)
    N, D = X.shape
    M = _check_n_components(n_components, D)
    n_steps = _check_positive_int("n_steps", n_steps, allow_zero=True)
    tol = _check_tol(tol)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if batch_size is not None:
        batch_size = _check_positive_int("batch_size", batch_size)
    if not isinstance(lr_decay, bool):
        raise TypeError(f"lr_decay must be True or False, got {lr_decay!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(t, mean_loglik) or None, got {callback!r}")
    _check_generator(generator)
    _check_enough_rows(N, D, M)
    mu = X.mean(dim=0)  # (D,)
    Xc = X - mu  # (N, D)
    W0, s20 = _init_params(init, Xc, M, generator)
    scale = torch.sqrt(_sq_norm(Xc) / (N * D))
    Xs = Xc / scale  # (N, D) data in units of its average standard deviation
    log_jac = D * torch.log(scale)
    W = (W0 / scale).detach().clone().requires_grad_(True)  # (D, M)
    log_s2 = torch.log(s20 / scale**2).detach().clone().requires_grad_(True)  # ()
    opt = torch.optim.Adam([W, log_s2], lr=float(lr))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(n_steps, 1)) if lr_decay else None
    full_batch = batch_size is None or batch_size >= N
    if full_batch and N >= D:
        # the full-batch likelihood depends on the data only through S: O(D^2 M) per step
        S = _gram(Xs) / N  # (D, D)
        trace_S = torch.diagonal(S).sum()
    history: list[float] = []
    perm = None
    pos = N
    bar = _progress(range(n_steps + 1), progress, "PPCA gradient")
    too_large = f"lr={lr!r} is too large for this problem (the steps overshoot); use a smaller lr"
    for t in bar:
        if log_s2.item() < math.log(1e-12):  # sigma2 / (average variance), in the scaled units
            raise _fit_failed(
                "gradient ascent", t, f"sigma2 collapsed to {(torch.exp(log_s2.detach()) * scale**2).item():.3g}",
                f"either lr={lr!r} is too large (the steps overshoot) or X has (almost) no variance outside "
                f"n_components={M} directions (closed_form(X, {M}) refuses such data); use a smaller lr or n_components",
            )
        try:
            if full_batch and N >= D:
                mean_ll = _mean_loglik_from_cov(S, trace_S, W, torch.exp(log_s2))
            else:
                if full_batch:
                    batch = Xs
                else:
                    if pos + batch_size > N:
                        perm = torch.randperm(N, generator=generator).to(Xs.device)
                        pos = 0
                    batch = Xs[perm[pos : pos + batch_size]]  # (B, D)
                    pos += batch_size
                mean_ll = _loglik_centered(batch, W, torch.exp(log_s2))[0].mean()
        except ValueError as err:
            raise _fit_failed("gradient ascent", t, str(err), too_large) from err
        loss = -mean_ll
        history.append(mean_ll.item() - log_jac.item())
        if not math.isfinite(history[-1]):
            raise _fit_failed("gradient ascent", t, f"the mean log-likelihood is {history[-1]}", too_large)
        if progress:
            bar.set_postfix(loglik=f"{history[-1]:.4f}")
        stop = callback is not None and bool(callback(t, history[-1]))
        if stop or t == n_steps or (tol is not None and full_batch and t > 0 and history[-1] - history[-2] < tol):
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    if progress:
        bar.close()
    W_out = W.detach() * scale
    s2_out = torch.exp(log_s2.detach()) * scale**2
    return FitResult(W_out, mu, s2_out, history)


# ============================================================================ the class
class PPCA:
    """Probabilistic PCA with M = ``n_components`` latent dimensions.

    ``PPCA(M).fit(X)`` fits by the closed form (``method="em"`` or ``"gradient"`` for the
    iterative fits; extra keywords go to ``fit_em`` / ``fit_gradient``). After fitting:

    - ``W`` (D, M), ``mu`` (D,), ``sigma2`` (0-d tensor), ``history`` (list of mean
      log-likelihoods per iteration; empty for the closed form);
    - ``M_mat`` = W^T W + sigma2 I (M, M), ``C`` = W W^T + sigma2 I (D, D, small D only);
    - ``log_likelihood(X)`` (N,), ``score(X)`` (their mean), ``posterior(X)`` (mean (N, M),
      cov (M, M)), ``encode(X)`` = E[z | x] (N, M), ``decode(z)`` = W z + mu (n, D),
      ``reconstruct(X)`` = decode(encode(X)), ``sample(n)`` -> (x, z),
      ``sample_z(n)``, ``sample_x_given_z(z)``;
    - ``state_dict()`` / ``PPCA.from_state_dict(d)`` and ``PPCA.from_params(W, mu, sigma2)``.

    ``dtype`` (default float64) is the precision the model computes in; inputs are
    converted to it. The device is that of the data given to ``fit``.
    """

    def __init__(self, n_components: int, *, dtype: torch.dtype = torch.float64):
        self.n_components = _check_n_components(n_components)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch dtype such as torch.float64, got {dtype!r}")
        self.dtype = dtype
        self.W: torch.Tensor | None = None
        self.mu: torch.Tensor | None = None
        self.sigma2: torch.Tensor | None = None
        self.history: list[float] = []
        self.method: str | None = None

    # ----------------------------------------------------------------- construction
    def fit(self, X, method: str = "closed_form", normalization: str = "ml", **kw) -> "PPCA":
        """Fit W, mu, sigma2 to the rows of X.

        method: "closed_form" (``closed_form``; keywords: none), "em" (``fit_em``; keywords
        n_iter, tol, init, generator, progress, callback) or "gradient" (``fit_gradient``;
        keywords n_steps, lr, batch_size, tol, lr_decay, init, generator, progress, callback).
        normalization: "ml" (1/N covariance, the maximum likelihood) or "unbiased"
        (1/(N-1), as scikit-learn's PCA); "unbiased" applies to the closed form only, the
        iterative fits maximise the likelihood ("ml").

        Inputs:  X (N, D), N >= 2, D > n_components.
        Returns: self.
        """
        _check_choice("method", method, METHODS)
        _check_choice("normalization", normalization, NORMALIZATIONS)
        X = _check_data(X, min_samples=2, dtype=self.dtype)
        _check_n_components(self.n_components, X.shape[1])
        _check_enough_rows(X.shape[0], X.shape[1], self.n_components)
        allowed = {
            "closed_form": set(),
            "em": {"n_iter", "tol", "init", "generator", "progress", "callback"},
            "gradient": {"n_steps", "lr", "batch_size", "tol", "lr_decay", "init", "generator", "progress", "callback"},
        }[method]
        if method != "closed_form" and set(kw) - allowed:
            raise TypeError(
                f"method={method!r} takes the keywords {sorted(allowed)}; got unknown {sorted(set(kw) - allowed)}"
            )
        if method == "closed_form":
            if kw:
                raise TypeError(f"method='closed_form' takes no extra keywords, got {sorted(kw)}")
            W, mu, s2 = _closed_form(X, self.n_components, normalization)
            history: list[float] = []
        else:
            if normalization != "ml":
                raise ValueError(
                    f"normalization={normalization!r} applies to method='closed_form' only; "
                    f"method={method!r} maximises the likelihood (normalization='ml')"
                )
            fit = fit_em if method == "em" else fit_gradient
            W, mu, s2, history = fit(X, self.n_components, **kw)
        self.W, self.mu, self.sigma2, self.history, self.method = W, mu, s2, list(history), method
        return self

    @classmethod
    def from_params(cls, W, mu, sigma2, *, dtype: torch.dtype = torch.float64) -> "PPCA":
        """A model with the given parameters. Inputs: W (D, M), mu (D,), sigma2 > 0."""
        W, mu, s2 = _check_params(_to_tensor("W", W, dtype), mu, sigma2)
        model = cls(W.shape[1], dtype=dtype)
        model.W, model.mu, model.sigma2, model.method = W, mu, s2, "params"
        return model

    def state_dict(self) -> dict:
        """The parameters as a dict of tensors (save with torch.save, load with weights_only=True)."""
        self._check_fitted()
        return {
            "W": self.W.detach().clone(),
            "mu": self.mu.detach().clone(),
            "sigma2": self.sigma2.detach().clone(),
            "n_components": torch.tensor(self.n_components),
        }

    @classmethod
    def from_state_dict(cls, state: dict, *, dtype: torch.dtype = torch.float64) -> "PPCA":
        """Rebuild a model from ``state_dict()``'s output."""
        if not isinstance(state, dict) or not {"W", "mu", "sigma2"} <= set(state):
            raise ValueError("state must be a dict with keys 'W', 'mu' and 'sigma2' (from PPCA.state_dict())")
        return cls.from_params(state["W"], state["mu"], state["sigma2"], dtype=dtype)

    # ----------------------------------------------------------------- helpers
    @property
    def is_fitted(self) -> bool:
        return self.W is not None

    def _check_fitted(self) -> None:
        if self.W is None:
            raise NotFittedError(
                "this PPCA model is not fitted yet: call .fit(X) or build it with PPCA.from_params(W, mu, sigma2)"
            )

    def _data(self, X, name: str = "X") -> torch.Tensor:
        self._check_fitted()
        X = _check_data(X, name=name, dtype=self.dtype).to(self.W.device)
        if X.shape[1] != self.W.shape[0]:
            raise ValueError(f"{name} must have D={self.W.shape[0]} columns like the fitted model, got {X.shape[1]}")
        return X

    def _rand(self, *shape, generator):
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        gen_device = generator.device if generator is not None else self.W.device
        return torch.randn(*shape, generator=generator, dtype=self.dtype, device=gen_device).to(self.W.device)

    @property
    def D(self) -> int:
        self._check_fitted()
        return self.W.shape[0]

    @property
    def M_mat(self) -> torch.Tensor:
        """M = W^T W + sigma2 I, (M, M)."""
        self._check_fitted()
        return _M(self.W, self.sigma2)

    @property
    def C(self) -> torch.Tensor:
        """C = W W^T + sigma2 I, (D, D): the covariance of p(x) (forms a D x D matrix)."""
        self._check_fitted()
        return covariance(self.W, self.sigma2)

    # ----------------------------------------------------------------- inference
    def log_likelihood(self, X) -> torch.Tensor:
        """log p(x_n) for each row (see ``log_likelihood``). Inputs: X (N, D). Returns: (N,)."""
        X = self._data(X)
        ll, _ = _loglik_centered(X - self.mu, self.W, self.sigma2)
        return ll

    def score(self, X) -> float:
        """Mean log-likelihood in nats per sample (scikit-learn's PCA.score). Inputs: X (N, D)."""
        return self.log_likelihood(X).mean().item()

    def posterior(self, X):
        """p(z | x) = N(M^-1 W^T (x - mu), sigma2 M^-1). Inputs: X (N, D). Returns: mean (N, M), cov (M, M)."""
        X = self._data(X)
        return _posterior_centered(X - self.mu, self.W, self.sigma2)

    def encode(self, X) -> torch.Tensor:
        """E[z | x] = M^-1 W^T (x - mu). Inputs: X (N, D). Returns: (N, M)."""
        return self.posterior(X)[0]

    def decode(self, z) -> torch.Tensor:
        """The mean of p(x | z): W z + mu. Inputs: z (n, M). Returns: (n, D)."""
        self._check_fitted()
        z = _to_tensor("z", z, self.dtype).to(self.W.device)
        if z.dim() != 2 or z.shape[1] != self.n_components:
            raise ValueError(f"z must have shape (n, M) with M={self.n_components}, got {tuple(z.shape)}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("z contains NaN or inf values")
        return z @ self.W.mT + self.mu  # (n, D)

    def reconstruct(self, X) -> torch.Tensor:
        """decode(encode(X)): x -> E[z | x] -> W E[z | x] + mu. Inputs: X (N, D). Returns: (N, D)."""
        return self.decode(self.encode(X))

    # ----------------------------------------------------------------- generation
    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z) = N(0, I). Returns: (n, M)."""
        self._check_fitted()
        n = _check_positive_int("n", n)
        return self._rand(n, self.n_components, generator=generator)

    def sample_x_given_z(self, z, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x | z) = N(W z + mu, sigma2 I). Inputs: z (n, M). Returns: (n, D)."""
        mean = self.decode(z)  # (n, D)
        return mean + torch.sqrt(self.sigma2) * self._rand(*mean.shape, generator=generator)

    def sample(self, n: int, generator: torch.Generator | None = None):
        """Ancestral sampling: z ~ N(0, I), x ~ N(W z + mu, sigma2 I). Returns: x (n, D), z (n, M)."""
        z = self.sample_z(n, generator=generator)
        return self.sample_x_given_z(z, generator=generator), z

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"PPCA(n_components={self.n_components}, not fitted)"
        return (
            f"PPCA(n_components={self.n_components}, D={self.W.shape[0]}, "
            f"sigma2={self.sigma2.item():.4g}, method={self.method!r})"
        )

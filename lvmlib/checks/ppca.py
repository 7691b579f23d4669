"""Checks for the exercises on probabilistic PCA (notebooks 02 and 03).

Each check runs the learner's function and :mod:`lvmlib.ppca`'s reference on random
inputs (float64 tensors; ``sigma2`` a Python float) and names the mistake when a wrong
answer matches a typical one, the lecture's two PPCA errata among them:

1. C^-1 printed as sigma^-1 I - sigma^-2 W M^-1 W^T (correct: sigma^-2 (I - W M^-1 W^T));
2. the posterior covariance printed as sigma^-2 M (that is the precision; the
   covariance is sigma2 M^-1).

W_ML is unique only up to a rotation R (and the sign of each eigenvector), so its
check compares W W^T, which every valid answer shares.

Usage in a notebook::

    from lvmlib import checks
    C_inverse = checks.ppca.check_C_inverse(C_inverse)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from lvmlib import ppca
from lvmlib.checks._core import Case, ExerciseError, Part, check_function, check_through

__all__ = [
    "check_M_matrix",
    "check_C_inverse",
    "check_log_likelihood",
    "check_sigma2_ml",
    "check_W_ml",
    "check_posterior",
    "check_reconstruct",
    "check_em_step",
    "check_fit_and_score",
    "check_em_until_converged",
]

LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- random inputs
def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _sigma2(rng: np.random.Generator) -> float:
    # away from 1, where sigma^-1 and sigma^-2 (the first erratum) would coincide
    return float(rng.choice([rng.uniform(0.2, 0.7), rng.uniform(1.5, 3.0)]))


def _model(rng: np.random.Generator):
    """W (D, M), mu (D,), sigma2 with 1 <= M < D."""
    D = int(rng.integers(4, 8))
    M = int(rng.integers(1, min(4, D - 1) + 1))
    W = _t(rng.normal(size=(D, M)) * rng.uniform(0.5, 2.0))
    mu = _t(rng.normal(size=D))
    return W, mu, _sigma2(rng)


def _data_from(rng: np.random.Generator, W: torch.Tensor, mu: torch.Tensor, sigma2: float, N: int) -> torch.Tensor:
    D, M = W.shape
    Z = rng.normal(size=(N, M))
    E = rng.normal(size=(N, D)) * math.sqrt(sigma2)
    return _t(Z @ W.numpy().T + mu.numpy() + E)  # (N, D)


def _W_sigma2_cases(rng: np.random.Generator) -> Case:
    W, _, sigma2 = _model(rng)
    return Case((W, sigma2))


def _X_model_cases(rng: np.random.Generator) -> Case:
    W, mu, sigma2 = _model(rng)
    X = _data_from(rng, W, mu, sigma2, int(rng.integers(3, 7)))
    # the parameters are not those that made X: mistakes that only matter off the optimum show
    W = W + 0.3 * _t(rng.normal(size=W.shape))
    mu = mu + 0.5 * _t(rng.normal(size=mu.shape))
    return Case((X, W, mu, sigma2))


def _X_M_cases(rng: np.random.Generator) -> Case:
    W, mu, sigma2 = _model(rng)
    N = int(rng.integers(3 * W.shape[0], 5 * W.shape[0]))
    return Case((_data_from(rng, W, mu, sigma2, N), W.shape[1]))


def _em_cases(rng: np.random.Generator) -> Case:
    W, mu, sigma2 = _model(rng)
    N = int(rng.integers(10, 20))
    X = _data_from(rng, W, mu, sigma2, N)
    W0 = _t(rng.normal(size=W.shape))  # a starting point away from the optimum
    return Case((X, W0, X.mean(dim=0), _sigma2(rng)))


def _eye(n: int) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float64)


def _M(W, sigma2):
    return W.T @ W + sigma2 * _eye(W.shape[1])


# ----------------------------------------------------------------------------- M = W^T W + sigma2 I
def check_M_matrix(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``M_matrix(W, sigma2)`` -> (M, M): M = W^T W + sigma2 I."""
    return check_function(
        learner, ppca.M_matrix, _W_sigma2_cases, name="M_matrix", seed=seed, strict=strict,
        known_mistakes={
            "this is C = W W^T + sigma2 I (D x D); M is the small matrix W^T W + sigma2 I (M x M).":
                lambda W, s2: W @ W.T + s2 * _eye(W.shape[0]),
            "sigma2 I is missing: M = W^T W + sigma2 I.": lambda W, s2: W.T @ W,
            "W^T W + sigma2 adds sigma2 to EVERY entry; it belongs on the diagonal only (sigma2 * I).":
                lambda W, s2: W.T @ W + s2,
        },
        hint="M = W^T W + sigma2 * torch.eye(M), with M = W.shape[1].",
    )


# ----------------------------------------------------------------------------- C^-1 through M (Woodbury)
def _cinv_lecture(W, s2):
    D = W.shape[0]
    return _eye(D) / math.sqrt(s2) - W @ torch.linalg.inv(_M(W, s2)) @ W.T / s2


def check_C_inverse(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``C_inverse(W, sigma2)`` -> (D, D): C^-1 = sigma^-2 (I - W M^-1 W^T)."""
    return check_function(
        learner, ppca.C_inverse, _W_sigma2_cases, name="C_inverse", seed=seed, strict=strict,
        known_mistakes={
            "this is the lecture's misprint sigma^-1 I - sigma^-2 W M^-1 W^T; the first term is "
            "sigma^-2 I, i.e. C^-1 = sigma^-2 (I - W M^-1 W^T).": _cinv_lecture,
            "the factor sigma^-2 multiplies BOTH terms: sigma^-2 (I - W M^-1 W^T), not sigma^-2 I - W M^-1 W^T.":
                lambda W, s2: _eye(W.shape[0]) / s2 - W @ torch.linalg.inv(_M(W, s2)) @ W.T,
            "M must be inverted: W M^-1 W^T, not W M W^T.":
                lambda W, s2: (_eye(W.shape[0]) - W @ _M(W, s2) @ W.T) / s2,
            "this is C itself (W W^T + sigma2 I), not its inverse.":
                lambda W, s2: W @ W.T + s2 * _eye(W.shape[0]),
        },
        hint="Woodbury: (sigma2 I + W W^T)^-1 = sigma^-2 (I - W M^-1 W^T) with M = W^T W + sigma2 I.",
    )


# ----------------------------------------------------------------------------- log p(x) through M
def _ll_parts(X, W, mu, s2, centre=True):
    D, M = W.shape
    Xc = X - mu if centre else X
    Minv = torch.linalg.inv(_M(W, s2))
    quad = ((Xc * Xc).sum(1) - ((Xc @ W) @ Minv * (Xc @ W)).sum(1)) / s2  # (N,)
    logdet = (D - M) * math.log(s2) + torch.linalg.slogdet(_M(W, s2))[1]
    return Xc, quad, logdet, D, M


def _ll_lecture_cinv(X, W, mu, s2):
    Xc, _, logdet, D, _ = _ll_parts(X, W, mu, s2)
    Cinv = _cinv_lecture(W, s2)
    return -0.5 * (D * LOG_2PI + logdet + (Xc @ Cinv * Xc).sum(1))


def _ll_const_per_element(X, W, mu, s2):
    _, quad, logdet, D, _ = _ll_parts(X, W, mu, s2)
    return -0.5 * (D * D * LOG_2PI + logdet + quad)


def _ll_no_mu(X, W, mu, s2):
    _, quad, logdet, D, _ = _ll_parts(X, W, mu, s2, centre=False)
    return -0.5 * (D * LOG_2PI + logdet + quad)


def _ll_logdet_M_only(X, W, mu, s2):
    _, quad, _, D, _ = _ll_parts(X, W, mu, s2)
    return -0.5 * (D * LOG_2PI + torch.linalg.slogdet(_M(W, s2))[1] + quad)


def _ll_logdet_D_log_s2(X, W, mu, s2):
    _, quad, _, D, _ = _ll_parts(X, W, mu, s2)
    return -0.5 * (D * LOG_2PI + D * math.log(s2) + torch.linalg.slogdet(_M(W, s2))[1] + quad)


def _ll_sum(X, W, mu, s2):
    _, quad, logdet, D, _ = _ll_parts(X, W, mu, s2)
    return (-0.5 * (D * LOG_2PI + logdet + quad)).sum()


def check_log_likelihood(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``log_likelihood(X, W, mu, sigma2)`` -> (N,): log N(x_n | mu, W W^T + sigma2 I)."""
    return check_function(
        learner, ppca.log_likelihood, _X_model_cases, name="log_likelihood", seed=seed, strict=strict,
        known_mistakes={
            "the quadratic form used the lecture's misprinted C^-1 = sigma^-1 I - sigma^-2 W M^-1 W^T; "
            "the correct one is sigma^-2 (I - W M^-1 W^T).": _ll_lecture_cinv,
            "the constant -D/2 log(2 pi) was added once per element (-D^2/2 log 2 pi in all); "
            "it belongs once per data point.": _ll_const_per_element,
            "mu is missing: the data must be centred, x_n - mu.": _ll_no_mu,
            "log|C| is not log|M|: the determinant lemma gives log|C| = (D - M) log sigma2 + log|M|.":
                _ll_logdet_M_only,
            "log|C| = (D - M) log sigma2 + log|M|, not D log sigma2 + log|M| (M already holds sigma2 "
            "in its M directions).": _ll_logdet_D_log_s2,
            "the exercise asks for one log-likelihood per data point (shape (N,)), not their sum.": _ll_sum,
        },
        hint="log p(x) = -D/2 log 2pi - 1/2 log|C| - 1/2 (x-mu)^T C^-1 (x-mu), with "
             "log|C| = (D-M) log sigma2 + log|M| and C^-1 = sigma^-2 (I - W M^-1 W^T).",
    )


# ----------------------------------------------------------------------------- sigma2_ML and W_ML
def _eig_desc(X, ddof=0):
    Xc = X - X.mean(0)
    S = Xc.T @ Xc / (X.shape[0] - ddof)  # (D, D)
    lam, U = torch.linalg.eigh(S)  # ascending
    return lam.flip(0), U.flip(1)  # descending


def _s2_unbiased(X, M):
    lam, _ = _eig_desc(X, ddof=1)
    return lam[M:].mean()


def _s2_all(X, M):
    lam, _ = _eig_desc(X)
    return lam.mean()


def _s2_ascending(X, M):
    lam, _ = _eig_desc(X)
    return lam.flip(0)[M:].mean()  # eigh's ascending order taken as if it were descending


def _s2_over_D(X, M):
    lam, _ = _eig_desc(X)
    return lam[M:].sum() / X.shape[1]


def _reference_sigma2_ml(X, n_components):
    return ppca.closed_form(X, n_components)[2]


def _reference_W_ml(X, n_components):
    return ppca.closed_form(X, n_components)[0]


def check_sigma2_ml(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``sigma2_ml(X, n_components)`` -> scalar: the average discarded eigenvalue of S (1/N)."""
    return check_function(
        learner, _reference_sigma2_ml, _X_M_cases, name="sigma2_ml", seed=seed,
        strict=strict,
        known_mistakes={
            "S was normalised by 1/(N - 1); the lecture's maximum-likelihood S uses 1/N.": _s2_unbiased,
            "this is the average of ALL eigenvalues; sigma2_ML averages only the D - M discarded ones.": _s2_all,
            "these are the LARGEST eigenvalues: torch.linalg.eigh returns them in ascending order, "
            "so the discarded (smallest) ones come first.": _s2_ascending,
            "the sum of the discarded eigenvalues is divided by D; it is their average, so divide by D - M.":
                _s2_over_D,
        },
        hint="S = (X - x_bar)^T (X - x_bar) / N; sigma2_ML = mean of the D - M smallest eigenvalues of S.",
    )


def _rotation_free(fn: Callable) -> Callable:
    """fn(X, M) -> W  turned into  fn(X, M) -> {"W W^T": W W^T} (invariant to W -> W R)."""

    def wrapped(X, M):
        W = fn(X, M)
        if W is None:
            return None
        W = torch.as_tensor(W, dtype=torch.float64) if not isinstance(W, torch.Tensor) else W.to(torch.float64)
        if W.shape != (X.shape[1], M):
            raise ExerciseError(
                f"W_ml: W must have shape (D, M) = ({X.shape[1]}, {M}), got {tuple(W.shape)}"
            )
        return {"W W^T": W @ W.T}  # (D, D)

    return wrapped


def _W_from(X, M, *, ddof=0, subtract=True, sqrt=True, ascending=False, scale=True):
    lam, U = _eig_desc(X, ddof=ddof)
    D = X.shape[1]
    s2 = lam[M:].mean()
    if ascending:
        lam, U = lam.flip(0), U.flip(1)
    L = lam[:M] - (s2 if subtract else 0.0)
    if not scale:
        return U[:, :M]
    return U[:, :M] * (L.clamp_min(0).sqrt() if sqrt else L)


def check_W_ml(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``W_ml(X, n_components)`` -> (D, M): W_ML = U_M (L_M - sigma2_ML I)^{1/2} R, compared as W W^T.

    Any rotation R (and any sign of the eigenvectors) is right: W W^T is what the model sees.
    """
    mistakes = {
        "sigma2_ML I must be subtracted from the eigenvalues: U_M (L_M - sigma2 I)^{1/2}.":
            lambda X, M: _W_from(X, M, subtract=False),
        "the columns of U_M need scaling by (L_M - sigma2 I)^{1/2}; U_M alone has unit-length columns.":
            lambda X, M: _W_from(X, M, scale=False),
        "(L_M - sigma2 I) needs its square root: U_M (L_M - sigma2 I)^{1/2}.":
            lambda X, M: _W_from(X, M, sqrt=False),
        "these are the eigenvectors of the SMALLEST eigenvalues: torch.linalg.eigh sorts them in "
        "ascending order; take the last M (largest).": lambda X, M: _W_from(X, M, ascending=True),
        "S was normalised by 1/(N - 1); the lecture's maximum-likelihood S uses 1/N.":
            lambda X, M: _W_from(X, M, ddof=1),
    }
    return check_through(
        learner, _reference_W_ml, _rotation_free, _X_M_cases, name="W_ml", seed=seed, strict=strict,
        known_mistakes=mistakes,
        hint="W_ML = U_M (L_M - sigma2_ML I)^{1/2}: leading eigenvectors of S, scaled column by column "
             "(W is compared through W W^T, so any rotation or sign is fine).",
    )


# ----------------------------------------------------------------------------- p(z | x)
def _post(X, W, mu, s2, *, cov="right", centre=True, invert=True):
    Minv = torch.linalg.inv(_M(W, s2))
    Xc = X - mu if centre else X
    mean = Xc @ W @ (Minv if invert else _eye(W.shape[1]))  # (N, M); M^-1 symmetric
    covs = {"right": s2 * Minv, "lecture": _M(W, s2) / s2, "no_s2": Minv}
    return mean, covs[cov]


def check_posterior(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``posterior(X, W, mu, sigma2)`` -> (mean (N, M), cov (M, M)): N(M^-1 W^T (x - mu), sigma2 M^-1)."""
    return check_function(
        learner, ppca.posterior, _X_model_cases, name="posterior", seed=seed, strict=strict,
        known_mistakes={
            "the covariance is the lecture's misprint sigma^-2 M: that is the posterior PRECISION; "
            "the covariance is its inverse, sigma2 M^-1.": lambda *a: _post(*a, cov="lecture"),
            "the covariance M^-1 lacks the factor sigma2: it is sigma2 M^-1.": lambda *a: _post(*a, cov="no_s2"),
            "mu is missing from the mean: M^-1 W^T (x - mu).": lambda *a: _post(*a, centre=False),
            "the mean needs M^-1: M^-1 W^T (x - mu), not W^T (x - mu).": lambda *a: _post(*a, invert=False),
        },
        hint="mean_n = M^-1 W^T (x_n - mu) (rows of an (N, M) array) and cov = sigma2 M^-1, shared by all n.",
    )


# ----------------------------------------------------------------------------- reconstruction
def _reference_reconstruct(X, W, mu, sigma2):
    return ppca.PPCA.from_params(W, mu, sigma2).reconstruct(X)


def check_reconstruct(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``reconstruct(X, W, mu, sigma2)`` -> (N, D): x_hat = W E[z | x] + mu."""
    def ez(X, W, mu, s2):
        return (X - mu) @ W @ torch.linalg.inv(_M(W, s2))  # (N, M)

    return check_function(
        learner, _reference_reconstruct, _X_model_cases, name="reconstruct", seed=seed, strict=strict,
        known_mistakes={
            "mu must be added back after decoding: x_hat = W E[z | x] + mu.": lambda X, W, mu, s2: ez(X, W, mu, s2) @ W.T,
            "this is the orthogonal projection W (W^T W)^-1 W^T (x - mu) + mu (the sigma2 -> 0 limit); "
            "PPCA decodes the posterior mean E[z | x] = M^-1 W^T (x - mu), which shrinks towards mu.":
                lambda X, W, mu, s2: (X - mu) @ W @ torch.linalg.inv(W.T @ W) @ W.T + mu,
            "the posterior mean needs M^-1: E[z | x] = M^-1 W^T (x - mu), not W^T (x - mu).":
                lambda X, W, mu, s2: (X - mu) @ W @ W.T + mu,
        },
        hint="x_hat_n = W E[z | x_n] + mu with E[z | x_n] = M^-1 W^T (x_n - mu).",
    )


# ----------------------------------------------------------------------------- one EM step
def _em(X, W, mu, s2, *, ezz="right", sigma_with_old_W=False, divide=None):
    N, D = X.shape
    Minv = torch.linalg.inv(_M(W, s2))
    Xc = X - mu
    Ez = Xc @ W @ Minv  # (N, M)
    extra = {"right": N * s2 * Minv, "none": 0.0, "no_s2": N * Minv}[ezz]
    sum_Ezz = extra + Ez.T @ Ez  # (M, M)
    B = Xc.T @ Ez  # (D, M)
    W_new = B @ torch.linalg.inv(sum_Ezz)
    Wu = W if sigma_with_old_W else W_new
    total = (Xc * Xc).sum() - 2 * (Wu * B).sum() + ((Wu.T @ Wu) * sum_Ezz).sum()
    return W_new, total / (divide(N, D) if divide else N * D)


def check_em_step(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``em_step(X, W, mu, sigma2)`` -> (W_new (D, M), sigma2_new): one EM iteration (Bishop 12.54-12.57)."""
    return check_function(
        learner, ppca.em_step, _em_cases, name="em_step", seed=seed, strict=strict,
        known_mistakes={
            "E[z z^T] is not E[z] E[z]^T alone: add the posterior covariance, E[z z^T] = sigma2 M^-1 + E[z] E[z]^T.":
                lambda *a: _em(*a, ezz="none"),
            "the posterior covariance inside E[z z^T] is sigma2 M^-1, not M^-1.": lambda *a: _em(*a, ezz="no_s2"),
            "the sigma2 update must use the NEW W (the M-step's W_new), not the old one.":
                lambda *a: _em(*a, sigma_with_old_W=True),
            "sigma2_new averages over all N D numbers: divide by N * D, not by N.":
                lambda *a: _em(*a, divide=lambda N, D: N),
        },
        hint="E: E[z_n] = M^-1 W^T (x_n - mu), E[z_n z_n^T] = sigma2 M^-1 + E[z_n] E[z_n]^T. "
             "M: W_new = [sum (x_n - mu) E[z_n]^T][sum E[z_n z_n^T]]^-1, then sigma2_new with W_new.",
    )


# ----------------------------------------------------------------------------- core exercises
HINTS = {
    "fit_and_score": (
        "Two halves: fit mu, W, sigma2 on X_train only (the maximum-likelihood solution), then score "
        "X_test under N(mu, W W^T + sigma2 I). X_test never enters the fit.",
        "The fit needs the eigen-decomposition of S = (1/N) (X - mean)^T (X - mean), largest eigenvalues "
        "first; sigma2 is the average of the D - M eigenvalues you leave out, and W scales the leading "
        "eigenvectors by the square roots of (eigenvalue - sigma2).",
        "The score is an average over the held-out rows, centred with the TRAINING mean; your "
        "log_likelihood from above computes the per-row values.",
    ),
    "em_until_converged": (
        "Keep a list of the mean log-likelihood: one value before any step, then one after every "
        "em_step; mu is the data's mean and stays fixed.",
        "The stopping rule compares the last two values of that list: stop as soon as the gain of a step "
        "is below tol, and never run more than max_iter steps.",
        "n_steps counts EM steps, not values: with the starting value in the list, len(history) = n_steps + 1. "
        "The final W, sigma2 are those after the last step you ran.",
    ),
}


def _core_cases(rng: np.random.Generator) -> Case:
    W, mu, sigma2 = _model(rng)
    D, M = W.shape
    X_train = _data_from(rng, W, mu, sigma2, int(rng.integers(2 * D, 3 * D)))
    X_test = _data_from(rng, W, mu, sigma2, int(rng.integers(4, 7))) + 0.5  # a shifted test set: mu matters
    return Case((X_train, X_test, M))


def _fs_summary(fn: Callable) -> Callable:
    """fit_and_score's output -> what every right answer shares (W W^T, not W) and how the score was made."""

    def run(X_train, X_test, M):
        out = fn(X_train, X_test, M)
        if not isinstance(out, dict) or not {"W", "mu", "sigma2", "test_loglik"} <= set(out):
            raise ExerciseError(f"fit_and_score: return a dict with keys 'W', 'mu', 'sigma2', 'test_loglik'; got {out!r:.200}")
        W, mu, s2 = (torch.as_tensor(out[k], dtype=torch.float64) for k in ("W", "mu", "sigma2"))
        if W.shape != (X_train.shape[1], M):
            raise ExerciseError(f"fit_and_score: W must have shape (D, M) = ({X_train.shape[1]}, {M}), got {tuple(W.shape)}")
        score = torch.as_tensor(out["test_loglik"], dtype=torch.float64)
        own = ppca.log_likelihood(X_test, W, mu, s2).mean() if float(s2) > 0 else torch.tensor(float("nan"))
        return {"mu": mu, "sigma2": s2, "W W^T": W @ W.T, "test_loglik": score, "scoring": score - own}

    return run


def _fs(X_train, X_test, M, *, ddof=0, s2="right", ascending=False, score="mean", on_train=False, test_mean=False):
    N = X_train.shape[0]
    mu = X_train.mean(0)
    Xc = X_train - mu
    lam, U = torch.linalg.eigh(Xc.T @ Xc / (N - ddof))
    if not ascending:
        lam, U = lam.flip(0), U.flip(1)
    sigma2 = lam[M:].mean() if s2 == "right" else lam.mean()
    W = U[:, :M] * torch.sqrt((lam[:M] - sigma2).clamp_min(0))
    X_eval = X_train if on_train else X_test
    mu_eval = X_test.mean(0) if test_mean else mu
    ll = ppca.log_likelihood(X_eval, W, mu_eval, sigma2)
    return {"W": W, "mu": mu, "sigma2": sigma2, "test_loglik": ll.sum() if score == "sum" else ll.mean()}


FS_PARTS = (
    Part("mu (the training mean)", lambda out, case: out["mu"]),
    Part("sigma2 (the average discarded eigenvalue)", lambda out, case: out["sigma2"]),
    Part("W W^T (the fit, up to a rotation of W)", lambda out, case: out["W W^T"]),
    Part("the scoring step (test_loglik against the mean log-likelihood of X_test under YOUR mu, W, sigma2)",
         lambda out, case: out["scoring"], atol=1e-8),
)


def check_fit_and_score(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``fit_and_score(X_train, X_test, n_components)`` -> {"W", "mu", "sigma2", "test_loglik"}.

    W is compared as W W^T (any rotation is right); the diagnosis tells the fit from the scoring.
    """
    return check_through(
        learner, ppca.fit_and_score, _fs_summary, _core_cases, name="fit_and_score", seed=seed,
        strict=strict, n_trials=3, parts=FS_PARTS,
        known_mistakes={
            "S was normalised by 1/(N - 1); the maximum-likelihood S uses 1/N.": lambda *a: _fs(*a, ddof=1),
            "sigma2 averages ALL eigenvalues; sigma2_ML averages only the D - M discarded ones.":
                lambda *a: _fs(*a, s2="all"),
            "torch.linalg.eigh returns eigenvalues in ASCENDING order: the leading ones are last.":
                lambda *a: _fs(*a, ascending=True),
            "test_loglik is the SUM over the held-out rows; the score is their mean (nats per row).":
                lambda *a: _fs(*a, score="sum"),
            "test_loglik was computed on X_train: a held-out score uses X_test.": lambda *a: _fs(*a, on_train=True),
        },
        hint='checks.hint("fit_and_score") shows a hint, one more each time.',
    )


def _em_core_cases(rng: np.random.Generator) -> Case:
    W, mu, sigma2 = _model(rng)
    D, M = W.shape
    X = _data_from(rng, W, mu, sigma2, int(rng.integers(3 * D, 4 * D)))
    W0 = _t(rng.normal(size=(D, M)))
    tol = float(rng.choice([1e-3, 1e-4]))
    return Case((X, W0, float(rng.uniform(0.5, 2.0))), {"tol": tol, "max_iter": int(rng.integers(20, 30))})


def _emc(X, W0, s20, tol=1e-6, max_iter=500, *, first=True, rule="gain", loglik="mean", fixed_mu=False, count="steps"):
    mu = torch.zeros(X.shape[1], dtype=X.dtype) if fixed_mu else X.mean(0)
    W, s2 = W0, torch.as_tensor(s20, dtype=X.dtype)
    ll = lambda W, s2: ppca.log_likelihood(X, W, mu, s2).sum() if loglik == "sum" \
        else ppca.log_likelihood(X, W, mu, s2).mean()
    history = [ll(W, s2)]
    for _ in range(max_iter):
        W_new, s2 = ppca.em_step(X, W, mu, s2)
        history.append(ll(W_new, s2))
        if rule == "never":
            pass
        elif rule == "late" and len(history) > 2 and history[-2] - history[-3] < tol:
            W = W_new
            break
        elif rule == "gain" and history[-1] - history[-2] < tol:
            W = W_new
            break
        W = W_new
    hist = torch.stack(history if first else history[1:])
    n = len(history) - 1 if count == "steps" else len(history)
    return {"W": W, "sigma2": s2, "history": hist, "n_steps": n}


EM_PARTS = (
    Part("history[0] (the mean log-likelihood before any step)", lambda out, case: out["history"][0]),
    Part("history[1] (after the first EM step)", lambda out, case: out["history"][1]),
    Part("n_steps (the stopping rule)", lambda out, case: out["n_steps"]),
    Part("len(history) = n_steps + 1", lambda out, case: len(out["history"]) - int(out["n_steps"]) - 1),
    Part("the final W", lambda out, case: out["W"], rtol=1e-6, atol=1e-8),
    Part("the final sigma2", lambda out, case: out["sigma2"], rtol=1e-6, atol=1e-10),
)


def check_em_until_converged(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``em_until_converged(X, W0, sigma2_0, tol, max_iter)`` -> {"W", "sigma2", "history", "n_steps"}."""
    return check_function(
        learner, ppca.em_until_converged, _em_core_cases, name="em_until_converged", seed=seed,
        strict=strict, n_trials=3, rtol=1e-6, atol=1e-9, parts=EM_PARTS,
        known_mistakes={
            "history lacks its starting value: history[0] is the mean log-likelihood at (W0, sigma2_0).":
                lambda *a, **k: _emc(*a, **k, first=False),
            "EM never stopped: stop after the first step whose gain is below tol.":
                lambda *a, **k: _emc(*a, **k, rule="never"),
            "the stopping rule tested the gain of the step BEFORE the last one, so EM ran one step too many: "
            "test the gain of the step just taken.": lambda *a, **k: _emc(*a, **k, rule="late"),
            "history holds the SUM of the log-likelihoods over the rows; use their mean (nats per row).":
                lambda *a, **k: _emc(*a, **k, loglik="sum"),
            "n_steps counts the values in history; it should count the EM steps (one fewer).":
                lambda *a, **k: _emc(*a, **k, count="values"),
        },
        hint='checks.hint("em_until_converged") shows a hint, one more each time.',
    )

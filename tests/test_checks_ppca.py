"""The checks of notebooks 02-03 (lvmlib.checks.ppca) accept right answers and catch wrong ones.

For every check: an independent right answer (NumPy/SciPy, written from Bishop's formulas,
not from lvmlib) passes and is returned; a stub raising NotImplementedError gets lvmlib's
reference back (ExerciseNotDone with strict=True); each typical wrong answer, the lecture's
two PPCA errata among them, raises ExerciseError whose message names the mistake.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from lvmlib import ppca
from lvmlib.checks import ExerciseError, ExerciseNotDone
from lvmlib.checks import ppca as pchecks

LOG_2PI = math.log(2 * math.pi)


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def stub(*args, **kwargs):
    raise NotImplementedError()


def _C(W, s2):
    return W @ W.T + s2 * np.eye(W.shape[0])


def _M(W, s2):
    return W.T @ W + s2 * np.eye(W.shape[1])


def _eig_desc(X, ddof=0):
    lam, U = np.linalg.eigh(np.cov(X.T, ddof=ddof))
    return lam[::-1], U[:, ::-1]


# ----------------------------------------------------------------------------- right answers (independent)
def M_right(W, s2):
    return _M(_np(W), s2)


def C_inverse_right(W, s2):
    return np.linalg.inv(_C(_np(W), s2))  # the direct D x D inverse: independent of Woodbury


def log_likelihood_right(X, W, mu, s2):
    return stats.multivariate_normal(_np(mu), _C(_np(W), s2)).logpdf(_np(X)).reshape(-1)


def sigma2_right(X, M):
    lam, _ = _eig_desc(_np(X))
    return lam[M:].mean()


def W_right(X, M):
    lam, U = _eig_desc(_np(X))
    return U[:, :M] * np.sqrt(lam[:M] - lam[M:].mean())


def W_right_rotated(X, M):
    # any rotation R and any signs give the same model: the check must accept them
    rng = np.random.default_rng(M)
    R, _ = np.linalg.qr(rng.normal(size=(M, M)))
    return -W_right(X, M) @ R


def posterior_right(X, W, mu, s2):
    # through C (Bishop 2.116 in its covariance form): E[z|x] = W^T C^-1 (x - mu), cov = I - W^T C^-1 W
    X, W, mu = map(_np, (X, W, mu))
    Cinv = np.linalg.inv(_C(W, s2))
    return (X - mu) @ Cinv @ W, np.eye(W.shape[1]) - W.T @ Cinv @ W


def reconstruct_right(X, W, mu, s2):
    mean, _ = posterior_right(X, W, mu, s2)
    return mean @ _np(W).T + _np(mu)


def em_step_right(X, W, mu, s2):
    # Bishop 12.54-12.57 written out sample by sample
    X, W, mu = map(_np, (X, W, mu))
    N, D = X.shape
    Minv = np.linalg.inv(_M(W, s2))
    Ez = [Minv @ W.T @ (x - mu) for x in X]
    Ezz = [s2 * Minv + np.outer(e, e) for e in Ez]
    W_new = sum(np.outer(x - mu, e) for x, e in zip(X, Ez)) @ np.linalg.inv(sum(Ezz))
    s2_new = sum(
        (x - mu) @ (x - mu) - 2 * e @ W_new.T @ (x - mu) + np.trace(ezz @ W_new.T @ W_new)
        for x, e, ezz in zip(X, Ez, Ezz)
    ) / (N * D)
    return W_new, s2_new


# ----------------------------------------------------------------------------- typical wrong answers
def _ll(X, W, mu, s2, *, Cinv=None, const_D2=False, centre=True, logdet="right", total=False):
    X, W, mu = map(_np, (X, W, mu))
    D, M = W.shape
    Xc = X - mu if centre else X
    P = np.linalg.inv(_C(W, s2)) if Cinv is None else Cinv
    quad = np.einsum("nd,de,ne->n", Xc, P, Xc)
    logdets = {"right": np.linalg.slogdet(_C(W, s2))[1], "M": np.linalg.slogdet(_M(W, s2))[1],
               "D": D * math.log(s2) + np.linalg.slogdet(_M(W, s2))[1]}
    ll = -0.5 * ((D * D if const_D2 else D) * LOG_2PI + logdets[logdet] + quad)
    return ll.sum() if total else ll


def _lecture_Cinv(W, s2):
    W = _np(W)
    return np.eye(W.shape[0]) / math.sqrt(s2) - W @ np.linalg.inv(_M(W, s2)) @ W.T / s2


M_WRONG = {
    "this is C": lambda W, s2: _C(_np(W), s2),
    "sigma2 I is missing": lambda W, s2: _np(W).T @ _np(W),
    "EVERY entry": lambda W, s2: _np(W).T @ _np(W) + s2,
}
CINV_WRONG = {
    "lecture's misprint": _lecture_Cinv,
    "multiplies BOTH terms": lambda W, s2: np.eye(W.shape[0]) / s2
    - _np(W) @ np.linalg.inv(_M(_np(W), s2)) @ _np(W).T,
    "M must be inverted": lambda W, s2: (np.eye(W.shape[0]) - _np(W) @ _M(_np(W), s2) @ _np(W).T) / s2,
    "not its inverse": lambda W, s2: _C(_np(W), s2),
}
LL_WRONG = {
    "misprinted C^-1": lambda X, W, mu, s2: _ll(X, W, mu, s2, Cinv=_lecture_Cinv(W, s2)),
    "once per element": lambda X, W, mu, s2: _ll(X, W, mu, s2, const_D2=True),
    "mu is missing": lambda X, W, mu, s2: _ll(X, W, mu, s2, centre=False),
    "log|C| is not log|M|": lambda X, W, mu, s2: _ll(X, W, mu, s2, logdet="M"),
    "not D log sigma2 + log|M|": lambda X, W, mu, s2: _ll(X, W, mu, s2, logdet="D"),
    "not their sum": lambda X, W, mu, s2: _ll(X, W, mu, s2, total=True),
}
S2_WRONG = {
    "1/(N - 1)": lambda X, M: _eig_desc(_np(X), ddof=1)[0][M:].mean(),
    "ALL eigenvalues": lambda X, M: _eig_desc(_np(X))[0].mean(),
    "ascending order": lambda X, M: np.linalg.eigvalsh(np.cov(_np(X).T, ddof=0))[M:].mean(),
    "divide by D - M": lambda X, M: _eig_desc(_np(X))[0][M:].sum() / X.shape[1],
}


def _W_wrong(X, M, ddof=0, subtract=True, power=0.5, smallest=False):
    lam, U = _eig_desc(_np(X), ddof=ddof)
    s2 = lam[M:].mean()
    idx = slice(-M, None) if smallest else slice(None, M)
    return U[:, idx] * (lam[idx] - (s2 if subtract else 0.0)).clip(0) ** power


W_WRONG = {
    "must be subtracted": lambda X, M: _W_wrong(X, M, subtract=False),
    "unit-length columns": lambda X, M: _W_wrong(X, M, power=0.0),
    "needs its square root": lambda X, M: _W_wrong(X, M, power=1.0),
    "SMALLEST eigenvalues": lambda X, M: _W_wrong(X, M, smallest=True),
    "1/(N - 1)": lambda X, M: _W_wrong(X, M, ddof=1),
}


def _post_wrong(X, W, mu, s2, *, cov, centre=True, minv=True):
    X, W, mu = map(_np, (X, W, mu))
    Mm = _M(W, s2)
    Xc = X - mu if centre else X
    mean = Xc @ W @ (np.linalg.inv(Mm) if minv else np.eye(W.shape[1]))
    return mean, {"precision": Mm / s2, "minv": np.linalg.inv(Mm), "right": s2 * np.linalg.inv(Mm)}[cov]


POST_WRONG = {
    "posterior PRECISION": lambda *a: _post_wrong(*a, cov="precision"),
    "lacks the factor sigma2": lambda *a: _post_wrong(*a, cov="minv"),
    "mu is missing from the mean": lambda *a: _post_wrong(*a, cov="right", centre=False),
    "the mean needs M^-1": lambda *a: _post_wrong(*a, cov="right", minv=False),
}
REC_WRONG = {
    "mu must be added back": lambda X, W, mu, s2: reconstruct_right(X, W, mu, s2) - _np(mu),
    "orthogonal projection": lambda X, W, mu, s2: (_np(X) - _np(mu)) @ _np(W) @ np.linalg.pinv(_np(W))
    + _np(mu),
    "posterior mean needs M^-1": lambda X, W, mu, s2: (_np(X) - _np(mu)) @ _np(W) @ _np(W).T + _np(mu),
}


def _em_wrong(X, W, mu, s2, *, ezz_cov, old_W=False, by_N=False):
    X, W, mu = map(_np, (X, W, mu))
    N, D = X.shape
    Minv = np.linalg.inv(_M(W, s2))
    Xc = X - mu
    Ez = Xc @ W @ Minv
    sum_Ezz = N * ezz_cov(Minv, s2) + Ez.T @ Ez
    W_new = Xc.T @ Ez @ np.linalg.inv(sum_Ezz)
    Wu = W if old_W else W_new
    total = (Xc**2).sum() - 2 * np.trace(Ez @ Wu.T @ Xc.T) + np.trace(sum_Ezz @ Wu.T @ Wu)
    return W_new, total / (N if by_N else N * D)


EM_WRONG = {
    "E[z] E[z]^T alone": lambda *a: _em_wrong(*a, ezz_cov=lambda Minv, s2: 0 * Minv),
    "not M^-1": lambda *a: _em_wrong(*a, ezz_cov=lambda Minv, s2: Minv),
    "NEW W": lambda *a: _em_wrong(*a, ezz_cov=lambda Minv, s2: s2 * Minv, old_W=True),
    "divide by N * D": lambda *a: _em_wrong(*a, ezz_cov=lambda Minv, s2: s2 * Minv, by_N=True),
}


# the listed mistakes, written as a learner would: {exercise: {the mistake the check names: wrong answer}}
WRONG_ANSWERS = {"M_matrix": M_WRONG, "C_inverse": CINV_WRONG, "log_likelihood": LL_WRONG, "sigma2_ml": S2_WRONG,
                 "W_ml": W_WRONG, "posterior": POST_WRONG, "reconstruct": REC_WRONG, "em_step": EM_WRONG}

CHECKS = {
    "M_matrix": (pchecks.check_M_matrix, ppca.M_matrix, M_right, M_WRONG, pchecks._W_sigma2_cases),
    "C_inverse": (pchecks.check_C_inverse, ppca.C_inverse, C_inverse_right, CINV_WRONG, pchecks._W_sigma2_cases),
    "log_likelihood": (pchecks.check_log_likelihood, ppca.log_likelihood, log_likelihood_right, LL_WRONG,
                       pchecks._X_model_cases),
    "sigma2_ml": (pchecks.check_sigma2_ml, lambda X, M: ppca.closed_form(X, M)[2], sigma2_right, S2_WRONG,
                  pchecks._X_M_cases),
    "W_ml": (pchecks.check_W_ml, lambda X, M: ppca.closed_form(X, M)[0], W_right, W_WRONG, pchecks._X_M_cases),
    "posterior": (pchecks.check_posterior, ppca.posterior, posterior_right, POST_WRONG, pchecks._X_model_cases),
    "reconstruct": (pchecks.check_reconstruct, lambda X, W, mu, s2: ppca.PPCA.from_params(W, mu, s2).reconstruct(X),
                    reconstruct_right, REC_WRONG, pchecks._X_model_cases),
    "em_step": (pchecks.check_em_step, ppca.em_step, em_step_right, EM_WRONG, pchecks._em_cases),
}
PARAMS = list(CHECKS.values())
IDS = list(CHECKS)
SIG = "check, reference, right, wrong, cases"


def _assert_same(got, expected, **tol):
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(_np(g), _np(e), **tol)


@pytest.mark.parametrize(SIG, PARAMS, ids=IDS)
def test_right_answer_passes_and_is_returned(check, reference, right, wrong, cases, capsys):
    assert check(right) is right
    assert check(right, strict=True, seed=1) is None  # a hidden test only verifies
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(SIG, PARAMS, ids=IDS)
def test_independent_right_answer_matches_the_library(check, reference, right, wrong, cases):
    case = cases(np.random.default_rng(11))
    got, expected = case.call(right), case.call(reference)
    if check is pchecks.check_W_ml:  # unique up to rotation: compare W W^T
        got, expected = _np(got) @ _np(got).T, _np(expected) @ _np(expected).T
    _assert_same(got, expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(SIG, PARAMS, ids=IDS)
def test_unfinished_exercise_continues_with_the_reference(check, reference, right, wrong, cases, capsys):
    fn = check(stub)
    assert "not done yet" in capsys.readouterr().out
    case = cases(np.random.default_rng(5))
    _assert_same(case.call(fn), case.call(reference))
    with pytest.raises(ExerciseNotDone):
        check(stub, strict=True, seed=1)
    with pytest.raises(ExerciseNotDone):  # the substituted reference does not count as done
        check(fn, strict=True, seed=1)
    assert check(fn) is fn  # and running the check cell again keeps going with it


def test_W_ml_accepts_any_rotation_and_sign():
    assert pchecks.check_W_ml(W_right_rotated) is W_right_rotated


def test_W_ml_rejects_a_transposed_answer_with_the_expected_shape():
    with pytest.raises(ExerciseError, match=r"shape \(D, M\)"):
        pchecks.check_W_ml(lambda X, M: W_right(X, M).T)


def test_the_errata_are_named_as_the_lecture_s():
    with pytest.raises(ExerciseError, match="lecture's misprint"):
        pchecks.check_C_inverse(CINV_WRONG["lecture's misprint"])
    with pytest.raises(ExerciseError, match="PRECISION"):
        pchecks.check_posterior(POST_WRONG["posterior PRECISION"])


def test_a_function_returning_nothing_is_told_so():
    with pytest.raises(ExerciseError, match="forget to return"):
        pchecks.check_M_matrix(lambda W, s2: None)

"""The checks of notebook 01 (lvmlib.checks.gaussian) accept right answers and catch wrong ones.

For every check: an independent right answer (NumPy/SciPy) passes and is returned; an
unfinished exercise (a stub raising NotImplementedError) gets lvmlib's reference back, or
ExerciseNotDone with strict=True; each typical wrong answer raises ExerciseError whose
message names the mistake.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from lvmlib import gaussian
from lvmlib.checks import ExerciseError, ExerciseNotDone
from lvmlib.checks import gaussian as gchecks

LOG_2PI = math.log(2 * math.pi)


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def stub(*args, **kwargs):
    raise NotImplementedError()


# ----------------------------------------------------------------------------- right answers (independent)
def log_normal_full_right(x, mu, cov):
    return stats.multivariate_normal(mean=_np(mu), cov=_np(cov)).logpdf(_np(x)).reshape(-1)


def marginal_right(mu, Lambda, A, b, L):
    mu, Lambda, A, b, L = map(_np, (mu, Lambda, A, b, L))
    return A @ mu + b, np.linalg.inv(L) + A @ np.linalg.inv(Lambda) @ A.T


def posterior_right(y, mu, Lambda, A, b, L):
    y, mu, Lambda, A, b, L = map(_np, (y, mu, Lambda, A, b, L))
    Sigma = np.linalg.inv(Lambda + A.T @ L @ A)
    mean = (Sigma @ (A.T @ L @ (y - b).T + (Lambda @ mu)[:, None])).T  # (N, Dx)
    return mean, Sigma


# ----------------------------------------------------------------------------- typical wrong answers
def _lnf(x, mu, cov, const, logdet_factor=0.5, quad_factor=0.5, invert=True):
    x, mu, cov = map(_np, (x, mu, cov))
    diff = x - mu
    P = np.linalg.inv(cov) if invert else cov
    quad = np.einsum("nd,de,ne->n", diff, P, diff)
    return const - logdet_factor * np.linalg.slogdet(cov)[1] - quad_factor * quad


LNF_WRONG = {
    "once per element": lambda x, mu, cov: _lnf(x, mu, cov, -0.5 * x.shape[-1] ** 2 * LOG_2PI),
    "not -1/2 log(2 pi)": lambda x, mu, cov: _lnf(x, mu, cov, -0.5 * LOG_2PI),
    "log-determinant needs the factor 1/2": lambda x, mu, cov: _lnf(x, mu, cov, -0.5 * x.shape[-1] * LOG_2PI, 1.0),
    "INVERSE covariance": lambda x, mu, cov: _lnf(x, mu, cov, -0.5 * x.shape[-1] * LOG_2PI, invert=False),
    "quadratic form needs the factor 1/2": lambda x, mu, cov: _lnf(x, mu, cov, -0.5 * x.shape[-1] * LOG_2PI,
                                                                   quad_factor=1.0),
}


def _marg(mu, Lambda, A, b, L, *, inv_L=True, inv_Lam=True, noise=True, offset=True):
    mu, Lambda, A, b, L = map(_np, (mu, Lambda, A, b, L))
    noise_cov = (np.linalg.inv(L) if inv_L else L) if noise else 0.0
    prior_cov = np.linalg.inv(Lambda) if inv_Lam else Lambda
    return A @ mu + (b if offset else 0.0), noise_cov + A @ prior_cov @ A.T


MARG_WRONG = {
    "PRECISIONS (inverse covariances)": lambda *a: _marg(*a, inv_L=False, inv_Lam=False),
    "noise covariance L^-1 of p(y | x) is missing": lambda *a: _marg(*a, noise=False),
    "offset b is missing": lambda *a: _marg(*a, offset=False),
    "not A Lambda A^T": lambda *a: _marg(*a, inv_Lam=False),
}


def _post(y, mu, Lambda, A, b, L, *, precision=False, prior=True, offset=True, invert_inputs=False,
          add_mu=False):
    y, mu, Lambda, A, b, L = map(_np, (y, mu, Lambda, A, b, L))
    if invert_inputs:
        Lambda, L = np.linalg.inv(Lambda), np.linalg.inv(L)
    P = Lambda + A.T @ L @ A
    Sigma = np.linalg.inv(P)
    rhs = A.T @ L @ (y - (b if offset else 0.0)).T  # (Dx, N)
    if prior and not add_mu:
        rhs = rhs + (Lambda @ mu)[:, None]
    mean = (Sigma @ rhs).T + (mu if add_mu else 0.0)
    return mean, (P if precision else Sigma)


POST_WRONG = {
    "posterior PRECISION": lambda *a: _post(*a, precision=True),
    "Lambda mu is missing": lambda *a: _post(*a, prior=False),
    "offset b must be subtracted": lambda *a: _post(*a, offset=False),
    "precisions already": lambda *a: _post(*a, invert_inputs=True),
    "not as + mu": lambda *a: _post(*a, add_mu=True),
}

# the listed mistakes, written as a learner would: {exercise: {the mistake the check names: wrong answer}}
WRONG_ANSWERS = {"log_normal_full": LNF_WRONG, "linear_gaussian_marginal": MARG_WRONG,
                 "linear_gaussian_posterior": POST_WRONG}

CHECKS = [
    (gchecks.check_log_normal_full, gaussian.log_normal_full, log_normal_full_right, LNF_WRONG,
     gchecks._log_normal_full_cases),
    (gchecks.check_linear_gaussian_marginal, gaussian.linear_gaussian_marginal, marginal_right, MARG_WRONG,
     gchecks._marginal_cases),
    (gchecks.check_linear_gaussian_posterior, gaussian.linear_gaussian_posterior, posterior_right, POST_WRONG,
     gchecks._posterior_cases),
]
IDS = ["log_normal_full", "marginal", "posterior"]


@pytest.mark.parametrize("check, reference, right, wrong, cases", CHECKS, ids=IDS)
def test_right_answer_passes_and_is_returned(check, reference, right, wrong, cases, capsys):
    assert check(right) is right
    assert check(right, strict=True, seed=1) is None  # a hidden test only verifies
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("check, reference, right, wrong, cases", CHECKS, ids=IDS)
def test_unfinished_exercise_continues_with_the_reference(check, reference, right, wrong, cases, capsys):
    fn = check(stub)
    assert "not done yet" in capsys.readouterr().out
    case = cases(np.random.default_rng(5))
    got, expected = case.call(fn), case.call(reference)
    for g, e in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
        np.testing.assert_allclose(_np(g), _np(e))
    with pytest.raises(ExerciseNotDone):
        check(stub, strict=True, seed=1)
    with pytest.raises(ExerciseNotDone):  # the substituted reference does not count as done either
        check(fn, strict=True, seed=1)


def test_the_right_answers_agree_with_the_library_references():
    # the independent right answers used above are themselves right
    rng = np.random.default_rng(3)
    for _, reference, right, _, cases in CHECKS:
        case = cases(rng)
        got, expected = case.call(right), case.call(reference)
        for g, e in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
            np.testing.assert_allclose(_np(g), _np(e), rtol=1e-10, atol=1e-10)


def test_posterior_check_catches_a_crash_with_a_useful_message():
    def crashes(y, mu, Lambda, A, b, L):
        return torch.linalg.inv(A), Lambda  # A is not square: raises inside the learner's code

    with pytest.raises(ExerciseError, match="raised RuntimeError"):
        gchecks.check_linear_gaussian_posterior(crashes)


def test_marginal_check_rejects_a_wrong_shape():
    with pytest.raises(ExerciseError, match="shape"):
        gchecks.check_linear_gaussian_marginal(lambda mu, Lambda, A, b, L: (A @ mu + b, A.T @ A))

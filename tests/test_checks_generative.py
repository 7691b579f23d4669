"""The checks of notebook 00 (lvmlib.checks.generative) accept right answers and catch wrong ones.

Right answers written independently of lvmlib (NumPy) pass and are returned; an unfinished
exercise gets lvmlib's reference back, or ExerciseNotDone with strict=True; each known mistake
is named as itself; any usual definition of a quantile is accepted by ``check_unfamiliar``.
"""

import numpy as np
import pytest
import torch

from lvmlib import generative
from lvmlib.checks import ExerciseError, ExerciseNotDone
from lvmlib.checks import generative as gchecks


def stub(*args, **kwargs):
    raise NotImplementedError()


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _named(check, wrong, fragment):
    with pytest.raises(ExerciseError) as info:
        check(wrong)
    assert not isinstance(info.value, ExerciseNotDone)
    assert f"known mistake: {fragment}" in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- log_joint
def log_joint_right(log_p_y_given_x, log_p_x):
    a, b = _np(log_p_y_given_x), _np(log_p_x)
    return torch.as_tensor(a + b.reshape(-1, 1))  # NumPy's broadcasting, written out


def test_log_joint_right_answer_passes(capsys):
    assert gchecks.check_log_joint(log_joint_right) is log_joint_right
    assert gchecks.check_log_joint(log_joint_right, strict=True, seed=1) is None
    assert "✓ log_joint" in capsys.readouterr().out


def test_log_joint_not_done():
    fallback = gchecks.check_log_joint(stub)
    a, b = torch.log_softmax(torch.randn(3, 4), 1), torch.randn(3)
    torch.testing.assert_close(fallback(a, b), generative.log_joint(a, b))
    for fn in (stub, fallback):
        with pytest.raises(ExerciseNotDone):
            gchecks.check_log_joint(fn, strict=True, seed=1)


LOG_JOINT_WRONG = {
    "multiplying the log-probabilities": lambda a, b: a * b[:, None],
    "adding probabilities": lambda a, b: torch.log(a.exp() + b.exp()[:, None]),
    # the inputs once made this answer identical to "adding probabilities" (listed first)
    "returning log p(y|x) alone": [lambda a, b: a, lambda a, b: a.clone()],
}


def _rows(table):
    return [(fn, name) for name, fns in table.items() for fn in (fns if isinstance(fns, list) else [fns])]


@pytest.mark.parametrize("wrong, fragment", _rows(LOG_JOINT_WRONG))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_joint_each_known_mistake_is_named(wrong, fragment, seed):
    _named(lambda fn: gchecks.check_log_joint(fn, seed=seed), wrong, fragment)


def test_log_joint_in_place_is_told():
    def in_place(log_p_y_given_x, log_p_x):
        log_p_y_given_x += log_p_x[:, None]
        return log_p_y_given_x

    with pytest.raises(ExerciseError, match=r"changed its input `log_p_y_given_x` in place"):
        gchecks.check_log_joint(in_place)


# ----------------------------------------------------------------------------- unfamiliar
def unfamiliar_right(log_p_x, log_p_x_reference, fraction=0.01):
    return torch.as_tensor(_np(log_p_x) < np.quantile(_np(log_p_x_reference), fraction))


def test_unfamiliar_right_answer_passes():
    assert gchecks.check_unfamiliar(unfamiliar_right) is unfamiliar_right
    assert gchecks.check_unfamiliar(unfamiliar_right, strict=True, seed=1) is None


def test_unfamiliar_not_done():
    fallback = gchecks.check_unfamiliar(stub)
    assert getattr(fallback, "_lvmlib_substitute_for", None) == "unfamiliar"
    with pytest.raises(ExerciseNotDone):
        gchecks.check_unfamiliar(stub, strict=True)


@pytest.mark.parametrize("method", ["linear", "lower", "higher", "nearest", "midpoint", "inverted_cdf",
                                    "averaged_inverted_cdf", "closest_observation", "hazen", "weibull",
                                    "median_unbiased", "normal_unbiased"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_unfamiliar_accepts_any_quantile_definition(method, seed):
    def mine(log_p_x, log_p_x_reference, fraction=0.01):
        return torch.as_tensor(_np(log_p_x) <= np.quantile(_np(log_p_x_reference), fraction, method=method))

    assert gchecks.check_unfamiliar(mine, seed=seed) is mine


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_unfamiliar_accepts_a_sorted_index_and_the_empirical_cdf(seed):
    def by_index(log_p_x, log_p_x_reference, fraction=0.01):
        ref = torch.sort(log_p_x_reference).values
        return log_p_x < ref[int(fraction * len(ref))]

    def by_cdf(log_p_x, log_p_x_reference, fraction=0.01):
        below = (log_p_x_reference[None, :] < log_p_x[:, None]).double().mean(1)  # (N,) empirical CDF
        return below < fraction

    assert gchecks.check_unfamiliar(by_index, seed=seed) is by_index
    assert gchecks.check_unfamiliar(by_cdf, seed=seed) is by_cdf


UNFAMILIAR_WRONG = {
    "flagging the most probable": lambda lp, ref, fraction=0.01: lp > torch.quantile(ref, fraction),
    "using the (1 - fraction)-quantile": lambda lp, ref, fraction=0.01: lp < torch.quantile(ref, 1 - fraction),
    "taking the quantile of the inputs themselves": lambda lp, ref, fraction=0.01: lp < torch.quantile(lp, fraction),
}
# the listed mistakes, written as a learner would: {exercise: {the mistake the check names: wrong answer(s)}}
WRONG_ANSWERS = {"log_joint": LOG_JOINT_WRONG, "unfamiliar": UNFAMILIAR_WRONG}


@pytest.mark.parametrize("wrong, fragment", _rows(UNFAMILIAR_WRONG))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unfamiliar_each_known_mistake_is_named(wrong, fragment, seed):
    _named(lambda fn: gchecks.check_unfamiliar(fn, seed=seed), wrong, fragment)


def test_unfamiliar_in_place_sort_is_told():
    def sorts_in_place(log_p_x, log_p_x_reference, fraction=0.01):
        log_p_x_reference.copy_(torch.sort(log_p_x_reference).values)  # the caller's reference data reordered
        return log_p_x < torch.quantile(log_p_x_reference, fraction)

    with pytest.raises(ExerciseError, match=r"`log_p_x_reference` in place"):
        gchecks.check_unfamiliar(sorts_in_place)


def test_unfamiliar_cases_keep_inputs_away_from_the_threshold():
    rng = np.random.default_rng(0)
    for _ in range(50):
        case = gchecks._unfamiliar_cases(rng)
        lp, ref = map(_np, case.args)
        lo, hi = gchecks._quantile_band(ref, case.kwargs["fraction"])
        assert lo <= np.quantile(ref, case.kwargs["fraction"]) <= hi
        assert not np.any((lp >= lo) & (lp <= hi))
        assert np.any(lp < lo) and np.any(lp > hi)  # some inputs flagged, some not

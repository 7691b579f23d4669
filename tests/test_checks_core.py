"""The exercise machinery: right answers pass, unfinished ones fall back, wrong ones explain themselves."""

import contextlib

import numpy as np
import pytest
import torch

from lvmlib import checks
from lvmlib.checks import Case, ExerciseError, ExerciseNotDone, _core, check_function


def reference(x, scale=2.0):
    return scale * x


def cases(rng):
    return Case((rng.normal(size=(3, 2)),), {"scale": float(rng.uniform(1, 3))})


def stub(x, scale=2.0):
    raise NotImplementedError()


def test_right_answer_passes_and_is_returned(capsys):
    def mine(x, scale=2.0):
        return x * scale

    assert check_function(mine, reference, cases, name="scaling") is mine
    assert "✓ scaling: correct" in capsys.readouterr().out


def test_unfinished_exercise_falls_back_to_the_reference(capsys):
    fn = check_function(stub, reference, cases, name="scaling")
    assert "not done yet" in capsys.readouterr().out
    np.testing.assert_allclose(fn(np.ones(2)), 2 * np.ones(2))
    # the hidden test of an autograder refuses the stand-in as well as the stub
    with pytest.raises(ExerciseNotDone, match="not done yet"):
        check_function(fn, reference, cases, name="scaling", strict=True)
    with pytest.raises(ExerciseNotDone):
        check_function(stub, reference, cases, name="scaling", strict=True)


def test_wrong_answer_says_where_and_names_a_known_mistake():
    def wrong(x, scale=2.0):
        return x + scale

    with pytest.raises(ExerciseError) as info:
        check_function(wrong, reference, cases, name="scaling", hint="multiply, do not add",
                       known_mistakes={"adding instead of multiplying": wrong, "squaring": lambda x, scale: x**2})
    text = str(info.value)
    assert "scaling: not right yet" in text and "expected" in text and "got" in text
    assert "known mistake: adding instead of multiplying" in text and "Hint: multiply" in text


def test_wrong_shape_missing_return_and_crash_are_explained():
    with pytest.raises(ExerciseError, match="shape"):
        check_function(lambda x, scale=2.0: (scale * x).sum(0), reference, cases, name="s")
    with pytest.raises(ExerciseError, match="forget to return"):
        check_function(lambda x, scale=2.0: None, reference, cases, name="s")

    def crashes(x, scale=2.0):
        return x @ x  # (3, 2) @ (3, 2) fails

    with pytest.raises(ExerciseError, match="raised ValueError"):
        check_function(crashes, reference, cases, name="s")


def test_nan_is_not_accepted():
    with pytest.raises(ExerciseError, match="NaN"):
        check_function(lambda x, scale=2.0: x * np.nan, reference, cases, name="s")


def test_tuples_dicts_and_tensors_are_compared_elementwise():
    def ref(x):
        return {"a": torch.as_tensor(x) * 2, "b": (x.sum(), x.mean())}

    def good(x):
        return {"a": torch.as_tensor(x) + torch.as_tensor(x), "b": (x.sum(), x.sum() / x.size)}

    def bad(x):
        return {"a": torch.as_tensor(x) * 2, "b": (x.sum(), x.sum())}

    one = [Case((np.arange(4.0),))]
    assert check_function(good, ref, one, name="d") is good
    with pytest.raises(ExerciseError, match=r"\['b'\]\[1\]"):
        check_function(bad, ref, one, name="d")


def test_stochastic_functions_see_the_same_torch_seed():
    def ref(n):
        return torch.randn(n)

    def mine(n):
        return torch.randn(n)

    assert check_function(mine, ref, [Case((5,)), Case((7,))], name="noise") is mine


def test_seeded_draws_what_torch_manual_seed_draws_and_restores_the_generator():
    torch.manual_seed(3)
    expected = torch.randn(6), torch.rand(2, 3), torch.randint(0, 9, (4,))
    before = torch.random.get_rng_state()
    with _core.seeded(3):
        got = torch.randn(6), torch.rand(2, 3), torch.randint(0, 9, (4,))
    for e, g in zip(expected, got):
        assert torch.equal(e, g)
    assert torch.equal(torch.random.get_rng_state(), before)   # the draws outside go on as before


def test_seeded_seeds_cuda_where_there_is_cuda(monkeypatch):
    """torch.manual_seed seeds every CUDA device: so does seeded, on a machine that has one (here pretended)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", calls.append)
    monkeypatch.setattr(torch.random, "fork_rng", contextlib.nullcontext)
    with _core.seeded(11):
        pass
    assert calls == [11]


def test_a_non_function_is_refused():
    with pytest.raises(TypeError, match="expected the function"):
        check_function(42, reference, cases, name="s")


def test_unknown_check_module_is_a_clear_error():
    with pytest.raises(AttributeError, match="no check module 'nonexistent'"):
        checks.nonexistent


# ----------------------------------------------------------------------------- inputs changed in place
def centred_reference(X):
    return (X - X.mean(0)).T @ (X - X.mean(0))


def centre_cases(rng):
    return Case((torch.as_tensor(rng.normal(3.0, 1.0, size=(6, 3))),))


def test_each_function_gets_its_own_copy_and_an_in_place_change_is_named():
    def centres_in_place(X):
        X -= X.mean(0)  # right numbers, but the caller's X is changed
        return X.T @ X

    with pytest.raises(ExerciseError) as info:
        check_function(centres_in_place, centred_reference, centre_cases, name="scatter")
    text = str(info.value)
    assert "changed its input `X` in place" in text and "X -= ..." in text
    assert "known mistake" not in text


def test_an_in_place_change_does_not_reach_the_reference_or_the_caller():
    seen = []

    def reference(X):
        seen.append(X.clone())
        return X * 2

    def mine(X):
        X.mul_(2)
        return X

    X = torch.ones(3)
    with pytest.raises(ExerciseError, match="in place"):
        check_function(mine, reference, [Case((X,))], name="double")
    assert torch.equal(X, torch.ones(3))  # the case's own tensor is untouched
    with pytest.raises(ExerciseError, match="in place"):
        check_function(mine, lambda X: X * 2, [Case((X,))], name="double")


def test_a_wrong_answer_that_changes_its_input_is_told_about_the_change_not_a_wrong_mistake():
    # with shared inputs, `X -= mu` made the reference see centred data and the check blame "mu is missing"
    def reference(X, mu):
        return X - mu

    def mine(X, mu):
        X -= mu
        return X

    cases = [Case((torch.randn(4, 2), torch.randn(2)))]
    with pytest.raises(ExerciseError) as info:
        check_function(mine, reference, cases, name="centre", known_mistakes={"mu is missing": lambda X, mu: X})
    assert "changed its input `X` in place" in str(info.value)
    assert "mu is missing" not in str(info.value)


def test_keyword_inputs_and_numpy_arrays_are_protected_too():
    def mine(x, scale=2.0, out=None):
        out[:] = x * scale
        return out

    cases = [Case((np.ones(3),), {"scale": 2.0, "out": np.zeros(3)})]
    with pytest.raises(ExerciseError, match="`out` in place"):
        check_function(mine, lambda x, scale=2.0, out=None: x * scale, cases, name="s")


def test_a_mistake_written_in_several_ways_is_named_for_each():
    variants = (lambda x, scale=2.0: x + scale, lambda x, scale=2.0: scale + x + 0.0)
    for wrong in (lambda x, scale=2.0: x + scale, lambda x, scale=2.0: np.add(x, scale)):
        with pytest.raises(ExerciseError, match="known mistake: adding"):
            check_function(wrong, reference, cases, name="s", known_mistakes={"adding": variants})


def test_a_scalar_result_is_printed_as_a_number():
    def one_epoch_early(epoch, warmup_epochs):
        return torch.tensor(1.0 if warmup_epochs == 0 else min(1.0, (epoch + 1) / warmup_epochs))

    with pytest.raises(ExerciseError) as info:
        checks.priors.check_kl_warmup(one_epoch_early)
    first = str(info.value).splitlines()[0]
    assert first.endswith("the result differs from the reference: expected 0.4, got 0.5."), first
    assert _core._describe((torch.tensor(2.5), np.float64(0.125), 3)) == "(2.5, 0.125, 3)"

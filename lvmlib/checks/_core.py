"""The machinery behind every exercise check.

An exercise in a notebook is a function the learner writes. Its check cell calls a
check from this package, which runs the learner's function and lvmlib's reference
on the same random inputs and then does one of three things:

- **right**: prints a short confirmation and returns the learner's function;
- **not done yet** (the body still raises ``NotImplementedError``): prints so and
  returns lvmlib's reference, so the rest of the notebook still runs;
- **wrong**: raises :class:`ExerciseError` with a message that helps: which input,
  the expected and the obtained values, and, when the answer matches a known
  mistake (the lecture's errata among them), what that mistake is.

With ``strict=True`` (used by the hidden tests that an instructor's autograder
runs) an unfinished exercise is an error too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch


class ExerciseError(AssertionError):
    """The learner's answer disagrees with the reference."""


class ExerciseNotDone(ExerciseError):
    """The exercise has not been attempted yet (raised only when ``strict=True``)."""


@dataclass(frozen=True)
class Case:
    """One set of inputs for an exercise: positional and keyword arguments."""

    args: tuple = ()
    kwargs: Mapping[str, Any] | None = None

    def call(self, fn: Callable) -> Any:
        return fn(*self.args, **dict(self.kwargs or {}))


def _mark_reference(reference: Callable, name: str) -> Callable:
    """Wrap the reference so that a strict check can tell it was substituted."""

    def substitute(*args, **kwargs):
        return reference(*args, **kwargs)

    substitute.__name__ = getattr(reference, "__name__", name)
    substitute.__doc__ = reference.__doc__
    substitute.__wrapped__ = reference
    substitute._lvmlib_substitute_for = name
    return substitute


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


def _describe(value: Any, limit: int = 6) -> str:
    """A short human-readable summary of an input or output."""
    value = _to_numpy(value)
    if isinstance(value, np.ndarray):
        if value.size <= limit:
            return f"array{value.shape} {np.array2string(value, precision=5)}"
        flat = value.ravel()
        head = np.array2string(flat[:limit], precision=5)
        return f"array of shape {value.shape}, first values {head[:-1]} ...]"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_describe(v, limit) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_describe(v, limit)}" for k, v in value.items()) + "}"
    return repr(value)


def compare(expected: Any, got: Any, rtol: float, atol: float, where: str = "the result") -> str | None:
    """None when ``got`` matches ``expected``, else a sentence saying what differs."""
    expected, got = _to_numpy(expected), _to_numpy(got)
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return f"{where} should be a dict with keys {sorted(expected)}, got {_describe(got)}"
        for key in expected:
            problem = compare(expected[key], got[key], rtol, atol, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{where} should be a tuple of {len(expected)} values, got {_describe(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(e, g, rtol, atol, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if got is None:
        return f"{where} is None: did the function forget to return its value?"
    try:
        e_arr = np.asarray(expected, dtype=float)
        g_arr = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return None if expected == got else f"{where}: expected {expected!r}, got {got!r}"
    if e_arr.shape != g_arr.shape:
        if e_arr.size == g_arr.size == 1:
            e_arr, g_arr = e_arr.reshape(()), g_arr.reshape(())
        else:
            return f"{where} has shape {g_arr.shape}, expected shape {e_arr.shape}"
    if not np.all(np.isfinite(g_arr) | ~np.isfinite(e_arr)):
        return f"{where} contains NaN or inf where the reference is finite: {_describe(g_arr)}"
    if np.allclose(g_arr, e_arr, rtol=rtol, atol=atol, equal_nan=True):
        return None
    diff = np.abs(g_arr - e_arr)
    worst = np.unravel_index(np.nanargmax(diff), diff.shape) if diff.ndim else ()
    return (
        f"{where} differs from the reference: expected {_describe(e_arr)}, got {_describe(g_arr)}; "
        f"largest difference {float(diff[worst]):.3g} at index {tuple(int(i) for i in worst)}"
    )


def check_function(
    learner: Callable,
    reference: Callable,
    cases: Callable[[np.random.Generator], Case] | list[Case],
    *,
    name: str,
    n_trials: int = 4,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    seed: int = 0,
    known_mistakes: Mapping[str, Callable] | None = None,
    strict: bool = False,
    hint: str = "",
    quiet: bool = False,
) -> Callable:
    """Compare ``learner`` with ``reference`` on random inputs; return the function to go on with.

    Inputs:
        learner, reference: functions taking the same arguments.
        cases: a list of :class:`Case`, or a function ``rng -> Case`` called ``n_trials`` times.
        name: the exercise's name, used in every message.
        known_mistakes: {description: function} of typical wrong answers; when the learner's
            output matches one of them (and not the reference), the error names the mistake.
        strict: an unfinished exercise raises :class:`ExerciseNotDone` instead of falling back.
        hint: a sentence added to the error message of a wrong answer.
    Returns:
        the learner's function when it is right, the reference when the exercise is not done;
        None when ``strict`` (a hidden test only verifies, and shows no value in the notebook).
    """
    if not callable(learner):
        raise TypeError(f"{name}: expected the function you wrote, got {learner!r}")
    if getattr(learner, "_lvmlib_substitute_for", None) is not None:
        # the check already ran and substituted the reference: the exercise is still not done
        if strict:
            raise ExerciseNotDone(f"{name}: not done yet (the reference implementation stands in for it).")
        return learner
    if callable(cases):
        rng = np.random.default_rng(seed)
        case_list = [cases(rng) for _ in range(n_trials)]
    else:
        case_list = list(cases)

    for i, case in enumerate(case_list):
        try:
            with torch.random.fork_rng():
                torch.manual_seed(seed + i)
                got = case.call(learner)
        except NotImplementedError:
            if strict:
                raise ExerciseNotDone(f"{name}: not done yet (the function still raises NotImplementedError).")
            if not quiet:
                print(f"… {name}: not done yet. The notebook continues with lvmlib's reference.")
            return _mark_reference(reference, name)
        except ExerciseError:
            raise
        except Exception as err:  # the learner's code crashed: say where, keep the cause
            raise ExerciseError(
                f"{name}: your function raised {type(err).__name__}: {err}\n"
                f"  on inputs {_describe(case.args)} {_describe(dict(case.kwargs or {}))}"
            ) from err
        with torch.random.fork_rng():
            torch.manual_seed(seed + i)
            expected = case.call(reference)
        problem = compare(expected, got, rtol, atol)
        if problem is None:
            continue
        message = [f"{name}: not right yet — {problem}.",
                   f"  inputs: {_describe(case.args)} {_describe(dict(case.kwargs or {})) if case.kwargs else ''}".rstrip()]
        for description, mistake in (known_mistakes or {}).items():
            with torch.random.fork_rng():
                torch.manual_seed(seed + i)
                try:
                    wrong = case.call(mistake)
                except Exception:
                    continue
            if compare(wrong, got, rtol, atol) is None:
                message.append(f"  This is a known mistake: {description}")
                break
        if hint:
            message.append(f"  Hint: {hint}")
        raise ExerciseError("\n".join(message))

    if not quiet:
        print(f"✓ {name}: correct on {len(case_list)} random inputs.")
    return None if strict else learner


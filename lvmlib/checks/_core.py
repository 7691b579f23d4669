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

The learner's function, the reference and every known mistake each get their own
copy of the inputs. A function that changes an input in place (``X -= X.mean(0)``)
is told exactly that, even when its result is right: in the notebook the same
call would have changed the caller's data.

A core exercise (a function composing a notebook's idea end to end) also gets **partial
diagnosis**: its check lists :class:`Part` s of the answer (the KL term, the reconstruction
term, the reduction over the batch, ...), each read from the output by a function; when the
answer is wrong, the message says which parts are wrong and which are right.

With ``strict=True`` (used by the hidden tests that an instructor's autograder
runs) an unfinished exercise is an error too.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's generators seeded with ``seed``, and restore them after it.

    ``torch.random.fork_rng()`` around ``torch.manual_seed(seed)``, less a cost the checks pay thousands of
    times: on a machine without an accelerator, ``torch.manual_seed`` still queues the seed for every
    accelerator back end torch knows, formatting the call stack for each (about 0.6 ms a call from inside a
    test run). Here the CPU generator is seeded, and CUDA's and MPS's only where they exist (the devices
    :func:`lvmlib.runtime.get_device` offers), so the draws are those of ``torch.manual_seed(seed)``.
    """
    with torch.random.fork_rng():
        torch.random.default_generator.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
            torch.mps.manual_seed(seed)
        yield


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


@dataclass(frozen=True)
class Part:
    """One named part of a core exercise's answer, for partial diagnosis.

    ``get(output, case)`` reads the part from a function's output (it may also use the
    inputs of ``case``); the learner's part is compared with the reference's. A part may
    read a *relation* between the learner's own values (``loss - mean(kl - re)``: zero for
    the reference), which names a wrong reduction even when the terms themselves are right.
    """

    name: str
    get: Callable[[Any, "Case"], Any]
    rtol: float | None = None
    atol: float | None = None


def diagnose(parts: Sequence[Part], case: "Case", expected: Any, got: Any, rtol: float,
             atol: float) -> tuple[list[tuple[str, str]], list[str]]:
    """(wrong, right): [(name, why)] of the parts of ``got`` that differ from those of ``expected``;
    the names of those that agree."""
    wrong, right = [], []
    for part in parts:
        try:
            e = part.get(expected, case)
        except Exception as err:  # the reference always has its parts: a bug in the check itself
            raise RuntimeError(f"part {part.name!r} cannot be read from the reference: {err}") from err
        try:
            g = part.get(got, case)
        except Exception as err:
            wrong.append((part.name, f"{part.name} cannot be read from your result: {type(err).__name__}: {err}"))
            continue
        problem = compare(e, g, part.rtol if part.rtol is not None else rtol,
                          part.atol if part.atol is not None else atol, where=part.name)
        if problem is None:
            right.append(part.name)
        else:
            wrong.append((part.name, problem))
    return wrong, right


def _copy(value: Any) -> Any:
    """An independent copy of an input: tensors and arrays are cloned, containers copied item by item."""
    if isinstance(value, torch.Tensor):
        out = value.detach().clone()
        return out.requires_grad_(value.requires_grad) if value.is_leaf else out
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (tuple, list)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    try:
        return copy.deepcopy(value)
    except Exception:  # something that cannot be copied (a module, a function): shared as it is
        return value


def _same(before: Any, after: Any) -> bool:
    """True when ``after`` (an input after a call) still equals ``before`` (its pristine copy)."""
    if isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor):
        if before.shape != after.shape or before.dtype != after.dtype:
            return False
        a, b = before.detach(), after.detach()
        if a.is_floating_point() or a.is_complex():
            return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
        return bool(torch.equal(a, b))
    if isinstance(before, np.ndarray) and isinstance(after, np.ndarray):
        if before.shape != after.shape:
            return False
        if np.issubdtype(before.dtype, np.inexact):
            return bool(np.all((before == after) | (np.isnan(before) & np.isnan(after))))
        return bool(np.array_equal(before, after))
    if isinstance(before, (tuple, list)) and isinstance(after, (tuple, list)):
        return len(before) == len(after) and all(_same(b, a) for b, a in zip(before, after))
    if isinstance(before, dict) and isinstance(after, dict):
        return before.keys() == after.keys() and all(_same(before[k], after[k]) for k in before)
    if isinstance(before, (int, float, complex, str, bytes, type(None))):
        return type(before) is type(after) and (before == after or before != before and after != after)
    return True  # something a check cannot inspect (a module, a function): taken as unchanged


def _argument_names(fns: Sequence[Callable], case: Case) -> list[str]:
    """Names of the case's positional then keyword arguments, from the first signature that names them all."""
    kwargs = dict(case.kwargs or {})
    for fn in fns:
        try:
            signature = inspect.signature(fn)  # follows __wrapped__ to the function a summary runs
            bound = signature.bind(*case.args, **kwargs)
        except (TypeError, ValueError):
            continue
        positional = list(bound.arguments)[: len(case.args)]
        if any(signature.parameters[p].kind is inspect.Parameter.VAR_POSITIONAL for p in positional):
            continue
        return positional + list(kwargs)  # keyword inputs are named by their keys
    return [f"argument {i + 1}" for i in range(len(case.args))] + list(kwargs)


def _changed_inputs(pristine: Case, used: Case, names: list[str]) -> list[str]:
    """The names of the inputs that a call changed in place."""
    before = list(pristine.args) + list(dict(pristine.kwargs or {}).values())
    after = list(used.args) + list(dict(used.kwargs or {}).values())
    return [n for n, b, a in zip(names, before, after) if not _same(b, a)]


def _copied(case: Case) -> Case:
    return Case(tuple(_copy(a) for a in case.args), {k: _copy(v) for k, v in dict(case.kwargs or {}).items()})


def _in_place_message(name: str, changed: list[str]) -> str:
    which = ", ".join(f"`{c}`" for c in changed)
    first = changed[0]
    inputs = "input" if len(changed) == 1 else "inputs"
    return (
        f"{name}: your function changed its {inputs} {which} in place (with something like "
        f"`{first} -= ...`, `{first}[...] = ...` or a method ending in `_` such as `{first}.sub_(...)`). "
        f"The caller's data must stay as it was: in the notebook, later cells still use it. "
        f"Make a new tensor instead and work with that: `{first}c = {first} - ...`, not `{first} -= ...`."
    )


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
    if isinstance(value, (np.ndarray, np.generic)) and value.ndim == 0:  # a scalar reads as the number it is
        value = value.item()
        return f"{value:.6g}" if isinstance(value, float) else repr(value)
    if isinstance(value, float):
        return f"{value:.6g}"
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
    if not diff.ndim:  # one number: the two numbers say it all
        return f"{where} differs from the reference: expected {_describe(e_arr)}, got {_describe(g_arr)}"
    worst = np.unravel_index(np.nanargmax(diff), diff.shape)
    return (
        f"{where} differs from the reference: expected {_describe(e_arr)}, got {_describe(g_arr)}; "
        f"largest difference {float(diff[worst]):.3g} at index {tuple(int(i) for i in worst)}"
    )


def _matching_mistakes(known_mistakes, case: Case, got: Any, seed: int, rtol: float, atol: float) -> list[str]:
    """The descriptions of the known mistakes whose output equals ``got`` on ``case``, in their order."""
    found = []
    for description, variants in (known_mistakes or {}).items():
        for mistake in variants if isinstance(variants, (tuple, list)) else (variants,):
            with seeded(seed):
                try:
                    wrong = _copied(case).call(mistake)
                except Exception:
                    continue
            if compare(wrong, got, rtol, atol) is None:
                found.append(description)
                break
    return found


def _known_mistake(known_mistakes, case: Case, got: Any, seed: int, rtol: float, atol: float,
                   learner: Callable | None = None, other_cases: Sequence[tuple[Case, int]] = ()) -> str | None:
    """The description of the known mistake that ``got`` (the learner's output on ``case``) shows, else None.

    A mistake is named only when the learner's function agrees with it on every case: one case can fit
    several mistakes (``epoch // W`` and ``(epoch - 1) / (W - 1)`` both give 0 at epoch 1), and a wrong answer
    of another kind can fit one mistake on one case and not on the next. So the learner's function is also
    run on ``other_cases`` ((case, seed) pairs) and each candidate is kept only where it gives the learner's
    output there too (a case on which the learner's function raises tells nothing and is skipped); the first
    candidate left, in the order of ``known_mistakes``, is named.
    """
    found = _matching_mistakes(known_mistakes, case, got, seed, rtol, atol)
    if found and learner is not None:
        for other, other_seed in other_cases:
            with seeded(other_seed):
                try:
                    mine = _copied(other).call(learner)
                except Exception:
                    continue
            found = [d for d in found if d in _matching_mistakes({d: known_mistakes[d]}, other, mine, other_seed,
                                                                rtol, atol)]
            if not found:
                break
    return found[0] if found else None


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
    arg_names: Sequence[str] | None = None,
    parts: Sequence[Part] | None = None,
) -> Callable:
    """Compare ``learner`` with ``reference`` on random inputs; return the function to go on with.

    Inputs:
        learner, reference: functions taking the same arguments.
        cases: a list of :class:`Case`, or a function ``rng -> Case`` called ``n_trials`` times.
        name: the exercise's name, used in every message.
        known_mistakes: {description: function} of typical wrong answers (or {description: (function,
            ...)} for a mistake written in several ways); when the learner's output matches one of
            them (and not the reference), the error names the mistake.
        strict: an unfinished exercise raises :class:`ExerciseNotDone` instead of falling back.
        hint: a sentence added to the error message of a wrong answer.
        arg_names: the names of the inputs (positional, then keyword), used when the learner's
            function changes one in place; by default they come from the learner's signature.
        parts: the named :class:`Part` s of a core exercise's answer; a wrong answer's message
            then starts with the parts that are wrong and lists those that are right.
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
        mine = _copied(case)  # each function gets its own copy of every input
        try:
            with seeded(seed + i):
                got = mine.call(learner)
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
        changed = _changed_inputs(case, mine, list(arg_names) if arg_names else _argument_names((learner, reference), case))
        if changed:
            raise ExerciseError(_in_place_message(name, changed))
        with seeded(seed + i):
            expected = _copied(case).call(reference)
        problem = compare(expected, got, rtol, atol)
        if problem is None:
            continue
        inputs = f"  inputs: {_describe(case.args)} {_describe(dict(case.kwargs or {})) if case.kwargs else ''}".rstrip()
        message = [f"{name}: not right yet — {problem}.", inputs]
        if parts:
            wrong, right = diagnose(parts, case, expected, got, rtol, atol)
            if wrong:
                message = [f"{name}: not right yet — wrong: {'; '.join(n for n, _ in wrong)}"
                           + (f"; right: {', '.join(right)}." if right else "."),
                           *(f"  - {why}" for _, why in wrong), f"  (the whole result: {problem})", inputs]
        named = _known_mistake(known_mistakes, case, got, seed + i, rtol, atol, learner,
                               [(c, seed + j) for j, c in enumerate(case_list) if j != i])
        if named is not None:
            message.append(f"  This is a known mistake: {named}")
        if hint:
            message.append(f"  Hint: {hint}")
        raise ExerciseError("\n".join(message))

    if not quiet:
        print(f"✓ {name}: correct on {len(case_list)} random inputs.")
    return None if strict else learner


def check_through(
    learner: Callable,
    reference: Callable,
    summarize: Callable[[Callable], Callable],
    cases,
    *,
    name: str,
    known_mistakes: dict[str, Callable] | None = None,
    **kw,
) -> Callable:
    """``check_function`` on summaries of the functions instead of their raw outputs.

    ``summarize(fn)`` returns a function of the case's inputs that runs ``fn`` and returns
    what must agree with the reference (moments of samples, gradients, ...). The verdict is
    the one of :func:`check_function`; the function returned is the learner's own, or
    lvmlib's ``reference`` while the exercise is not done (None when ``strict``).
    """
    if not callable(learner):
        raise TypeError(f"{name}: expected the function you wrote, got {learner!r}")
    if getattr(learner, "_lvmlib_substitute_for", None) is not None:
        if kw.get("strict"):
            raise ExerciseNotDone(f"{name}: not done yet (the reference implementation stands in for it).")
        return learner

    def summarized(fn: Callable) -> Callable:
        run = summarize(fn)

        def summary(*args, **kwargs):
            return run(*args, **kwargs)

        # a new function, so that neither fn nor what summarize returned (fn itself, for an identity) is
        # changed; __wrapped__ lets a message name the inputs as the learner's function does
        summary.__wrapped__ = fn
        return summary

    mistakes = {
        desc: tuple(summarized(f) for f in fn) if isinstance(fn, (tuple, list)) else summarized(fn)
        for desc, fn in (known_mistakes or {}).items()
    }
    result = check_function(summarized(learner), summarized(reference), cases, name=name,
                            known_mistakes=mistakes, **kw)
    if kw.get("strict"):
        return None  # a hidden test only verifies
    if getattr(result, "_lvmlib_substitute_for", None) is not None:
        return _mark_reference(reference, name)
    return learner


# ----------------------------------------------------------------------------- the device of the inputs
def second_device() -> torch.device:
    """The device a check runs the learner's function on besides the CPU: CUDA where PyTorch sees a GPU,
    else PyTorch's ``meta`` device (tensors with a shape, a dtype and a device but no data), on which an
    operation mixing a meta tensor with a CPU tensor fails just as a CUDA tensor with a CPU one does."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("meta")


def _moved(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to(device)
    if isinstance(value, torch.nn.Module):
        return copy.deepcopy(value).to(device)
    if isinstance(value, torch.Generator):
        return torch.Generator(device=device).manual_seed(value.initial_seed()) if device.type != "meta" else None
    if isinstance(value, (tuple, list)):
        return type(value)(_moved(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, device) for k, v in value.items()}
    return value


_DEVICE_MISMATCH = ("expected all tensors to be on the same device", "is not on the expected device",
                    "expected device", "found at least two devices", "must be on the same device",
                    "but got device", "on device meta")


def _is_device_mismatch(err: BaseException) -> bool:
    text = str(err).lower()
    if "cannot copy out of meta tensor" in text:
        # data taken from the inputs' device into a CPU tensor (z[:] = z0 into a torch.zeros without device=,
        # or .cpu()): on a GPU the result then sits on the CPU and meets the model's weights there
        return True
    return isinstance(err, RuntimeError) and any(s in text for s in _DEVICE_MISMATCH)


def check_follows_device(learner: Callable, reference: Callable, case: Case, *, name: str,
                         device: torch.device | None = None, compare_values: bool = True) -> None:
    """Run ``learner`` with every tensor, module and generator of ``case`` on a second device (see
    :func:`second_device`) and raise :class:`ExerciseError` when the function ignores that device: when it
    fails by mixing devices (a tensor made with ``torch.linspace``, ``torch.zeros``, ``torch.rand``, ...
    without ``device=``, which lands on the CPU) or returns its result on another device than its inputs'.

    Such code passes every test on a CPU-only machine and stops the notebook on a GPU. On the meta device
    nothing is computed, so only the devices are checked; any other failure there (``.item()``, a copy to
    the host) says nothing about devices and is let pass. Where the reference itself cannot run on the
    device, the check is skipped.
    """
    device = torch.device(device) if device is not None else second_device()
    moved = Case(_moved(case.args, device), _moved(dict(case.kwargs or {}), device) if case.kwargs else None)
    try:
        expected = _copied(moved).call(reference)
    except Exception:
        return  # the reference cannot run there: nothing to learn
    try:
        if device.type == "meta":
            # torch.distributions validates its arguments by reading their values, which meta tensors lack
            validate = torch.distributions.Distribution._validate_args
            torch.distributions.Distribution.set_default_validate_args(False)
            try:
                got = _copied(moved).call(learner)
            finally:
                torch.distributions.Distribution.set_default_validate_args(validate)
        else:
            got = _copied(moved).call(learner)
    except ExerciseError:
        raise
    except Exception as err:
        if _is_device_mismatch(err):
            raise ExerciseError(
                f"{name}: not right yet — with its inputs on the device {device.type!r} your function mixed devices "
                f"({type(err).__name__}: {str(err).splitlines()[0]}).\n"
                "  A tensor made inside the function without device= (torch.linspace, torch.zeros, torch.rand, "
                "torch.arange, ...) lives on the CPU; on a GPU this line stops the notebook.\n"
                "  Hint: make new tensors on the inputs' device, e.g. torch.linspace(0, 1, n, device=z.device), "
                "or derive them from an input (torch.zeros_like, torch.rand_like, x.new_zeros).") from err
        if device.type == "meta":
            return  # a failure that says nothing about devices (there is no data on the meta device)
        raise ExerciseError(f"{name}: your function raised {type(err).__name__} with its inputs on {device}: "
                            f"{err}") from err
    outs = got if isinstance(got, (tuple, list)) else (got,)
    refs = expected if isinstance(expected, (tuple, list)) else (expected,)
    for g, e in zip(outs, refs):
        if torch.is_tensor(e) and torch.is_tensor(g) and g.device.type != e.device.type:
            raise ExerciseError(
                f"{name}: not right yet — with its inputs on the device {device.type!r} your function returned a "
                f"tensor on {g.device.type!r}.\n  Hint: return the result on the inputs' device (no .cpu(), no "
                "tensor made without device=); the caller goes on computing with it there.")
    if device.type != "meta" and compare_values:
        problem = compare(expected, got, 1e-3, 1e-5)
        if problem is not None:
            raise ExerciseError(f"{name}: not right yet on the device {device.type!r} — {problem}.")

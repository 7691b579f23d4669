"""Hints on demand for the core exercises: each call shows the next, more specific hint.

Each concept module of checks that has a core exercise holds its hints in a dict
``HINTS = {exercise name: (hint 1, hint 2, ...)}``: the first points at the idea, the
last at the step most learners miss. None of them is the solution. In a notebook::

    checks.hint("vae_step")        # hint 1 the first time, then hint 2, ... (the last one repeats)
    checks.hint("vae_step", 3)     # hint 3, whatever was shown before
"""

from __future__ import annotations

import importlib

# the check modules that hold core exercises' hints (notebooks 02-07)
_MODULES = ("ppca", "variational", "vae", "training", "priors")
_shown: dict[str, int] = {}


def all_hints() -> dict[str, tuple[str, ...]]:
    """{exercise name: its hints in order}, from every check module that has some."""
    found: dict[str, tuple[str, ...]] = {}
    for module in _MODULES:
        found.update(getattr(importlib.import_module(f"lvmlib.checks.{module}"), "HINTS", {}))
    return found


def hint(name: str, level: int | None = None, *, show: bool = True) -> str:
    """Print (and return) hint ``level`` (1-based) of exercise ``name``; by default the next one.

    Raises KeyError naming the exercises that have hints when ``name`` has none, and
    ValueError when ``level`` is not one of its hints.
    """
    hints = all_hints()
    if name not in hints:
        raise KeyError(f"no hints for {name!r}; exercises with hints: {', '.join(sorted(hints))}")
    n = len(hints[name])
    if level is None:
        level = min(_shown.get(name, 0) + 1, n)
    elif isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= n:
        raise ValueError(f"level must be an integer from 1 to {n} for {name!r}, got {level!r}")
    _shown[name] = max(_shown.get(name, 0), level)
    text = f"Hint {level} of {n} for {name}: {hints[name][level - 1]}"
    if level == n:
        text += "\n(That was the last hint. The check's message says which part of your answer is wrong.)"
    if show:
        print(text)
    return text


def reset(name: str | None = None) -> None:
    """Start the hints of ``name`` (or of every exercise) from the first one again."""
    if name is None:
        _shown.clear()
    else:
        _shown.pop(name, None)

"""Exercise checks: compare a learner's function with lvmlib's reference.

The machinery is in :mod:`lvmlib.checks._core`; each lecture concept has a module
of checks (``lvmlib.checks.generative``, ``lvmlib.checks.gaussian``,
``lvmlib.checks.ppca``, ``lvmlib.checks.variational``, ``lvmlib.checks.vae``,
``lvmlib.checks.data``, ``lvmlib.checks.training``, ``lvmlib.checks.latent_space``,
``lvmlib.checks.inference_gap``), each
check a one-liner in a notebook::

    from lvmlib import checks
    log_joint = checks.generative.check_log_joint(log_joint)

A core exercise has hints on demand, shown one at a time, each more specific::

    checks.hint("ppca_fit_score")      # the next hint; checks.hint("ppca_fit_score", 2) shows hint 2

and ``python -m lvmlib.checks.progress notebooks/`` lists every exercise as done, not done
or wrong.

A check returns the function to continue with (the learner's when it is right,
lvmlib's reference while the exercise is not done) and raises
:class:`ExerciseError` with a helpful message when the answer is wrong.
"""

import importlib

from lvmlib.checks._core import Case, ExerciseError, ExerciseNotDone, Part, check_function, check_through, compare
from lvmlib.checks.hints import hint

__all__ = ["Case", "ExerciseError", "ExerciseNotDone", "Part", "check_function", "check_through", "compare", "hint"]


def __getattr__(name: str):
    # the concept modules load on first use: ``checks.ppca`` imports lvmlib.checks.ppca
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        module = importlib.import_module(f"lvmlib.checks.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"lvmlib.checks.{name}":
            raise AttributeError(f"lvmlib.checks has no check module {name!r}") from None
        raise
    globals()[name] = module
    return module

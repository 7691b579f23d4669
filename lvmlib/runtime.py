"""The course's small shared helpers: seeding, device choice, smoke mode, the run cache,
progress bars, child processes.

Every notebook starts with ``seed_everything`` and ``get_device`` so that a run is
reproducible and says where it computes. Smoke mode (the environment variable
``LVMLIB_SMOKE=1``, set by the test suite) lets a notebook shrink epochs and data
so the whole course can be executed quickly; the default is the real run.
``progress_bar`` is the bar every long loop of the course shows; ``subprocess_env`` is the
environment for programs the course starts (nbgrader, jupyter), so that they work from a
virtual environment that was never activated.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch

SMOKE_ENV = "LVMLIB_SMOKE"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy's global generator and PyTorch (CPU and CUDA).

    Inputs: seed, an integer in 0 .. 2**64 - 1 (the range torch's generator takes).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer between 0 and 2**64 - 1, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def get_device(device: str | torch.device = "auto") -> torch.device:
    """The device to compute on.

    ``"auto"`` picks CUDA when a GPU is present and the CPU otherwise; ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"`` ask for one explicitly (asking for CUDA on a machine
    without it is an error that says so).
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} asks for a GPU, but PyTorch sees no CUDA device here; "
            "use device='auto' or 'cpu'."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(
            f"device={device!r} asks for GPU number {dev.index}, but PyTorch sees {torch.cuda.device_count()} "
            f"(numbered from 0); use 'cuda' or 'cuda:0'."
        )
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RuntimeError(f"device={device!r} asks for Apple's MPS, which PyTorch does not see here; use 'auto' or 'cpu'.")
    return dev


def smoke_mode() -> bool:
    """True when ``LVMLIB_SMOKE`` asks for a quick run (the test suite sets it)."""
    value = os.environ.get(SMOKE_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{SMOKE_ENV} must be 0 or 1 (or true/false), got {value!r}")


def smoke(real, quick):
    """``quick`` in smoke mode, ``real`` otherwise: ``epochs = smoke(200, 2)``."""
    return quick if smoke_mode() else real


def _installed_version(distribution: str) -> str:
    """The installed version of a package, read from its metadata: importing scikit-learn only to
    print its version would cost a notebook's start about 0.6 s."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe_environment(device: str | torch.device = "auto") -> str:
    """A few lines naming the versions and the device, for a notebook's setup cell."""
    dev = get_device(device)
    lines = [
        f"python       {sys.version.split()[0]} ({platform.system()} {platform.machine()})",
        f"torch        {torch.__version__}",
        f"numpy        {np.__version__}",
        f"scikit-learn {_installed_version('scikit-learn')}",
        f"matplotlib   {_installed_version('matplotlib')}",
        f"device       {dev}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
        f"smoke mode   {'on (quick run)' if smoke_mode() else 'off (the real run)'}",
    ]
    return "\n".join(lines)


def subprocess_env(base: dict | None = None) -> dict[str, str]:
    """An environment for a child process with this interpreter's folder first on ``PATH``.

    Programs installed beside the interpreter (``alembic``, which nbgrader runs by name;
    ``jupyter``) are then found even when the virtual environment was never activated.
    Inputs: base, the environment to start from (default ``os.environ``). Returns: a new dict.
    """
    env = dict(os.environ if base is None else base)
    here = os.path.dirname(sys.executable)
    parts = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != here]
    env["PATH"] = os.pathsep.join([here] + parts)
    return env


def _in_notebook_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_bar(iterable=None, *, total: int | None = None, initial: int = 0, desc: str | None = None,
                 unit: str = "it", enabled: bool = True):
    """A tqdm progress bar that tells the truth in saved notebooks too.

    In a terminal it is tqdm's text bar. In a notebook kernel it is tqdm's widget, shown with
    a display id and shown once more, in place, when it closes: a notebook saved or exported
    after the run then holds the final state ("100% 200/200", or where it stopped), not the
    "0%" a widget's text form had when it first appeared. ``enabled=False`` gives a bar that
    draws nothing. Use it as tqdm: ``for x in progress_bar(xs, desc="EM")`` or
    ``bar = progress_bar(total=n); bar.update(); bar.close()``.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    kwargs = dict(total=total, initial=initial, desc=desc, unit=unit, leave=True, disable=not enabled)
    if enabled and _in_notebook_kernel():
        try:
            import ipywidgets  # noqa: F401  (the widget bar needs it)

            return _notebook_bar_class()(iterable, **kwargs)
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm(iterable, dynamic_ncols=True, **kwargs)


@functools.lru_cache(maxsize=None)
def _notebook_bar_class():
    from IPython.display import display
    from tqdm.notebook import tqdm as widget_tqdm

    class NotebookBar(widget_tqdm):
        """tqdm's widget bar, re-displayed in place when it closes (see ``progress_bar``)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, display=False, **kwargs)
            self._handle = display(self.container, display_id=True)
            self.displayed = True

        def close(self):
            if self.disable:
                return
            super().close()
            handle = getattr(self, "_handle", None)
            if handle is not None:
                handle.update(self.container)  # the saved text form now shows the final state
                self._handle = None

    return NotebookBar


RUN_CACHE_ENV = "LVMLIB_RUN_CACHE"
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def run_cache(name: str) -> dict:
    """Keyword arguments for ``lvmlib.training.train``: the fast path of a notebook's training cell.

    When the environment variable ``LVMLIB_RUN_CACHE`` names a folder, the run is checkpointed
    to ``<folder>/<name>.pt`` (``<name>-smoke.pt`` in smoke mode), and when that file exists the
    run continues from it: a finished run is loaded at once instead of trained again (a lecturer
    runs the notebook once before class). Unset (the default), it returns ``{}``: every run trains.
    Delete the folder after changing a model or its training settings.

        result = training.train(model, train, val, config, **lvmlib.runtime.run_cache("05_vae"))
    """
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise ValueError(f"name must be letters, digits, '_', '.' or '-' (a file name), got {name!r}")
    folder = os.environ.get(RUN_CACHE_ENV, "").strip()
    if not folder:
        return {}
    path = Path(folder).expanduser() / f"{name}{'-smoke' if smoke_mode() else ''}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return {"checkpoint": path, "resume_from": path if path.exists() else None}

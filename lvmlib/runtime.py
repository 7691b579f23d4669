"""The course's small shared helpers: seeding, device choice, smoke mode, the run cache.

Every notebook starts with ``seed_everything`` and ``get_device`` so that a run is
reproducible and says where it computes. Smoke mode (the environment variable
``LVMLIB_SMOKE=1``, set by the test suite) lets a notebook shrink epochs and data
so the whole course can be executed quickly; the default is the real run.
"""

from __future__ import annotations

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

    Inputs: seed, a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
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
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} asks for a GPU, but PyTorch sees no CUDA device here; "
            "use device='auto' or 'cpu'."
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
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


def describe_environment(device: str | torch.device = "auto") -> str:
    """A few lines naming the versions and the device, for a notebook's setup cell."""
    import matplotlib
    import sklearn

    dev = get_device(device)
    lines = [
        f"python       {sys.version.split()[0]} ({platform.system()} {platform.machine()})",
        f"torch        {torch.__version__}",
        f"numpy        {np.__version__}",
        f"scikit-learn {sklearn.__version__}",
        f"matplotlib   {matplotlib.__version__}",
        f"device       {dev}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
        f"smoke mode   {'on (quick run)' if smoke_mode() else 'off (the real run)'}",
    ]
    return "\n".join(lines)


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

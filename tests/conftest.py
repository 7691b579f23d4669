"""Test-suite settings: notebooks run in smoke mode (quick) unless LVMLIB_SMOKE is set already."""

import os

os.environ.setdefault("LVMLIB_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# One JupyterLab for all the browser tests of a run: its session fixture is defined here, once
# (a fixture imported into several test modules would be a separate fixture in each).
from browser_support import jupyter_lab_server  # noqa: E402,F401

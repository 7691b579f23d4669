"""Test-suite settings: notebooks run in smoke mode (quick) unless LVMLIB_SMOKE is set already."""

import os

os.environ.setdefault("LVMLIB_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

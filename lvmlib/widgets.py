"""ipywidgets explorers of the course, each with a static fallback.

An explorer shows sliders in JupyterLab; where ipywidgets cannot be used (it is
not installed, or ``static=True``, as in a non-interactive run) the same function
draws a static grid of the settings it would let you explore, so a notebook still
runs top to bottom.
"""

from __future__ import annotations


def widgets_available() -> bool:
    """True when ipywidgets can be imported."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True

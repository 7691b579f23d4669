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


def ppca_marginal_explorer(*, static: bool | None = None, w_length=(0.0, 2.5), sigma2_range=(0.05, 1.5),
                           lim: float = 6.0):
    """Explore p(x) = N(0, W W^T + sigma2 I) for D = 2, M = 1 as W and sigma2 change.

    Interactive: sliders for the length and angle of the column of W and for sigma2; each move
    redraws :func:`lvmlib.plots.ppca_marginal` with the eigenvalues of C in the title.
    Static (``static=True``, or ipywidgets missing): a 3 x 3 grid of settings (rows: sigma2,
    columns: |W|), the same picture frozen.

    Returns: the ipywidgets container (display it), or the matplotlib Figure of the grid.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from lvmlib import plots

    if static is None:
        static = not widgets_available()
    if not isinstance(static, bool):
        raise TypeError(f"static must be True, False or None, got {static!r}")
    lo, hi = w_length
    s_lo, s_hi = sigma2_range
    if not (0 <= lo < hi) or not (0 < s_lo < s_hi):
        raise ValueError(f"need 0 <= w_length[0] < w_length[1] and 0 < sigma2_range[0] < sigma2_range[1], "
                         f"got {w_length}, {sigma2_range}")

    def W_of(length, angle_deg):
        a = np.deg2rad(angle_deg)
        return np.array([[length * np.cos(a)], [length * np.sin(a)]])  # (2, 1)

    def title_of(W, sigma2):
        lam = np.linalg.eigvalsh(W @ W.T + sigma2 * np.eye(2))[::-1]
        return f"|W|={np.linalg.norm(W):.2f}, sigma2={sigma2:.2f}\neig(C) = {lam[0]:.2f}, {lam[1]:.2f}"

    if static or not widgets_available():
        lengths = np.linspace(lo, hi, 4)[1:]
        sig = np.geomspace(s_lo, s_hi, 3)
        fig, axes = plt.subplots(3, 3, figsize=(9, 9), sharex=True, sharey=True)
        for i, s2 in enumerate(sig):
            for j, length in enumerate(lengths):
                W = W_of(length, 30.0)
                plots.ppca_marginal(W, s2, ax=axes[i, j], lim=lim, title=title_of(W, s2))
        axes[0, 0].legend(fontsize=7, loc="lower right")
        fig.suptitle("p(x) = N(0, W W^T + sigma2 I): longer W stretches along W, sigma2 inflates every direction")
        fig.tight_layout()
        return fig

    import ipywidgets as w

    length = w.FloatSlider(value=min(hi, 1.5), min=lo, max=hi, step=0.05, description="|W|")
    angle = w.FloatSlider(value=30.0, min=-90.0, max=90.0, step=5.0, description="angle of W")
    sigma2 = w.FloatLogSlider(value=min(s_hi, 0.3), base=10, min=np.log10(s_lo), max=np.log10(s_hi),
                              step=0.02, description="sigma2")
    out = w.Output()

    def redraw(length, angle, sigma2):
        W = W_of(length, angle)
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
            plots.ppca_marginal(W, sigma2, ax=ax, lim=lim, title=title_of(W, sigma2))
            ax.legend(fontsize=7, loc="lower right")
            plt.show()

    w.interactive_output(redraw, {"length": length, "angle": angle, "sigma2": sigma2})
    return w.VBox([w.HBox([length, angle, sigma2]), out])

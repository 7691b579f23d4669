"""The p(x) explorer of notebook 01: how the PPCA marginal N(0, W W^T + sigma2 I) changes with W and sigma2."""

from __future__ import annotations

import numbers

from lvmlib.widgets._common import check_static, range_pair, widgets_available

__all__ = ["ppca_marginal_explorer"]


def ppca_marginal_explorer(*, static: bool | None = None, w_length=(0.0, 2.5), sigma2_range=(0.05, 1.5),
                           lim: float = 6.0):
    """Explore p(x) = N(0, W W^T + sigma2 I) for D = 2, M = 1 as W and sigma2 change.

    Interactive: sliders for the length and angle of the column of W and for sigma2; each move
    redraws :func:`lvmlib.plots.ppca_marginal` with the eigenvalues of C in the title.
    Static (``static=True``, or ipywidgets missing): a 3 x 3 grid of settings (rows: sigma2,
    columns: |W|), the same picture frozen.

    Returns: the ipywidgets container (display it), or the matplotlib Figure of the grid.
    The container also carries ``controls`` (the sliders by name: "length", "angle", "sigma2")
    and ``drawn`` (what the last redraw drew: "W" (2, 1), "sigma2", "figure", and "artists",
    the dict returned by :func:`lvmlib.plots.ppca_marginal`).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from lvmlib import plots

    static = check_static(static)
    lo, hi = range_pair("w_length", w_length)
    s_lo, s_hi = range_pair("sigma2_range", sigma2_range)
    if not (0 <= lo < hi < np.inf):
        raise ValueError(f"w_length must be (low, high) with 0 <= low < high (finite), got {w_length!r}")
    if not (0 < s_lo < s_hi < np.inf):
        raise ValueError(f"sigma2_range must be (low, high) with 0 < low < high (finite), got {sigma2_range!r}")
    if isinstance(lim, bool) or not isinstance(lim, numbers.Real):
        raise TypeError(f"lim (half-width of the plotted square) must be a number, got {lim!r}")
    if not 0 < lim < np.inf:
        raise ValueError(f"lim (half-width of the plotted square) must be positive and finite, got {lim!r}")

    def W_of(length, angle_deg):
        a = np.deg2rad(angle_deg)
        return np.array([[length * np.cos(a)], [length * np.sin(a)]])  # (2, 1)

    def title_of(W, sigma2):
        lam = np.linalg.eigvalsh(W @ W.T + sigma2 * np.eye(2))[::-1]
        return f"|W|={np.linalg.norm(W):.2f}, sigma2={sigma2:.3g}\neig(C) = {lam[0]:.2f}, {lam[1]:.2f}"

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
    from IPython.display import display

    length = w.FloatSlider(value=min(hi, 1.5), min=lo, max=hi, step=0.05, description="|W|")
    angle = w.FloatSlider(value=30.0, min=-90.0, max=90.0, step=5.0, description="angle of W")
    log_lo, log_step = np.log10(s_lo), 0.02
    start = log_lo + log_step * round((np.log10(min(s_hi, 0.3)) - log_lo) / log_step)  # on the slider's grid
    sigma2 = w.FloatLogSlider(value=10**start, base=10, min=log_lo, max=np.log10(s_hi),
                              step=log_step, description="sigma2")
    out = w.Output()
    drawn = {}  # what the last redraw drew, for the reader (and the tests) to inspect

    def redraw(length, angle, sigma2):
        W = W_of(length, angle)
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
            artists = plots.ppca_marginal(W, sigma2, ax=ax, lim=lim, title=title_of(W, sigma2))
            ax.legend(fontsize=7, loc="lower right")
            drawn.update(W=W, sigma2=sigma2, figure=fig, artists=artists)
            display(fig)
            plt.close(fig)  # shown once; no figure piles up outside the inline backend

    controls = {"length": length, "angle": angle, "sigma2": sigma2}
    w.interactive_output(redraw, controls)
    box = w.VBox([w.HBox([length, angle, sigma2]), out])
    box.controls = controls
    box.drawn = drawn
    return box

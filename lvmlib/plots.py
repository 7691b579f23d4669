"""Matplotlib figures of the course.

Every function takes ``ax=None`` (a new figure is made when it is None) and returns
what it drew, so a notebook can restyle or test it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def _axes(ax=None, figsize=(5, 4)):
    """The axes to draw on: ``ax`` itself, or a new figure's axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def image_grid(images, *, shape=(8, 8), ncols=10, ax=None, title=None, cmap="gray_r", vmin=None, vmax=None):
    """Show flattened images (N, H*W) as a grid; returns the AxesImage.

    Inputs: images (N, H*W) or (N, H, W), numpy or torch; shape the (H, W) of one image.
    """
    imgs = _numpy(images).astype(float)
    h, w = shape
    if imgs.ndim == 2:
        if imgs.shape[1] != h * w:
            raise ValueError(f"images have {imgs.shape[1]} pixels each, shape={shape} needs {h * w}")
        imgs = imgs.reshape(-1, h, w)  # (N, H, W)
    elif imgs.ndim != 3:
        raise ValueError(f"images must be (N, H*W) or (N, H, W), got shape {imgs.shape}")
    n = imgs.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    canvas = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = imgs[i]
    ax = _axes(ax, figsize=(ncols * 0.6 + 0.5, nrows * 0.6 + 0.5))
    im = ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return im

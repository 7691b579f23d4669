"""The whole latent space of a VAE with M = 2: the decoded manifold beside the data's codes.

Left: the manifold, E[x | z] decoded on a grid of z over [-extent, extent]^2 (z_1 growing
upwards, as on the axes). Right: the posterior means mu_z(x_n) of the test images, coloured by
label: where the encoder puts each digit. A point chosen on both pictures (by two sliders, or
as the posterior mean of a chosen test image) is decoded beside them.
"""

from __future__ import annotations

import numpy as np

from lvmlib.widgets._common import (Stopwatch, as_data, check_model, check_static, decode, grey_range,
                                    image_shape_of, mask_png, png, positive_int, posterior_means, rgba_png, tile)

__all__ = ["latent_space_explorer", "manifold"]

MARKER_RGBA = np.array([214, 39, 40, 255], dtype=np.uint8)  # matplotlib's C3 red


def manifold(model, grid: int = 15, extent: float = 3.0, image_shape=None) -> tuple[np.ndarray, np.ndarray]:
    """Decoded means on a grid of the 2-D latent space, tiled into one picture.

    z at column c, row r (r = 0 at the top): (v_c, v_{grid-1-r}), v = linspace(-extent, extent, grid).
    Inputs: model a VAE with M = 2. Returns: the picture (grid (H+1) - 1, grid (W+1) - 1), one
    pixel of NaN between tiles, and the grid's latents (grid, grid, 2) in the same layout.
    """
    model = check_model(model)
    if model.config.M != 2:
        raise ValueError(f"model must have M = 2 latent dimensions to draw its latent space, got M = {model.config.M}")
    grid = positive_int("grid", grid, minimum=2)
    if isinstance(extent, bool) or not isinstance(extent, (int, float, np.floating)) or not 0 < extent < np.inf:
        raise ValueError(f"extent (half-width of the latent square) must be a positive finite number, got {extent!r}")
    shape = image_shape_of(model, image_shape)
    v = np.linspace(-extent, extent, grid)
    z = np.stack(np.meshgrid(v, v[::-1]), axis=-1)  # (grid, grid, 2): [r, c] = (v_c, v_{grid-1-r})
    images = decode(model, z.reshape(-1, 2))  # (grid * grid, D), row-major like z
    return tile(images, shape, ncols=grid), z


def latent_space_explorer(model, data, labels=None, *, grid: int = 15, extent: float = 3.0, max_points: int = 2000,
                          static: bool | None = None, image_shape=None, vmin=None, vmax=None):
    """Explore a 2-D latent space: the decoded manifold over a grid beside the data's posterior means.

    Inputs:
        model       a trained :class:`lvmlib.vae.VAE` with M = 2.
        data        (N, D) test images; labels (N,) integer labels to colour them by (optional).
        grid        the manifold is grid x grid decoded images; extent its half-width in z.
        max_points  at most this many posterior means are drawn (the first ones).
        static, image_shape, vmin, vmax as in :func:`lvmlib.widgets.latent_traversal_explorer`.

    Interactive: sliders "z0", "z1" choose a point; the point is marked on both pictures and
    decoded beside them; "index" and the button go to the posterior mean of that test image.
    Returns: the ipywidgets container, carrying ``controls`` ("z0", "z1", "index", "go") and
    ``drawn`` ("z" (2,), "image" (H, W), "png", "map_png" (the two pictures, sent once),
    "marks_png" (the transparent layer on top of them with the mark), "marks" {"manifold":
    (row, col), "codes": (row, col)} pixel positions of the mark in both,
    "manifold" the tiled picture, "means" (N, 2), "seconds" the time of the last redraw).
    Static: a matplotlib Figure with the two pictures.
    """
    model = check_model(model)
    if model.config.M != 2:
        raise ValueError(f"model must have M = 2 latent dimensions for latent_space_explorer, got M = {model.config.M} "
                         "(use latent_traversal_explorer for more)")
    static = check_static(static)
    max_points = positive_int("max_points", max_points)
    shape = image_shape_of(model, image_shape)
    vmin, vmax = grey_range(model, vmin, vmax)
    x = as_data(model, data)
    if labels is not None:
        labels = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
        if labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be {x.shape[0]} integers, one per row of data, got "
                             f"{labels.dtype} of shape {labels.shape}")
    picture, _ = manifold(model, grid, extent, shape)
    means = posterior_means(model, x)  # (N, 2)
    fig, axes = _figure(picture, means[:max_points], None if labels is None else labels[:max_points],
                        grid, extent, shape, vmin, vmax)
    if static:
        return fig

    import ipywidgets as w
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    background = np.asarray(canvas.buffer_rgba()).copy()  # (h, w, 4), drawn and sent once
    height, width = background.shape[:2]
    plt.close(fig)

    def mark_at(ax, z):
        px, py = ax.transData.transform(np.asarray(z, dtype=float))
        return int(round(height - py)), int(round(px))  # (row, col) in the picture

    sliders = {f"z{k}": w.FloatSlider(value=0.0, min=-extent, max=extent, step=0.05, description=f"z{k}",
                                      readout_format=".2f", continuous_update=True) for k in (0, 1)}
    index_w = w.BoundedIntText(value=0, min=0, max=x.shape[0] - 1, description="test image")
    go = w.Button(description="go to its mu_z", tooltip="move the point to the posterior mean of this test image")
    # the two pictures stay; only a transparent layer with the marks on top of them is redrawn
    same_place = dict(width=f"{width}px", height=f"{height}px", grid_area="picture")
    map_png = rgba_png(background)
    map_w = w.Image(value=map_png, format="png", layout=w.Layout(**same_place))
    marks_w = w.Image(format="png", layout=w.Layout(**same_place))
    stack = w.GridBox([map_w, marks_w], layout=w.Layout(grid_template_areas='"picture"', width=f"{width}px"))
    pic = w.Image(format="png", layout=w.Layout(width="140px", height="140px"))
    status = w.HTML()
    hold = {"on": False}
    drawn: dict = {"manifold": picture, "means": means, "map_png": map_png}

    def redraw(*_):
        if hold["on"]:
            return
        with Stopwatch() as t:
            z = np.array([sliders["z0"].value, sliders["z1"].value])
            image = decode(model, z[None])[0].reshape(shape)
            shown = png(image, vmin, vmax, size=140)
            pic.value = shown
            layer = np.zeros((height, width), dtype=np.uint8)  # 0 transparent, 1 the mark's colour
            marks = {name: mark_at(ax, z) for name, ax in zip(("manifold", "codes"), axes)}
            for row, col in marks.values():
                _cross(layer, row, col)
            marks_png = mask_png(layer, MARKER_RGBA[:3])
            marks_w.value = marks_png
        drawn.update(z=z, image=image, png=shown, marks_png=marks_png, marks=marks, seconds=t.seconds)
        status.value = f"z = ({z[0]:.2f}, {z[1]:.2f}): decoded and drawn in {1e3 * t.seconds:.1f} ms on {model.device.type}"

    def go_to_test_image(*_):
        z = np.clip(means[index_w.value], -extent, extent)
        hold["on"] = True
        try:
            sliders["z0"].value, sliders["z1"].value = float(z[0]), float(z[1])
        finally:
            hold["on"] = False
        redraw()

    for s in sliders.values():
        s.observe(redraw, names="value")
    go.on_click(go_to_test_image)
    redraw()
    box = w.VBox([stack, w.HBox([w.VBox([sliders["z0"], sliders["z1"], w.HBox([index_w, go])]),
                                 w.VBox([w.Label("E[x | z] at the marked point"), pic])]), status])
    box.controls = {**sliders, "index": index_w, "go": go}
    box.drawn = drawn
    return box


def _cross(layer: np.ndarray, row: int, col: int, arm: int = 8, width: int = 1) -> None:
    """Set a cross centred at (row, col) to 1 in an (h, w) layer, in place (clipped at the edges)."""
    h, w = layer.shape[:2]
    r0, r1 = max(0, row - arm), min(h, row + arm + 1)
    c0, c1 = max(0, col - arm), min(w, col + arm + 1)
    if 0 <= row < h and c0 < c1:
        layer[max(0, row - width):min(h, row + width + 1), c0:c1] = 1
    if 0 <= col < w and r0 < r1:
        layer[r0:r1, max(0, col - width):min(w, col + width + 1)] = 1


def _figure(picture, means, labels, grid, extent, shape, vmin, vmax):
    import matplotlib.pyplot as plt

    step = 2 * extent / (grid - 1)
    half = step / 2  # each tile is centred on its z
    lim = (-extent - half, extent + half)
    fig, (ax_m, ax_c) = plt.subplots(1, 2, figsize=(9, 4.3))  # 900 px: fits beside a notebook prompt
    ax_m.imshow(picture, cmap="gray_r", vmin=vmin, vmax=vmax, extent=(*lim, *lim), interpolation="nearest")
    ax_m.set_title(f"decoded E[x|z] on a {grid} x {grid} grid")
    if labels is None:
        ax_c.scatter(means[:, 0], means[:, 1], s=6, alpha=0.6, color="C0")
    else:
        for k in np.unique(labels):
            sel = labels == k
            ax_c.scatter(means[sel, 0], means[sel, 1], s=6, alpha=0.7, color=f"C{int(k) % 10}", label=str(k))
        ax_c.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.01, 0.5), title="label")
    ax_c.set_title(f"posterior means mu_z(x) of {len(means)} test images")
    for ax in (ax_m, ax_c):
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
        ax.set_xlabel("$z_0$")
        ax.set_ylabel("$z_1$")
    fig.tight_layout()
    return fig, (ax_m, ax_c)

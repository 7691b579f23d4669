"""Latent traversal: move one latent dimension at a time and watch the decoded image change.

Starting from a point z_0 (the prior's mean 0, or the posterior mean mu_z(x_n) of a test
image x_n), slider m sets z_m and the picture shows the decoder's mean E[x | z]. With data,
the sliders are the most active dimensions first, by the activity of Burda et al. (2016)

    A_m = Var_n( mu_{z,m}(x_n) )      (lvmlib.variational.active_units; active when A_m > 0.01),

so a model with many latent dimensions shows the ones that matter. An inactive (collapsed)
dimension moves nothing: its row of the traversal is one image repeated.
"""

from __future__ import annotations

import numpy as np
import torch

from lvmlib.widgets._common import (Stopwatch, all_finite, as_data, check_model, check_static, decode, finite_range,
                                    grey_range, image_shape_of, index, png, positive_int, posterior_means)

__all__ = ["latent_sweep", "latent_traversal_explorer"]

START_KINDS = ("prior", "posterior")


@torch.no_grad()
def latent_sweep(model, z0: torch.Tensor, dim: int, values: torch.Tensor) -> torch.Tensor:
    """The decoded images as one latent dimension sweeps over values, the others fixed at z0.

        z_s = z0 with its entry ``dim`` replaced by values[s];   images_s = E[x | z_s]

    Inputs: model a VAE; z0 (M,) the point to start from (not changed); dim the dimension,
        0..M-1; values (S,) the values it takes.
    Returns: (S, D) decoder means on the model's device (one row of a latent traversal).
    """
    model = check_model(model)
    M = model.config.M
    if not torch.is_tensor(z0) or z0.shape != (M,):
        raise ValueError(f"z0 must be a tensor of shape (M,) = ({M},), got "
                         f"{tuple(z0.shape) if torch.is_tensor(z0) else type(z0).__name__}")
    dim = index("dim", dim, M, what="latent dimension")
    if not torch.is_tensor(values) or values.dim() != 1 or len(values) < 1:
        raise ValueError("values must be a 1-D tensor of at least one value")
    for name, t in (("z0", z0), ("values", values)):
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
        if t.is_floating_point() and not all_finite(t):
            raise ValueError(f"{name} must be finite, got {int((~torch.isfinite(t)).sum())} NaN or infinite value(s)")
    z = z0.to(device=model.device, dtype=model.dtype).expand(len(values), M).clone()  # (S, M)
    z[:, dim] = values.to(z)
    return model.decoder.mean(z)  # (S, D)


def _activity(means: np.ndarray | None) -> np.ndarray | None:
    """A_m = Var_n(mu_{n,m}) (population variance) over the data's posterior means, or None without data."""
    if means is None or len(means) < 2:
        return None
    from lvmlib.variational import active_units

    return active_units(torch.from_numpy(means))[1].numpy()


def latent_traversal_explorer(model, data=None, *, start="prior", max_sliders: int = 8, value_range=(-3.0, 3.0),
                              steps: int = 9, static: bool | None = None, image_shape=None, vmin=None, vmax=None):
    """Explore a VAE's latent space one dimension at a time: one slider per latent dimension.

    Inputs:
        model        a trained :class:`lvmlib.vae.VAE`; decoding runs on its device without gradients.
        data         (N, D) test images in the form the model takes (optional): with data, the sliders
                     are ordered by activity A_m (most active first) and the start can be the
                     posterior mean of one of them.
        start        "prior" (z_0 = 0, the prior's mean) or the index n of a test image (z_0 = mu_z(x_n)).
        max_sliders  at most this many sliders (the most active dimensions); the other dimensions
                     stay at z_0.
        value_range  (low, high) of every slider; a start value outside it is clipped to it.
        steps        columns of the static figure (values from low to high).
        static       True: the static figure; None: static only when ipywidgets is missing.
        image_shape  (H, W) of one image (default: square, from D); vmin, vmax the grey range
                     (default: the decoder mean's range, [0, 1] Bernoulli, [0, L-1] categorical).

    Interactive: the sliders, the decoded image E[x|z] redrawn as a slider moves, a "start at"
    choice (prior mean / posterior mean of test image n) with the test image shown, and a reset
    button that puts every slider back to z_0.
    Returns: the ipywidgets container, carrying ``controls`` ("z<m>" for the slider of dimension m,
    and "reset"; with data also "start" and "index"), ``dims`` (the dimensions on sliders, in
    order), ``activity`` (A (M,) or None) and ``drawn`` (the last redraw: "z" (M,) the decoded
    latent, "image" (H, W) the decoded mean, "png" the bytes shown, "z0" (M,) the start point,
    "start", "index", "seconds" the time the redraw took).
    Static: a matplotlib Figure, row r sweeping dimension ``dims[r]`` over ``steps`` values from
    low to high with the others at z_0 (:func:`lvmlib.plots.latent_traversal`).
    """
    model = check_model(model)
    static = check_static(static)
    max_sliders = positive_int("max_sliders", max_sliders)
    steps = positive_int("steps", steps, minimum=2)
    lo, hi = finite_range("value_range", value_range)
    shape = image_shape_of(model, image_shape)
    vmin, vmax = grey_range(model, vmin, vmax)
    x = None if data is None else as_data(model, data)
    if isinstance(start, str):
        if start != "prior":
            raise ValueError(f"start must be 'prior' or the index of a test image in data, got {start!r}")
        start_index = None
    else:
        if x is None:
            raise ValueError("start=<index> picks a test image's posterior mean: pass data= as well")
        start_index = index("start", start, x.shape[0])

    M = model.config.M
    means = None if x is None else posterior_means(model, x)  # (N, M)
    activity = _activity(means)
    order = np.arange(M) if activity is None else np.argsort(-activity, kind="stable")
    dims = [int(m) for m in order[:max_sliders]]

    def start_point(n):
        return np.zeros(M) if n is None else means[n].copy()  # (M,)

    if static:
        return _static_figure(model, dims, start_point(start_index), np.linspace(lo, hi, steps), shape, vmin, vmax,
                              "prior mean z = 0" if start_index is None else f"posterior mean of test image {start_index}")

    import ipywidgets as w

    sliders = {m: w.FloatSlider(value=float(np.clip(start_point(start_index)[m], lo, hi)), min=lo, max=hi,
                                step=0.05, description=f"z{m}", readout_format=".2f", continuous_update=True)
               for m in dims}
    picture = w.Image(format="png", layout=w.Layout(width="168px", height="168px"))
    status = w.HTML()
    reset = w.Button(description="reset", tooltip="every slider back to the start point")
    controls = {f"z{m}": s for m, s in sliders.items()}
    controls["reset"] = reset
    state = {"z0": start_point(start_index), "index": start_index, "hold": False}
    drawn: dict = {}

    def redraw(*_):
        if state["hold"]:
            return
        with Stopwatch() as t:
            z = state["z0"].copy()
            for m, s in sliders.items():
                z[m] = s.value
            image = decode(model, z[None])[0].reshape(shape)  # E[x|z], (H, W)
            shown = png(image, vmin, vmax)
            picture.value = shown
        drawn.update(z=z, image=image, png=shown, z0=state["z0"].copy(), index=state["index"],
                     start="prior" if state["index"] is None else "posterior", seconds=t.seconds)
        where = "z = 0 (prior mean)" if state["index"] is None else f"mu_z(test image {state['index']})"
        status.value = (f"start: {where}; decoded and drawn in {1e3 * t.seconds:.1f} ms "
                        f"on {model.device.type}")

    def go_to_start(*_):
        state["hold"] = True
        try:
            for m, s in sliders.items():
                s.value = float(np.clip(state["z0"][m], lo, hi))
        finally:
            state["hold"] = False
        redraw()

    reset.on_click(go_to_start)
    for s in sliders.values():
        s.observe(redraw, names="value")

    if activity is None:
        order_text = "sliders: dimensions 0.." + str(len(dims) - 1)
    else:
        order_text = "sliders, most active first (A_m = Var over the data of mu_z,m): " + ", ".join(
            f"z{m} {activity[m]:.3g}" for m in dims)
    header = w.HTML(f"<small>{order_text}" + (f"; {M - len(dims)} more dimensions stay at the start point"
                                             if M > len(dims) else "") + "</small>")
    right = [w.Label("E[x | z]"), picture]
    bottom = [reset]
    if x is not None:
        original = w.Image(format="png", layout=w.Layout(width="84px", height="84px"))
        start_w = w.Dropdown(options=[("prior mean z = 0", "prior"), ("posterior mean of a test image", "posterior")],
                             value="prior" if start_index is None else "posterior", description="start at")
        index_w = w.BoundedIntText(value=start_index or 0, min=0, max=x.shape[0] - 1, description="test image")
        controls.update(start=start_w, index=index_w)

        def show_original():
            original.value = png(x[index_w.value].double().cpu().numpy().reshape(shape), vmin, vmax, size=84)

        def choose(*_):
            show_original()
            state["index"] = index_w.value if start_w.value == "posterior" else None
            state["z0"] = start_point(state["index"])
            go_to_start()

        def choose_index(*_):
            if start_w.value == "posterior":
                choose()
            else:
                start_w.value = "posterior"  # picking an image means starting from it

        start_w.observe(choose, names="value")
        index_w.observe(choose_index, names="value")
        show_original()
        right += [w.Label("the test image"), original]
        bottom = [start_w, index_w, reset]

    box = w.VBox([header, w.HBox([w.VBox(list(sliders.values())), w.VBox(right)]), w.HBox(bottom), status])
    redraw()
    box.controls = controls
    box.dims = dims
    box.activity = activity
    box.drawn = drawn
    return box


def _static_figure(model, dims, z0, values, shape, vmin, vmax, where):
    import matplotlib.pyplot as plt

    from lvmlib import plots

    R, S = len(dims), len(values)
    z0, values_t = torch.from_numpy(z0), torch.from_numpy(np.asarray(values))
    images = np.stack([latent_sweep(model, z0, m, values_t).double().cpu().numpy() for m in dims])  # (R, S, D)
    fig, ax = plt.subplots(figsize=(S * 0.7 + 1.2, R * 0.7 + 1.0))
    plots.latent_traversal(images, values, dims=dims, shape=shape, ax=ax, vmin=vmin, vmax=vmax,
                           title=f"latent traversal from the {where}")
    fig.tight_layout()
    return fig

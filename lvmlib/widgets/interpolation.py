"""Interpolation in latent space: walk the straight line between the codes of two images.

Encode two images x_a, x_b to their posterior means z_a = mu_z(x_a), z_b = mu_z(x_b), walk

    z_t = (1 - t) z_a + t z_b,    t in [0, 1],

and decode each point to E[x | z_t]. Where the KL term has made the latent space continuous,
every step decodes to a plausible image, unlike the pixel-space blend (1 - t) x_a + t x_b,
which is two faint images on top of each other.
"""

from __future__ import annotations

import numpy as np
import torch

from lvmlib.widgets._common import (Stopwatch, all_finite, as_data, check_model, check_static, decode, grey_range,
                                    image_shape_of, index, png, positive_int, posterior_means, tile)

__all__ = ["latent_path", "interpolate", "interpolation_explorer"]


def latent_path(z_a: torch.Tensor, z_b: torch.Tensor, steps: int) -> torch.Tensor:
    """Points evenly spaced on the segment from z_a to z_b, both ends included.

        z_k = (1 - t_k) z_a + t_k z_b,   t_k = k / (steps - 1),  k = 0..steps-1

    Inputs: z_a, z_b (M,) tensors; steps >= 2. Returns: (steps, M), row 0 = z_a, row steps-1 = z_b.
    """
    steps = positive_int("steps", steps, minimum=2)
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        if not torch.is_tensor(z) or z.dim() != 1 or not z.is_floating_point():
            got = f"shape {tuple(z.shape)}, dtype {z.dtype}" if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"{name} must be a 1-D float tensor (M,), got {got}")
        if not all_finite(z):
            raise ValueError(f"{name} must be finite, got NaN or infinite values")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must have one shape (M,), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    t = torch.linspace(0.0, 1.0, steps, dtype=z_a.dtype, device=z_a.device)[:, None]  # (steps, 1)
    return (1 - t) * z_a + t * z_b  # (steps, M)


@torch.no_grad()
def interpolate(model, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Decoded images along the latent path between two images' posterior means.

        z_a = mu_z(x_a), z_b = mu_z(x_b);  images_k = E[x | z_k] with z_k on :func:`latent_path`

    Inputs: model a VAE; x_a, x_b (D,) one image each (tensors or numpy arrays); steps >= 2.
    Returns: (steps, D) on the model's device; row 0 decodes z_a, the last row z_b.
    """
    model = check_model(model)
    D = model.config.D
    images = []
    for name, x in (("x_a", x_a), ("x_b", x_b)):
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.asarray(x))
        if not torch.is_tensor(x) or tuple(x.shape) not in ((D,), (1, D)):
            got = f"shape {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"{name} must be one image, a tensor or numpy array of shape (D,) = ({D},), got {got}")
        images.append(x.reshape(D).to(model.device))
    mu_z, _ = model.encode(torch.stack(images))  # (2, M); encode checks the values
    return model.decoder.mean(latent_path(mu_z[0], mu_z[1], steps))  # (steps, D)


def interpolation_explorer(model, data, i: int = 0, j: int = 1, *, steps: int = 10, static: bool | None = None,
                           image_shape=None, vmin=None, vmax=None):
    """Walk between two test images in latent space: a slider along the path and a static strip.

    Inputs:
        model        a trained :class:`lvmlib.vae.VAE`; decoding runs on its device without gradients.
        data         (N, D) test images in the form the model takes; i, j the indices of the two images.
        steps        images in the strip (both ends included), >= 2.
        static, image_shape, vmin, vmax as in :func:`lvmlib.widgets.latent_traversal_explorer`.

    Interactive: a slider t from 0 (x_i) to 1 (x_j) redraws E[x | z_t]; the indices i and j
    choose the two images; the strip of ``steps`` decoded images along the path sits below.
    Returns: the ipywidgets container, carrying ``controls`` ("t", "i", "j") and ``drawn`` ("t",
    "z" (M,), "image" (H, W), "png", "i", "j", "path" (steps, M), "strip" (steps, D) the decoded
    path, "seconds" the time of the last redraw).
    Static: a matplotlib Figure: x_i, the decoded path, x_j in one row.
    """
    model = check_model(model)
    static = check_static(static)
    steps = positive_int("steps", steps, minimum=2)
    shape = image_shape_of(model, image_shape)
    vmin, vmax = grey_range(model, vmin, vmax)
    x = as_data(model, data)
    n = x.shape[0]
    i, j = index("i", i, n), index("j", j, n)

    def path_of(i, j):
        means = posterior_means(model, x[[i, j]])  # (2, M)
        path = latent_path(torch.from_numpy(means[0]), torch.from_numpy(means[1]), steps).numpy()  # (steps, M)
        return means, path, decode(model, path)  # (steps, D)

    def image_of(k):
        return x[k].double().cpu().numpy()  # (D,)

    if static:
        import matplotlib.pyplot as plt

        from lvmlib import plots

        _, _, strip = path_of(i, j)
        fig, ax = plt.subplots(figsize=((steps + 2) * 0.75 + 0.5, 1.6))
        plots.image_grid(np.vstack([image_of(i), strip, image_of(j)]), shape=shape, ncols=steps + 2, ax=ax,
                         vmin=vmin, vmax=vmax,
                         title=f"test image {i}, E[x|z_t] for t = 0 .. 1 in {steps} steps, test image {j}")
        fig.tight_layout()
        return fig

    import ipywidgets as w

    t_w = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.02, description="t", readout_format=".2f",
                        continuous_update=True)
    i_w = w.BoundedIntText(value=i, min=0, max=n - 1, description="image i")
    j_w = w.BoundedIntText(value=j, min=0, max=n - 1, description="image j")
    size = 112
    pic_i, pic, pic_j = (w.Image(format="png", layout=w.Layout(width=f"{size}px", height=f"{size}px"))
                         for _ in range(3))
    strip_w = w.Image(format="png")
    status = w.HTML()
    state: dict = {}
    drawn: dict = {}

    def new_pair(*_):
        a, b = i_w.value, j_w.value
        means, path, strip = path_of(a, b)
        state.update(means=means, i=a, j=b)
        pic_i.value = png(image_of(a).reshape(shape), vmin, vmax, size=size)
        pic_j.value = png(image_of(b).reshape(shape), vmin, vmax, size=size)
        strip_w.value = png(tile(strip, shape, ncols=steps), vmin, vmax, size=steps * 48)  # gaps transparent
        drawn.update(path=path, strip=strip, i=a, j=b)
        redraw()

    def redraw(*_):
        with Stopwatch() as sw:
            t = t_w.value
            z = (1 - t) * state["means"][0] + t * state["means"][1]  # (M,) the point z_t of the path
            image = decode(model, z[None])[0].reshape(shape)
            shown = png(image, vmin, vmax, size=size)
            pic.value = shown
        drawn.update(t=t, z=z, image=image, png=shown, seconds=sw.seconds)
        status.value = f"t = {t:.2f}: decoded and drawn in {1e3 * sw.seconds:.1f} ms on {model.device.type}"

    t_w.observe(redraw, names="value")
    i_w.observe(new_pair, names="value")
    j_w.observe(new_pair, names="value")
    new_pair()
    row = w.HBox([w.VBox([w.Label("image i"), pic_i]), w.VBox([w.Label("E[x | z_t]"), pic]),
                  w.VBox([w.Label("image j"), pic_j])])
    box = w.VBox([w.HBox([i_w, j_w]), t_w, row, w.Label(f"the path in {steps} steps, t = 0 to 1:"), strip_w, status])
    box.controls = {"t": t_w, "i": i_w, "j": j_w}
    box.drawn = drawn
    return box

"""What the explorers share: is ipywidgets there, argument checks, and decoding a VAE's latents fast.

The latent explorers redraw by decoding on the model's own device without gradients and
turning the decoded means into a PNG directly (a colour map and an enlargement by whole
pixels), which takes milliseconds; a matplotlib figure is drawn only once, where one is needed.
"""

from __future__ import annotations

import io
import math
import numbers
import time

import numpy as np
import torch


def widgets_available() -> bool:
    """True when ipywidgets can be imported."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def check_static(static) -> bool:
    """``static`` as a bool: None means "static when ipywidgets is missing"; anything else is a TypeError."""
    if static is None:
        return not widgets_available()
    if not isinstance(static, bool):
        raise TypeError(f"static must be True, False or None, got {static!r}")
    return static or not widgets_available()


def range_pair(name: str, value) -> tuple[float, float]:
    """(low, high) from a pair of numbers, or a TypeError naming the argument."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    return low, high


def all_finite(t: torch.Tensor) -> bool:
    """True when every value of t is finite (one host read). A tensor on PyTorch's data-less ``meta``
    device has no values to read and counts as finite (the exercise checks run functions there to see
    which device their tensors land on)."""
    return t.device.type == "meta" or bool(torch.isfinite(t).all())


def finite_range(name: str, value) -> tuple[float, float]:
    """A pair low < high of finite numbers, or an error naming the argument."""
    low, high = range_pair(name, value)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name} must be (low, high) with low < high, both finite, got {value!r}")
    return low, high


def positive_int(name: str, value, minimum: int = 1) -> int:
    """An integer >= minimum (bools refused), or an error naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def index(name: str, value, n: int, what: str = "test image") -> int:
    """An index 0 <= value < n into the data (bools refused), or an error naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be the integer index of a {what}, got {value!r}")
    if not 0 <= value < n:
        raise IndexError(f"{name} must be an index 0..{n - 1} of a {what} (the data has {n} rows), got {value!r}")
    return int(value)


def check_model(model, name: str = "model"):
    """The VAE to explore (an lvmlib.vae.VAE), or a TypeError naming the argument."""
    from lvmlib.vae import VAE

    if not isinstance(model, VAE):
        raise TypeError(f"{name} must be a trained lvmlib.vae.VAE (an encoder and a decoder), "
                        f"got {type(model).__name__}")
    return model


def image_shape_of(model, image_shape) -> tuple[int, int]:
    """(H, W) of one image: given, or the square root of D when D is a square (8x8 digits, 28x28 MNIST)."""
    D = model.config.D
    if image_shape is None:
        side = math.isqrt(D)
        if side * side != D:
            raise ValueError(f"image_shape is needed: the model's D = {D} is not a square number of pixels")
        return side, side
    try:
        h, w = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise TypeError(f"image_shape must be a pair (H, W) of integers, got {image_shape!r}") from None
    if h < 1 or w < 1 or h * w != D:
        raise ValueError(f"image_shape {image_shape!r} has {h * w} pixels; the model's images have D = {D}")
    return h, w


def grey_range(model, vmin, vmax) -> tuple[float | None, float | None]:
    """The grey values shown from white to black: the decoder mean's own range unless given.

    Bernoulli: E[x|z] in [0, 1]; categorical: the expected level in [0, L - 1]; Gaussian: the
    decoded images' own range (None, None).
    """
    for name, v in (("vmin", vmin), ("vmax", vmax)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)):
            raise TypeError(f"{name} must be a finite number or None, got {v!r}")
    like = model.config.likelihood
    default = {"bernoulli": (0.0, 1.0), "categorical": (0.0, float(model.config.n_levels - 1))}.get(like, (None, None))
    lo = default[0] if vmin is None else float(vmin)
    hi = default[1] if vmax is None else float(vmax)
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"vmin must be below vmax, got vmin={lo!r}, vmax={hi!r}")
    return lo, hi


def as_data(model, data, name: str = "data") -> torch.Tensor:
    """A data set (N, D) as a tensor the model's encoder takes: its shape checked here, its values by
    the model's ``check_data`` (range or levels of the likelihood) when it has one, errors naming ``name``."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    if not torch.is_tensor(data):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array of shape (N, D), got {type(data).__name__}")
    D = model.config.D
    if data.dim() != 2 or data.shape[1] != D or data.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, D={D}) with N >= 1, got {tuple(data.shape)}")
    check = getattr(model, "check_data", None)
    return check(data, name) if callable(check) else data


@torch.no_grad()
def posterior_means(model, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """mu_z(x) for every row, encoded on the model's device without gradients. Returns (N, M) float64."""
    out = [model.encode(x[s:s + batch_size])[0].double().cpu() for s in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


@torch.no_grad()
def decode(model, z) -> np.ndarray:
    """E[x|z] for latents z (n, M), decoded on the model's device without gradients. Returns (n, D) float64."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float64), dtype=model.dtype, device=model.device)
    return model.decoder.mean(z).double().cpu().numpy()


def png(image: np.ndarray, vmin, vmax, *, cmap: str = "gray_r", size: int = 168) -> bytes:
    """One image (H, W) as a PNG, grey levels mapped through ``cmap`` and enlarged by whole pixels
    to about ``size`` pixels across (no smoothing)."""
    import matplotlib

    img = np.asarray(image, dtype=np.float64)
    lo = np.nanmin(img) if vmin is None else vmin
    hi = np.nanmax(img) if vmax is None else vmax
    scaled = np.clip((img - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    rgba = matplotlib.colormaps[cmap](scaled, bytes=True)  # (H, W, 4) uint8
    k = max(1, size // max(img.shape))
    rgba = np.repeat(np.repeat(rgba, k, axis=0), k, axis=1)
    return rgba_png(rgba)


def rgba_png(rgba: np.ndarray) -> bytes:
    """An (H, W, 4) uint8 array as PNG bytes (fast compression: speed matters more than size here)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), mode="RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def mask_png(mask: np.ndarray, rgb) -> bytes:
    """An (H, W) mask of 0/1 as a PNG: 0 transparent, 1 the colour ``rgb`` (a palette image, quick to encode)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    img.putpalette([0, 0, 0, *(int(c) for c in rgb)])
    buf = io.BytesIO()
    img.save(buf, format="PNG", transparency=0, compress_level=1)
    return buf.getvalue()


def tile(images: np.ndarray, shape: tuple[int, int], ncols: int, gap: float = np.nan) -> np.ndarray:
    """Images (n, H*W) laid out in rows of ``ncols``, one pixel of ``gap`` between them. Returns a 2-D array."""
    h, w = shape
    n = images.shape[0]
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), gap)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[i].reshape(h, w)
    return canvas


class Stopwatch:
    """Seconds since construction: ``with Stopwatch() as t: ...; t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False

"""Why generative models: a classifier p(y|x) next to a density p(x) (the lecture's introduction).

A discriminative model gives p(y|x) and nothing else: shown an input unlike anything
it was trained on, it still picks a class, often with high confidence. A generative
model also gives p(x), so p(x, y) = p(y|x) p(x) says when an input is improbable
and a confident decision should not be trusted.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

CORRUPTIONS = ("noise", "inverted", "half erased", "shifted", "blobs")


def _as_tensor(name: str, value) -> torch.Tensor:
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be numbers (an array or tensor), got {type(value).__name__}") from None
    if not torch.is_floating_point(t):
        t = t.double()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    return t


def log_joint(log_p_y_given_x, log_p_x) -> torch.Tensor:
    """log p(x, y) = log p(y|x) + log p(x) for every input and every class.

    Inputs: log_p_y_given_x (N, K) a classifier's log-probabilities; log_p_x (N,) a density's log p(x).
    Returns: (N, K).
    """
    a = _as_tensor("log_p_y_given_x", log_p_y_given_x)
    b = _as_tensor("log_p_x", log_p_x)
    if a.ndim != 2 or b.ndim != 1 or a.shape[0] != b.shape[0]:
        raise ValueError(f"log_p_y_given_x must be (N, K) and log_p_x (N,), got {tuple(a.shape)} and {tuple(b.shape)}")
    return a + b[:, None]  # (N, K)


def unfamiliar(log_p_x, log_p_x_reference, fraction: float = 0.01) -> torch.Tensor:
    """Flag inputs less probable than all but ``fraction`` of the reference inputs.

    threshold = the ``fraction``-quantile of log p(x) on reference (held-out, in-distribution) data;
    an input is unfamiliar when its log p(x) < threshold.
    Inputs: log_p_x (N,); log_p_x_reference (R,); fraction in (0, 1).
    Returns: a boolean tensor (N,).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction must be a number between 0 and 1, got {fraction!r}")
    lp = _as_tensor("log_p_x", log_p_x)
    ref = _as_tensor("log_p_x_reference", log_p_x_reference)
    if lp.ndim != 1 or ref.ndim != 1 or ref.numel() == 0:
        raise ValueError(f"log_p_x and log_p_x_reference must be non-empty 1-D, got {tuple(lp.shape)}, {tuple(ref.shape)}")
    threshold = torch.quantile(ref.to(lp.dtype), float(fraction))
    return lp < threshold


def corrupt(X, kind: str, seed: int = 0, shape=(8, 8)) -> np.ndarray:
    """Inputs unlike the training images, made from images X (N, H*W) with values in [0, 1].

    kind: "noise" (uniform pixels), "inverted" (1 - x), "half erased" (top half set to 0),
    "shifted" (moved 3 pixels to the right, wrapping around), "blobs" (random 0/1 pixels).
    Returns: (N, H*W) float32 in [0, 1].
    """
    try:
        X = np.asarray(X.detach().cpu() if isinstance(X, torch.Tensor) else X, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"X must be images (N, H*W) as numbers, got {type(X).__name__}") from None
    if X.ndim != 2 or X.shape[1] != shape[0] * shape[1]:
        raise ValueError(f"X must be (N, {shape[0] * shape[1]}) images, got shape {X.shape}")
    if not np.isfinite(X).all() or (X.size and (X.min() < 0 or X.max() > 1)):
        raise ValueError("X must hold finite pixel values in [0, 1] (use scale='unit' data)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    h, w = shape
    if kind == "noise":
        return rng.uniform(0, 1, size=X.shape).astype(np.float32)
    if kind == "inverted":
        return 1.0 - X
    if kind == "half erased":
        out = X.reshape(-1, h, w).copy()  # (N, H, W)
        out[:, : h // 2, :] = 0.0
        return out.reshape(len(X), -1)
    if kind == "shifted":
        return np.roll(X.reshape(-1, h, w), 3, axis=2).reshape(len(X), -1)  # (N, H*W)
    if kind == "blobs":
        return (rng.uniform(0, 1, size=X.shape) > 0.7).astype(np.float32)
    raise ValueError(f"kind must be one of {CORRUPTIONS}, got {kind!r}")


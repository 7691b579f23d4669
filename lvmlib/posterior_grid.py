"""The exact posterior of a model with a 2-D latent space, by quadrature on a grid.

For M = 2 the integral behind everything a VAE approximates can be done numerically:

    p(x)     = int p(x|z) p(z) dz  ~=  sum_ij c_ij p(x|z_ij) p(z_ij) * h1 * h2
    log p(x) ~= logsumexp_ij [log p(x|z_ij) + log p(z_ij) + log c_ij] + log(h1 h2)
    p(z|x)   = p(x|z) p(z) / p(x)                                    (Bayes; the lecture's p(z|x))

on the nodes z_ij of an (n+1) x (n+1) grid over a box, with the trapezoid weights c_ij (1 inside,
1/2 on an edge, 1/4 at a corner) and cell area h1 h2 (forgetting the cell area is the classic bug:
the result is off by log(h1 h2)). The log-sum-exp keeps it stable when log p(x|z) is -500.

The grid reports its own error:
* ``resolution_error``: |log p(x) on the grid - log p(x) on every other node (spacing 2h)|. For a
  smooth integrand the trapezoid error falls like h^2, so this overestimates the error of the fine
  grid by about 4/3; it is computed from the same evaluations, at no extra cost.
* ``edge_ratio``: the largest posterior density on the box's boundary over the largest anywhere;
  near zero means the box holds the posterior, near one that it cuts through it.
* ``prior_mass_outside``: the prior's mass outside the box (standard normal prior). For a discrete
  likelihood (p(x|z) <= 1) the part of p(x) that the box misses is at most this number.

KL(q || p(z|x)) = int q(z) [log q(z) - log p(z|x)] dz by the same quadrature (notebook 04's identity
log p(x) = ELBO + KL(q || p(z|x)), here on a non-linear model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = ["PosteriorGrid", "posterior_grid", "zoomed_log_px", "grid_log_integral", "kl_q_posterior", "trapezoid_log_weights"]


def trapezoid_log_weights(n1: int, n2: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """log c_ij of the 2-D trapezoid rule on (n1, n2) nodes: log 1 inside, log 1/2 on edges, log 1/4 at corners."""
    w1 = torch.ones(n1, dtype=dtype, device=device)
    w2 = torch.ones(n2, dtype=dtype, device=device)
    w1[[0, -1]] = 0.5
    w2[[0, -1]] = 0.5
    return torch.log(w1[:, None] * w2[None, :])  # (n1, n2)


def grid_log_integral(log_f: torch.Tensor, h1: float, h2: float) -> torch.Tensor:
    """log int f(z) dz by the trapezoid rule, from log f on the grid's nodes.

    Inputs: log_f (..., n1, n2) on nodes of spacing h1, h2. Returns: (...,).
    """
    n1, n2 = log_f.shape[-2:]
    c = trapezoid_log_weights(n1, n2, dtype=log_f.dtype, device=log_f.device)
    return torch.logsumexp((log_f + c).flatten(-2), dim=-1) + math.log(h1 * h2)


@dataclass
class PosteriorGrid:
    """The true posterior of B data points on one grid. Shapes: z1 (n1,), z2 (n2,), log_joint (B, n1, n2)."""

    z1: torch.Tensor
    z2: torch.Tensor
    log_joint: torch.Tensor
    log_px: torch.Tensor
    resolution_error: torch.Tensor
    edge_ratio: torch.Tensor
    prior_mass_outside: float

    @property
    def h(self) -> tuple[float, float]:
        return float(self.z1[1] - self.z1[0]), float(self.z2[1] - self.z2[0])

    @property
    def cell_area(self) -> float:
        h1, h2 = self.h
        return h1 * h2

    @property
    def points(self) -> torch.Tensor:
        """The nodes as (n1, n2, 2): points[i, j] = (z1[i], z2[j])."""
        Z1, Z2 = torch.meshgrid(self.z1, self.z2, indexing="ij")
        return torch.stack([Z1, Z2], dim=-1)

    @property
    def log_posterior(self) -> torch.Tensor:
        """log p(z|x) on the nodes, (B, n1, n2); integrates to 1 under the trapezoid rule."""
        return self.log_joint - self.log_px[:, None, None]

    def kl(self, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """KL(q || p(z|x)) by quadrature, with its resolution error. Inputs: log_q (B, n1, n2) on the nodes.
        Returns: kl (B,), error (B,) (|fine - every-other-node|)."""
        return kl_q_posterior(log_q, self.log_posterior, *self.h)


def kl_q_posterior(log_q: torch.Tensor, log_post: torch.Tensor, h1: float, h2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(q || p) = int q (log q - log p) dz on a grid (trapezoid), and |fine - coarse| as its error.

    q is renormalised on the grid first (the mass of q outside the box is ignored; it is reported by the
    error term only when it matters for the coarse grid). Inputs: log_q, log_post (B, n1, n2). Returns: (B,), (B,).
    """
    if log_q.shape != log_post.shape or log_q.dim() != 3:
        raise ValueError(f"log_q and log_post must both have shape (B, n1, n2), got {tuple(log_q.shape)} and {tuple(log_post.shape)}")

    def kl_on(lq, lp, a, b):
        lq = lq - grid_log_integral(lq, a, b)[:, None, None]  # q normalised on this grid
        n1, n2 = lq.shape[-2:]
        c = trapezoid_log_weights(n1, n2, dtype=lq.dtype, device=lq.device).exp()
        q = lq.exp()
        integrand = torch.where(q > 0, q * (lq - lp), torch.zeros_like(q))
        return (c * integrand).sum((-2, -1)) * a * b

    fine = kl_on(log_q, log_post, h1, h2)
    coarse = kl_on(log_q[:, ::2, ::2], log_post[:, ::2, ::2] - grid_log_integral(log_post[:, ::2, ::2], 2 * h1, 2 * h2)[:, None, None],
                   2 * h1, 2 * h2)
    return fine, (fine - coarse).abs()


def _std_normal_mass_outside(lo1, hi1, lo2, hi2) -> float:
    def inside(lo, hi):
        return 0.5 * (math.erf(hi / math.sqrt(2)) - math.erf(lo / math.sqrt(2)))

    return max(0.0, 1.0 - inside(lo1, hi1) * inside(lo2, hi2))


def posterior_grid(model_or_log_joint, x, n: int = 200, limits=((-4.0, 4.0), (-4.0, 4.0)), chunk: int = 8192) -> PosteriorGrid:
    """p(z|x) and log p(x) of a 2-D latent model on an (n+1) x (n+1) grid of nodes (n even).

    Inputs:
        model_or_log_joint: a VAE with M = 2 (log p(x|z) + log p(z) from ``log_px_given_z`` and
            ``prior``), or a function ``log_joint(x, z)`` -> (P, B) for z (P, B, 2).
        x: (B, D) data; n: cells per axis (even, >= 2); limits: ((lo1, hi1), (lo2, hi2)) of the box;
        chunk: grid points evaluated at a time (memory grows like chunk * B * D).
    Returns: :class:`PosteriorGrid` (in float64 for the sums; the model is evaluated in its own dtype).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2 or n % 2:
        raise ValueError(f"n must be an even integer >= 2 (cells per axis; the error estimate uses every other node), got {n!r}")
    try:
        (lo1, hi1), (lo2, hi2) = ((float(a), float(b)) for a, b in limits)
    except (TypeError, ValueError):
        raise ValueError(f"limits must be ((lo1, hi1), (lo2, hi2)), got {limits!r}") from None
    if not all(math.isfinite(v) for v in (lo1, hi1, lo2, hi2)) or lo1 >= hi1 or lo2 >= hi2:
        raise ValueError(f"limits must be finite with lo < hi on each axis, got {limits!r}")
    if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    model = None
    if callable(model_or_log_joint) and not hasattr(model_or_log_joint, "log_px_given_z"):
        log_joint_fn: Callable = model_or_log_joint
        device, dtype = (x.device, x.dtype if x.is_floating_point() else torch.get_default_dtype()) if torch.is_tensor(x) \
            else (torch.device("cpu"), torch.get_default_dtype())
    else:
        model = model_or_log_joint
        if getattr(getattr(model, "config", None), "M", 2) != 2:
            raise ValueError(f"the model must have a 2-D latent space (M = 2), got M = {model.config.M}")
        x = model.check_data(x, "x")
        device, dtype = model.device, model.dtype

        def log_joint_fn(x_, z_):
            return model.log_px_given_z(x_, z_) + model.prior.log_prob(z_)
    if not torch.is_tensor(x) or x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a tensor of shape (B, D) with B >= 1, got {getattr(x, 'shape', type(x).__name__)}")
    B = x.shape[0]
    z1 = torch.linspace(lo1, hi1, n + 1, dtype=torch.float64)
    z2 = torch.linspace(lo2, hi2, n + 1, dtype=torch.float64)
    Z = torch.stack(torch.meshgrid(z1, z2, indexing="ij"), -1).reshape(-1, 2)  # ((n+1)^2, 2)
    out = []
    was_training = getattr(model, "training", False)
    if model is not None:
        model.eval()
    try:
        with torch.no_grad():
            for s in range(0, Z.shape[0], chunk):
                zc = Z[s:s + chunk].to(device=device, dtype=dtype)  # (P, 2)
                zc = zc[:, None, :].expand(-1, B, -1)  # (P, B, 2)
                lj = log_joint_fn(x, zc)
                if not torch.is_tensor(lj) or tuple(lj.shape) != tuple(zc.shape[:2]):
                    raise ValueError(f"log_joint(x, z) must return shape (P, B) = {tuple(zc.shape[:2])}, got {getattr(lj, 'shape', lj)}")
                out.append(lj.to(torch.float64).cpu())
    finally:
        if model is not None:
            model.train(was_training)
    log_joint = torch.cat(out).T.reshape(B, n + 1, n + 1)  # (B, n1, n2)
    if bool(torch.isnan(log_joint).any()):
        raise ValueError("log p(x|z) + log p(z) is NaN at some grid node: check x and the model")
    h1, h2 = (hi1 - lo1) / n, (hi2 - lo2) / n
    log_px = grid_log_integral(log_joint, h1, h2)
    coarse = grid_log_integral(log_joint[:, ::2, ::2], 2 * h1, 2 * h2)
    log_post = log_joint - log_px[:, None, None]
    edge = torch.cat([log_post[:, 0], log_post[:, -1], log_post[:, :, 0], log_post[:, :, -1]], dim=1)  # (B, 4(n+1))
    edge_ratio = (edge.amax(1) - log_post.flatten(1).amax(1)).exp()  # (B,)
    return PosteriorGrid(z1=z1, z2=z2, log_joint=log_joint, log_px=log_px, resolution_error=(log_px - coarse).abs(),
                         edge_ratio=edge_ratio, prior_mass_outside=_std_normal_mass_outside(lo1, hi1, lo2, hi2))


def zoomed_log_px(model_or_log_joint, x, n: int = 40, coarse_n: int = 24, limits=((-6.0, 6.0), (-6.0, 6.0)),
                  drop: float = 25.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p(x) on a grid that follows each image's posterior: a coarse grid over ``limits`` finds where
    log p(z|x) is within ``drop`` nats of its peak; a fine (n+1)^2 grid covers that region (one coarse cell
    wider on each side, clipped to ``limits``). Far fewer decoder evaluations than one fine grid over the box.

    Returns: log_px (B,), resolution_error (B,) and edge_ratio (B,) of the fine grids (see :class:`PosteriorGrid`);
    a posterior that the coarse grid misses entirely would show as a large edge_ratio or resolution error.
    """
    if not isinstance(drop, (int, float)) or not math.isfinite(drop) or drop <= 0:
        raise ValueError(f"drop must be a positive number of nats, got {drop!r}")
    coarse = posterior_grid(model_or_log_joint, x, n=coarse_n, limits=limits)
    (lo1, hi1), (lo2, hi2) = limits
    h1, h2 = coarse.h
    out = []
    for b in range(coarse.log_joint.shape[0]):
        keep = coarse.log_posterior[b] > coarse.log_posterior[b].max() - drop  # (n1, n2)
        rows, cols = keep.any(1).nonzero().squeeze(1), keep.any(0).nonzero().squeeze(1)
        box = ((max(lo1, float(coarse.z1[rows.min()]) - h1), min(hi1, float(coarse.z1[rows.max()]) + h1)),
               (max(lo2, float(coarse.z2[cols.min()]) - h2), min(hi2, float(coarse.z2[cols.max()]) + h2)))
        fine = posterior_grid(model_or_log_joint, x[b:b + 1], n=n, limits=box)
        out.append((fine.log_px, fine.resolution_error, fine.edge_ratio))
    return tuple(torch.cat(t) for t in zip(*out))

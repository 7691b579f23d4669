"""Flow steps as plain functions: each returns the new point and log|det dz'/dz| together.

The change of variables (lecture: the components of a VAE; the posterior side):

    z_K = f_K o ... o f_1 (z_0),   log q(z_K) = log q(z_0) - sum_k log|det df_k/dz_{k-1}|.

Shapes: z (..., M), e.g. (B, M) or (n, B, M); the parameters broadcast against z ((B, M) or (M,)
for vectors, (B,) or () for the planar bias); log_det has z's shape without its last dimension.

- planar (Rezende & Mohamed 2015):  z' = z + u_hat tanh(w.z + b),
      log_det = log|1 + (1 - tanh^2(w.z + b)) u_hat.w|,
  with u_hat = u + (m(w.u) - w.u) w/|w|^2, m(a) = -1 + softplus(a), so that w.u_hat = m(w.u) > -1
  and the map is invertible (z' along w is strictly increasing in w.z).
- Householder (Tomczak & Welling 2016):  z' = (I - 2 v v^T/|v|^2) z, a reflection: log_det = 0,
  and it is its own inverse.
- IAF (Kingma et al. 2016), the numerically stable form:  z' = sigma * z + (1 - sigma) * m,
  sigma = sigmoid(s), log_det = sum log sigma, where (m, s) are autoregressive in z (a MADE,
  :mod:`lvmlib.flows.modules`): m_i and s_i depend on z_<i only, so the Jacobian is triangular.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["planar_u_hat", "planar_step", "planar_inverse", "householder_step", "iaf_step", "iaf_inverse"]

_TINY = 1e-12


def _tensor(name: str, v) -> torch.Tensor:
    if not torch.is_tensor(v):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {v.dtype}")
    return v


def _vector(name: str, v, z: torch.Tensor) -> torch.Tensor:
    v = _tensor(name, v)
    if v.dim() < 1 or v.shape[-1] != z.shape[-1]:
        raise ValueError(f"{name} must have shape (..., M={z.shape[-1]}) like z, got {tuple(v.shape)}")
    try:
        torch.broadcast_shapes(v.shape, z.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(v.shape)} does not broadcast against z of shape {tuple(z.shape)}") from None
    return v


def _z(z) -> torch.Tensor:
    z = _tensor("z", z)
    if z.dim() < 1:
        raise ValueError(f"z must have shape (..., M), got a scalar")
    return z


def planar_u_hat(w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The invertibility reparameterisation of the planar flow.

        u_hat = u + (m(w.u) - w.u) w / |w|^2,   m(a) = -1 + softplus(a),

    so that w.u_hat = m(w.u) > -1 for every u (Rezende & Mohamed 2015, appendix A).
    Inputs: w, u (..., M) (broadcastable). Returns: u_hat (..., M).
    """
    w, u = _tensor("w", w), _tensor("u", u)
    if w.shape[-1:] != u.shape[-1:]:
        raise ValueError(f"w and u must have the same last dimension M, got {tuple(w.shape)} and {tuple(u.shape)}")
    wu = (w * u).sum(-1, keepdim=True)  # (..., 1)
    m = -1.0 + F.softplus(wu)
    # |w|^2 floored only where w is (numerically) zero: elsewhere w.u_hat = m(w.u) up to rounding
    return u + (m - wu) * w / (w * w).sum(-1, keepdim=True).clamp_min(_TINY)


def planar_step(z: torch.Tensor, w: torch.Tensor, u: torch.Tensor, b, *, constrain: bool = True):
    """One planar step z' = z + u_hat tanh(w.z + b) and its log|det|.

    Inputs: z (..., M); w, u broadcastable to z ((B, M) or (M,)); b broadcastable to z[..., 0]
        ((B,) or (), a tensor or a number); constrain: True (default) replaces u by
        :func:`planar_u_hat` (invertible for every w, u); False uses u as given (the map may then
        fold space onto itself, and log|det| is the log of an absolute value that can pass 0).
    Returns: z_new (..., M), log_det (...,) = log|1 + (1 - tanh^2(w.z + b)) u_hat.w|.
    """
    z = _z(z)
    w, u = _vector("w", w, z), _vector("u", u, z)
    if not torch.is_tensor(b):
        b = torch.as_tensor(float(b), dtype=z.dtype, device=z.device)
    b = _tensor("b", b)
    if not isinstance(constrain, bool):
        raise TypeError(f"constrain must be True or False, got {constrain!r}")
    u_hat = planar_u_hat(w, u) if constrain else u
    a = (w * z).sum(-1) + b  # (...,)
    t = torch.tanh(a)
    z_new = z + u_hat * t.unsqueeze(-1)
    psi_u = (1.0 - t * t) * (w * u_hat).sum(-1)  # h'(a) w.u_hat
    log_det = torch.log(torch.abs(1.0 + psi_u) + _TINY)
    return z_new, log_det


@torch.no_grad()
def _planar_solve_a(target: torch.Tensor, c: torch.Tensor, b: torch.Tensor, n_iter: int = 100) -> torch.Tensor:
    """Solve a + c tanh(a + b) = target for a (c > -1, so the left side is strictly increasing)."""
    # |c tanh| <= |c|, so the root lies in [target - |c|, target + |c|]
    lo, hi = target - c.abs() - 1.0, target + c.abs() + 1.0
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        f = mid + c * torch.tanh(mid + b) - target
        lo = torch.where(f < 0, mid, lo)
        hi = torch.where(f < 0, hi, mid)
    return 0.5 * (lo + hi)


def planar_inverse(z_new: torch.Tensor, w: torch.Tensor, u: torch.Tensor, b) -> torch.Tensor:
    """The inverse of :func:`planar_step` (with the constraint), found numerically.

    Along w the step is scalar: with a = w.z, w.z' = a + (w.u_hat) tanh(a + b), strictly increasing
    in a because w.u_hat > -1; bisection finds a (to rounding), and z = z' - u_hat tanh(a + b).
    Not differentiable through the bisection (use it for densities on grids, not for training).
    Inputs/Returns: as :func:`planar_step`; returns z (..., M).
    """
    z_new = _z(z_new)
    w, u = _vector("w", w, z_new), _vector("u", u, z_new)
    if not torch.is_tensor(b):
        b = torch.as_tensor(float(b), dtype=z_new.dtype, device=z_new.device)
    u_hat = planar_u_hat(w, u)
    c = (w * u_hat).sum(-1)
    target = (w * z_new).sum(-1)
    shape = torch.broadcast_shapes(target.shape, c.shape, b.shape)
    a = _planar_solve_a(target.expand(shape), c.expand(shape), b.expand(shape))
    return z_new - u_hat * torch.tanh(a + b).unsqueeze(-1)


def householder_step(z: torch.Tensor, v: torch.Tensor):
    """One Householder reflection z' = z - 2 v (v.z)/|v|^2 (volume-preserving).

    Inputs: z (..., M); v broadcastable to z ((B, M) or (M,)), nonzero.
    Returns: z_new (..., M), log_det (...,) of zeros (|det| of a reflection is 1).
    """
    z = _z(z)
    v = _vector("v", v, z)
    vz = (v * z).sum(-1, keepdim=True)
    z_new = z - 2.0 * v * vz / ((v * v).sum(-1, keepdim=True) + _TINY)
    return z_new, torch.zeros(z_new.shape[:-1], dtype=z.dtype, device=z.device)


def iaf_step(z: torch.Tensor, m: torch.Tensor, s: torch.Tensor):
    """One IAF step in its stable form z' = sigma * z + (1 - sigma) * m, sigma = sigmoid(s).

    (m, s) must be autoregressive functions of z (m_i, s_i depend on z_<i only) for the
    log-det below to be the map's; :class:`lvmlib.flows.IAFFlow` computes them with a MADE.
    Inputs: z, m, s (..., M). Returns: z_new (..., M), log_det (...,) = sum_i log sigma_i.
    """
    z = _z(z)
    m, s = _vector("m", m, z), _vector("s", s, z)
    sigma = torch.sigmoid(s)
    return sigma * z + (1.0 - sigma) * m, F.logsigmoid(s).sum(-1)


def iaf_inverse(z_new: torch.Tensor, made, M: int) -> torch.Tensor:
    """The inverse of an IAF step: z_i = (z'_i - (1 - sigma_i) m_i)/sigma_i, one dimension at a time.

    ``made(z) -> (m, s)`` is the step's autoregressive network; M passes recover z exactly
    (pass i fixes the i-th dimension in the network's order). Returns z (..., M).
    """
    z = torch.zeros_like(z_new)
    for _ in range(M):
        m, s = made(z)
        sigma = torch.sigmoid(s)
        z = (z_new - (1.0 - sigma) * m) / sigma
    return z

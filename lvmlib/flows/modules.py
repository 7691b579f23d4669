"""Flow posteriors as modules: K steps whose parameters are amortised from the encoder's features.

Every flow has the same small interface, so :class:`lvmlib.flows.FlowVAE` never needs to know
which one it holds:

- ``flow.params(h) -> dict[str, Tensor]``: the per-point parameters of the K steps from the
  encoder's last hidden features h (B, F), each with leading dimension B;
- ``flow(z0, params) -> (z_K, sum_log_det)``: z0 (..., B, M) -> z_K (..., B, M) and
  sum_k log|det df_k/dz_{k-1}| (..., B);
- ``flow.inverse(z_K, params) -> z0``: for densities at given points (planar: numerically).

The steps themselves are the functions of :mod:`lvmlib.flows.steps`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lvmlib.flows.steps import householder_step, iaf_inverse, iaf_step, planar_inverse, planar_step

__all__ = ["Flow", "PlanarFlow", "HouseholderFlow", "MADE", "IAFFlow", "make_flow", "FLOWS"]

FLOWS = ("planar", "householder", "iaf")


def _pos_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


class Flow(nn.Module):
    """Base of the flow posteriors: M latent dimensions, K steps, features of size F."""

    def __init__(self, M: int, K: int, feature_dim: int):
        super().__init__()
        self.M = _pos_int("M", M)
        self.K = _pos_int("K (the flow length)", K)
        self.feature_dim = _pos_int("feature_dim", feature_dim)

    def params(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def step(self, k: int, z: torch.Tensor, params: dict[str, torch.Tensor]):
        raise NotImplementedError

    def step_inverse(self, k: int, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, z0: torch.Tensor, params: dict[str, torch.Tensor]):
        """z0 (..., B, M) -> (z_K (..., B, M), sum of the K log|det| (..., B))."""
        z = z0
        total = torch.zeros(z0.shape[:-1], dtype=z0.dtype, device=z0.device)
        for k in range(self.K):
            z, log_det = self.step(k, z, params)
            total = total + log_det
        return z, total

    def inverse(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """z_K (..., B, M) -> z0 (..., B, M), the steps undone in reverse order."""
        for k in reversed(range(self.K)):
            z = self.step_inverse(k, z, params)
        return z


class PlanarFlow(Flow):
    """K planar steps; per point w_k, u_k (M,) and b_k from one linear map of the features.

    The head starts at small weights, so that the flow starts close to the identity.
    params: {"w": (B, K, M), "u": (B, K, M) (before the constraint; the step applies it), "b": (B, K)}.
    """

    def __init__(self, M: int, K: int, feature_dim: int):
        super().__init__(M, K, feature_dim)
        self.head = nn.Linear(self.feature_dim, self.K * (2 * self.M + 1))
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def params(self, h):
        out = self.head(h)  # (B, K(2M+1))
        K, M = self.K, self.M
        wu = out[..., : 2 * K * M].reshape(*out.shape[:-1], K, 2, M)
        return {"w": wu[..., 0, :], "u": wu[..., 1, :], "b": out[..., 2 * K * M :]}

    def step(self, k, z, params):
        return planar_step(z, params["w"][:, k], params["u"][:, k], params["b"][:, k])

    @torch.no_grad()
    def step_inverse(self, k, z, params):
        return planar_inverse(z, params["w"][:, k], params["u"][:, k], params["b"][:, k])


class HouseholderFlow(Flow):
    """K Householder reflections (volume-preserving); per point v_k (M,) from the features.

    (Tomczak & Welling compute v_1 from the encoder and v_{k+1} from v_k; here every v_k is a
    linear map of the features, which is the same family of posteriors, amortised in one layer.)
    params: {"v": (B, K, M)}.
    """

    def __init__(self, M: int, K: int, feature_dim: int):
        super().__init__(M, K, feature_dim)
        self.head = nn.Linear(self.feature_dim, self.K * self.M)

    def params(self, h):
        return {"v": self.head(h).reshape(*h.shape[:-1], self.K, self.M)}

    def step(self, k, z, params):
        return householder_step(z, params["v"][:, k])

    def step_inverse(self, k, z, params):
        return householder_step(z, params["v"][:, k])[0]


class _MaskedLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """A masked autoencoder (Germain et al. 2015) with a context: z (..., B, M), c (B, C) -> (m, s).

    Output i depends on the inputs before i in the order ``order`` (a permutation of 0..M-1) and
    on the context, never on z_i or later: the Jacobian of (m, s) in order is strictly triangular.
    One hidden layer of ``hidden`` ELU units; the s output's bias starts at ``s_bias`` (sigma =
    sigmoid(s) near 1: each step starts close to the identity, as the forget-gate bias in Kingma et al.).
    """

    def __init__(self, M: int, hidden: int, context_dim: int, order: torch.Tensor, s_bias: float = 2.0):
        super().__init__()
        self.M = M
        deg_in = torch.empty(M, dtype=torch.long)
        deg_in[order] = torch.arange(1, M + 1)  # the degree of input d is its place in the order
        deg_h = (torch.arange(hidden) % max(M - 1, 1)) + 1 if M > 1 else torch.zeros(hidden, dtype=torch.long)
        self.inp = _MaskedLinear(M, hidden, (deg_h[:, None] >= deg_in[None, :]))
        self.ctx = nn.Linear(context_dim, hidden, bias=False)
        self.out = _MaskedLinear(hidden, 2 * M, (torch.cat([deg_in, deg_in])[:, None] > deg_h[None, :]))
        self.act = nn.ELU()
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias[:M].zero_()
            self.out.bias[M:].fill_(s_bias)

    def forward(self, z, c):
        hid = self.act(self.inp(z) + self.ctx(c))
        out = self.out(hid)
        return out[..., : self.M], out[..., self.M :]


class IAFFlow(Flow):
    """K IAF steps (Kingma et al. 2016), each a MADE of z with a context h(x) from the features.

    The steps alternate the MADE's order (natural, reversed, ...), so that every dimension can
    depend on every other after two steps. params: {"h": (B, C)}, the context; the MADEs'
    weights are shared by all points (they are the flow's global parameters).
    """

    def __init__(self, M: int, K: int, feature_dim: int, hidden: int | None = None, context_dim: int | None = None):
        super().__init__(M, K, feature_dim)
        hidden = _pos_int("hidden", hidden if hidden is not None else max(4 * self.M, 32))
        context_dim = _pos_int("context_dim", context_dim if context_dim is not None else self.M)
        self.context = nn.Linear(self.feature_dim, context_dim)
        nat = torch.arange(self.M)
        self.mades = nn.ModuleList(MADE(self.M, hidden, context_dim, nat if k % 2 == 0 else nat.flip(0)) for k in range(self.K))

    def params(self, h):
        return {"h": self.context(h)}

    def step(self, k, z, params):
        m, s = self.mades[k](z, params["h"])
        return iaf_step(z, m, s)

    def step_inverse(self, k, z, params):
        return iaf_inverse(z, lambda y: self.mades[k](y, params["h"]), self.M)


def make_flow(name: str, M: int, K: int, feature_dim: int) -> Flow:
    """The flow ``name`` ("planar", "householder" or "iaf") of K steps over M dimensions."""
    if name == "planar":
        return PlanarFlow(M, K, feature_dim)
    if name == "householder":
        return HouseholderFlow(M, K, feature_dim)
    if name == "iaf":
        return IAFFlow(M, K, feature_dim)
    raise ValueError(f"the flow name must be one of {list(FLOWS)}, got {name!r}")

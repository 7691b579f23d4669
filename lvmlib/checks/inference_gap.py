"""Checks for the exercises of notebook 08, "when q(z|x) is not the posterior".

- ``check_grid_posterior``: log p(x) and log p(z|x) of a 2-D latent model from the log joint on a
  grid of nodes (rectangle rule: logsumexp plus the log cell area; :mod:`lvmlib.posterior_grid`);
- ``check_kl_by_quadrature``: KL(q || p(z|x)) = sum_ij q (log q - log p) h1 h2 on the same grid;
- ``check_planar_step``: one planar flow step (Rezende & Mohamed 2015) with the invertibility
  constraint w.u_hat >= -1 and its log|det J|;
- ``check_householder_chain``: a chain of Householder reflections (Tomczak & Welling 2016),
  volume-preserving (log|det J| = 0);
- ``check_refine_posterior``: the per-point refinement loop of q's parameters with the model frozen
  (:func:`lvmlib.inference_gap.refine_posterior`), checked by what it does to the ELBO and the model.

Usage in a notebook::

    from lvmlib import checks
    planar_step = checks.inference_gap.check_planar_step(planar_step)
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lvmlib.checks._core import Case, ExerciseError, check_follows_device, seeded
from lvmlib.checks.variational import check_through, tensor_output
from lvmlib import flows as _flows
from lvmlib.gaussian import kl_normal_diag

__all__ = ["check_grid_posterior", "check_kl_by_quadrature", "check_planar_step", "check_householder_chain",
           "check_refine_posterior", "refine_reference", "planar_step", "householder_chain", "grid_posterior", "kl_by_quadrature"]


def _t(rng, *shape, scale=1.0):
    return torch.as_tensor(scale * rng.normal(size=shape), dtype=torch.float64)


# ============================================================================= the grid posterior
def grid_posterior(log_joint: torch.Tensor, h1: float, h2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: log p(x) = logsumexp_ij log p(x, z_ij) + log(h1 h2) (rectangle rule) and
    log p(z_ij|x) = log p(x, z_ij) - log p(x). Inputs: log_joint (B, n1, n2). Returns: (B,), (B, n1, n2)."""
    log_px = torch.logsumexp(log_joint.flatten(-2), dim=-1) + math.log(h1 * h2)  # (B,)
    return log_px, log_joint - log_px[:, None, None]


def _grid_cases(rng: np.random.Generator) -> Case:
    B, n1, n2 = int(rng.integers(2, 5)), int(rng.integers(9, 15)), int(rng.integers(9, 15))
    h1, h2 = float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.05, 0.3))
    # log p(x, z) of a digit is around -100 (exp() underflows in float32); here below -745, where exp() underflows in float64 too
    centre = torch.as_tensor(rng.uniform(-1000, -800, size=(B, 1, 1)))
    bumps = -0.5 * (_t(rng, B, n1, 1) ** 2 + _t(rng, B, 1, n2) ** 2) * 3
    return Case((centre + bumps + _t(rng, B, n1, n2, scale=0.3), h1, h2))


def _grid_no_area(lj, h1, h2):
    log_px = torch.logsumexp(lj.flatten(-2), -1)
    return log_px, lj - log_px[:, None, None]


def _grid_mean(lj, h1, h2):
    log_px = torch.logsumexp(lj.flatten(-2), -1) - math.log(lj.shape[-1] * lj.shape[-2])
    return log_px, lj - log_px[:, None, None]


def _grid_one_axis(lj, h1, h2):
    log_px = torch.logsumexp(lj.flatten(-2), -1) + math.log(h1)
    return log_px, lj - log_px[:, None, None]


def _grid_area_sum(lj, h1, h2):
    log_px = torch.logsumexp(lj.flatten(-2), -1) + math.log(h1 + h2)
    return log_px, lj - log_px[:, None, None]


def _grid_naive_exp(lj, h1, h2):
    log_px = torch.log(torch.exp(lj).sum((-2, -1)) * h1 * h2)
    return log_px, lj - log_px[:, None, None]


def _grid_unnormalised(lj, h1, h2):
    return grid_posterior(lj, h1, h2)[0], lj


def _grid_over_batch(lj, h1, h2):
    log_px = torch.logsumexp(lj.flatten(), 0) + math.log(h1 * h2)
    return log_px.expand(lj.shape[0]), lj - log_px


def check_grid_posterior(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``grid_posterior(log_joint, h1, h2)`` -> (log_px (B,), log_post (B, n1, n2)):

        log p(x)     = logsumexp_ij log p(x, z_ij) + log(h1 * h2)
        log p(z|x)   = log p(x, z_ij) - log p(x)

    Inputs of the learner's function: log_joint (B, n1, n2) = log p(x|z) + log p(z) at the nodes.
    """
    return check_through(
        learner, grid_posterior, tensor_output("grid_posterior", 0), _grid_cases,
        name="grid_posterior", seed=seed, strict=strict, rtol=1e-7, atol=1e-7,
        known_mistakes={
            "a grid without its cell area: the sum over nodes approximates the integral only when each term is "
            "multiplied by the area h1 * h2 of its cell (in logs: + log(h1 * h2)).": _grid_no_area,
            "the log of the MEAN over the nodes: an integral is a sum times the cell area, not an average "
            "(- log(n1 n2) instead of + log(h1 h2)).": _grid_mean,
            "only one side of the cell: the cell area in 2-D is h1 * h2.": _grid_one_axis,
            "the cell area is h1 * h2, not h1 + h2.": _grid_area_sum,
            "exp() of log-joints below -745 underflows to 0, and log(0) = -inf: use torch.logsumexp.": _grid_naive_exp,
            "the posterior is not normalised: log p(z|x) = log p(x, z) - log p(x).": _grid_unnormalised,
            "the logsumexp also ran over the batch: every data point has its own p(x); sum over the grid "
            "axes (-2, -1) only.": _grid_over_batch,
        },
        hint="log p(x) is the log of the sum over the grid's nodes of p(x, z) times the cell area, computed in "
             "log space, one per data point; the log-posterior is the log-joint minus it.",
    )


# ============================================================================= KL by quadrature
def kl_by_quadrature(log_q: torch.Tensor, log_post: torch.Tensor, h1: float, h2: float) -> torch.Tensor:
    """The reference: KL(q || p) = sum_ij q_ij (log q_ij - log p_ij) h1 h2. Inputs (B, n1, n2). Returns: (B,)."""
    return (log_q.exp() * (log_q - log_post)).sum((-2, -1)) * h1 * h2


def _normalised_log_density(rng, B, n1, n2, h1, h2, width):
    a = torch.arange(n1, dtype=torch.float64)[None, :, None] - torch.as_tensor(rng.uniform(0.3, 0.7, (B, 1, 1))) * n1
    b = torch.arange(n2, dtype=torch.float64)[None, None, :] - torch.as_tensor(rng.uniform(0.3, 0.7, (B, 1, 1))) * n2
    lf = -0.5 * ((a / width) ** 2 + (b / (1.3 * width)) ** 2) + 0.2 * torch.sin(a + b)
    return lf - (torch.logsumexp(lf.flatten(-2), -1) + math.log(h1 * h2))[:, None, None]


def _kl_cases(rng: np.random.Generator) -> Case:
    B, n1, n2 = int(rng.integers(2, 5)), int(rng.integers(14, 20)), int(rng.integers(14, 20))
    h1, h2 = float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.1, 0.4))
    return Case((_normalised_log_density(rng, B, n1, n2, h1, h2, 2.0),
                 _normalised_log_density(rng, B, n1, n2, h1, h2, 3.5), h1, h2))


def _kl_reversed(lq, lp, h1, h2):
    return kl_by_quadrature(lp, lq, h1, h2)


def _kl_no_area(lq, lp, h1, h2):
    return (lq.exp() * (lq - lp)).sum((-2, -1))


def _kl_sign(lq, lp, h1, h2):
    return (lq.exp() * (lp - lq)).sum((-2, -1)) * h1 * h2


def _kl_log_weight(lq, lp, h1, h2):
    return (lq * (lq - lp)).sum((-2, -1)) * h1 * h2


def _kl_batch_sum(lq, lp, h1, h2):
    return kl_by_quadrature(lq, lp, h1, h2).sum()


def _kl_unweighted(lq, lp, h1, h2):
    return (lq - lp).sum((-2, -1)) * h1 * h2


def check_kl_by_quadrature(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``kl_by_quadrature(log_q, log_post, h1, h2)`` -> (B,):

        KL(q || p(z|x)) = int q(z) [log q(z) - log p(z|x)] dz ~= sum_ij q_ij (log q_ij - log p_ij) h1 h2

    Inputs: log_q, log_post (B, n1, n2), each a normalised log-density on the grid's nodes.
    """
    return check_through(
        learner, kl_by_quadrature, tensor_output("kl_by_quadrature"), _kl_cases,
        name="kl_by_quadrature", seed=seed, strict=strict, rtol=1e-7, atol=1e-9,
        known_mistakes={
            "this is KL(p || q), the other direction: the ELBO's gap is KL(q || p(z|x)), an expectation under q.":
                _kl_reversed,
            "a grid without its cell area: multiply the sum over nodes by h1 * h2.": _kl_no_area,
            "the sign: KL(q || p) = E_q[log q - log p] >= 0.": _kl_sign,
            "the expectation is weighted by the density q = exp(log_q), not by log q.": _kl_log_weight,
            "the KL was summed over the batch: return one KL per data point, shape (B,).": _kl_batch_sum,
            "the integrand lacks q: KL is an expectation under q, sum q (log q - log p) h1 h2.": _kl_unweighted,
        },
        hint="the KL is an integral over z: the sum over the nodes of q(z) (log q(z) - log p(z|x)) times the "
             "cell area, one value per data point.",
    )


# ============================================================================= the planar flow
def planar_step(z, w, u, b):
    """The reference (:func:`lvmlib.flows.planar_step`): z' = z + u_hat tanh(w.z + b),
    log|det dz'/dz| = log|1 + u_hat . psi(z)|, psi(z) = (1 - tanh^2(w.z + b)) w,
    u_hat = u + (m(w.u) - w.u) w / |w|^2, m(a) = -1 + softplus(a) (so that w.u_hat > -1).
    Inputs: z, w, u (B, M); b (B,). Returns: z' (B, M), log_det (B,)."""
    return _flows.planar_step(z, w, u, b)


def _planar_cases(rng: np.random.Generator) -> Case:
    B, M = int(rng.integers(3, 7)), int(rng.integers(2, 5))
    w = _t(rng, B, M)
    u = -1.5 * w / (w * w).sum(-1, keepdim=True) + _t(rng, B, M, scale=0.3)  # w.u < -1: the constraint matters
    return Case((_t(rng, B, M, scale=0.5), w, u, _t(rng, B, scale=0.3)))


def _planar_variant(sign=1.0, one=1.0, constrained=True, deriv="sech2", reduce=False, absval=True):
    def wrong(z, w, u, b):
        uh = _flows.planar_u_hat(w, u) if constrained else u
        a = (w * z).sum(-1) + b
        h = torch.tanh(a)
        d = 1 - h ** 2 if deriv == "sech2" else h
        inner = one + (uh * d[:, None] * w).sum(-1)
        ld = sign * torch.log(inner.abs() if absval else inner)
        return z + uh * h[:, None], ld.sum() if reduce else ld
    return wrong


def check_planar_step(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``planar_step(z, w, u, b)`` -> (z_new (B, M), log_det (B,)) with the constraint on u."""
    out = check_through(
        learner, planar_step, tensor_output("planar_step", 1), _planar_cases,
        name="planar_step", seed=seed, strict=strict, rtol=1e-6, atol=1e-8,
        known_mistakes={
            "the log-det has the wrong sign: log|det dz'/dz| = +log|1 + u_hat . psi|, the density then gets "
            "log q(z') = log q(z) - log|det|.": _planar_variant(sign=-1.0),
            "the log-det of tanh is missing its 1 +: det(I + u_hat psi^T) = 1 + u_hat . psi (the matrix "
            "determinant lemma).": _planar_variant(one=0.0),
            "no constraint: with w.u < -1 the map is not invertible; use u_hat = u + (m(w.u) - w.u) w/|w|^2, "
            "m(a) = -1 + softplus(a).": _planar_variant(constrained=False),
            "the derivative of tanh is 1 - tanh^2, not tanh.": _planar_variant(deriv="tanh"),
            "the log-dets were summed over the batch: one log-det per data point, shape (B,).":
                _planar_variant(reduce=True),
        },
        hint="constrain u to u_hat (so that w . u_hat > -1), move z along u_hat by tanh(w.z + b), and take the "
             "log-det from the matrix determinant lemma, one per data point.",
    )
    if strict or out is learner:  # right on the CPU: it must also follow its inputs' device
        check_follows_device(learner, planar_step, _planar_cases(np.random.default_rng(seed)), name="planar_step")
    return out


# ============================================================================= Householder reflections
def householder_chain(z, vs):
    """The reference: z <- z - 2 v (v.z) / |v|^2 for v = vs[:, 0], vs[:, 1], ... in order; log|det| = 0.
    Inputs: z (B, M), vs (B, K, M). Returns: z' (B, M), log_det (B,) of zeros."""
    log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
    for k in range(vs.shape[1]):
        z, ld = _flows.householder_step(z, vs[:, k])  # lvmlib.flows: z - 2 v (v.z) / |v|^2, log|det| = 0
        log_det = log_det + ld
    return z, log_det


def _hh_cases(rng: np.random.Generator) -> Case:
    B, K, M = int(rng.integers(3, 6)), int(rng.integers(2, 5)), int(rng.integers(3, 6))
    return Case((_t(rng, B, M), _t(rng, B, K, M, scale=1.7)))


def _hh_variant(normalise=True, reverse=False, sign=-1.0, chain=True, logdet="zero", factor=2.0):
    def wrong(z, vs):
        z0, out = z, z
        order = range(vs.shape[1] - 1, -1, -1) if reverse else range(vs.shape[1])
        for k in order:
            v = vs[:, k]
            src = out if chain else z0
            nrm = (v * v).sum(-1, keepdim=True) if normalise else 1.0
            out = src + sign * factor * v * (v * src).sum(-1, keepdim=True) / nrm
        B = z.shape[0]
        ld = {"zero": torch.zeros(B, dtype=z.dtype), "log2": torch.full((B,), vs.shape[1] * math.log(2.0), dtype=z.dtype),
              "scalar": torch.zeros((), dtype=z.dtype)}[logdet]
        return out, ld
    return wrong


def check_householder_chain(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``householder_chain(z, vs)`` -> (z_new (B, M), log_det (B,)):
    K reflections H_k = I - 2 v_k v_k^T / |v_k|^2 applied in order k = 1..K, log|det| = 0."""
    out = check_through(
        learner, householder_chain, tensor_output("householder_chain", 0), _hh_cases,
        name="householder_chain", seed=seed, strict=strict, rtol=1e-7, atol=1e-9,
        known_mistakes={
            "v is not normalised: H = I - 2 v v^T / |v|^2 (without the division it is no reflection, and not "
            "volume-preserving).": _hh_variant(normalise=False),
            "the reflections ran in reverse order: H_K ... H_2 H_1 z applies v_1 first.": _hh_variant(reverse=True),
            "the sign: a reflection SUBTRACTS 2 v (v.z) / |v|^2.": _hh_variant(sign=1.0),
            "every reflection was applied to the input z instead of to the previous step's output (a chain "
            "composes them).": _hh_variant(chain=False),
            "a reflection has |det| = 1, so log|det| = 0, not log 2 per step.": _hh_variant(logdet="log2"),
            "the log-det is one value per data point, shape (B,), not a scalar.": _hh_variant(logdet="scalar"),
            "a reflection is I - 2 v v^T / |v|^2, with the factor 2 (I - v v^T/|v|^2 is a projection, not "
            "invertible).": _hh_variant(factor=1.0),
        },
        hint="apply the K reflections in order, each to the previous one's output (a reflection through the "
             "hyperplane orthogonal to v_k); reflections keep volumes.",
    )
    if strict or out is learner:  # right on the CPU: it must also follow its inputs' device
        check_follows_device(learner, householder_chain, _hh_cases(np.random.default_rng(seed)),
                             name="householder_chain")
    return out


# ============================================================================= the refinement loop
class _TinyModel(torch.nn.Module):
    """A small non-linear 2-D model with the VAE's interface: encode, log_px_given_z, kl, prior."""

    def __init__(self, seed: int, D: int = 5, M: int = 2):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.encoder = torch.nn.Linear(D, 2 * M).double()
        self.decoder = torch.nn.Sequential(torch.nn.Linear(M, 8), torch.nn.Tanh(), torch.nn.Linear(8, D)).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.8)
            self.encoder.bias[:M] += 1.0  # a poor encoder: the refinement has something to gain
        self.M = M

    def encode(self, x):
        out = self.encoder(x)
        return out[:, :self.M], out[:, self.M:]

    def log_px_given_z(self, x, z):
        mean = self.decoder(z)  # (..., B, D)
        return (-0.5 * ((x - mean) ** 2 + math.log(2 * math.pi))).sum(-1)

    def kl(self, mu_z, log_var):
        return kl_normal_diag(mu_z, log_var)  # KL(q || N(0, I)), (B,)


def refine_reference(model, x, steps, lr, n_samples=8):
    """The reference loop: Adam on the per-point (mu, log_var) from the encoder, maximising the sum of
    the points' ELBOs (n_samples reparameterised samples, analytic KL), the model left as it is."""
    with torch.no_grad():
        mu0, lv0 = model.encode(x)
    mu, log_var = mu0.clone().requires_grad_(True), lv0.clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, log_var], lr=lr)
    for _ in range(steps):
        eps = torch.randn((n_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * log_var) * eps
        elbo = model.log_px_given_z(x, z).mean(0) - model.kl(mu, log_var)  # (B,)
        opt.zero_grad()
        (-elbo.sum()).backward()
        opt.step()
    return mu.detach(), log_var.detach()


def _exact_elbo(model, x, mu, log_var, n=1000):
    g = torch.Generator().manual_seed(12345)
    eps = torch.randn((n, *mu.shape), generator=g, dtype=mu.dtype)
    with torch.no_grad():
        z = mu + torch.exp(0.5 * log_var) * eps
        return model.log_px_given_z(x, z).mean(0) - model.kl(mu, log_var)


def _refine_cases(rng: np.random.Generator) -> Case:
    seed = int(rng.integers(0, 10_000))
    model = _TinyModel(seed)
    x = torch.as_tensor(rng.normal(size=(6, 5)), dtype=torch.float64)
    return Case((model, x, 60, 0.1))


_REFERENCE_ELBO: dict = {}


def _refine_summary(fn: Callable) -> Callable:
    """What the loop did, as 0/1: (decoder unchanged, encoder unchanged, starts from the encoder's output,
    ELBO rose, ELBO as high as the reference loop's, result detached, ELBO fell, steps=0 gives N(0, I))."""

    def run(model, x, steps, lr):
        state = {k: v.clone() for k, v in model.state_dict().items()}
        out = fn(model, x, steps, lr)
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(torch.is_tensor(t) for t in out)):
            raise ExerciseError(f"refine_posterior: return the refined (mu, log_var) as two tensors, got {type(out).__name__}")
        mu, lv = out
        if mu.shape != x.shape[:1] + (model.M,) or lv.shape != mu.shape:
            raise ExerciseError(f"refine_posterior: mu and log_var must have shape (B, M) = {(x.shape[0], model.M)}, "
                                f"got {tuple(mu.shape)} and {tuple(lv.shape)}")
        after = model.state_dict()
        dec_same = all(torch.equal(state[k], after[k]) for k in state if k.startswith("decoder"))
        enc_same = all(torch.equal(state[k], after[k]) for k in state if k.startswith("encoder"))
        for k, v in state.items():  # later calls start from the same model
            after[k].copy_(v)
        with torch.no_grad():
            mu0, lv0 = model.encode(x)
        fresh = copy.deepcopy(model)
        start = fn(fresh, x, 0, lr)
        from_encoder = all(torch.allclose(a.detach(), b) for a, b in zip(start, (mu0, lv0)))
        from_prior = all(torch.equal(a.detach(), torch.zeros_like(b)) for a, b in zip(start, (mu0, lv0)))
        base = _exact_elbo(model, x, mu0, lv0)
        key = (x.numpy().tobytes(), tuple(float(v.sum()) for v in state.values()), steps, lr)
        if key not in _REFERENCE_ELBO:  # the reference loop runs once per case, not once per function checked
            with seeded(0):
                _REFERENCE_ELBO.clear()
                _REFERENCE_ELBO[key] = _exact_elbo(model, x, *refine_reference(copy.deepcopy(model), x, steps, lr))
        ref = _REFERENCE_ELBO[key]
        mine = _exact_elbo(model, x, mu.detach(), lv.detach())
        # the reference's ELBO varies by a few tenths of a nat (summed over the 6 points) from run to run;
        # a loop that optimises something else (no KL, the wrong sign) ends 10 nats or more lower
        rose = bool((mine - base).sum() > 0)
        as_high = bool(mine.sum() >= ref.sum() - 3.0)
        detached = not (mu.requires_grad or lv.requires_grad)
        fell = bool((mine - base).sum() < 0)  # a loop that never moves (mu, log_var) neither rises nor falls
        return torch.tensor([dec_same, enc_same, from_encoder, rose, as_high, detached, fell, from_prior],
                            dtype=torch.float64)

    return run


def _elbo_sum(model, x, mu, lv):
    """The ELBO summed over the batch, 8 reparameterized samples per point (shared by the wrong loops below)."""
    z = mu + torch.exp(0.5 * lv) * torch.randn((8, *mu.shape), dtype=mu.dtype)  # (8, B, M)
    return (model.log_px_given_z(x, z).mean(0) - model.kl(mu, lv)).sum()


def _refine_moves_decoder(model, x, steps, lr):
    mu0, lv0 = (t.detach() for t in model.encode(x))
    mu, lv = mu0.clone().requires_grad_(True), lv0.clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, lv, *model.decoder.parameters()], lr=lr)
    for _ in range(steps):
        loss = -_elbo_sum(model, x, mu, lv)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mu.detach(), lv.detach()


def _refine_moves_encoder(model, x, steps, lr):
    opt = torch.optim.Adam(model.encoder.parameters(), lr=lr)
    for _ in range(steps):
        mu, lv = model.encode(x)
        loss = -_elbo_sum(model, x, mu, lv)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tuple(t.detach() for t in model.encode(x))


def _refine_from_prior(model, x, steps, lr):
    B, M = x.shape[0], model.M
    mu, lv = torch.zeros(B, M, dtype=x.dtype, requires_grad=True), torch.zeros(B, M, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.Adam([mu, lv], lr=lr)
    for _ in range(steps):
        loss = -_elbo_sum(model, x, mu, lv)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mu.detach(), lv.detach()


def _refine_wrong_sign(model, x, steps, lr):
    mu0, lv0 = (t.detach() for t in model.encode(x))
    mu, lv = mu0.clone().requires_grad_(True), lv0.clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, lv], lr=lr)
    for _ in range(steps):
        loss = _elbo_sum(model, x, mu, lv)  # the wrong sign: the optimiser minimises the ELBO
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mu.detach(), lv.detach()


def _refine_no_step(model, x, steps, lr):
    mu0, lv0 = (t.detach() for t in model.encode(x))
    mu, lv = mu0.clone().requires_grad_(True), lv0.clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, lv], lr=lr)
    for _ in range(steps):
        loss = -_elbo_sum(model, x, mu, lv)
        opt.zero_grad()
        loss.backward()  # opt.step() forgotten: the gradients are computed and never used
    return mu.detach(), lv.detach()


def _refine_attached(model, x, steps, lr):
    mu, lv = refine_reference(model, x, steps, lr)
    return mu.requires_grad_(True), lv.requires_grad_(True)


def check_refine_posterior(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``refine_posterior(model, x, steps, lr)`` -> (mu (B, M), log_var (B, M)), detached.

    The loop is stochastic, so the check looks at what it does on a small model with a poor encoder:
    the decoder and the encoder are left as they were, ``steps=0`` returns the encoder's output, the
    ELBO rises by at least half of what the reference loop gains, and the result is detached.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is many times faster than several on a busy machine
    try:
        return _check_refine(learner, strict, seed)
    finally:
        torch.set_num_threads(threads)


def _check_refine(learner, strict, seed):
    out = check_through(
        learner, refine_reference, _refine_summary, _refine_cases,
        name="refine_posterior", seed=seed, strict=strict, n_trials=1, rtol=0, atol=1e-9,
        known_mistakes={
            "the refinement also moves the decoder: only q's per-point parameters (mu, log_var) go to the "
            "optimiser; the decoder is the model whose posterior we approximate, it stays fixed.":
                _refine_moves_decoder,
            "the encoder's weights were trained instead of each point's own parameters: q* is optimised per "
            "data point, starting from the encoder's output (mu, log_var), with the networks fixed.":
                _refine_moves_encoder,
            "the refinement starts from N(0, I) instead of the encoder's output: steps=0 must give q_phi.":
                _refine_from_prior,
            "the loss has the wrong sign: minimise -ELBO (the ELBO fell instead of rising).": _refine_wrong_sign,
            "the loop did not improve the ELBO at all: (mu, log_var) came back as the encoder gave them. Each "
            "step must change them: optimizer.step() after backward(), with the optimiser holding the very "
            "tensors the loss is computed from.": _refine_no_step,
            "the result still requires gradients: return mu.detach(), log_var.detach().": _refine_attached,
        },
        hint="start new leaf tensors from the encoder's (mu, log_var), give only them to the optimiser (with lr), "
             "each step raise the batch's ELBO at reparameterised samples, and return them detached.",
    )
    if strict or out is learner:  # right on the CPU: it must also follow its inputs' device
        model, x, _, lr = _refine_cases(np.random.default_rng(seed)).args
        check_follows_device(learner, refine_reference, Case((model, x, 2, lr)), name="refine_posterior")
    return out

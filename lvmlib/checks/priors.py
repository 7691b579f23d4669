"""Checks for the exercises beyond the standard VAE (notebook 07).

- ``check_mixture_log_prob``: log p(z) of a mixture of diagonal Gaussians with mixing logits,
  a logsumexp over components of FULL component densities (:func:`lvmlib.priors.mixture_log_prob`);
- ``check_vamp_log_prob``: the VampPrior, 1/K sum_k q(z | u_k) with the encoder at the
  pseudo-inputs u_k (:class:`lvmlib.priors.VampPrior`);
- ``check_kl_warmup``: the KL weight of a linear warm-up, min(1, epoch / warmup_epochs) for
  1-based epochs (1 throughout when warmup_epochs = 0), as ``lvmlib.training`` sets it;
- ``check_hierarchical_elbo``: the named terms of the two-level ELBO
  (:mod:`lvmlib.hierarchical`) from the log-densities at one sample;
- ``check_rate_terms`` (the core exercise): the rate and its two parts, R = I_q(n; z) + KL(q(z) || p(z)),
  by Monte Carlo with the aggregate posterior (:func:`lvmlib.variational.rate_terms`), with partial diagnosis.

Usage in a notebook::

    from lvmlib import checks
    mixture_log_prob = checks.priors.check_mixture_log_prob(mixture_log_prob)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from lvmlib.checks._core import Case, ExerciseError, Part, check_follows_device, seeded
from lvmlib.checks.variational import check_through, tensor_output
from lvmlib.gaussian import log_normal_diag
from lvmlib.priors import mixture_log_prob as _mixture

__all__ = ["check_mixture_log_prob", "check_vamp_log_prob", "check_kl_warmup", "check_hierarchical_elbo",
           "check_rate_terms"]


def _t(rng, *shape, scale=1.0):
    return torch.as_tensor(scale * rng.normal(size=shape), dtype=torch.float64)


def _per_component(z, means, log_vars):
    """log N(z_m | m_km, exp(lv_km)) per component and dimension: (B, K, M)."""
    z = z.unsqueeze(-2)
    return -0.5 * (math.log(2 * math.pi) + log_vars + (z - means) ** 2 * torch.exp(-log_vars))


# ----------------------------------------------------------------------------- mixture of Gaussians
def _mog_reference(z, means, log_vars, logits):
    return _mixture(z, means, log_vars, torch.log_softmax(logits, dim=0))


def _mog_cases(rng: np.random.Generator) -> Case:
    B, K, M = int(rng.integers(3, 7)), int(rng.integers(3, 6)), int(rng.integers(2, 5))
    means = _t(rng, K, M, scale=1.5)
    log_vars = torch.as_tensor(rng.uniform(-1.2, 0.8, size=(K, M)), dtype=torch.float64)
    logits = _t(rng, K, scale=1.5) + 0.7  # non-uniform weights whose logits do not sum to a log-normaliser
    z = means[torch.as_tensor(rng.integers(0, K, size=B))] + _t(rng, B, M, scale=0.8)  # near the components
    return Case((z, means, log_vars, logits))


def _mog_underflow_case() -> Case:
    """M = 16 dimensions, log-variances -4 and z a little away from every component: each component's density
    is about exp(-900), below what even float64 holds, so exp(...) underflows to 0 and its log to -inf; only a
    log-sum-exp gives the finite log p(z)."""
    rng = np.random.default_rng(16)
    K, M, B = 4, 16, 3
    means = _t(rng, K, M)
    log_vars = torch.full((K, M), -4.0, dtype=torch.float64)
    logits = _t(rng, K)
    z = means[torch.as_tensor([0, 1, 2])] + 1.6 * torch.as_tensor(rng.choice([-1.0, 1.0], size=(B, M)))
    return Case((z, means, log_vars, logits))


def _mog_case_list(seed: int, n_trials: int = 4) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [_mog_cases(rng) for _ in range(n_trials)] + [_mog_underflow_case()]


def _mog_naive(z, means, log_vars, logits):
    log_comp = log_normal_diag(z.unsqueeze(-2), means, log_vars)
    return torch.log((torch.softmax(logits, 0) * torch.exp(log_comp)).sum(-1))


def _mog_per_dimension(z, means, log_vars, logits):
    log_w = torch.log_softmax(logits, 0)[:, None]  # (K, 1)
    return torch.logsumexp(_per_component(z, means, log_vars) + log_w, dim=-2).sum(-1)


def _mog_weights_not_logged(z, means, log_vars, logits):
    return torch.logsumexp(log_normal_diag(z.unsqueeze(-2), means, log_vars) + torch.softmax(logits, 0), dim=-1)


def _mog_raw_logits(z, means, log_vars, logits):
    return torch.logsumexp(log_normal_diag(z.unsqueeze(-2), means, log_vars) + logits, dim=-1)


def _mog_no_weights(z, means, log_vars, logits):
    return torch.logsumexp(log_normal_diag(z.unsqueeze(-2), means, log_vars), dim=-1)


def _mog_jensen(z, means, log_vars, logits):
    return (torch.softmax(logits, 0) * log_normal_diag(z.unsqueeze(-2), means, log_vars)).sum(-1)


def _mog_log_std(z, means, log_vars, logits):
    return _mixture(z, means, 2 * log_vars, torch.log_softmax(logits, 0))


def _mog_max(z, means, log_vars, logits):
    return (log_normal_diag(z.unsqueeze(-2), means, log_vars) + torch.log_softmax(logits, 0)).max(-1).values


def check_mixture_log_prob(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``mixture_log_prob(z, means, log_vars, logits)`` -> (B,):

        log p(z) = logsumexp_k [ log_softmax(logits)_k + sum_m log N(z_m | means_km, exp(log_vars_km)) ]

    Inputs of the learner's function: z (B, M), means and log_vars (K, M), logits (K,).
    """
    out = check_through(
        learner, _mog_reference, tensor_output("mixture_log_prob"), _mog_case_list(seed),
        name="mixture_log_prob", seed=seed, strict=strict, rtol=1e-6, atol=1e-8,
        known_mistakes={
            "log of a sum of exp: far from every component (M = 16 dimensions, small variances) each density "
            "exp(log N_k(z)) underflows to 0 and the log gives -inf. Stay in log space: "
            "torch.logsumexp(log w_k + log N_k(z), dim=-1) subtracts the largest term before exponentiating.":
                _mog_naive,
            "a mixture PER DIMENSION: the logsumexp over components ran for each dimension separately and the "
            "results were summed. Each component is one M-dimensional Gaussian: sum its log-density over the "
            "dimensions first, then logsumexp over the components.": _mog_per_dimension,
            "the mixing weights enter in log space: add log w_k (torch.log_softmax(logits, 0)), not w_k.":
                _mog_weights_not_logged,
            "the logits are not log-weights: normalise them, log w = torch.log_softmax(logits, 0) (the weights "
            "must sum to 1).": _mog_raw_logits,
            "the mixing weights are missing: log p(z) = logsumexp_k [log w_k + log N_k(z)].": _mog_no_weights,
            "sum_k w_k log N_k(z) is a lower bound (Jensen), not log sum_k w_k N_k(z): use logsumexp.": _mog_jensen,
            "log_vars are log-VARIANCES; the standard deviation is exp(0.5 * log_vars).": _mog_log_std,
            "the max over components is only an approximation of the logsumexp.": _mog_max,
        },
        hint="score z under each component as one M-dimensional Gaussian (a (B, K) table), add the log mixing "
             "weights made from the logits, and combine the components in log space.",
    )
    if strict or out is learner:  # right on the CPU: it must also follow its inputs' device
        check_follows_device(learner, _mog_reference, _mog_case_list(seed, 1)[0], name="mixture_log_prob")
    return out


# ----------------------------------------------------------------------------- VampPrior
class _Encoder(nn.Module):
    """A small fixed encoder u (K, D) -> (mu (K, M), log_var (K, M)) for the check."""

    def __init__(self, D: int, M: int, seed: int):
        super().__init__()
        with seeded(seed):
            self.net = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 2 * M)).double()

    def forward(self, u):
        mu, log_var = torch.chunk(self.net(u), 2, dim=-1)
        return 1.5 * mu, log_var - 0.5

    def __repr__(self) -> str:  # one line in a check's message, not the layers
        first, last = self.net[0], self.net[-1]
        return f"encoder(u of {first.in_features} pixels -> mu, log_var of {last.out_features // 2} dimensions)"


def _vamp_reference(z, u, encoder):
    mu, log_var = encoder(u)
    K = u.shape[0]
    return _mixture(z, mu, log_var, torch.full((K,), -math.log(K), dtype=mu.dtype, device=mu.device))


def _vamp_cases(rng: np.random.Generator) -> Case:
    B, K, D, M = int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(4, 9)), int(rng.integers(2, 4))
    encoder = _Encoder(D, M, int(rng.integers(0, 10_000)))
    u = torch.as_tensor(rng.uniform(0, 1, size=(K, D)), dtype=torch.float64)
    with torch.no_grad():
        mu, _ = encoder(u)
    u.requires_grad_(True)  # the pseudo-inputs are learned: the gradient of log p(z) must reach them
    z = mu[torch.as_tensor(rng.integers(0, K, size=B))] + _t(rng, B, M, scale=0.7)
    return Case((z, u, encoder))


def _vamp_no_log_k(z, u, encoder):
    mu, log_var = encoder(u)
    return torch.logsumexp(log_normal_diag(z.unsqueeze(-2), mu, log_var), dim=-1)


def _vamp_per_dimension(z, u, encoder):
    mu, log_var = encoder(u)
    return (torch.logsumexp(_per_component(z, mu, log_var), dim=-2) - math.log(u.shape[0])).sum(-1)


def _vamp_mean_of_logs(z, u, encoder):
    mu, log_var = encoder(u)
    return log_normal_diag(z.unsqueeze(-2), mu, log_var).mean(-1)


def _vamp_log_k_per_dimension(z, u, encoder):
    mu, log_var = encoder(u)
    return torch.logsumexp(log_normal_diag(z.unsqueeze(-2), mu, log_var), dim=-1) - z.shape[-1] * math.log(u.shape[0])


def _vamp_plus_log_k(z, u, encoder):
    return _vamp_reference(z, u, encoder) + 2 * math.log(u.shape[0])


def _vamp_output(fn: Callable) -> Callable:
    """A tensor result through which a gradient reaches the pseudo-inputs u (they are trained with the VAE)."""
    run = tensor_output("vamp_log_prob")(fn)

    def summary(z, u, encoder):
        out = run(z, u, encoder)
        if torch.is_tensor(out) and torch.is_tensor(u) and u.requires_grad and out.numel():
            grad = None
            if out.requires_grad:
                (grad,) = torch.autograd.grad(out.sum(), u, allow_unused=True)
            if grad is None or not bool((grad != 0).any()):
                raise ExerciseError(
                    "vamp_log_prob: not right yet — no gradient reaches the pseudo-inputs u: the result is cut off "
                    "from them (the encoder ran under torch.no_grad(), or its output was .detach()ed).\n"
                    "  The VampPrior LEARNS its pseudo-inputs: training moves u along the gradient of log p(z), "
                    "so call encoder(u) with gradients on, as in any other forward pass.")
        return out.detach() if torch.is_tensor(out) else out

    return summary


def check_vamp_log_prob(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``vamp_log_prob(z, u, encoder)`` -> (B,):

        log p(z) = logsumexp_k log N(z | mu(u_k), diag(exp(lv(u_k)))) - log K,   (mu, lv) = encoder(u)

    Inputs of the learner's function: z (B, M); u (K, D) pseudo-inputs; encoder, a callable
    u -> (mu (K, M), log_var (K, M)).
    """
    out = check_through(
        learner, _vamp_reference, _vamp_output, _vamp_cases,
        name="vamp_log_prob", seed=seed, strict=strict, rtol=1e-6, atol=1e-8,
        known_mistakes={
            "the log K is missing: the VampPrior is the AVERAGE 1/K sum_k q(z|u_k), so subtract log K after "
            "the logsumexp.": _vamp_no_log_k,
            "a mixture PER DIMENSION: sum each component's log-density over the M dimensions first, then "
            "logsumexp over the K components.": _vamp_per_dimension,
            "the mean of the log-densities is not the log of the mean density (Jensen): use logsumexp - log K.":
                _vamp_mean_of_logs,
            "log K is subtracted once per mixture, not once per latent dimension.": _vamp_log_k_per_dimension,
            "subtract log K (the weights are 1/K), do not add it.": _vamp_plus_log_k,
        },
        hint="the encoder at the K pseudo-inputs gives the K components; score z under each (a (B, K) table) "
             "and average the K densities in log space.",
    )
    if strict or out is learner:  # right on the CPU: it must also follow its inputs' device
        check_follows_device(learner, _vamp_reference, _vamp_cases(np.random.default_rng(seed)), name="vamp_log_prob")
    return out


# ----------------------------------------------------------------------------- KL warm-up
def _warmup_reference(epoch, warmup_epochs):
    return 1.0 if warmup_epochs == 0 else min(1.0, epoch / warmup_epochs)


# (4, 10) first: every known mistake gives its own value there but max(1, e / W) and "always 1", which (25, 10)
# tells apart (and the check runs an answer on the other cases whenever one case fits two mistakes)
_WARMUP_CASES = [Case((e, w)) for e, w in [(4, 10), (1, 10), (10, 10), (11, 10), (25, 10), (3, 0), (1, 1), (2, 4), (9, 4)]]


def _warmup_zero_based(epoch, warmup_epochs):
    return 1.0 if warmup_epochs == 0 else min(1.0, (epoch - 1) / warmup_epochs)


def _warmup_no_clamp(epoch, warmup_epochs):
    return 1.0 if warmup_epochs == 0 else epoch / warmup_epochs


def _warmup_plus_one(epoch, warmup_epochs):
    return min(1.0, epoch / (warmup_epochs + 1))


def _warmup_floor(epoch, warmup_epochs):
    return 1.0 if warmup_epochs == 0 else min(1.0, epoch // warmup_epochs)


def _warmup_from_zero_to_one(epoch, warmup_epochs):
    return 1.0 if warmup_epochs <= 1 else min(1.0, (epoch - 1) / (warmup_epochs - 1))


def _warmup_max(epoch, warmup_epochs):
    return 1.0 if warmup_epochs == 0 else max(1.0, epoch / warmup_epochs)


def _warmup_never(epoch, warmup_epochs):
    return 1.0


def _warmup_inverted(epoch, warmup_epochs):
    return 1.0 if warmup_epochs == 0 else max(0.0, 1.0 - epoch / warmup_epochs)


def check_kl_warmup(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``kl_warmup(epoch, warmup_epochs)`` -> float: min(1, epoch / warmup_epochs) for 1-based
    epochs, so that it reaches 1 AT epoch warmup_epochs; 1 when warmup_epochs is 0 (no warm-up)."""

    def as_float(fn):
        def run(epoch, warmup_epochs):
            return float(fn(epoch, warmup_epochs))

        return run

    return check_through(
        learner, _warmup_reference, as_float, _WARMUP_CASES,
        name="kl_warmup", seed=seed, strict=strict, rtol=1e-9, atol=1e-12,
        known_mistakes={
            "epochs count from 1 here: the first epoch already has weight 1/warmup_epochs, and the weight "
            "reaches 1 AT epoch warmup_epochs (with (epoch - 1) / warmup_epochs it arrives one epoch late).":
                _warmup_zero_based,
            "the weight must stop at 1 after the warm-up: min(1, epoch / warmup_epochs).": _warmup_no_clamp,
            "epoch // warmup_epochs is integer division: it stays 0 for the whole warm-up and jumps to 1; use "
            "epoch / warmup_epochs.": _warmup_floor,
            "(epoch - 1) / (warmup_epochs - 1) starts the warm-up at weight 0: the first epoch then trains no KL "
            "at all. With epochs counted from 1 the weight is epoch / warmup_epochs, 1/warmup_epochs at the first.":
                _warmup_from_zero_to_one,
            "max(1, epoch / warmup_epochs) is never below 1, so there is no warm-up; the cap is a MIN: "
            "min(1, epoch / warmup_epochs).": _warmup_max,
            "divide by warmup_epochs, not warmup_epochs + 1: the weight must be 1 at epoch warmup_epochs.":
                _warmup_plus_one,
            "that is no warm-up: the weight grows linearly from 1/warmup_epochs to 1.": _warmup_never,
            "the weight GROWS from near 0 to 1 (the KL is switched on gradually), it does not decay.": _warmup_inverted,
        },
        hint="the weight grows linearly with the 1-based epoch, reaches 1 at epoch warmup_epochs and stays there; "
             "warmup_epochs = 0 means no warm-up.",
    )


# ----------------------------------------------------------------------------- hierarchical ELBO
def _helbo_reference(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
    re = log_px_z1
    kl_z1 = log_q_z1 - log_p_z1_z2
    kl_z2 = log_q_z2 - log_p_z2
    return {"re": re, "kl_z1": kl_z1, "kl_z2": kl_z2, "elbo": re - kl_z1 - kl_z2}


def _helbo_cases(rng: np.random.Generator) -> Case:
    B = int(rng.integers(3, 8))
    return Case(tuple(_t(rng, B, scale=s) + o for s, o in [(5, -60), (2, -8), (2, -11), (1.5, -3), (1.5, -6)]))


def _helbo_single_level(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
    out = _helbo_reference(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2)
    out["elbo"] = out["re"] - out["kl_z2"]
    return out


def _helbo_kl1_sign(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
    out = _helbo_reference(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2)
    out["kl_z1"] = log_p_z1_z2 - log_q_z1
    out["elbo"] = out["re"] - out["kl_z1"] - out["kl_z2"]
    return out


def _helbo_swapped(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
    re = log_px_z1
    kl_z1, kl_z2 = log_q_z1 - log_p_z2, log_q_z2 - log_p_z1_z2
    return {"re": re, "kl_z1": kl_z1, "kl_z2": kl_z2, "elbo": re - kl_z1 - kl_z2}


def _helbo_plus(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
    out = _helbo_reference(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2)
    out["elbo"] = out["re"] + out["kl_z1"] + out["kl_z2"]
    return out


def _helbo_mean(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
    return {k: v.mean() for k, v in _helbo_reference(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2).items()}


def check_hierarchical_elbo(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``hierarchical_elbo(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2)`` -> dict:

        re = log p(x|z1),  kl_z1 = log q(z1|x) - log p(z1|z2),  kl_z2 = log q(z2|z1) - log p(z2),
        elbo = re - kl_z1 - kl_z2

    at one sample (z1, z2) ~ q(z1|x) q(z2|z1). Inputs: five (B,) tensors. Returns: {"re", "kl_z1",
    "kl_z2", "elbo"}, (B,) each.
    """
    return check_through(
        learner, _helbo_reference, lambda fn: fn, _helbo_cases,
        name="hierarchical_elbo", seed=seed, strict=strict, rtol=1e-9, atol=1e-9,
        known_mistakes={
            "the ELBO misses the lower level's term kl_z1: with two latent levels the ELBO is "
            "re - kl_z1 - kl_z2 (a single-level VAE has only one KL).": _helbo_single_level,
            "kl_z1 = log q(z1|x) - log p(z1|z2): the encoder's log-density minus the prior's, not the other way.":
                _helbo_kl1_sign,
            "each level's prior pairs with its own posterior: kl_z1 compares q(z1|x) with p(z1|z2), kl_z2 "
            "compares q(z2|z1) with p(z2).": _helbo_swapped,
            "the KL terms are SUBTRACTED from the reconstruction term: elbo = re - kl_z1 - kl_z2.": _helbo_plus,
            "return one value per data point (B,), not batch means.": _helbo_mean,
        },
        hint="each level's KL at the sample is its posterior's log-density minus its own prior's; the ELBO "
             "subtracts both from the reconstruction term, one value per data point.",
    )


# ----------------------------------------------------------------------------- core exercise: the rate's two parts
HINTS = {
    "rate_terms": (
        "All three numbers are averages over the same S x N samples z_sn, one batch of them per image, drawn from "
        "image n's own posterior with the given noise. Each average is of a difference of two log-densities at z_sn: "
        "its own posterior, the aggregate posterior q(z), the prior. Which pair goes with which term follows from the "
        "derivation above.",
        "The aggregate posterior is a mixture of N Gaussians with equal weights 1/N: evaluate every sample under every "
        "image's posterior (broadcast z of shape (S, N, 1, M) against mu_z of shape (N, M)), which gives an (S, N, N) "
        "table of log-densities; the mixture's log-density reduces its last axis.",
        "Reduce that axis with a log-sum-exp and remember the weights: the log of a MEAN of N densities is the "
        "log-sum-exp minus log N. Exponentiating first underflows in float32 (below about e^-104 a density is 0), "
        "and the mean of the logs is a different (smaller) number by Jensen's inequality. Compute all three terms "
        "from the same samples, so that rate = mutual_info + marginal_kl holds to rounding.",
    ),
}


def _rt(mu_z, log_var, eps, log_prior, *, std="right", agg="right", mi="right", mkl="right", rate="mc",
        prior="given", qzx="right"):
    """The rate's terms as the reference computes them, or with one planted mistake."""
    n = mu_z.shape[0]
    sd = {"right": torch.exp(0.5 * log_var), "var": torch.exp(log_var), "none": torch.zeros_like(log_var)}[std]
    z = mu_z + sd * eps  # (S, N, M)
    log_q_zx = log_normal_diag(z, mu_z, log_var if qzx == "right" else 2 * log_var, check=False)  # (S, N)
    table = log_normal_diag(z[:, :, None, :], mu_z, log_var, check=False)  # (S, N, N)
    log_q_z = {"right": lambda: torch.logsumexp(table, -1) - math.log(n),
               "no_log_n": lambda: torch.logsumexp(table, -1),
               "plus_log_n": lambda: torch.logsumexp(table, -1) + math.log(n),
               "naive": lambda: torch.log(torch.exp(table).mean(-1)),
               "mean_of_logs": lambda: table.mean(-1),
               "own": lambda: log_q_zx,
               "wrong_axis": lambda: torch.logsumexp(table, 1) - math.log(n)}[agg]()
    log_p_z = log_prior(z) if prior == "given" else log_normal_diag(z, torch.zeros(()), torch.zeros(()), check=False)
    closed = 0.5 * (mu_z**2 + torch.exp(log_var) - 1.0 - log_var).sum(-1).mean()
    r = (log_q_zx - log_p_z).mean() if rate == "mc" else closed
    i = {"right": (log_q_zx - log_q_z).mean(), "prior": (log_q_zx - log_p_z).mean(),
         "sign": (log_q_z - log_q_zx).mean()}[mi]
    k = (log_q_z - log_p_z).mean() if mkl == "right" else (log_p_z - log_q_z).mean()
    return {"log_q_zx": log_q_zx, "log_q_z": log_q_z, "log_p_z": log_p_z, "rate": r, "mutual_info": i,
            "marginal_kl": k}


def _standard_prior(z):
    return log_normal_diag(z, torch.zeros((), dtype=z.dtype), torch.zeros((), dtype=z.dtype), check=False)


class _ShiftedPrior:
    """log N(z | 0.5, exp(0.6) I): a prior that is not the standard normal."""

    def __call__(self, z):
        return log_normal_diag(z, torch.full((), 0.5, dtype=z.dtype), torch.full((), 0.6, dtype=z.dtype), check=False)

    def __repr__(self):
        return "log N(z | 0.5, exp(0.6) I)"


def _rate_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)

    def case(n, m, s, spread, lv_lo, lv_hi, prior):
        mu = torch.as_tensor(spread * rng.normal(size=(n, m)), dtype=torch.float32)
        lv = torch.as_tensor(rng.uniform(lv_lo, lv_hi, size=(n, m)), dtype=torch.float32)
        eps = torch.as_tensor(rng.normal(size=(s, n, m)), dtype=torch.float32)
        return Case((mu, lv, eps, prior))

    # a 2-D case, one with another prior, and one of 40 dimensions whose densities (e^-127 to e^-148)
    # underflow in float32
    return [case(6, 2, 5, 1.5, -2.0, 0.0, _standard_prior), case(5, 2, 4, 1.0, -1.5, 0.5, _ShiftedPrior()),
            case(4, 40, 3, 3.0, 3.8, 4.2, _standard_prior)]


RATE_PARTS = (
    Part("log_q_zx (log q(z|x_n) at image n's own samples z = mu_z + exp(log_var / 2) * eps)",
         lambda out, case: out["log_q_zx"]),
    Part("log_q_z (the aggregate posterior: log of the MEAN of the N posteriors' densities)",
         lambda out, case: out["log_q_z"]),
    Part("log_p_z (the given prior at the samples)", lambda out, case: out["log_p_z"]),
    Part("rate (the mean of log q(z|x) - log p(z), from YOUR log-densities)",
         lambda out, case: torch.as_tensor(out["rate"]) - (out["log_q_zx"] - out["log_p_z"]).mean()),
    Part("mutual_info (the mean of log q(z|x) - log q(z), from YOUR log-densities)",
         lambda out, case: torch.as_tensor(out["mutual_info"]) - (out["log_q_zx"] - out["log_q_z"]).mean()),
    Part("marginal_kl (the mean of log q(z) - log p(z), from YOUR log-densities)",
         lambda out, case: torch.as_tensor(out["marginal_kl"]) - (out["log_q_z"] - out["log_p_z"]).mean()),
)

RATE_MISTAKES = {
    "the log of a MEAN of N densities is logsumexp - log N: the log-sum-exp alone is the log of their SUM.":
        lambda *a: _rt(*a, agg="no_log_n"),
    "the mutual information compares q(z|x) with the AGGREGATE posterior q(z), not with the prior (that gives the "
    "rate again).": lambda *a: _rt(*a, mi="prior"),
    "KL(q(z) || p(z)) is the mean of log q(z) - log p(z), the aggregate's log-density first; the other order has "
    "the wrong sign.": lambda *a: _rt(*a, mkl="sign"),
    "the mean of the log-densities is not the log of the mean density (Jensen): average the densities, i.e. "
    "log-sum-exp minus log N.": lambda *a: _rt(*a, agg="mean_of_logs"),
    "exp() of the log-densities underflows in float32 (below about e^-104 a density is 0, and log 0 = -inf): "
    "reduce with torch.logsumexp.": lambda *a: _rt(*a, agg="naive"),
    "q(z) is the mixture of ALL N posteriors, not image n's own q(z|x_n) (that makes the mutual information 0).":
        lambda *a: _rt(*a, agg="own"),
    "z was drawn with exp(log_var), the variance, as its scale; the scale is exp(log_var / 2).":
        lambda *a: _rt(*a, std="var"),
}


def check_rate_terms(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``rate_terms(mu_z, log_var, eps, log_prior)`` -> {"log_q_zx", "log_q_z", "log_p_z" (S, N);
    "rate", "mutual_info", "marginal_kl"}: compared part by part with :func:`lvmlib.variational.rate_terms` on
    two 2-D cases (the standard normal prior and another one) and a 40-D case whose densities underflow in float32."""
    from lvmlib.variational import rate_terms

    return check_through(
        learner, rate_terms, lambda fn: fn, _rate_cases(seed), name="rate_terms", seed=seed, strict=strict,
        rtol=1e-4, atol=1e-4, parts=RATE_PARTS, known_mistakes=RATE_MISTAKES,
        hint='checks.hint("rate_terms") shows a hint, one more each time.',
    )

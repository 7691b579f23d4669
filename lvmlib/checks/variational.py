"""Checks for the exercises on the ELBO (notebook 04).

- ``check_reparameterize``: z = mu_z + exp(0.5 log_var) * eps (lecture: "Reparameterization
  trick"), checked on its distribution and its gradients, so any way of drawing eps is fine;
- ``check_kl_standard_normal``: the analytic KL(N(mu_z, diag(exp(log_var))) || N(0, I));
- ``check_iwae_bound``: L_K = logsumexp_k(log w_k) - log K (Burda et al. 2016);
- ``check_k_sample_bounds`` (the core exercise): the K-sample ELBO and the IWAE bound from the
  same draws, with partial diagnosis (which density, which average).

Usage in a notebook::

    from lvmlib import checks
    reparameterize = checks.variational.check_reparameterize(reparameterize)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from lvmlib import gaussian, variational, vae
from lvmlib.checks._core import Case, ExerciseError, Part, check_function, check_through

__all__ = ["check_reparameterize", "check_kl_standard_normal", "check_iwae_bound", "check_k_sample_bounds",
           "check_through", "tensor_output"]


def tensor_output(name: str, index: int | None = None) -> Callable[[Callable], Callable]:
    """A ``summarize`` for :func:`check_through` that insists on a torch tensor as the result
    (or as ``result[index]``), so that the rest of the notebook can use it as one."""

    def summarize(fn: Callable) -> Callable:
        def run(*args, **kwargs):
            out = fn(*args, **kwargs)
            part = out if index is None or not isinstance(out, (tuple, list)) or len(out) <= index else out[index]
            if part is not None and not torch.is_tensor(part):
                what = "the result" if index is None else f"result[{index}]"
                raise ExerciseError(f"{name}: return {what} as a torch tensor (got {type(part).__name__}); "
                                    "the rest of the notebook computes with it in PyTorch.")
            return out

        return run

    return summarize


def _t(rng: np.random.Generator, *shape, low=None, high=None, scale=1.0) -> torch.Tensor:
    if low is not None:
        return torch.as_tensor(rng.uniform(low, high, size=shape), dtype=torch.float64)
    return torch.as_tensor(scale * rng.normal(size=shape), dtype=torch.float64)


def _log_var(rng: np.random.Generator, *shape) -> torch.Tensor:
    """Log-variances away from 0 (so that variance, std and log-std answers differ clearly)."""
    mag = rng.uniform(0.7, 2.5, size=shape)
    sign = rng.choice([-1.0, 1.0], size=shape)
    return torch.as_tensor(mag * sign, dtype=torch.float64)


# ----------------------------------------------------------------------------- reparameterize
N_REPARAM = 40_000  # samples per (b, m) entry used to check the distribution of z


def _reparam_cases(rng: np.random.Generator) -> Case:
    B, M = int(rng.integers(2, 4)), int(rng.integers(2, 5))
    return Case((_t(rng, B, M, scale=2.0), _log_var(rng, B, M)))


def _reparam_summary(fn: Callable) -> Callable:
    """Run fn on (mu_z, log_var) expanded to (N, B, M); summarise z's law and its gradients."""

    def summary(mu_z, log_var):
        mu = mu_z.clone().requires_grad_(True)
        lv = log_var.clone().requires_grad_(True)
        shape = (N_REPARAM, *mu_z.shape)  # (N, B, M)
        z = fn(mu.expand(shape), lv.expand(shape))
        if not torch.is_tensor(z):
            raise ExerciseError(f"reparameterize: return z as a torch tensor, got {type(z).__name__}")
        if z.shape != shape:
            raise ExerciseError(
                f"reparameterize: z must have the shape of mu_z; for inputs of shape {shape} it has {tuple(z.shape)}"
            )
        if not z.requires_grad:
            raise ExerciseError(
                "reparameterize: z carries no gradient back to mu_z and log_var. The point of the trick is "
                "z = mu_z + sigma * eps with eps ~ N(0, I) drawn on its own (torch.randn_like), so that z is a "
                "differentiable function of mu_z and log_var (.detach(), torch.no_grad() or NumPy break the chain)."
            )
        with torch.no_grad():
            sigma = torch.exp(0.5 * log_var)
            eps = (z - mu_z) / sigma  # (N, B, M): should be N(0, 1) draws
        g_mu = torch.autograd.grad(z.sum(), mu, allow_unused=True, retain_graph=True)[0]
        # d/dlog_var of sum_n z_n eps_n / sigma = sum_n (sigma eps_n / 2) eps_n / sigma = sum_n eps_n^2 / 2
        g_lv = torch.autograd.grad((z * (eps / sigma)).sum(), lv, allow_unused=True)[0]
        g_mu = torch.zeros_like(mu) if g_mu is None else g_mu
        g_lv = torch.zeros_like(lv) if g_lv is None else g_lv
        return {
            "mean of (z - mu_z) / sigma": eps.mean(0),
            "std of (z - mu_z) / sigma": eps.std(0),
            "dz/dmu_z (per sample; 1 for the trick)": g_mu / N_REPARAM,
            "dz/dlog_var * eps / sigma (per sample; 1/2 for the trick)": g_lv / N_REPARAM,
        }

    return summary


def _rp_std_is_var(mu_z, log_var):
    return mu_z + torch.exp(log_var) * torch.randn_like(mu_z)


def _rp_log_var_as_std(mu_z, log_var):
    return mu_z + log_var * torch.randn_like(mu_z)


def _rp_no_mu(mu_z, log_var):
    return torch.exp(0.5 * log_var) * torch.randn_like(mu_z)


def _rp_no_noise(mu_z, log_var):
    return mu_z + torch.exp(0.5 * log_var)


def _rp_torch_normal(mu_z, log_var):
    return torch.normal(mu_z, torch.exp(0.5 * log_var))


def _rp_mu_detached(mu_z, log_var):
    return mu_z.detach() + torch.exp(0.5 * log_var) * torch.randn_like(mu_z)


def _rp_sigma_detached(mu_z, log_var):
    return mu_z + torch.exp(0.5 * log_var).detach() * torch.randn_like(mu_z)


def check_reparameterize(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``reparameterize(mu_z, log_var)`` -> z = mu_z + exp(0.5 log_var) * eps, eps ~ N(0, I).

    The learner's z (for inputs expanded to 40,000 copies) must have mean mu_z and standard
    deviation exp(0.5 log_var), and the gradients dz/dmu_z = 1, dz/dlog_var = sigma eps / 2
    (checked through its average against eps / sigma, which is 1/2).
    """
    return check_through(
        learner, vae.reparameterize, _reparam_summary, _reparam_cases,
        name="reparameterize", seed=seed, strict=strict, n_trials=3, rtol=0.0, atol=0.05,
        known_mistakes={
            "exp(log_var) is the VARIANCE sigma^2; the standard deviation is sigma = exp(0.5 * log_var). "
            "(The lecture's slide code writes std = exp(log_std) because its encoder outputs a log-STD; "
            "ours outputs the log-VARIANCE.)": _rp_std_is_var,
            "log_var is a log-variance, not a standard deviation: sigma = exp(0.5 * log_var).": _rp_log_var_as_std,
            "z must be centred on mu_z: z = mu_z + sigma * eps.": _rp_no_mu,
            "the noise eps ~ N(0, I) is missing: z = mu_z + sigma * eps.": _rp_no_noise,
            "torch.normal(mu_z, sigma) draws the right z, but its gradients with respect to mu_z and sigma are "
            "zero; the trick draws eps ~ N(0, I) alone and builds z = mu_z + sigma * eps.": _rp_torch_normal,
            "dz/dmu_z is 0, so mu_z was cut out of the graph (mu_z.detach(), .data or a copy through NumPy): "
            "z = mu_z + sigma * eps must be a differentiable function of mu_z.": _rp_mu_detached,
            "dz/dlog_var is 0, so sigma was cut out of the graph (.detach(), .data or .item()): "
            "sigma must stay a differentiable function of log_var.": _rp_sigma_detached,
        },
        hint="z = mu_z + sigma * eps: sigma from the log-VARIANCE, eps ~ N(0, I) of mu_z's shape the only "
             "randomness, so that the gradient reaches mu_z and log_var.",
    )


# ----------------------------------------------------------------------------- KL(q || N(0, I))
def _kl_cases(rng: np.random.Generator) -> Case:
    B, M = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    return Case((_t(rng, B, M, scale=1.5), _log_var(rng, B, M)))


def _kl_reference(mu_z, log_var):
    return gaussian.kl_normal_diag(mu_z, log_var)


def _kl_no_half(mu_z, log_var):
    return (mu_z**2 + log_var.exp() - log_var - 1).sum(-1)


def _kl_sign(mu_z, log_var):
    return 0.5 * (1 + log_var - mu_z**2 - log_var.exp()).sum(-1)


def _kl_std_for_var(mu_z, log_var):
    return 0.5 * (mu_z**2 + torch.exp(0.5 * log_var) - log_var - 1).sum(-1)


def _kl_log_std(mu_z, log_var):
    return 0.5 * (mu_z**2 + torch.exp(2 * log_var) - 2 * log_var - 1).sum(-1)


def _kl_no_minus_one(mu_z, log_var):
    return 0.5 * (mu_z**2 + log_var.exp() - log_var).sum(-1)


def _kl_mean_over_m(mu_z, log_var):
    return 0.5 * (mu_z**2 + log_var.exp() - log_var - 1).mean(-1)


def _kl_sum_all(mu_z, log_var):
    return 0.5 * (mu_z**2 + log_var.exp() - log_var - 1).sum()


def _kl_log_var_sign(mu_z, log_var):
    return 0.5 * (mu_z**2 + log_var.exp() + log_var - 1).sum(-1)


def check_kl_standard_normal(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``kl_standard_normal(mu_z, log_var)`` -> (B,) KL(N(mu_z, diag(exp(log_var))) || N(0, I)).

    KL = 1/2 sum_m (mu_m^2 + exp(log_var_m) - log_var_m - 1)   (Kingma & Welling 2014, App. B).
    """
    return check_through(
        learner, _kl_reference, tensor_output("kl_standard_normal"), _kl_cases,
        name="kl_standard_normal", seed=seed, strict=strict,
        known_mistakes={
            "the factor 1/2 is missing: KL = 1/2 sum (mu^2 + sigma^2 - log sigma^2 - 1).": _kl_no_half,
            "the sign is flipped: 1/2 sum (1 + log_var - mu^2 - exp(log_var)) is -KL (a KL is >= 0).": _kl_sign,
            "exp(0.5 * log_var) is the standard deviation; the formula needs the VARIANCE exp(log_var).":
                _kl_std_for_var,
            "log_var is the log-VARIANCE (not the log-std): sigma^2 = exp(log_var), log sigma^2 = log_var.":
                _kl_log_std,
            "the -1 per dimension is missing (without it the KL of q = p is M/2, not 0).": _kl_no_minus_one,
            "the KL of a product of independent dimensions is the SUM over m, not the mean.": _kl_mean_over_m,
            "sum over the latent dimensions only (the last axis); keep one value per data point (B,).": _kl_sum_all,
            "the log-variance enters with a minus sign: ... - log_var - 1.": _kl_log_var_sign,
        },
        hint="the KL of one Gaussian dimension against N(0, 1) has a closed form in mu and sigma^2 = exp(log_var) "
             "(the notebook derives it); sum it over the M dimensions, one value per row.",
    )


# ----------------------------------------------------------------------------- IWAE bound
def _iwae_case_list(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for offset in (-2.0, -40.0, -800.0, -1500.0):
        K, B = int(rng.integers(3, 40)), int(rng.integers(2, 5))
        while K == B:
            K += 1
        log_w = offset + torch.as_tensor(rng.normal(scale=3.0, size=(K, B)), dtype=torch.float64)  # (K, B)
        cases.append(Case((log_w,)))
    return cases


def _iwae_no_log_k(log_w):
    return torch.logsumexp(log_w, dim=0)


def _iwae_elbo(log_w):
    return log_w.mean(0)


def _iwae_naive(log_w):
    return torch.log(torch.exp(log_w).mean(0))


def _iwae_wrong_dim(log_w):
    return torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])


def _iwae_max(log_w):
    return log_w.max(0).values


def _iwae_plus_log_k(log_w):
    return torch.logsumexp(log_w, dim=0) + math.log(log_w.shape[0])


def check_iwae_bound(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``iwae_bound(log_w)`` -> (B,) L_K = log (1/K) sum_k w_k from log_w (K, B).

    Some cases have log-weights near -1000, where exp underflows: only logsumexp survives.
    """
    return check_through(
        learner, variational.iwae_bound, tensor_output("iwae_bound"), _iwae_case_list(seed),
        name="iwae_bound", seed=seed, strict=strict,
        known_mistakes={
            "the average needs its 1/K: L_K = logsumexp_k(log w_k) - log K (without it L_K grows with K "
            "and is no longer a bound).": _iwae_no_log_k,
            "the mean of the log-weights is the ELBO (L_1 averaged), not L_K: the log goes OUTSIDE the "
            "average, log (1/K) sum_k w_k.": _iwae_elbo,
            "log(mean(exp(log_w))) underflows: exp(-800) is 0 in floating point, so log gives -inf. "
            "Use torch.logsumexp (it subtracts the maximum first).": _iwae_naive,
            "the K samples are the FIRST axis of log_w (K, B); average over dim=0 and keep one value per "
            "data point.": _iwae_wrong_dim,
            "the largest weight alone is not the average: use logsumexp over the K samples, minus log K.":
                _iwae_max,
            "1/K means MINUS log K: L_K = logsumexp_k(log w_k) - log K.": _iwae_plus_log_k,
        },
        hint="L_K is the log of the MEAN over the K samples (axis 0) of exp(log_w); compute it in log space "
             "(a log-sum-exp, then the 1/K as a log), one value per data point.",
    )


# ----------------------------------------------------------------------------- core exercise: K-sample bounds
HINTS = {
    "iwae_bound": (
        "The bound is the log of an AVERAGE of the K weights w_k = exp(log w_k), one average per data point: "
        "which axis of log_w holds the K samples?",
        "Computing exp(log_w) first fails: the log-weights of real data are often near -100 or -1000, and their "
        "exponentials are 0 in floating point (the cell above shows where). Stay in log space.",
        "torch has a stable log of a SUM of exponentials over one axis; the log of the average is that minus the "
        "log of the number of terms.",
    ),
    "k_sample_bounds": (
        "Everything comes from K log-weights per data point, log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), "
        "one z_k per noise draw eps[k]. Both bounds are averages of the same K weights; they differ in where "
        "the log goes.",
        "z_k comes from the reparameterisation with the standard deviation, exp(log_var / 2). log p(z) and "
        "log q(z|x) are diagonal Gaussian log-densities summed over the M latent dimensions (lvmlib.gaussian "
        "has both; mind which of them takes a log-variance).",
        "Average over the sample axis (dim 0, of size K) and keep one value per data point. The importance-"
        "weighted bound is the log of the average weight: compute it from the log-weights with a log-sum-exp, "
        "or it underflows when log w is near -1000.",
    ),
}


class _LinearDecoder:
    """log p(x|z) = log N(x | z A^T + b, s2 I) summed over D, for z (K, B, M), x (B, D) -> (K, B)."""

    def __init__(self, A: torch.Tensor, b: torch.Tensor, s2: float):
        self.A, self.b, self.s2 = A, b, s2

    def __call__(self, x, z):
        mean = z @ self.A.T + self.b  # (K, B, D)
        return gaussian.log_normal_diag(x, mean, torch.full_like(mean, math.log(self.s2)))

    def __repr__(self) -> str:
        return f"<log p(x|z): linear-Gaussian decoder, D={self.A.shape[0]}, M={self.A.shape[1]}>"


def _ksb_case_list(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for s2 in (0.5, 0.8, 1e-3):  # the last: log w near -1000, where only a log-sum-exp survives
        K, B, M, D = int(rng.integers(4, 7)), int(rng.integers(2, 4)), int(rng.integers(2, 4)), 5
        decoder = _LinearDecoder(_t(rng, D, M), _t(rng, D), s2)
        cases.append(Case((_t(rng, B, D, scale=2.0), _t(rng, B, M), _log_var(rng, B, M), _t(rng, K, B, M), decoder)))
    return cases


def _ksb(x, mu_z, log_var, eps, log_px, *, std="right", qz="right", pz="right", iwae="right", axis=0):
    sd = {"right": torch.exp(0.5 * log_var), "var": torch.exp(log_var), "log_var": log_var}[std]
    z = mu_z + sd * eps  # (K, B, M)
    log_px_z = log_px(x, z)
    log_pz = gaussian.log_normal_standard(z, check=False)
    if pz == "no_const":
        log_pz = -0.5 * (z**2).sum(-1)
    log_qz = {"right": lambda: gaussian.log_normal_diag(z, mu_z, log_var, check=False),
              "std_as_logvar": lambda: gaussian.log_normal_diag(z, mu_z, 0.5 * log_var, check=False),
              "standard": lambda: gaussian.log_normal_standard(eps, check=False)}[qz]()
    log_w = log_px_z + log_pz - log_qz  # (K, B)
    K = log_w.shape[axis]
    bound = {"right": lambda: torch.logsumexp(log_w, axis) - math.log(K),
             "no_log_k": lambda: torch.logsumexp(log_w, axis),
             "naive": lambda: torch.log(torch.exp(log_w).mean(axis)),
             "elbo": lambda: log_w.mean(axis)}[iwae]()
    return {"z": z, "log_px_z": log_px_z, "log_pz": log_pz, "log_qz": log_qz, "elbo": log_w.mean(axis), "iwae": bound}


def _lw(out):
    return torch.as_tensor(out["log_px_z"]) + torch.as_tensor(out["log_pz"]) - torch.as_tensor(out["log_qz"])


KSB_PARTS = (  # in the order of the computation: a wrong early part makes the later ones wrong too
    Part("z (the reparameterised samples)", lambda out, case: out["z"]),
    Part("log_px_z (log p(x|z) at the reparameterised z)", lambda out, case: out["log_px_z"]),
    Part("log_pz (the prior's log-density)", lambda out, case: out["log_pz"]),
    Part("log_qz (the encoder's log-density)", lambda out, case: out["log_qz"]),
    Part("elbo (the average of YOUR log-weights over the K samples)",
         lambda out, case: torch.as_tensor(out["elbo"]) - _lw(out).mean(0)),
    Part("iwae (the log of the average of YOUR weights over the K samples)",
         lambda out, case: torch.as_tensor(out["iwae"]) - (torch.logsumexp(_lw(out), 0) - math.log(_lw(out).shape[0]))),
)


def check_k_sample_bounds(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``k_sample_bounds(x, mu_z, log_var, eps, log_px_given_z)`` -> {"z", "log_px_z", "log_pz", "log_qz",
    "elbo", "iwae"}; the diagnosis names the density or the average that is wrong."""
    return check_function(
        learner, variational.k_sample_bounds, _ksb_case_list(seed), name="k_sample_bounds", seed=seed,
        strict=strict, rtol=1e-6, atol=1e-8, parts=KSB_PARTS,
        known_mistakes={
            "z was drawn with the variance exp(log_var) as the scale; the scale is the standard deviation "
            "exp(log_var / 2).": lambda *a: _ksb(*a, std="var"),
            "log q(z|x) was evaluated with a log-std where it takes a log-variance.": lambda *a: _ksb(*a, qz="std_as_logvar"),
            "log q(z|x) is not log N(eps | 0, I): the change of variables from eps to z adds "
            "-sum(log_var) / 2.": lambda *a: _ksb(*a, qz="standard"),
            "the importance-weighted bound needs its 1/K: subtract log K.": lambda *a: _ksb(*a, iwae="no_log_k"),
            "log(mean(exp(log w))) underflows to -inf for log w near -1000: use a log-sum-exp.":
                lambda *a: _ksb(*a, iwae="naive"),
            "'iwae' is the mean of the log-weights (that is the ELBO): the log goes outside the average.":
                lambda *a: _ksb(*a, iwae="elbo"),
        },
        hint='checks.hint("k_sample_bounds") shows a hint, one more each time.',
    )

"""The inference gap of a VAE, split in two (Cremer, Li & Duvenaud 2018, "Inference Suboptimality
in Variational Autoencoders", ICML).

The lecture's first disadvantage of VAEs is the "potential mismatch between the true posterior and
the variational posterior". Its size per data point is the gap

    log p(x) - ELBO(q_phi)  =  KL(q_phi(z|x) || p(z|x))  >= 0          (notebook 04's identity)

and Cremer et al. split it at q*(z|x), the best member of the variational family for this one x
(found by optimising q's parameters for x alone, decoder fixed):

    log p(x) - ELBO(q_phi) = [log p(x) - ELBO(q*)]  +  [ELBO(q*) - ELBO(q_phi)]
                           =  approximation gap      +   amortisation gap

The approximation gap is what the family (a diagonal Gaussian, a flow) cannot represent; the
amortisation gap is what one encoder network shared by all x loses against per-point optimisation.

Posterior families. q's per-point parameters are a dict of tensors with leading dimension B:
{"mu", "log_var"} for the Gaussian posterior, plus the flow's amortised parameters for a flow posterior
(:mod:`lvmlib.flows`). A model provides ``posterior_params(x)`` and ``sample_q_from_params(params, n,
generator)`` -> (z (n, B, M), log q(z|x) (n, B)), reparameterised; a model with only ``encode(x)`` ->
(mu_z, log_var) is treated as a Gaussian posterior. Both paths run the same code below.

Estimators (all Monte Carlo; every result comes with its standard error):
    ELBO(q)  ~ mean_k log w_k,           log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k ~ q
    log p(x) ~ logsumexp_k log w_k - log K   (importance sampling with the refined q* as proposal;
               a stochastic lower bound, Burda et al. 2016)
The standard error of the ELBO is sd(log w)/sqrt(K); that of the importance-sampling estimate is the
delta-method sd(w)/(sqrt(K) mean(w)), computed stably from normalised weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lvmlib.gaussian import log_normal_diag
from lvmlib.priors import prior_log_prob

__all__ = ["posterior_params", "sample_q", "log_weights", "refine_posterior", "inference_gaps", "GapResult"]


def _check_model(model) -> None:
    for attr in ("log_px_given_z", "prior"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a VAE (with log_px_given_z and prior); {type(model).__name__} has no {attr!r}")
    if not (hasattr(model, "posterior_params") or hasattr(model, "encode")):
        raise TypeError(f"model must have encode(x) or posterior_params(x); {type(model).__name__} has neither")


def _check_positive_int(name: str, v) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _check_nonneg_int(name: str, v) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    return int(v)


def _check_lr(lr) -> float:
    if not isinstance(lr, (int, float, np.integer, np.floating)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return float(lr)


def _check_x(model, x) -> torch.Tensor:
    if hasattr(model, "check_data"):
        return model.check_data(x, "x")
    if not torch.is_tensor(x) or x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a tensor of shape (N, D) with N >= 1, got {getattr(x, 'shape', type(x).__name__)}")
    return x


def _uses_contract(model) -> bool:
    return hasattr(model, "posterior_params") and hasattr(model, "sample_q_from_params")


def _as_params(params, B: int | None = None) -> dict[str, torch.Tensor]:
    if isinstance(params, (tuple, list)) and len(params) == 2:  # (mu_z, log_var), as encode(x) returns them
        params = {"mu": params[0], "log_var": params[1]}
    if not isinstance(params, dict) or not {"mu", "log_var"} <= set(params) or \
            not all(torch.is_tensor(v) for v in params.values()):
        raise TypeError("params must be a dict of tensors with at least 'mu' and 'log_var' (from posterior_params), "
                        f"got {type(params).__name__}")
    if B is not None and any(v.dim() == 0 or v.shape[0] != B for v in params.values()):
        raise ValueError(f"params must be per-point tensors with first dimension B = {B}, got shapes "
                         f"{ {k: tuple(v.shape) for k, v in params.items()} }")
    return params


def posterior_params(model, x) -> dict[str, torch.Tensor]:
    """q_phi(z|x)'s per-point parameters, detached: the model's ``posterior_params(x)``, or
    {"mu", "log_var"} from ``encode(x)``. Inputs: x (B, D). Returns: dict of (B, ...) tensors."""
    _check_model(model)
    x = _check_x(model, x)
    with torch.no_grad():
        params = model.posterior_params(x) if _uses_contract(model) else model.encode(x)
    return {k: v.detach() for k, v in _as_params(params, x.shape[0]).items()}


def sample_q(model, params, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n reparameterised samples of q(z|x) with given parameters and their log-density.

    Gaussian: z = mu + exp(0.5 log_var) * eps; log q = log N(z | mu, diag(exp(log_var))).
    Inputs: params from :func:`posterior_params`; n >= 1. Returns: z (n, B, M), log_q (n, B).
    """
    n = _check_positive_int("n", n)
    params = _as_params(params)
    if _uses_contract(model):
        return model.sample_q_from_params(params, n, generator=generator)
    mu_z, log_var = params["mu"], params["log_var"]
    eps = torch.randn((n, *mu_z.shape), generator=generator, device=mu_z.device, dtype=mu_z.dtype)  # (n, B, M)
    z = mu_z + torch.exp(0.5 * log_var) * eps
    return z, log_normal_diag(z, mu_z, log_var, check=False)  # (n, B, M), (n, B)


def log_weights(model, x: torch.Tensor, params, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) - log q(z|x) at n samples z ~ q. Inputs: x (B, D). Returns: (n, B)."""
    z, log_q = sample_q(model, params, n, generator)
    # no value checks inside the loop (x and the model were checked on entry; a diverging
    # refinement is reported by refine_posterior at its end, naming lr)
    return model.log_px_given_z(x, z) + prior_log_prob(model.prior, z, check=False) - log_q


def refine_posterior(model, x, steps: int = 200, lr: float = 0.05, n_samples: int = 8, params=None,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """q*(z|x): q's parameters optimised for each data point separately, from the encoder's output.

        params* = argmax_params  sum_b ELBO(x_b; params_b)     (Adam, ``steps`` steps, rate ``lr``
                                                              decaying to lr/100 on a cosine)

    The objective is the sum over the batch of n_samples-sample reparameterised ELBOs, so each point's
    gradient is its own (the points are independent problems solved in one batch). Gradients are taken
    with respect to the per-point parameters only (``torch.autograd.grad``): the decoder, the encoder
    and the prior are read, never changed, and their ``.grad`` stays untouched.

    Inputs: model (see the module's docstring); x (B, D); steps >= 0; lr > 0; n_samples >= 1;
        params: the starting point (default: the encoder's output for x); generator (optional).
    Returns: the refined parameters, a dict of detached tensors shaped like ``posterior_params``'s.
    """
    _check_model(model)
    steps = _check_nonneg_int("steps", steps)
    lr = _check_lr(lr)
    n_samples = _check_positive_int("n_samples", n_samples)
    x = _check_x(model, x)
    start = posterior_params(model, x) if params is None else _as_params(params, x.shape[0])
    keys = list(start)
    leaves = [start[k].detach().clone().requires_grad_(True) for k in keys]
    opt = torch.optim.Adam(leaves, lr=lr)
    # cosine decay to lr/100: large steps early, small ones at the end so that the noise of the
    # stochastic gradients does not leave q* jittering around its optimum
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr / 100)
    was_training = model.training
    model.eval()
    try:
        for _ in range(steps):
            elbo = log_weights(model, x, dict(zip(keys, leaves)), n_samples, generator).mean(0)  # (B,)
            loss = -elbo.sum()
            grads = torch.autograd.grad(loss, leaves)  # the parameters of q only, not the model's
            for p, g in zip(leaves, grads):
                p.grad = g
            opt.step()
            schedule.step()
    finally:
        model.train(was_training)
    out = {k: p.detach() for k, p in zip(keys, leaves)}
    if not all(bool(torch.isfinite(p).all()) for p in out.values()):
        raise FloatingPointError(f"refine_posterior diverged (non-finite parameters) with lr={lr}: use a smaller lr")
    return out


def _elbo_and_se(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = log_w.shape[0]
    return log_w.mean(0), log_w.std(0) / math.sqrt(n) if n > 1 else torch.full_like(log_w[0], float("nan"))


def _is_and_se(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    K = log_w.shape[0]
    lse = torch.logsumexp(log_w, 0)  # (B,)
    w = torch.exp(log_w - lse)  # normalised weights (K, B), sum 1
    # delta method: se(log mean w) = sd(w) / (sqrt(K) mean(w)); with w normalised, mean = 1/K
    se = torch.sqrt(((w - 1.0 / K) ** 2).sum(0) / max(K - 1, 1)) * K / math.sqrt(K)
    return lse - math.log(K), se


@dataclass
class GapResult:
    """Per-point estimates (B,) and their Monte Carlo standard errors (B,), in nats.

    log_px: importance-sampled log p(x) (proposal q*); elbo_star: ELBO(q*); elbo_phi: ELBO(q_phi);
    approximation = log_px - elbo_star; amortisation = elbo_star - elbo_phi; params_star: q*'s params.
    ``summary()`` gives means over the points with the standard error of each mean (Monte Carlo error
    and the spread over the points are reported separately).
    """

    log_px: torch.Tensor
    log_px_se: torch.Tensor
    elbo_star: torch.Tensor
    elbo_star_se: torch.Tensor
    elbo_phi: torch.Tensor
    elbo_phi_se: torch.Tensor
    approximation: torch.Tensor
    approximation_se: torch.Tensor
    amortisation: torch.Tensor
    amortisation_se: torch.Tensor
    params_star: dict

    def summary(self) -> dict[str, dict[str, float]]:
        """{name: {"mean", "mc_se" (Monte Carlo error of the mean), "sem" (spread over the points / sqrt N)}}."""
        out = {}
        for name in ("log_px", "elbo_star", "elbo_phi", "approximation", "amortisation"):
            v, se = getattr(self, name), getattr(self, f"{name}_se")
            N = v.shape[0]
            out[name] = {
                "mean": float(v.mean()),
                "mc_se": float(torch.sqrt((se ** 2).sum()) / N),
                "sem": float(v.std() / math.sqrt(N)) if N > 1 else float("nan"),
            }
        return out


def inference_gaps(model, x, K: int = 1000, n_elbo: int = 1000, steps: int = 200, lr: float = 0.05,
                   n_samples: int = 8, batch_size: int = 256, generator: torch.Generator | None = None) -> GapResult:
    """log p(x), ELBO(q*), ELBO(q_phi) and the approximation and amortisation gaps per data point.

        approximation gap = log p(x) - ELBO(q*),   amortisation gap = ELBO(q*) - ELBO(q_phi)

    q* comes from :func:`refine_posterior` (``steps``, ``lr``, ``n_samples``); each ELBO is a mean of
    ``n_elbo`` log-weights; log p(x) is importance sampling with K samples from q* (a tighter proposal
    than q_phi). The ELBOs of q* and q_phi use the same random numbers (common random numbers), so their
    difference has a small Monte Carlo error. Gap standard errors treat the estimates as independent
    (conservative for the amortisation gap). ELBO(q*) < ELBO(q_phi) can happen within the error.

    Inputs: model; x (N, D); K, n_elbo >= 2; steps, lr, n_samples as for :func:`refine_posterior`;
        batch_size: rows refined and evaluated at a time; generator (optional).
    Returns: :class:`GapResult` with (N,) tensors on the model's device.
    """
    _check_model(model)
    K = _check_positive_int("K", K)
    n_elbo = _check_positive_int("n_elbo", n_elbo)
    if K < 2 or n_elbo < 2:
        raise ValueError(f"K and n_elbo must be at least 2 (a standard error needs two samples), got K={K}, n_elbo={n_elbo}")
    batch_size = _check_positive_int("batch_size", batch_size)
    x = _check_x(model, x)
    parts: dict[str, list] = {k: [] for k in ("log_px", "log_px_se", "elbo_star", "elbo_star_se", "elbo_phi", "elbo_phi_se")}
    stars: list[dict] = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        phi = posterior_params(model, xb)
        star = refine_posterior(model, xb, steps=steps, lr=lr, n_samples=n_samples, params=phi, generator=generator)
        stars.append(star)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)) if generator is not None \
            else int(torch.randint(0, 2**31 - 1, (1,)))
        with torch.no_grad():
            crn = {}
            for name, p in (("elbo_star", star), ("elbo_phi", phi)):
                g = torch.Generator(device=p["mu"].device).manual_seed(seed)  # the same eps for both
                crn[name] = log_weights(model, xb, p, n_elbo, g)
                m, se = _elbo_and_se(crn[name])
                parts[name].append(m)
                parts[f"{name}_se"].append(se)
            g = torch.Generator(device=star["mu"].device).manual_seed(seed + 1)
            log_w = torch.cat([log_weights(model, xb, star, min(100, K - k), g) for k in range(0, K, 100)])  # (K, b)
            m, se = _is_and_se(log_w)
            parts["log_px"].append(m)
            parts["log_px_se"].append(se)
    t = {k: torch.cat(v) for k, v in parts.items()}
    params_star = {k: torch.cat([s[k] for s in stars]) for k in stars[0]}
    return GapResult(
        log_px=t["log_px"], log_px_se=t["log_px_se"], elbo_star=t["elbo_star"], elbo_star_se=t["elbo_star_se"],
        elbo_phi=t["elbo_phi"], elbo_phi_se=t["elbo_phi_se"],
        approximation=t["log_px"] - t["elbo_star"],
        approximation_se=torch.sqrt(t["log_px_se"] ** 2 + t["elbo_star_se"] ** 2),
        amortisation=t["elbo_star"] - t["elbo_phi"],
        amortisation_se=torch.sqrt(t["elbo_star_se"] ** 2 + t["elbo_phi_se"] ** 2),
        params_star=params_star,
    )

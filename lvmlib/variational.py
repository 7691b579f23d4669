"""Variational inference for latent variable models: the ELBO, its gap, and importance sampling.

Lecture ("Variational inference for latent variable models"):

    log p(x) = log E_{q(z|x)}[ p(x|z) p(z) / q(z|x) ]
            >= E_{q(z|x)}[ log p(x|z) ] - KL(q(z|x) || p(z))                      (ELBO, Jensen)
    log p(x) =  E_{q(z|x)}[ log p(x|z) ] - KL(q(z|x) || p(z)) + KL(q(z|x) || p(z|x))  (the gap)

(the lecture's last derivation line drops the middle KL term; the identity above is the
correct one). Everything here is model-agnostic: a model enters only through

- ``mu_z``, ``log_var``: the parameters of a diagonal Gaussian q(z|x) (LOG-VARIANCE),
- ``log_px_given_z(x, z)``: a callable returning log p(x|z) of shape (K, B) for z (K, B, M),
- ``prior``: an object with ``log_prob(z)`` (and, for the analytic KL, ``supports_analytic_kl``
  and ``analytic_kl(mu_z, log_var)``, see :mod:`lvmlib.priors`); ``None`` means N(0, I).

``log_px_importance`` takes a whole model with ``encode(x)``, ``log_px_given_z(x, z)`` and
``prior`` (the :class:`lvmlib.vae.VAE` has them).

For the linear-Gaussian model (probabilistic PCA) every quantity is exact:
``gaussian_elbo_linear`` computes the ELBO in closed form for a Gaussian q (diagonal or full
covariance) and ``kl_posterior_linear`` the gap KL(q || p(z|x)), so that
log p(x) = ELBO(q) + KL(q || p(z|x)) can be checked to rounding error.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np
import torch

from lvmlib.gaussian import kl_normal_diag, log_normal_diag, log_normal_standard

__all__ = [
    "elbo_terms",
    "log_importance_weights",
    "iwae_bound",
    "k_sample_bounds",
    "rate_terms",
    "log_px_importance",
    "kl_per_dimension",
    "active_units",
    "gaussian_elbo_linear",
    "kl_posterior_linear",
]


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _tensor(name: str, v, dtype=None) -> torch.Tensor:
    if isinstance(v, np.ndarray) or isinstance(v, (list, tuple)):
        try:
            v = torch.as_tensor(np.asarray(v))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a numeric tensor or array, got {type(v).__name__} that is not ({err})") from None
    if not torch.is_tensor(v):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(v).__name__}")
    if dtype is not None:
        v = v.to(dtype)
    return v


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_K(K, name: str = "K") -> int:
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"{name} must be a positive integer, got {K!r}")
    return int(K)


def _check_finite(name: str, t: torch.Tensor, hint: str = "") -> None:
    """A ValueError naming ``name`` when t holds NaN or inf (one reduction)."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite, got {n_bad} NaN or infinite value(s){hint}")


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _check_q(mu_z: torch.Tensor, log_var: torch.Tensor, min_rows: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    mu_z = _tensor("mu_z", mu_z)
    log_var = _tensor("log_var", log_var)
    if mu_z.dim() != 2:
        raise ValueError(f"mu_z must have shape (B, M), got {tuple(mu_z.shape)}")
    if mu_z.shape[0] < min_rows:
        raise ValueError(f"mu_z must have at least {min_rows} row(s), got shape {tuple(mu_z.shape)}")
    if log_var.shape != mu_z.shape:
        raise ValueError(f"log_var must have the shape of mu_z {tuple(mu_z.shape)}, got {tuple(log_var.shape)}")
    if not mu_z.is_floating_point() or not log_var.is_floating_point():
        dtype = torch.promote_types(torch.promote_types(mu_z.dtype, log_var.dtype), torch.get_default_dtype())
        mu_z, log_var = mu_z.to(dtype), log_var.to(dtype)
    _check_finite("mu_z", mu_z)
    _check_finite("log_var", log_var, " (a log-variance of -inf is a variance of 0, +inf an infinite one)")
    return mu_z, log_var


def _check_callable(log_px_given_z) -> None:
    if not callable(log_px_given_z):
        raise TypeError(
            f"log_px_given_z must be a callable (x, z) -> log p(x|z) of shape (K, B), got {type(log_px_given_z).__name__}"
        )


def _call_log_px(log_px_given_z, x, z: torch.Tensor) -> torch.Tensor:
    """log_px_given_z(x, z) for z (K, B, M), checked: a tensor of shape (K, B) without NaN."""
    log_px = log_px_given_z(x, z)
    if not torch.is_tensor(log_px) or log_px.shape != z.shape[:2]:
        got = tuple(log_px.shape) if torch.is_tensor(log_px) else type(log_px).__name__
        raise ValueError(f"log_px_given_z must return a tensor of shape (K, B) = {tuple(z.shape[:2])}, got {got}")
    if bool(torch.isnan(log_px).any()):
        raise ValueError("log_px_given_z returned NaN for some (z, x): check x and the model's parameters")
    return log_px


def _prior_log_prob(prior, z: torch.Tensor) -> torch.Tensor:
    return log_normal_standard(z) if prior is None else prior.log_prob(z)


def _sample_q(mu_z, log_var, K, generator):
    """z_k = mu_z + exp(0.5 log_var) * eps_k. Returns z (K, B, M)."""
    shape = (K, *mu_z.shape)  # (K, B, M)
    eps = torch.randn(shape, device=mu_z.device, dtype=mu_z.dtype, generator=generator)
    return mu_z + torch.exp(0.5 * log_var) * eps


# --------------------------------------------------------------------------------------
# ELBO estimators
# --------------------------------------------------------------------------------------


def elbo_terms(
    x: torch.Tensor,
    mu_z: torch.Tensor,
    log_var: torch.Tensor,
    log_px_given_z: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prior=None,
    *,
    K: int = 1,
    analytic_kl: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Monte Carlo ELBO with K reparameterized samples per data point, terms kept apart.

        RE   = 1/K sum_k log p(x | z_k),   z_k = mu_z + exp(0.5 log_var) * eps_k
        KL   = KL(q(z|x) || p(z))  analytic (Gaussian q, prior with a closed form), or
             = 1/K sum_k [log q(z_k|x) - log p(z_k)]  (Monte Carlo)
        ELBO = RE - KL                                   (lecture: ELBO = RE - KL)

    Inputs: x (B, ...) passed to ``log_px_given_z`` untouched; mu_z, log_var (B, M);
        log_px_given_z(x, z) -> (K, B) for z (K, B, M); prior (None = N(0, I)); K >= 1;
        analytic_kl: use the closed-form KL when the prior has one; generator (optional).
    Returns: {"elbo": (B,), "re": (B,), "kl": (B,)}.
    """
    mu_z, log_var = _check_q(mu_z, log_var)
    K = _check_K(K)
    _check_callable(log_px_given_z)
    _check_bool("analytic_kl", analytic_kl)
    _check_generator(generator)
    z = _sample_q(mu_z, log_var, K, generator)  # (K, B, M)
    log_px = _call_log_px(log_px_given_z, x, z)  # (K, B)
    re = log_px.mean(0)  # (B,)
    has_closed_form = prior is None or getattr(prior, "supports_analytic_kl", False)
    if analytic_kl and has_closed_form:
        kl = kl_normal_diag(mu_z, log_var) if prior is None else prior.analytic_kl(mu_z, log_var)
    else:
        kl = (log_normal_diag(z, mu_z, log_var) - _prior_log_prob(prior, z)).mean(0)  # (B,)
    return {"elbo": re - kl, "re": re, "kl": kl}


def log_importance_weights(
    x: torch.Tensor,
    mu_z: torch.Tensor,
    log_var: torch.Tensor,
    log_px_given_z: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prior=None,
    *,
    K: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x),  z_k ~ q(z|x).

    E_q[w] = p(x), so (1/K) sum_k w_k is an unbiased estimate of p(x).
    Inputs: as :func:`elbo_terms`. Returns: log_w (K, B).
    """
    mu_z, log_var = _check_q(mu_z, log_var)
    K = _check_K(K)
    _check_callable(log_px_given_z)
    _check_generator(generator)
    z = _sample_q(mu_z, log_var, K, generator)  # (K, B, M)
    return _call_log_px(log_px_given_z, x, z) + _prior_log_prob(prior, z) - log_normal_diag(z, mu_z, log_var)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """The importance-weighted bound (Burda et al. 2016) from log weights.

        L_K = log (1/K) sum_k w_k = logsumexp_k(log w_k) - log K   <= log p(x)

    L_1 is the ELBO; E[L_K] increases with K and tends to log p(x). Computed with logsumexp,
    so it is stable however negative the log-weights are.
    Inputs: log_w (K, B). Returns: (B,).
    """
    log_w = _tensor("log_w", log_w)
    if log_w.dim() != 2:
        raise ValueError(f"log_w must have shape (K, B), got {tuple(log_w.shape)}")
    if log_w.shape[0] < 1:
        raise ValueError("log_w must hold at least one sample (K >= 1)")
    if not log_w.is_floating_point():
        log_w = log_w.to(torch.get_default_dtype())
    if bool(torch.isnan(log_w).any()) or bool((log_w == torch.inf).any()):
        raise ValueError("log_w must hold no NaN or +inf (a log-weight of -inf, a zero weight, is allowed)")
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def k_sample_bounds(x, mu_z, log_var, eps, log_px_given_z) -> dict[str, torch.Tensor]:
    """The K-sample ELBO and the importance-weighted bound from the same K draws (notebook 04's core exercise).

        z_k      = mu_z + exp(log_var / 2) * eps_k                    (reparameterization)
        log w_k  = log p(x|z_k) + log p(z_k) - log q(z_k|x),  p(z) = N(0, I), q = N(mu_z, diag(exp(log_var)))
        elbo     = 1/K sum_k log w_k                                  (the average of the log-weights)
        iwae     = log (1/K sum_k w_k) = logsumexp_k log w_k - log K  (the log of their average)

    Inputs:  x (B, D); mu_z, log_var (B, M); eps (K, B, M) standard normal draws;
             log_px_given_z(x, z) -> (K, B) for z (K, B, M).
    Returns: {"z": (K, B, M); "log_px_z", "log_pz", "log_qz": (K, B) each; "elbo", "iwae": (B,) each}.
    """
    mu_z, log_var = _check_q(mu_z, log_var)
    eps = _tensor("eps", eps, dtype=mu_z.dtype)
    if eps.dim() != 3 or tuple(eps.shape[1:]) != tuple(mu_z.shape):
        raise ValueError(f"eps must have shape (K, B, M) = (K, {mu_z.shape[0]}, {mu_z.shape[1]}) to match mu_z, "
                         f"got {tuple(eps.shape)}")
    _check_callable(log_px_given_z)
    z = mu_z + torch.exp(0.5 * log_var) * eps  # (K, B, M)
    log_px_z = _call_log_px(log_px_given_z, x, z)  # (K, B)
    log_pz = log_normal_standard(z, check=False)  # (K, B)
    log_qz = log_normal_diag(z, mu_z, log_var, check=False)  # (K, B)
    log_w = log_px_z + log_pz - log_qz  # (K, B)
    return {"z": z, "log_px_z": log_px_z, "log_pz": log_pz, "log_qz": log_qz,
            "elbo": log_w.mean(dim=0), "iwae": iwae_bound(log_w)}


def rate_terms(mu_z, log_var, eps, log_prior) -> dict[str, torch.Tensor]:
    """The rate and its two parts, by Monte Carlo at the same samples (notebook 07's core exercise).

    With q(z) = (1/N) sum_m q(z|x_m) the aggregate posterior of N images ("ELBO surgery",
    Hoffman & Johnson 2016):

        R = (1/N) sum_n KL(q(z|x_n) || p(z)) = I_q(n; z) + KL(q(z) || p(z)),

        z_sn        = mu_z_n + exp(log_var_n / 2) * eps_sn                  (S samples per image)
        log q(z|x)  = log N(z_sn | mu_z_n, diag(exp(log_var_n)))            (its own posterior)
        log q(z)    = logsumexp_m log N(z_sn | mu_z_m, diag(exp(log_var_m))) - log N
        rate        = mean_sn [log q(z|x) - log p(z)]
        mutual_info = mean_sn [log q(z|x) - log q(z)]                     (between 0 and log N)
        marginal_kl = mean_sn [log q(z) - log p(z)]                       (>= 0 up to Monte Carlo noise)

    so that rate = mutual_info + marginal_kl holds exactly, sample by sample. The (S, N, N) table
    of log-densities is reduced with a log-sum-exp: the densities themselves underflow.

    Inputs:  mu_z, log_var (N, M) the posteriors of N images; eps (S, N, M) standard normal draws;
             log_prior(z) -> (S, N) for z (S, N, M).
    Returns: {"log_q_zx", "log_q_z", "log_p_z": (S, N) each; "rate", "mutual_info", "marginal_kl": scalars}.
    """
    mu_z, log_var = _check_q(mu_z, log_var)
    eps = _tensor("eps", eps, dtype=mu_z.dtype)
    if eps.dim() != 3 or tuple(eps.shape[1:]) != tuple(mu_z.shape):
        raise ValueError(f"eps must have shape (S, N, M) = (S, {mu_z.shape[0]}, {mu_z.shape[1]}) to match mu_z, "
                         f"got {tuple(eps.shape)}")
    if not callable(log_prior):
        raise TypeError(f"log_prior must be a function z -> log p(z), got {type(log_prior).__name__}")
    n = mu_z.shape[0]
    z = mu_z + torch.exp(0.5 * log_var) * eps  # (S, N, M)
    log_q_zx = log_normal_diag(z, mu_z, log_var, check=False)  # (S, N)
    table = log_normal_diag(z[:, :, None, :], mu_z, log_var, check=False)  # (S, N, N): image n's z under q(z|x_m)
    log_q_z = torch.logsumexp(table, dim=-1) - math.log(n)  # (S, N) the mixture's log-density
    log_p_z = log_prior(z)
    if not torch.is_tensor(log_p_z) or tuple(log_p_z.shape) != tuple(log_q_zx.shape):
        raise ValueError(f"log_prior must return a tensor of shape (S, N) = {tuple(log_q_zx.shape)}, got "
                         f"{tuple(log_p_z.shape) if torch.is_tensor(log_p_z) else type(log_p_z).__name__}")
    return {"log_q_zx": log_q_zx, "log_q_z": log_q_z, "log_p_z": log_p_z,
            "rate": (log_q_zx - log_p_z).mean(), "mutual_info": (log_q_zx - log_q_z).mean(),
            "marginal_kl": (log_q_z - log_p_z).mean()}


def log_px_importance(
    model,
    x,
    K: int = 1000,
    chunk: int = 100,
    batch_size: int | None = 256,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-sampling estimate of log p(x), with the encoder q(z|x) as proposal.

        log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,  z_k ~ q(z|x)

    (the IWAE bound L_K, the usual "test log-likelihood" of a VAE, Burda et al. 2016).
    The K samples are drawn ``chunk`` at a time and the data ``batch_size`` rows at a time, so
    memory grows like chunk * batch_size * D (times L for the categorical likelihood), not K;
    the chunks are combined exactly with logsumexp. Runs without gradients, on the model's device.

    A model with more than one latent level (:class:`lvmlib.hierarchical.HierarchicalVAE`)
    provides its own ``log_importance_weights(x, K, generator)`` -> (K, B), which is used instead.

    Inputs: model with ``encode(x)`` -> (mu_z, log_var) (B, M), ``log_px_given_z(x, z)`` ->
        (k, B) for z (k, B, M), and ``prior`` (``log_prob``); x (N, D); K samples; chunk;
        batch_size (None = all rows at once); generator (optional, on the model's device).
    Returns: (N,) estimates of log p(x), on the model's device.
    """
    K = _check_K(K)
    chunk = _check_K(chunk, "chunk")
    if batch_size is not None:
        batch_size = _check_K(batch_size, "batch_size")
    for attr in ("encode", "log_px_given_z", "prior"):
        if not hasattr(model, attr):
            raise TypeError(f"model must have encode(x), log_px_given_z(x, z) and prior; it has no {attr!r}")
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not torch.is_tensor(x) or x.dim() != 2:
        raise ValueError(f"x must be a tensor or array of shape (N, D), got {getattr(x, 'shape', type(x).__name__)}")
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    out = []
    try:
        with torch.no_grad():
            N = x.shape[0]
            step = N if batch_size is None else batch_size
            for start in range(0, N, step):
                xb = x[start : start + step]
                own_weights = getattr(model, "log_importance_weights", None)
                if own_weights is None:
                    mu_z, log_var = model.encode(xb)  # (b, M) each
                    xb = xb.to(mu_z.device)
                parts = []  # per chunk: logsumexp over its k samples, (b,)
                done = 0
                while done < K:
                    k = min(chunk, K - done)
                    if own_weights is not None:
                        log_w = own_weights(xb, K=k, generator=generator)  # (k, b)
                    else:
                        log_w = log_importance_weights(xb, mu_z, log_var, model.log_px_given_z, model.prior, K=k,
                                                       generator=generator)
                    parts.append(torch.logsumexp(log_w, dim=0))  # (b,)
                    done += k
                out.append(torch.logsumexp(torch.stack(parts), dim=0) - math.log(K))  # (b,)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return torch.cat(out)


# --------------------------------------------------------------------------------------
# posterior collapse diagnostics
# --------------------------------------------------------------------------------------


def kl_per_dimension(mu_z: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(q(z_m|x) || N(0, 1)) per latent dimension, averaged over the data.

        KL_m = 1/N sum_n 1/2 (mu_{n,m}^2 + exp(log_var_{n,m}) - log_var_{n,m} - 1)

    A dimension with KL_m ~ 0 carries no information about x (posterior collapse).
    Inputs: mu_z (N, M), log_var (N, M) with N >= 1. Returns: (M,).
    """
    mu_z, log_var = _check_q(mu_z, log_var, min_rows=1)
    return kl_normal_diag(mu_z, log_var, reduce=False).mean(0)


def active_units(mu_z: torch.Tensor, threshold: float = 1e-2) -> tuple[int, torch.Tensor]:
    """Active latent units (Burda et al. 2016): dimension m is active when

        A_m = Cov_x( E_{q(z|x)}[z_m] ) = Var_n(mu_{n,m}) > threshold   (threshold 1e-2 in the paper)

    i.e. when the posterior mean moves with x. Uses the population variance over the N rows.
    Inputs: mu_z (N, M) the encoder means over a data set (N >= 2); threshold > 0.
    Returns: (number of active units, A (M,)).
    """
    mu_z = _tensor("mu_z", mu_z)
    if mu_z.dim() != 2 or mu_z.shape[0] < 2:
        raise ValueError(f"mu_z must have shape (N, M) with N >= 2, got {tuple(mu_z.shape)}")
    if not mu_z.is_floating_point():
        mu_z = mu_z.to(torch.get_default_dtype())
    _check_finite("mu_z", mu_z)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 < threshold < math.inf:
        raise ValueError(f"threshold must be a positive finite number, got {threshold!r}")
    A = mu_z.var(dim=0, unbiased=False)  # (M,)
    return int((A > threshold).sum()), A


# --------------------------------------------------------------------------------------
# the linear-Gaussian model, where everything is exact
# --------------------------------------------------------------------------------------


def _linear_inputs(x, W, mu, sigma2, q_mean, q_log_var, q_scale_tril):
    W = _tensor("W", W)
    dtype = W.dtype if W.is_floating_point() else torch.float64
    W = W.to(dtype)
    x = _tensor("x", x, dtype).to(W.device)
    mu = _tensor("mu", mu, dtype).to(W.device)
    q_mean = _tensor("q_mean", q_mean, dtype).to(W.device)
    if W.dim() != 2:
        raise ValueError(f"W must have shape (D, M), got {tuple(W.shape)}")
    D, M = W.shape
    if x.dim() != 2 or x.shape[1] != D:
        raise ValueError(f"x must have shape (B, D={D}), got {tuple(x.shape)}")
    if mu.shape != (D,):
        raise ValueError(f"mu must have shape (D={D},), got {tuple(mu.shape)}")
    if q_mean.shape != (x.shape[0], M):
        raise ValueError(f"q_mean must have shape (B, M) = {(x.shape[0], M)}, got {tuple(q_mean.shape)}")
    if torch.is_tensor(sigma2) or isinstance(sigma2, np.ndarray):
        if (sigma2.numel() if torch.is_tensor(sigma2) else sigma2.size) != 1:
            raise ValueError(f"sigma2 must be a positive number (one value), got shape {tuple(sigma2.shape)}")
        s2 = float(sigma2.item())
    elif isinstance(sigma2, numbers.Real) and not isinstance(sigma2, bool):
        s2 = float(sigma2)
    else:
        raise TypeError(f"sigma2 must be a positive number, got {sigma2!r}")
    if not math.isfinite(s2) or s2 < torch.finfo(dtype).tiny:
        raise ValueError(f"sigma2 must be a positive finite number (at least {torch.finfo(dtype).tiny:.3g} in {dtype}), got {sigma2!r}")
    for name, t in (("x", x), ("W", W), ("mu", mu), ("q_mean", q_mean)):
        _check_finite(name, t)
    if (q_log_var is None) == (q_scale_tril is None):
        raise ValueError("give exactly one of q_log_var (B, M) (diagonal q) and q_scale_tril (B, M, M) or (M, M) (full q)")
    if q_log_var is not None:
        q_log_var = _tensor("q_log_var", q_log_var, dtype).to(W.device)
        if q_log_var.shape != q_mean.shape:
            raise ValueError(f"q_log_var must have the shape of q_mean {tuple(q_mean.shape)}, got {tuple(q_log_var.shape)}")
        _check_finite("q_log_var", q_log_var, " (a log-variance of -inf is a variance of 0, +inf an infinite one)")
        L = torch.diag_embed(torch.exp(0.5 * q_log_var))  # (B, M, M)
    else:
        L = _tensor("q_scale_tril", q_scale_tril, dtype).to(W.device)
        if L.shape not in ((M, M), (x.shape[0], M, M)):
            raise ValueError(f"q_scale_tril must have shape (M, M) or (B, M, M) with M={M}, got {tuple(L.shape)}")
        _check_finite("q_scale_tril", L)
        if bool((torch.triu(L, diagonal=1) != 0).any()):
            raise ValueError(
                "q_scale_tril must be lower triangular (a Cholesky factor, S = L L^T): it has non-zero entries above "
                "the diagonal; pass torch.linalg.cholesky(S) or torch.tril(...)"
            )
        if not torch.all(torch.diagonal(L, dim1=-2, dim2=-1) > 0):
            raise ValueError("q_scale_tril must be lower triangular with a positive diagonal (a Cholesky factor)")
        L = L.expand(x.shape[0], M, M)  # (B, M, M)
    return x, W, mu, s2, q_mean, L


def gaussian_elbo_linear(x, W, mu, sigma2, q_mean, q_log_var=None, *, q_scale_tril=None) -> dict[str, torch.Tensor]:
    """The ELBO of the linear-Gaussian model (PPCA) in closed form, for a Gaussian q = N(m, S).

    Model: p(z) = N(0, I), p(x|z) = N(x | W z + mu, sigma2 I) (lecture: pPCA; Bishop 12.33).
    With S = diag(exp(q_log_var)) or S = L L^T (L = q_scale_tril):

        RE   = E_q[log p(x|z)] = -D/2 log(2 pi sigma2) - (||x - mu - W m||^2 + tr(W^T W S)) / (2 sigma2)
        KL   = KL(q || N(0, I)) = 1/2 (tr S + ||m||^2 - M - log det S)
        ELBO = RE - KL  <=  log p(x),  with equality iff q = p(z|x) = N(M_mat^-1 W^T (x - mu), sigma2 M_mat^-1)

    The exact posterior has a full covariance, so a diagonal q reaches the bound only when
    M_mat = W^T W + sigma2 I is diagonal (e.g. M = 1 or orthogonal columns of W).
    Inputs: x (B, D); W (D, M); mu (D,); sigma2 > 0; q_mean (B, M); exactly one of
        q_log_var (B, M) or q_scale_tril (M, M) / (B, M, M). dtype follows W (float64 for numpy).
    Returns: {"elbo": (B,), "re": (B,), "kl": (B,)}.
    """
    x, W, mu, s2, m, L = _linear_inputs(x, W, mu, sigma2, q_mean, q_log_var, q_scale_tril)
    D, M = W.shape
    resid = x - mu - m @ W.T  # (B, D)
    WL = W @ L  # (B, D, M): tr(W^T W S) = ||W L||_F^2
    re = -0.5 * D * math.log(2 * math.pi * s2) - ((resid**2).sum(-1) + (WL**2).sum((-2, -1))) / (2 * s2)
    log_det_S = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (B,)
    tr_S = (L**2).sum((-2, -1))  # (B,)
    kl = 0.5 * (tr_S + (m**2).sum(-1) - M - log_det_S)
    return {"elbo": re - kl, "re": re, "kl": kl}


def kl_posterior_linear(x, W, mu, sigma2, q_mean, q_log_var=None, *, q_scale_tril=None) -> torch.Tensor:
    """The ELBO's gap KL(q(z|x) || p(z|x)) for the linear-Gaussian model, in closed form.

    p(z|x) = N(z | m_p, S_p), m_p = M_mat^-1 W^T (x - mu), S_p = sigma2 M_mat^-1 (Bishop 12.42;
    the lecture writes sigma^-2 M, which is the precision). For q = N(m, S):

        KL = 1/2 [ tr(S_p^-1 S) + (m_p - m)^T S_p^-1 (m_p - m) - M + log det S_p - log det S ]

    with S_p^-1 = M_mat / sigma2. Then log p(x) = ELBO(q) + KL(q || p(z|x)) exactly.
    Inputs: as :func:`gaussian_elbo_linear`. Returns: (B,).
    """
    x, W, mu, s2, m, L = _linear_inputs(x, W, mu, sigma2, q_mean, q_log_var, q_scale_tril)
    D, M = W.shape
    M_mat = W.T @ W + s2 * torch.eye(M, dtype=W.dtype, device=W.device)  # (M, M)
    P = M_mat / s2  # posterior precision (M, M)
    m_p = torch.linalg.solve(M_mat, W.T @ (x - mu).T).T  # (B, M)
    diff = m_p - m  # (B, M)
    maha = ((diff @ P) * diff).sum(-1)  # (B,)
    tr = (P * (L @ L.transpose(-1, -2))).sum((-2, -1))  # tr(P S), P symmetric (B,)
    log_det_Sp = M * math.log(s2) - torch.linalg.slogdet(M_mat)[1]
    log_det_S = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (B,)
    return 0.5 * (tr + maha - M + log_det_Sp - log_det_S)

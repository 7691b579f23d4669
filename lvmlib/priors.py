"""Priors p_lambda(z) over the latent space (lecture: "VAE has a marginal on the latent code").

The lecture's VAE uses the standard Gaussian prior p(z) = N(z | 0, I). Every prior here is
an ``nn.Module`` with the same small interface (Tomczak's ``Prior`` objects), so the VAE and
the ELBO estimators in :mod:`lvmlib.variational` never need to know which one they have:

- ``sample(n, generator=None)`` -> (n, M) on the prior's device,
- ``log_prob(z)`` -> (...,) log p(z) for z of shape (..., M),
- ``analytic_kl(mu_z, log_var)`` -> (...,) KL(N(mu_z, diag(exp(log_var))) || p(z)) where a
  closed form exists (``supports_analytic_kl``); otherwise the ELBO falls back to a Monte
  Carlo estimate log q(z|x) - log p(z).

The lecture warns that a standard normal prior is a weak marginal: the aggregate posterior
q(z) = 1/N sum_n q(z|x_n) of a trained encoder does not fill N(0, I), so samples from regions the
prior likes but no data point maps to decode to non-digits, and the KL term pulls every q(z|x)
towards a target the data do not follow. Two learnable priors fix this:

- :class:`MixtureOfGaussiansPrior`: p(z) = sum_k w_k N(z | m_k, diag(exp(lv_k))), with
  learnable means, log-variances and mixing weights w = softmax(logits);
- :class:`VampPrior` (Tomczak & Welling 2018): p(z) = 1/K sum_k q(z | u_k), the encoder's
  posteriors at K learnable pseudo-inputs u_k, initialised from training data. It is the
  aggregate posterior of K "pseudo data points", so it follows the data by construction.

Both are mixtures of FULL M-dimensional component densities:

    log p(z) = logsumexp_k [ log w_k + sum_m log N(z_m | m_km, exp(lv_km)) ],

i.e. the sum over dimensions comes before the logsumexp over components (a mixture per
dimension, logsumexp over k for each m separately and then a sum over m, is a different and
wrong density: its components mix independently across dimensions). Neither has a closed-form
KL to a Gaussian q(z|x), so the ELBO uses the Monte Carlo estimate log q(z|x) - log p(z) at
z ~ q(z|x) (``VAE.kl`` chooses it automatically).
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from lvmlib.gaussian import kl_normal_diag, log_normal_diag, log_normal_standard

__all__ = [
    "Prior", "StandardNormalPrior", "MixtureOfGaussiansPrior", "VampPrior", "mixture_log_prob", "make_prior", "check_finite",
]


def _check_M(M) -> int:
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 1:
        raise ValueError(f"M (the number of latent dimensions) must be a positive integer, got {M!r}")
    return int(M)


def _check_flag(check) -> bool:
    if not isinstance(check, (bool, np.bool_)):
        raise TypeError(f"check must be True or False, got {check!r}")
    return bool(check)


def prior_log_prob(prior, z: torch.Tensor, check: bool = True) -> torch.Tensor:
    """``prior.log_prob(z, check=check)``, or ``prior.log_prob(z)`` for a prior of one's own whose
    log_prob takes no ``check`` (the interface every prior here has; nothing is inspected per call)."""
    if getattr(prior, "_log_prob_takes_check", False):
        return prior.log_prob(z, check=check)
    return prior.log_prob(z)


def _check_generator(generator, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(f"generator must be on the prior's device ({device}), got a generator on {generator.device}")


_RELOAD = "it was set or loaded with such values or training diverged; reload a good checkpoint or build the model again"


def check_finite(named_tensors, owner: str, what: str = "", hint: str = _RELOAD) -> None:
    """Raise a ValueError naming the first floating tensor of ``named_tensors`` that holds NaN or inf.

    One host read for all of them (a stacked reduction), a second only to name the culprit.
    ``owner`` begins the message ("the VAE's"), ``what`` (optional) says what the tensors are,
    ``hint`` what to do.
    """
    items = [(n, t) for n, t in named_tensors
             if torch.is_tensor(t) and t.is_floating_point() and t.numel() and t.device.type != "meta"]  # meta: no values
    if not items:
        return
    by_device: dict[torch.device, list[int]] = {}
    for i, (_, t) in enumerate(items):
        by_device.setdefault(t.device, []).append(i)
    flags = torch.ones(len(items), dtype=torch.bool)
    for device, idx in by_device.items():  # one read per device (one in all, as a rule)
        flags[idx] = torch.stack([torch.isfinite(items[i][1].detach()).all() for i in idx]).cpu()
    if bool(flags.all()):
        return
    name, t = items[int((~flags).nonzero()[0, 0])]
    n_bad = int((~torch.isfinite(t.detach())).sum())
    kind = f" ({what})" if what else ""
    raise ValueError(
        f"{owner} {name}{kind} must be finite, got {n_bad} NaN or infinite value(s): {hint}"
    )


class Prior(nn.Module):
    """Common base of the priors: ``sample``, ``log_prob`` and (optionally) ``analytic_kl``.

    Subclasses set ``self.M`` and implement ``sample`` and ``log_prob``. The device of a
    prior is the device of its parameters/buffers; every prior owns at least one buffer so
    that ``prior.to(device)`` moves it and ``prior.device`` answers.
    """

    supports_analytic_kl: bool = False
    _log_prob_takes_check: bool = True  # False for a subclass whose log_prob(z) has no ``check`` (see prior_log_prob)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._log_prob_takes_check = "check" in inspect.signature(cls.log_prob).parameters

    def __init__(self, M: int):
        super().__init__()
        self.M = _check_M(M)
        # A zero-size anchor so that even a parameter-free prior knows its device and dtype.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def _check_z(self, z: torch.Tensor, check: bool = False) -> torch.Tensor:
        """Type and shape of z; with ``check`` also its values (one host read) and the prior's parameters."""
        if not torch.is_tensor(z):
            raise TypeError(f"z must be a torch.Tensor of shape (..., {self.M}), got {type(z).__name__}")
        if z.dim() < 1 or z.shape[-1] != self.M:
            raise ValueError(f"z must have shape (..., M={self.M}), got {tuple(z.shape)}")
        if _check_flag(check):
            self.check_parameters()
            check_finite([("z", z)], f"{type(self).__name__}.log_prob's argument", hint="pass finite latent codes")
        return z

    def check_parameters(self) -> None:
        """Refuse NaN or infinite parameters, naming the first one (``means``, ``logits``, ``pseudo_inputs``).

        One host read. Called where parameters enter: ``load_state_dict``, the start of training,
        ``sample`` and every ``log_prob(z, check=True)`` (never in the training forward).
        """
        check_finite(self.named_parameters(), f"the {type(self).__name__}'s")

    @staticmethod
    def _check_n(n) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n (the number of samples) must be a positive integer, got {n!r}")
        return int(n)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n latent codes z ~ p(z).

        Inputs: n (int); generator, an optional ``torch.Generator`` on the prior's device.
        Returns: z (n, M) on the prior's device.
        """
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor, check: bool = True) -> torch.Tensor:
        """log p(z) summed over the M latent dimensions.

        Inputs: z (..., M); check: True (default) refuses non-finite z and non-finite parameters
        (by name), reading them on the host; False checks only type and shape, with no host read:
        for the training forward. Returns: (...,).
        """
        raise NotImplementedError

    def analytic_kl(self, mu_z: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """KL(N(mu_z, diag(exp(log_var))) || p(z)) in closed form, summed over M.

        Only for priors with ``supports_analytic_kl = True``; the others raise
        ``NotImplementedError`` and callers use the Monte Carlo estimate instead.
        Inputs: mu_z (..., M), log_var (..., M). Returns: (...,).
        """
        raise NotImplementedError(f"{type(self).__name__} has no closed-form KL; use a Monte Carlo estimate")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``, refusing a state with NaN or infinite values (named) first."""
        check_finite(state_dict.items(), "the state_dict's", what="the prior's weights")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class StandardNormalPrior(Prior):
    """p(z) = N(z | 0, I) (lecture: "We assume a standard Gaussian prior").

    log p(z) = -M/2 log(2 pi) - 1/2 ||z||^2.
    KL(N(mu, diag(s2)) || N(0, I)) = 1/2 sum_m (mu_m^2 + s2_m - log s2_m - 1)  (Kingma & Welling 2014, App. B).

    Both check shapes but not values: they run inside the training loop on the encoder's output,
    where a look at the values would cost a host-device synchronisation per batch (the ELBO
    estimators of :mod:`lvmlib.variational` check their inputs' values).
    """

    supports_analytic_kl = True

    def __init__(self, M: int):
        super().__init__(M)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I). Inputs: n. Returns: (n, M) on the prior's device and dtype."""
        n = self._check_n(n)
        return torch.randn(n, self.M, device=self.device, dtype=self.dtype, generator=generator)

    def log_prob(self, z: torch.Tensor, check: bool = True) -> torch.Tensor:
        """log N(z | 0, I) = -M/2 log(2 pi) - 1/2 ||z||^2. Inputs: z (..., M). Returns: (...,).

        ``check`` (default True) also refuses a z that is not finite (one host read); False
        checks only type and shape, for the training forward."""
        return log_normal_standard(self._check_z(z, check), check=False)

    def analytic_kl(self, mu_z: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """KL(N(mu_z, diag(exp(log_var))) || N(0, I)) = 1/2 sum (mu^2 + exp(log_var) - log_var - 1).

        Inputs: mu_z (..., M), log_var (..., M). Returns: (...,).
        """
        self._check_z(mu_z)
        if not torch.is_tensor(log_var) or log_var.shape != mu_z.shape:
            raise ValueError(
                f"log_var must be a tensor with the shape of mu_z {tuple(mu_z.shape)}, "
                f"got {tuple(log_var.shape) if torch.is_tensor(log_var) else type(log_var).__name__}"
            )
        return kl_normal_diag(mu_z, log_var, check=False)

    def extra_repr(self) -> str:
        return f"M={self.M}"


def _check_K(K, name: str = "n_components") -> int:
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"{name} (the number of mixture components) must be a positive integer, got {K!r}")
    return int(K)


def mixture_log_prob(z: torch.Tensor, means: torch.Tensor, log_vars: torch.Tensor, log_weights: torch.Tensor,
                     check: bool = True) -> torch.Tensor:
    """log sum_k w_k N(z | m_k, diag(exp(lv_k))) for diagonal Gaussian components.

        log p(z) = logsumexp_k [ log w_k + sum_m log N(z_m | m_km, exp(lv_km)) ]

    The component densities are summed over the M dimensions first (each component is one
    M-dimensional Gaussian), then combined over components with logsumexp.
    Inputs: z (..., M); means, log_vars (K, M); log_weights (K,): log w_k, normalised
    (logsumexp_k log w_k = 0; from logits use ``torch.log_softmax(logits, 0)``).
    check: True (default) refuses non-finite inputs and log-weights that do not normalise,
    naming them (host reads); False checks shapes only, for the training forward.
    Returns: (...,).
    """
    for name, t in (("z", z), ("means", means), ("log_vars", log_vars), ("log_weights", log_weights)):
        if not torch.is_tensor(t):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if means.dim() != 2 or log_vars.shape != means.shape:
        raise ValueError(f"means and log_vars must both have shape (K, M), got {tuple(means.shape)} and {tuple(log_vars.shape)}")
    if log_weights.shape != means.shape[:1]:
        raise ValueError(f"log_weights must have shape (K,) = ({means.shape[0]},), got {tuple(log_weights.shape)}")
    if z.dim() < 1 or z.shape[-1] != means.shape[1]:
        raise ValueError(f"z must have shape (..., M={means.shape[1]}) as the means, got {tuple(z.shape)}")
    if _check_flag(check):
        check_finite([("means", means), ("log_vars", log_vars), ("log_weights", log_weights), ("z", z)],
                     "mixture_log_prob's argument", hint="pass finite values (log_weights of a zero weight: use a "
                     "large negative number, not -inf)")
        total = 0.0 if log_weights.device.type == "meta" else float(torch.logsumexp(log_weights.detach().double(), 0))
        if abs(total) > 1e-4:
            raise ValueError(
                f"log_weights must be normalised log-probabilities (logsumexp 0, weights summing to 1), got "
                f"weights summing to {math.exp(total):.6g}: pass torch.log_softmax(logits, 0)"
            )
    log_comp = component_log_probs(z, means, log_vars, check=check)  # (..., K): log N(z | m_k, S_k)
    return torch.logsumexp(log_comp + log_weights, dim=-1)  # (...,)


DIRECT_TABLE_LIMIT = 1 << 22  # the largest (..., K, M) table component_log_probs builds element by element


def component_log_probs(z: torch.Tensor, means: torch.Tensor, log_vars: torch.Tensor, check: bool = True) -> torch.Tensor:
    """log N(z | m_k, diag(exp(lv_k))) for every component k.

    Up to DIRECT_TABLE_LIMIT elements of (..., K, M): the direct table of (z_m - m_km)^2 / v_km.
    Beyond (importance sampling with thousands of samples against hundreds of components), the
    square expanded into matrix products, with no (..., K, M) table:

        sum_m (z_m - m_km)^2 / v_km = z^2 . (1/v_k) - 2 z . (m_k / v_k) + sum_m m_km^2 / v_km,

    accumulated in float64 on the CPU and CUDA (the three terms cancel where z is near m_k).
    Inputs: z (..., M); means, log_vars (K, M); check: name a non-finite result's cause (host
    reads; False in the training forward). Returns: (..., K) in z's dtype.
    """
    K, M = means.shape[-2:]
    if z.dim() < 1 or z.shape[-1] != M or z.numel() * K <= DIRECT_TABLE_LIMIT:
        return log_normal_diag(z.unsqueeze(-2), means, log_vars, check=check)
    acc = torch.float64 if z.device.type in ("cpu", "cuda") else z.dtype
    zf = z.reshape(-1, M).to(acc)  # (N, M)
    m, lv = means.to(acc), log_vars.to(acc)
    prec = torch.exp(-lv)  # (K, M) 1 / v_k
    quad = (zf * zf) @ prec.T - 2.0 * zf @ (m * prec).T + (m * m * prec).sum(-1)  # (N, K)
    out = -0.5 * (M * math.log(2 * math.pi) + lv.sum(-1) + quad)
    out = out.to(z.dtype).reshape(*z.shape[:-1], K)
    if check and out.device.type != "meta" and not bool(torch.isfinite(out).all()):  # name the cause as the direct computation does
        bad = int((~torch.isfinite(out.reshape(-1, K))).any(-1).nonzero()[0, 0])
        log_normal_diag(z.reshape(-1, M)[bad].unsqueeze(-2), means, log_vars)
        raise ValueError("the mixture's component log-densities are not finite (z, means or log_vars too large)")
    return out


def _sample_mixture(n, means, log_vars, log_weights, generator):
    """k ~ Cat(w), z = m_k + exp(0.5 lv_k) * eps. Returns (n, M)."""
    k = torch.multinomial(torch.exp(log_weights), n, replacement=True, generator=generator)  # (n,)
    eps = torch.randn(n, means.shape[-1], device=means.device, dtype=means.dtype, generator=generator)
    return means[k] + torch.exp(0.5 * log_vars[k]) * eps


class MixtureOfGaussiansPrior(Prior):
    """p(z) = sum_k w_k N(z | m_k, diag(exp(lv_k))), everything learnable.

    Parameters: ``means`` (K, M), initialised N(0, I); ``log_vars`` (K, M), initialised 0;
    ``logits`` (K,), initialised 0 (uniform weights), w = softmax(logits).
    log p(z): :func:`mixture_log_prob`. No closed-form KL (Monte Carlo in the ELBO).
    """

    def __init__(self, M: int, n_components: int = 16):
        super().__init__(M)
        self.K = _check_K(n_components)
        self.means = nn.Parameter(torch.randn(self.K, self.M))
        self.log_vars = nn.Parameter(torch.zeros(self.K, self.M))
        self.logits = nn.Parameter(torch.zeros(self.K))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The mixture's (means (K, M), log_vars (K, M), weights (K,))."""
        return self.means, self.log_vars, torch.softmax(self.logits, dim=0)

    def log_prob(self, z: torch.Tensor, check: bool = True) -> torch.Tensor:
        """log p(z). Inputs: z (..., M); check: see :meth:`Prior.log_prob`. Returns: (...,)."""
        z = self._check_z(z, check)
        return mixture_log_prob(z, self.means, self.log_vars, torch.log_softmax(self.logits, dim=0), check=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k ~ Cat(w), z ~ N(m_k, diag(exp(lv_k))). Inputs: n. Returns: (n, M)."""
        n = self._check_n(n)
        _check_generator(generator, self.device)
        self.check_parameters()
        with torch.no_grad():
            return _sample_mixture(n, self.means, self.log_vars, torch.log_softmax(self.logits, 0), generator)

    def extra_repr(self) -> str:
        return f"M={self.M}, n_components={self.K}"


class VampPrior(Prior):
    """The VampPrior (Tomczak & Welling 2018): p(z) = 1/K sum_k q(z | u_k).

    The K pseudo-inputs u_k (``pseudo_inputs``, (K, D), learnable) live where the ENCODER's
    input lives (for the categorical VAE: x / (L - 1) in [0, 1]); ``encoder(u)`` maps them to
    the components' (mu, log_var), so the prior moves with the encoder during training:

        log p(z) = logsumexp_k [ log N(z | mu(u_k), diag(exp(lv(u_k)))) ] - log K.

    The encoder is held as a plain callable, not as a sub-module: the VAE owns the encoder and
    the prior side by side, the prior's state_dict holds only its pseudo-inputs, and no module
    contains itself. Initialise the pseudo-inputs from training data with
    :meth:`init_pseudo_inputs` (``VAE.init_prior(x_train)`` does it); they start as uniform
    noise in [0, 1] otherwise.

    ``encoder_gradient`` says which paths the gradient of the prior's term log p(z) takes:

    - True (Tomczak & Welling's VampPrior): every path. log p(z) reaches the pseudo-inputs and the
      encoder's weights through the components mu(u_k), lv(u_k), and the encoder's weights also
      through z = mu(x) + sigma(x) eps. The update is the gradient of the ELBO.
    - False: the path through the components' parameters mu(u_k), lv(u_k) is cut at the encoder's
      weights: there log p(z) trains the pseudo-inputs only. The gradient through the sample z,
      d log p(z)/dz times dz/d(encoder weights), still reaches the encoder (it is not zero), so
      the prior still pulls the codes of the batch towards its components. log p(z) and every
      value are the same, but the update is no longer the gradient of the ELBO (one of its paths
      is missing). Needs ``encoder`` to be an ``nn.Module`` (its weights are detached with
      ``torch.func.functional_call``). On the 8x8 digits (1000 training images) it trains about
      as long as the standard VAE before the validation ELBO turns, where True stops at about half
      as many epochs (``benchmarks/results/priors_digits.md`` has the numbers).
    """

    def __init__(self, M: int, D: int, encoder: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], n_components: int = 16,
                 encoder_gradient: bool = True):
        super().__init__(M)
        self.K = _check_K(n_components)
        if isinstance(D, bool) or not isinstance(D, int) or D < 1:
            raise ValueError(f"D (the encoder's input dimension) must be a positive integer, got {D!r}")
        if not callable(encoder):
            raise TypeError(f"encoder must be a callable u (K, D) -> (mu_z, log_var) (K, M), got {type(encoder).__name__}")
        if not isinstance(encoder_gradient, (bool, np.bool_)):
            raise TypeError(f"encoder_gradient must be True or False, got {encoder_gradient!r}")
        if not encoder_gradient and not isinstance(encoder, nn.Module):
            raise TypeError("encoder_gradient=False needs the encoder as an nn.Module (its weights are detached), "
                            f"got {type(encoder).__name__}")
        enc_D = getattr(encoder, "D", None)
        if isinstance(enc_D, int) and enc_D != D:
            raise ValueError(f"D (the pseudo-inputs' dimension) must be the encoder's input dimension {enc_D}, got {D}")
        self.D = D
        self.encoder_gradient = bool(encoder_gradient)
        self.pseudo_inputs = nn.Parameter(torch.rand(self.K, D))
        object.__setattr__(self, "encoder", encoder)  # a reference, not a registered sub-module

    @torch.no_grad()
    def init_pseudo_inputs(self, u: torch.Tensor) -> None:
        """Set the pseudo-inputs to ``u`` (K, D), already in the encoder's input form."""
        if not torch.is_tensor(u) or u.shape != (self.K, self.D):
            shape = tuple(u.shape) if torch.is_tensor(u) else type(u).__name__
            raise ValueError(f"u must be a tensor of shape (n_components, D) = {(self.K, self.D)}, got {shape}")
        if not bool(torch.isfinite(u).all()):
            raise ValueError("u (the pseudo-inputs) must be finite")
        self.pseudo_inputs.copy_(u.to(self.pseudo_inputs))

    def components(self, check: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means (K, M), log_vars (K, M), weights (K,) = 1/K): q(z | u_k) for every k.

        check: True (default) refuses non-finite pseudo-inputs and components, naming them (host
        reads); False only checks what the encoder returns (type and shape), for the training forward."""
        if _check_flag(check):
            self.check_parameters()
        if self.encoder_gradient:
            out = self.encoder(self.pseudo_inputs)
        else:  # the same map with the encoder's weights detached: the path through mu(u_k), lv(u_k) trains the pseudo-inputs only
            state = {name: t.detach() for name, t in self.encoder.state_dict(keep_vars=True).items()}
            out = torch.func.functional_call(self.encoder, state, (self.pseudo_inputs,))
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(torch.is_tensor(t) for t in out)):
            length = f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""
            raise TypeError(f"encoder must return a pair (mu_z, log_var) of tensors (K, M={self.M}) for the "
                            f"pseudo-inputs, got {type(out).__name__}{length}")
        mu, log_var = out
        if mu.shape != (self.K, self.M) or log_var.shape != (self.K, self.M):
            raise ValueError(f"the encoder must map (K, D) pseudo-inputs to (K, M={self.M}) means and log-variances, "
                             f"got {tuple(mu.shape)} and {tuple(log_var.shape)}")
        if check:
            check_finite([("means mu(u_k)", mu), ("log-variances lv(u_k)", log_var)], "the VampPrior's component",
                         what="the encoder at the pseudo-inputs; check the encoder's weights")
        return mu, log_var, torch.full((self.K,), 1.0 / self.K, device=mu.device, dtype=mu.dtype)

    def log_prob(self, z: torch.Tensor, check: bool = True) -> torch.Tensor:
        """log p(z) = logsumexp_k log q(z | u_k) - log K. Inputs: z (..., M); check: see
        :meth:`Prior.log_prob`. Returns: (...,)."""
        z = self._check_z(z, check)
        mu, log_var, _ = self.components(check=check)
        log_w = torch.full((self.K,), -math.log(self.K), device=mu.device, dtype=mu.dtype)
        return mixture_log_prob(z, mu, log_var, log_w, check=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k uniform in 1..K, z ~ q(z | u_k). Inputs: n. Returns: (n, M)."""
        n = self._check_n(n)
        _check_generator(generator, self.device)
        with torch.no_grad():
            mu, log_var, w = self.components(check=True)
            return _sample_mixture(n, mu, log_var, torch.log(w), generator)

    def extra_repr(self) -> str:
        return f"M={self.M}, D={self.D}, n_components={self.K}, encoder_gradient={self.encoder_gradient}"


_PRIORS = {"standard_normal": StandardNormalPrior, "mog": MixtureOfGaussiansPrior, "vamp": VampPrior}


def make_prior(name: str, M: int, *, n_components: int = 16, D: int | None = None, encoder=None,
               encoder_gradient: bool = True) -> Prior:
    """The prior called ``name`` over M latent dimensions.

    ``"standard_normal"``: N(0, I); ``"mog"``: a mixture of ``n_components`` Gaussians;
    ``"vamp"``: the VampPrior with ``n_components`` pseudo-inputs of dimension D, mapped by
    ``encoder`` (a callable u -> (mu_z, log_var)); ``encoder_gradient``: see :class:`VampPrior`.
    The other priors ignore ``encoder_gradient``, D and encoder.
    """
    if not isinstance(name, str) or name not in _PRIORS:
        raise ValueError(f"prior must be one of {sorted(_PRIORS)}, got {name!r}")
    if name == "mog":
        return MixtureOfGaussiansPrior(M, n_components)
    if name == "vamp":
        if D is None or encoder is None:
            raise ValueError("the VampPrior needs D (the encoder's input dimension) and the encoder")
        return VampPrior(M, D, encoder, n_components, encoder_gradient=encoder_gradient)
    return _PRIORS[name](M)

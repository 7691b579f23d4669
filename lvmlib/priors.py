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

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from lvmlib.gaussian import kl_normal_diag, log_normal_diag, log_normal_standard

__all__ = ["Prior", "StandardNormalPrior", "MixtureOfGaussiansPrior", "VampPrior", "mixture_log_prob", "make_prior"]


def _check_M(M) -> int:
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 1:
        raise ValueError(f"M (the number of latent dimensions) must be a positive integer, got {M!r}")
    return int(M)


class Prior(nn.Module):
    """Common base of the priors: ``sample``, ``log_prob`` and (optionally) ``analytic_kl``.

    Subclasses set ``self.M`` and implement ``sample`` and ``log_prob``. The device of a
    prior is the device of its parameters/buffers; every prior owns at least one buffer so
    that ``prior.to(device)`` moves it and ``prior.device`` answers.
    """

    supports_analytic_kl: bool = False

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

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(z):
            raise TypeError(f"z must be a torch.Tensor of shape (..., {self.M}), got {type(z).__name__}")
        if z.dim() < 1 or z.shape[-1] != self.M:
            raise ValueError(f"z must have shape (..., M={self.M}), got {tuple(z.shape)}")
        return z

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

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the M latent dimensions.

        Inputs: z (..., M). Returns: (...,).
        """
        raise NotImplementedError

    def analytic_kl(self, mu_z: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """KL(N(mu_z, diag(exp(log_var))) || p(z)) in closed form, summed over M.

        Only for priors with ``supports_analytic_kl = True``; the others raise
        ``NotImplementedError`` and callers use the Monte Carlo estimate instead.
        Inputs: mu_z (..., M), log_var (..., M). Returns: (...,).
        """
        raise NotImplementedError(f"{type(self).__name__} has no closed-form KL; use a Monte Carlo estimate")


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

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z | 0, I) = -M/2 log(2 pi) - 1/2 ||z||^2. Inputs: z (..., M). Returns: (...,)."""
        return log_normal_standard(self._check_z(z), check=False)

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


def mixture_log_prob(z: torch.Tensor, means: torch.Tensor, log_vars: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """log sum_k w_k N(z | m_k, diag(exp(lv_k))) for diagonal Gaussian components.

        log p(z) = logsumexp_k [ log w_k + sum_m log N(z_m | m_km, exp(lv_km)) ]

    The component densities are summed over the M dimensions first (each component is one
    M-dimensional Gaussian), then combined over components with logsumexp.
    Inputs: z (..., M); means, log_vars (K, M); log_weights (K,) (log w_k, logsumexp 0).
    Returns: (...,).
    """
    log_comp = component_log_probs(z, means, log_vars)  # (..., K): log N(z | m_k, S_k)
    return torch.logsumexp(log_comp + log_weights, dim=-1)  # (...,)


DIRECT_TABLE_LIMIT = 1 << 22  # the largest (..., K, M) table component_log_probs builds element by element


def component_log_probs(z: torch.Tensor, means: torch.Tensor, log_vars: torch.Tensor) -> torch.Tensor:
    """log N(z | m_k, diag(exp(lv_k))) for every component k.

    Up to DIRECT_TABLE_LIMIT elements of (..., K, M): the direct table of (z_m - m_km)^2 / v_km.
    Beyond (importance sampling with thousands of samples against hundreds of components), the
    square expanded into matrix products, with no (..., K, M) table:

        sum_m (z_m - m_km)^2 / v_km = z^2 . (1/v_k) - 2 z . (m_k / v_k) + sum_m m_km^2 / v_km,

    accumulated in float64 on the CPU and CUDA (the three terms cancel where z is near m_k).
    Inputs: z (..., M); means, log_vars (K, M). Returns: (..., K) in z's dtype.
    """
    K, M = means.shape[-2:]
    if z.dim() < 1 or z.shape[-1] != M or z.numel() * K <= DIRECT_TABLE_LIMIT:
        return log_normal_diag(z.unsqueeze(-2), means, log_vars)
    acc = torch.float64 if z.device.type in ("cpu", "cuda") else z.dtype
    zf = z.reshape(-1, M).to(acc)  # (N, M)
    m, lv = means.to(acc), log_vars.to(acc)
    prec = torch.exp(-lv)  # (K, M) 1 / v_k
    quad = (zf * zf) @ prec.T - 2.0 * zf @ (m * prec).T + (m * m * prec).sum(-1)  # (N, K)
    out = -0.5 * (M * math.log(2 * math.pi) + lv.sum(-1) + quad)
    out = out.to(z.dtype).reshape(*z.shape[:-1], K)
    if not bool(torch.isfinite(out).all()):  # name the cause as the direct computation does
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

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z). Inputs: z (..., M). Returns: (...,)."""
        z = self._check_z(z)
        return mixture_log_prob(z, self.means, self.log_vars, torch.log_softmax(self.logits, dim=0))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k ~ Cat(w), z ~ N(m_k, diag(exp(lv_k))). Inputs: n. Returns: (n, M)."""
        n = self._check_n(n)
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

    ``encoder_gradient`` says what the prior's term log p(z) of the KL trains:

    - True (Tomczak & Welling's VampPrior): the pseudo-inputs AND the encoder's weights, through
      mu(u_k), lv(u_k). The encoder is then pulled two ways: to fit q(z|x) for the data, and to
      move the components q(z|u_k) onto the codes of the batch.
    - False: the pseudo-inputs only. The components are still the encoder's posteriors at the
      pseudo-inputs (log p(z) and every value are the same), but the gradient of log p(z)
      reaches the encoder's weights as zero: the prior follows the encoder without steering it,
      and the encoder learns from the reconstruction term and log q(z|x) alone, as with a prior
      of its own parameters. Needs ``encoder`` to be an ``nn.Module`` (its weights are detached
      with ``torch.func.functional_call``). On the 8x8 digits (1000 training images) it trains
      about as long as the standard VAE before the validation ELBO turns, where True stops at
      about half as many epochs (``benchmarks/results/priors_digits.md`` has the numbers).
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

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means (K, M), log_vars (K, M), weights (K,) = 1/K): q(z | u_k) for every k."""
        if self.encoder_gradient:
            mu, log_var = self.encoder(self.pseudo_inputs)
        else:  # the same map with the encoder's weights detached: gradients reach the pseudo-inputs only
            state = {name: t.detach() for name, t in self.encoder.state_dict(keep_vars=True).items()}
            mu, log_var = torch.func.functional_call(self.encoder, state, (self.pseudo_inputs,))
        if mu.shape != (self.K, self.M) or log_var.shape != (self.K, self.M):
            raise ValueError(f"the encoder must map (K, D) pseudo-inputs to (K, M={self.M}) means and log-variances, "
                             f"got {tuple(mu.shape)} and {tuple(log_var.shape)}")
        return mu, log_var, torch.full((self.K,), 1.0 / self.K, device=mu.device, dtype=mu.dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = logsumexp_k log q(z | u_k) - log K. Inputs: z (..., M). Returns: (...,)."""
        z = self._check_z(z)
        mu, log_var, _ = self.components()
        log_w = torch.full((self.K,), -math.log(self.K), device=mu.device, dtype=mu.dtype)
        return mixture_log_prob(z, mu, log_var, log_w)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k uniform in 1..K, z ~ q(z | u_k). Inputs: n. Returns: (n, M)."""
        n = self._check_n(n)
        with torch.no_grad():
            mu, log_var, w = self.components()
            return _sample_mixture(n, mu, log_var, torch.log(w), generator)

    def extra_repr(self) -> str:
        return f"M={self.M}, D={self.D}, n_components={self.K}, encoder_gradient={self.encoder_gradient}"


_PRIORS = {"standard_normal": StandardNormalPrior, "mog": MixtureOfGaussiansPrior, "vamp": VampPrior}


def make_prior(name: str, M: int, *, n_components: int = 16, D: int | None = None, encoder=None,
               encoder_gradient: bool = True) -> Prior:
    """The prior called ``name`` over M latent dimensions.

    ``"standard_normal"``: N(0, I); ``"mog"``: a mixture of ``n_components`` Gaussians;
    ``"vamp"``: the VampPrior with ``n_components`` pseudo-inputs of dimension D, mapped by
    ``encoder`` (a callable u -> (mu_z, log_var)); ``encoder_gradient``: see :class:`VampPrior`
    (the other priors ignore it).
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

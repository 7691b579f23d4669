"""Priors p_lambda(z) over the latent space (lecture: "VAE has a marginal on the latent code").

The lecture's VAE uses the standard Gaussian prior p(z) = N(z | 0, I). Every prior here is
an ``nn.Module`` with the same small interface (Tomczak's ``Prior`` objects), so the VAE and
the ELBO estimators in :mod:`lvmlib.variational` never need to know which one they have:

- ``sample(n, generator=None)`` -> (n, M) on the prior's device,
- ``log_prob(z)`` -> (...,) log p(z) for z of shape (..., M),
- ``analytic_kl(mu_z, log_var)`` -> (...,) KL(N(mu_z, diag(exp(log_var))) || p(z)) where a
  closed form exists (``supports_analytic_kl``); otherwise the ELBO falls back to a Monte
  Carlo estimate log q(z|x) - log p(z).

A mixture of Gaussians and the VampPrior (lecture: "VampPrior") subclass :class:`Prior`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lvmlib.gaussian import kl_normal_diag, log_normal_standard

__all__ = ["Prior", "StandardNormalPrior", "make_prior"]


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


_PRIORS = {"standard_normal": StandardNormalPrior}


def make_prior(name: str, M: int) -> Prior:
    """The prior called ``name`` over M latent dimensions (``"standard_normal"``)."""
    if not isinstance(name, str) or name not in _PRIORS:
        raise ValueError(f"prior must be one of {sorted(_PRIORS)}, got {name!r}")
    return _PRIORS[name](M)

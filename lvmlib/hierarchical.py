"""A two-level hierarchical VAE (lecture: "Hierarchical VAEs").

Generative model, top to bottom:

    p(x, z1, z2) = p(z2) p(z1 | z2) p(x | z1)

with a prior p(z2) from :mod:`lvmlib.priors` over M2 dimensions, a Gaussian conditional prior
p(z1 | z2) = N(z1 | mu_p(z2), diag(exp(lv_p(z2)))) over M dimensions, and the decoder p(x | z1)
of :mod:`lvmlib.vae`. The marginal p(z1) = E_{p(z2)}[p(z1 | z2)] is an infinite mixture of
Gaussians: the hierarchy is another way to give z1 a richer prior than N(0, I).

Inference runs bottom-up (the encoder's first level is the VAE's encoder):

    q(z1, z2 | x) = q(z1 | x) q(z2 | z1),   both diagonal Gaussians.

The ELBO and its named terms (``forward``):

    ELBO = E_q[ log p(x|z1) ]                                   "re"
         - E_q[ log q(z1|x) - log p(z1|z2) ]                    "kl_z1"  (Monte Carlo at z1, z2 ~ q)
         - E_{q(z1|x)}[ KL(q(z2|z1) || p(z2)) ]                 "kl_z2"  (closed form when the
                                                                          prior has one, else MC)
    "kl" = kl_z1 + kl_z2 (the total rate), "elbo" = re - kl,
    "loss" = -(re - beta * kl_weight * kl), averaged over the batch.

kl_z1 is the expected log-ratio, not a KL between fixed distributions: it is >= 0 on average
only in combination with kl_z2 (their sum is KL(q(z1, z2|x) || p(z1, z2)) >= 0).
The test log-likelihood uses q(z1, z2 | x) as the importance proposal:

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1).

The building blocks are the VAE's: :class:`lvmlib.vae.Encoder` is a Gaussian conditional
y -> N(mu(y), diag(exp(lv(y)))), so it serves for q(z1|x), q(z2|z1) and p(z1|z2) alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lvmlib.gaussian import log_normal_diag
from lvmlib.priors import make_prior, prior_log_prob
from lvmlib.runtime import get_device
from lvmlib.vae import VAE, Encoder, VAEConfig, _is_int, reparameterize

__all__ = ["HierarchicalVAEConfig", "HierarchicalVAE"]


@dataclass(frozen=True)
class HierarchicalVAEConfig(VAEConfig):
    """A :class:`lvmlib.vae.VAEConfig` with a second, top latent level.

    M is the dimension of z1 (the level next to x); M2 the dimension of z2 (the top level,
    whose prior is ``prior``: "standard_normal", "mog" or "vamp"; the VampPrior's pseudo-inputs
    reach z2 through q(z1|u) and q(z2|z1 = mu_z1(u))). The networks of q(z2|z1) and p(z1|z2)
    have the architecture of the encoder (H, n_hidden_layers, activation).
    """

    M2: int = 8

    def __post_init__(self):
        super().__post_init__()
        if not _is_int(self.M2) or self.M2 < 1:
            raise ValueError(f"HierarchicalVAEConfig.M2 (the top latent dimension) must be a positive integer, got {self.M2!r}")


class _InputToTop(nn.Module):
    """u (K, D) -> q(z2 | z1 = mu_z1(u)): the map of a top-level VampPrior, built from the two encoders."""

    def __init__(self, encoder: Encoder, encoder_top: Encoder):
        super().__init__()
        self.encoder, self.encoder_top = encoder, encoder_top

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_1, _ = self.encoder(u)
        return self.encoder_top(mu_1)


class HierarchicalVAE(VAE):
    """p(z2) p(z1|z2) p(x|z1) with bottom-up inference q(z1|x) q(z2|z1); see the module docstring.

    Sub-modules: ``encoder`` q(z1|x) (D -> M), ``encoder_top`` q(z2|z1) (M -> M2),
    ``conditional_prior`` p(z1|z2) (M2 -> M), ``decoder`` p(x|z1), ``prior`` p(z2).
    Everything else (input forms per likelihood, ``encode`` and ``reconstruct`` through q(z1|x),
    ``kl_weight``, ``init_prior``) is the VAE's; the VAE's one-level ``kl`` is refused.
    """

    def __init__(self, config: HierarchicalVAEConfig):
        if not isinstance(config, HierarchicalVAEConfig):
            raise TypeError(f"config must be a HierarchicalVAEConfig, got {type(config).__name__}")
        super().__init__(config)
        c = config
        self.encoder_top = Encoder(c.M, c.M2, c.H, c.n_hidden_layers, c.activation)
        self.conditional_prior = Encoder(c.M2, c.M, c.H, c.n_hidden_layers, c.activation)
        # u -> q(z2 | z1 = mu_z1(u)) as a module of the two encoders (held unregistered, as the VampPrior
        # holds its encoder), so that vamp_encoder_gradient=False can detach both encoders' weights
        object.__setattr__(self, "_input_to_top", _InputToTop(self.encoder, self.encoder_top))
        self.prior = make_prior(c.prior, c.M2, n_components=c.n_components, D=c.D, encoder=self._input_to_top,
                                encoder_gradient=c.vamp_encoder_gradient)
        self.to(get_device(c.device))

    # -- the model -------------------------------------------------------------------
    def kl(self, mu_z, log_var, z=None, *, check: bool = True):
        """Not defined for the hierarchical model: refused.

        The VAE's KL(q(z|x) || p(z)) compares q(z1|x) with the prior of z2, which means nothing
        here; the hierarchical KL has two terms that need z1 and z2 (``forward`` and ``elbo``
        return them as "kl_z1" and "kl_z2", and their sum as "kl")."""
        raise NotImplementedError(
            "HierarchicalVAE.kl is not defined: the KL of a two-level model is kl_z1 + kl_z2, which need "
            "samples of z1 and z2; use model.elbo(x) or model(x) and read 'kl', 'kl_z1' and 'kl_z2'"
        )

    def _kl_top(self, z1: torch.Tensor, mu_2: torch.Tensor, lv_2: torch.Tensor, z2: torch.Tensor,
                check: bool = True) -> torch.Tensor:
        """KL(q(z2|z1) || p(z2)): closed form where the prior has one, else log q(z2|z1) - log p(z2) at z2."""
        if self.prior.supports_analytic_kl:
            return self.prior.analytic_kl(mu_2, lv_2)
        return log_normal_diag(z2, mu_2, lv_2, check=check) - prior_log_prob(self.prior, z2, check)

    def _terms(self, x: torch.Tensor, K: int | None, generator: torch.Generator | None,
               check: bool = True) -> dict[str, torch.Tensor]:
        """Per-sample terms at z1 ~ q(z1|x), z2 ~ q(z2|z1). Shapes (B,) or (K, B) when K is given."""
        mu_1, lv_1 = self.encoder(self.encoder_input(x))  # q(z1|x)        (B, M)
        if K is not None:
            mu_1, lv_1 = mu_1.expand(K, *mu_1.shape), lv_1.expand(K, *lv_1.shape)  # (K, B, M)
        z1 = reparameterize(mu_1, lv_1, generator=generator)  # z1 ~ q(z1|x)
        mu_2, lv_2 = self.encoder_top(z1)  # q(z2|z1)                       (..., M2)
        z2 = reparameterize(mu_2, lv_2, generator=generator)  # z2 ~ q(z2|z1)
        mu_p, lv_p = self.conditional_prior(z2)  # p(z1|z2)                  (..., M)
        re = self.decoder.log_prob(x, z1, check=False)  # log p(x|z1)
        kl_z1 = log_normal_diag(z1, mu_1, lv_1, check=check) - log_normal_diag(z1, mu_p, lv_p, check=check)
        kl_z2 = self._kl_top(z1, mu_2, lv_2, z2, check=check)
        return {"re": re, "kl_z1": kl_z1, "kl_z2": kl_z2}

    def forward(self, x, generator: torch.Generator | None = None, *, check: bool = True) -> dict[str, torch.Tensor]:
        """The ELBO with one sample of (z1, z2) ~ q, its named terms and the loss.

        Inputs: x (B, D) in the form the likelihood models; check: as :meth:`VAE.forward`
        (False: only type and shape, and no host read anywhere in the pass, for batches of data
        validated once with ``check_data``).
        Returns: {"loss": scalar, "elbo", "re", "kl", "kl_z1", "kl_z2": (B,) each}.
        """
        if not isinstance(check, bool):
            raise TypeError(f"check must be True or False, got {check!r}")
        x = self.check_data(x) if check else self._x_form(x)
        if check:
            self.check_parameters()
        t = self._terms(x, None, generator, check=check)
        kl = t["kl_z1"] + t["kl_z2"]
        loss = -(t["re"] - self.config.beta * self._kl_weight * kl).mean()
        return {"loss": loss, "elbo": t["re"] - kl, "re": t["re"], "kl": kl, "kl_z1": t["kl_z1"], "kl_z2": t["kl_z2"]}

    def elbo(self, x, K: int = 1, analytic_kl: bool = True, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The ELBO and its terms averaged over K samples of (z1, z2) per data point.

        ``analytic_kl`` is accepted for the VAE's signature; kl_z2 is in closed form whenever
        the prior has one. Inputs: x (B, D); K >= 1. Returns: {"elbo", "re", "kl", "kl_z1", "kl_z2"} (B,).
        """
        if not _is_int(K) or K < 1:
            raise ValueError(f"K must be a positive integer, got {K!r}")
        x = self._as_x(x)
        t = {k: v.mean(0) for k, v in self._terms(x, K, generator).items()}
        t["kl"] = t["kl_z1"] + t["kl_z2"]
        t["elbo"] = t["re"] - t["kl"]
        return t

    def log_importance_weights(self, x, K: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_k = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1), (z1, z2) ~ q.

        Used by :func:`lvmlib.variational.log_px_importance` (and so by ``log_px``).
        Inputs: x (B, D); K. Returns: (K, B).
        """
        if not _is_int(K) or K < 1:
            raise ValueError(f"K must be a positive integer, got {K!r}")
        x = self._as_x(x)
        mu_1, lv_1 = self.encoder(self.encoder_input(x))
        mu_1, lv_1 = mu_1.expand(K, *mu_1.shape), lv_1.expand(K, *lv_1.shape)  # (K, B, M)
        z1 = reparameterize(mu_1, lv_1, generator=generator)
        mu_2, lv_2 = self.encoder_top(z1)
        z2 = reparameterize(mu_2, lv_2, generator=generator)
        mu_p, lv_p = self.conditional_prior(z2)
        log_p = self.decoder.log_prob(x, z1, check=False) + log_normal_diag(z1, mu_p, lv_p) + self.prior.log_prob(z2)
        log_q = log_normal_diag(z1, mu_1, lv_1) + log_normal_diag(z2, mu_2, lv_2)
        return log_p - log_q

    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z2 ~ p(z2), z1 ~ p(z1|z2). Returns: z1 (n, M), z2 (n, M2)."""
        z2 = self.prior.sample(n, generator=generator)
        mu_p, lv_p = self.conditional_prior(z2)
        return reparameterize(mu_p, lv_p, generator=generator), z2

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = True) -> torch.Tensor:
        """Generate top-down: z2 ~ p(z2), z1 ~ p(z1|z2), then E[x|z1] (mean=True) or x ~ p(x|z1).

        Inputs: n. Returns: (n, D).
        """
        z1, _ = self.sample_latents(n, generator=generator)
        return self.decoder.mean(z1) if mean else self.decoder.sample(z1, generator=generator)

    def posterior_params(self, x):
        """Not defined for two latent levels (q(z2|z1) depends on the sampled z1, not on x alone)."""
        raise NotImplementedError("posterior_params (and the *_from_params methods) are defined for one latent "
                                  "level (VAE, FlowVAE), not for the HierarchicalVAE")

    def sample_q_from_params(self, params, n, generator=None):
        self.posterior_params(None)

    def log_q_from_params(self, z, params):
        self.posterior_params(None)

    def elbo_from_params(self, x, params, n_samples=1, generator=None, analytic_kl=True):
        self.posterior_params(None)

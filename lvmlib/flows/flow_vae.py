"""The VAE with a flow posterior: q(z_K|x) = N(z_0; mu(x), sigma^2(x)) pushed through K flow steps.

    z_0 ~ N(mu(x), diag(sigma^2(x))),   z_K = f_K o ... o f_1 (z_0),
    log q(z_K|x) = log N(z_0; mu, sigma^2) - sum_k log|det df_k/dz_{k-1}|,

with the steps' parameters amortised from the encoder's last hidden features (the same layer
that outputs mu and log_var). With a flow the KL term has no closed form, so the ELBO uses the
sampled estimate

    ELBO(x) ~= log p(x|z_K) + log p(z_K) - log q(z_K|x),   z_K from one z_0 (or the mean over n),

and the test log-likelihood is the importance-sampling estimate with q(z_K|x) as proposal
(``log_importance_weights``, which :func:`lvmlib.variational.log_px_importance` uses).

``VAE(VAEConfig(posterior="planar", flow_length=K, ...))`` builds this class, so the trainer,
the command line (``--flow planar --flow-length K``), checkpoints, resume and ``load_vae`` need
nothing else. ``encode(x)`` still returns the base Gaussian's (mu, log_var).
"""

from __future__ import annotations

import math

import torch

from lvmlib.flows.modules import make_flow
from lvmlib.gaussian import log_normal_diag
from lvmlib.runtime import get_device
from lvmlib.priors import prior_log_prob
from lvmlib.vae import VAE, VAEConfig, _check_bool, _is_int, reparameterize

__all__ = ["FlowVAE", "log_px_from_params"]


class FlowVAE(VAE):
    """A :class:`lvmlib.vae.VAE` whose q(z|x) is a diagonal Gaussian followed by a flow (``self.flow``).

    ``forward(x)`` returns {"loss", "elbo", "re", "kl"} as the VAE's, with "kl" the one-sample
    estimate log q(z_K|x) - log p(z_K) (B,). The per-point parameters (:meth:`posterior_params`):
    {"mu", "log_var"} (B, M) and the flow's ("w", "u", "b" planar; "v" Householder; "h" IAF).
    """

    _flow_posterior = True

    def __init__(self, config: VAEConfig):
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
        if config.posterior == "gaussian":
            raise ValueError("config.posterior must name a flow ('planar', 'householder' or 'iaf') for a FlowVAE, "
                             "got 'gaussian' (use lvmlib.vae.VAE)")
        super().__init__(config)
        c = config
        feature_dim = c.H if c.n_hidden_layers > 0 else c.D
        self.flow = make_flow(c.posterior, c.M, c.flow_length, feature_dim)
        self.to(get_device(c.device))

    # -- q(z|x) --------------------------------------------------------------------------
    def _params_from_input(self, xe: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder input (B, D) -> the per-point parameters (base Gaussian and flow)."""
        h = self.encoder.net[:-1](xe)  # the last hidden features (B, F) (the input itself without hidden layers)
        mu_z, log_var = torch.chunk(self.encoder.net[-1](h), 2, dim=-1)  # (B, M) each
        return {"mu": mu_z, "log_var": log_var, **self.flow.params(h)}

    def posterior_params(self, x) -> dict[str, torch.Tensor]:
        """{"mu", "log_var"} (B, M) and the flow's amortised parameters, each (B, ...)."""
        x = self._as_x(x)
        return self._params_from_input(self.encoder_input(x))

    def _sample(self, params, n: int | None, generator):
        mu, lv = params["mu"], params["log_var"]
        if n is not None:
            mu, lv = mu.expand(n, *mu.shape), lv.expand(n, *lv.shape)
        z0 = reparameterize(mu, lv, generator=generator)
        log_q0 = log_normal_diag(z0, mu, lv, check=False)
        z, log_det = self.flow(z0, params)
        return z, log_q0 - log_det

    def sample_q_from_params(self, params, n: int, generator: torch.Generator | None = None):
        """z_K ~ q(z|x) and log q(z_K|x) = log N(z_0; mu, sigma^2) - sum log|det|, reparameterized.

        Inputs: params (B, ...) (from :meth:`posterior_params`, possibly refined); n >= 1.
        Returns: z (n, B, M), log_q (n, B), differentiable with respect to params.
        """
        self._check_params(params)
        if not _is_int(n) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        return self._sample(params, int(n), generator)

    def log_q_from_params(self, z: torch.Tensor, params) -> torch.Tensor:
        """log q(z_K|x) at given z (..., B, M): the flow inverted (planar: numerically), then
        log N(z_0; mu, sigma^2) - sum log|det| at z_0. Returns: (..., B)."""
        self._check_params(params)
        if not torch.is_tensor(z) or z.dim() < 2 or z.shape[-1] != self.config.M:
            raise ValueError(f"z must have shape (..., B, M={self.config.M}), got {getattr(z, 'shape', type(z).__name__)}")
        z0 = self.flow.inverse(z, params)
        _, log_det = self.flow(z0, params)
        return log_normal_diag(z0, params["mu"], params["log_var"], check=False) - log_det

    # -- the model -------------------------------------------------------------------
    def kl(self, mu_z, log_var, z=None):
        raise NotImplementedError("a flow posterior has no KL from (mu_z, log_var) alone: use forward, elbo or "
                                  "elbo_from_params (they estimate log q(z_K|x) - log p(z_K) by sampling)")

    def forward(self, x, generator: torch.Generator | None = None, *, check: bool = True) -> dict[str, torch.Tensor]:
        """The ELBO with one reparameterized z_K ~ q(z|x): re = log p(x|z_K), kl = log q(z_K|x) - log p(z_K).

        Inputs: x (B, D); check as :meth:`lvmlib.vae.VAE.forward` (False: type and shape only,
        no host read). Returns: {"loss": scalar, "elbo", "re", "kl": (B,)}.
        """
        x = self.check_data(x) if _check_bool("check", check) else self._x_form(x)
        if check:
            self.check_parameters()
        params = self._params_from_input(self.encoder_input(x))
        z, log_q = self._sample(params, None, generator)  # (B, M), (B,)
        re = self.decoder.log_prob(x, z, check=False)
        kl = log_q - prior_log_prob(self.prior, z, check)  # one-sample log q(z_K|x) - log p(z_K)  (B,)
        elbo = re - kl
        loss = -(re - self.config.beta * self._kl_weight * kl).mean()
        return {"loss": loss, "elbo": elbo, "re": re, "kl": kl}

    def elbo(self, x, K: int = 1, analytic_kl: bool = True, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The ELBO and its terms averaged over K samples per point (``analytic_kl`` is accepted for
        the VAE's signature; a flow has no closed-form KL). Returns: {"elbo", "re", "kl"} (B,)."""
        if not _is_int(K) or K < 1:
            raise ValueError(f"K must be a positive integer, got {K!r}")
        x = self._as_x(x)
        params = self._params_from_input(self.encoder_input(x))
        z, log_q = self._sample(params, int(K), generator)
        re = self.decoder.log_prob(x, z, check=False).mean(0)
        kl = (log_q - self.prior.log_prob(z)).mean(0)
        return {"elbo": re - kl, "re": re, "kl": kl}

    def log_importance_weights(self, x, K: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k ~ q(z|x) through the flow.

        Used by :func:`lvmlib.variational.log_px_importance` (and so ``log_px``). Returns: (K, B).
        """
        if not _is_int(K) or K < 1:
            raise ValueError(f"K must be a positive integer, got {K!r}")
        x = self._as_x(x)
        params = self._params_from_input(self.encoder_input(x))
        z, log_q = self._sample(params, int(K), generator)
        return self.decoder.log_prob(x, z, check=False) + self.prior.log_prob(z) - log_q

    @torch.no_grad()
    def reconstruct(self, x, sample_z: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """E[x|z] at z = f(mu_z(x)) (the base mean through the flow), or at one z ~ q(z|x) when sample_z."""
        params = self.posterior_params(x)
        if sample_z:
            z, _ = self._sample(params, None, generator)
        else:
            z, _ = self.flow(params["mu"], params)
        return self.decoder.mean(z)


@torch.no_grad()
def log_px_from_params(model: VAE, x, params, K: int = 1000, chunk: int = 100,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Importance-sampled log p(x) with the proposal q given by ``params`` (refined or the encoder's).

        log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,  z_k ~ q

    Works for a Gaussian or a flow posterior (through ``model.sample_q_from_params``).
    Inputs: x (B, D); params (B, ...); K samples drawn ``chunk`` at a time. Returns: (B,).
    """
    if not _is_int(K) or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    if not _is_int(chunk) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    x = model.check_data(x)
    parts, done = [], 0
    while done < K:
        k = min(int(chunk), int(K) - done)
        z, log_q = model.sample_q_from_params(params, k, generator=generator)
        log_w = model.decoder.log_prob(x, z, check=False) + model.prior.log_prob(z) - log_q
        parts.append(torch.logsumexp(log_w, dim=0))
        done += k
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(K)

"""The variational auto-encoder (lecture: "Variational auto-encoders", Kingma & Welling 2014).

Generative process: z ~ p_lambda(z), x ~ p_theta(x | z). Training maximises the ELBO

    ELBO(x) = E_{z ~ q_phi(z|x)}[ log p_theta(x | z) ] - KL( q_phi(z|x) || p_lambda(z) )
            =              RE                         -              KL

with an encoder q_phi(z|x) = N(z | mu_z(x), diag(exp(log_var(x)))), a decoder p_theta(x|z)
(Bernoulli, Gaussian or categorical), and a prior from :mod:`lvmlib.priors`.

Conventions of this module
--------------------------
* The encoder outputs the **log-variance** ``log_var`` = log sigma^2(x), not the log standard
  deviation the lecture's slide code names (``log std``, which is not even a valid Python name).
  Both are unconstrained, so either works; log-variance is what the KL formula uses directly,
  and sigma = exp(0.5 * log_var).
* Unlike the slide code (which returns a squared error and flips the sign), every term here is
  a log-density: ``re`` = log p(x|z) (a log-likelihood, higher is better), ``kl`` >= 0,
  ``elbo = re - kl`` and the loss to minimise is ``-(re - beta * kl)``, averaged over the batch.
* Inputs: the VAE takes x in the form its likelihood models:
    - ``"bernoulli"``: floats in [0, 1] (binary pixels or grey levels, as in ``scale="unit"``);
    - ``"gaussian"``: real-valued floats;
    - ``"categorical"``: integer levels 0..L-1 per pixel (``scale="raw"`` digits, L = 17),
      as an integer or float tensor holding whole numbers.
  The encoder always receives floats; for the categorical likelihood it receives x / (L - 1)
  so that its input lies in [0, 1] as for the other likelihoods (``VAE.encoder_input``).
* Validation: ``VAE.check_data(x, name)`` checks a whole data set once (type, shape (N, D)
  with N >= 1, finite values, the likelihood's range or levels) and returns it in the form
  ``forward`` expects. ``forward(x)`` checks the same on every call (``check=True``, the
  default, for interactive use); ``forward(batch, check=False)`` checks only type and shape,
  with no look at the values and so no host-device synchronisation: for batches of data
  validated once (what the trainer does). ``elbo``, ``log_px``, ``encode``,
  ``reconstruct`` and ``log_px_given_z`` always check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lvmlib.gaussian import log_normal_diag
from lvmlib.priors import Prior, check_finite, make_prior, prior_log_prob
from lvmlib.runtime import get_device

__all__ = [
    "VAEConfig",
    "make_mlp",
    "reparameterize",
    "Encoder",
    "Decoder",
    "BernoulliDecoder",
    "GaussianDecoder",
    "CategoricalDecoder",
    "make_decoder",
    "VAE",
    "vae_step",
]

LIKELIHOODS = ("bernoulli", "gaussian", "categorical")
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "elu": nn.ELU}
VARIANCES = ("fixed", "learned")
PRIORS = ("standard_normal", "mog", "vamp")
POSTERIORS = ("gaussian", "planar", "householder", "iaf")  # q(z|x): a diagonal Gaussian, or one pushed through a flow


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


@dataclass(frozen=True)
class VAEConfig:
    """Everything that defines a VAE's architecture and loss.

    Fields:
        D: data dimension (64 for the 8x8 digits, 784 for MNIST).
        M: latent dimension.
        H: hidden units per hidden layer (the lecture uses 300; default 256).
        n_hidden_layers: hidden layers in the encoder and the decoder. 1 is the lecture's
            x -> Linear(D, H) -> act -> Linear(H, 2M); 2 is Tomczak's book code; 0 makes both
            maps linear (a linear VAE, which at its optimum is probabilistic PCA).
        activation: "relu" (lecture), "leaky_relu" (Tomczak's book), "tanh" or "elu".
        likelihood: p(x|z): "bernoulli", "gaussian" or "categorical".
        n_levels: L, the number of values per pixel for "categorical" (17 for raw digits 0..16).
        variance: for "gaussian": "fixed" (sigma2 stays at ``sigma2``; the lecture's
            N(x | theta(z), 1) is sigma2 = 1) or "learned" (one log-variance per data dimension,
            independent of z, initialised at log ``sigma2``).
        sigma2: the Gaussian decoder's (initial) variance, > 0.
        beta: weight of the KL term in the loss (1 = the ELBO; beta-VAE otherwise), >= 0.
        prior: "standard_normal" (p(z) = N(0, I)), "mog" (a learnable mixture of Gaussians) or
            "vamp" (the VampPrior, a mixture of the encoder's posteriors at learnable
            pseudo-inputs; initialise them from training data with ``VAE.init_prior``).
        n_components: mixture components of "mog" / pseudo-inputs of "vamp" (>= 1).
        vamp_encoder_gradient: for "vamp": True (Tomczak & Welling) lets the gradient of the
            prior's term log p(z) reach the encoder's weights through the components mu(u_k),
            lv(u_k) as well as the pseudo-inputs (the ELBO's gradient); False cuts that one path
            at the encoder's weights, so through the components it trains the pseudo-inputs only.
            The encoder still gets the gradient of log p(z) through z = mu + sigma * eps (not
            zero), and the update is then no longer the ELBO's gradient (see
            :class:`lvmlib.priors.VampPrior`). Other priors ignore it.
        device: "auto", "cpu", "cuda", "cuda:N"; the VAE moves itself there when built.
        posterior: q(z|x): "gaussian" (the lecture's diagonal Gaussian) or a normalizing flow on
            top of it, "planar", "householder" or "iaf" (:mod:`lvmlib.flows`; ``VAE(config)`` then
            builds a :class:`lvmlib.flows.FlowVAE`).
        flow_length: K, the number of flow steps: None for "gaussian", an integer >= 1 for a flow.
    """

    D: int
    M: int
    H: int = 256
    n_hidden_layers: int = 1
    activation: str = "relu"
    likelihood: str = "bernoulli"
    n_levels: int = 17
    variance: str = "fixed"
    sigma2: float = 1.0
    beta: float = 1.0
    prior: str = "standard_normal"
    device: str = "auto"
    n_components: int = 16
    vamp_encoder_gradient: bool = True
    posterior: str = "gaussian"
    flow_length: int | None = None

    def __post_init__(self):
        for name in ("D", "M", "H"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"VAEConfig.{name} must be a positive integer, got {v!r}")
        if not _is_int(self.n_hidden_layers) or self.n_hidden_layers < 0:
            raise ValueError(
                f"VAEConfig.n_hidden_layers must be an integer >= 0 (0 = linear maps), got {self.n_hidden_layers!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"VAEConfig.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"VAEConfig.likelihood must be one of {list(LIKELIHOODS)}, got {self.likelihood!r}")
        if not _is_int(self.n_levels) or self.n_levels < 2:
            raise ValueError(f"VAEConfig.n_levels must be an integer >= 2, got {self.n_levels!r}")
        if self.variance not in VARIANCES:
            raise ValueError(f"VAEConfig.variance must be one of {list(VARIANCES)}, got {self.variance!r}")
        if not _is_real(self.sigma2) or not math.isfinite(self.sigma2) or self.sigma2 <= 0:
            raise ValueError(f"VAEConfig.sigma2 must be a positive finite number, got {self.sigma2!r}")
        if not _is_real(self.beta) or not math.isfinite(self.beta) or self.beta < 0:
            raise ValueError(f"VAEConfig.beta must be a finite number >= 0, got {self.beta!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"VAEConfig.prior must be one of {list(PRIORS)}, got {self.prior!r}")
        if not _is_int(self.n_components) or self.n_components < 1:
            raise ValueError(f"VAEConfig.n_components must be a positive integer, got {self.n_components!r}")
        if not isinstance(self.vamp_encoder_gradient, (bool, np.bool_)):
            raise TypeError(f"VAEConfig.vamp_encoder_gradient must be True or False, got {self.vamp_encoder_gradient!r}")
        object.__setattr__(self, "vamp_encoder_gradient", bool(self.vamp_encoder_gradient))
        if self.posterior not in POSTERIORS:
            raise ValueError(f"VAEConfig.posterior must be one of {list(POSTERIORS)}, got {self.posterior!r}")
        if self.posterior == "gaussian" and self.flow_length is not None:
            raise ValueError(
                f"VAEConfig.flow_length must be None for posterior='gaussian' (it has no flow), got {self.flow_length!r}"
            )
        if self.posterior != "gaussian" and (not _is_int(self.flow_length) or self.flow_length < 1):
            raise ValueError(
                f"VAEConfig.flow_length (the number of flow steps K) must be an integer >= 1 for "
                f"posterior={self.posterior!r}, got {self.flow_length!r}"
            )
        if self.flow_length is not None:
            object.__setattr__(self, "flow_length", int(self.flow_length))
        if not isinstance(self.device, str):
            raise TypeError(f"VAEConfig.device must be a string such as 'auto' or 'cpu', got {self.device!r}")
        # NumPy numbers become Python numbers, so that the config is plain data (JSON, checkpoints)
        for name in ("D", "M", "H", "n_hidden_layers", "n_levels"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("sigma2", "beta"):
            object.__setattr__(self, name, float(getattr(self, name)))


# --------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------


def make_mlp(in_dim: int, out_dim: int, H: int = 256, n_hidden_layers: int = 1, activation: str = "relu") -> nn.Sequential:
    """in_dim -> [Linear(., H) -> act] * n_hidden_layers -> Linear(., out_dim).

    No non-linearity after the last layer (lecture: "No non-linearity here!"): it outputs
    unconstrained means, log-variances or logits. ``n_hidden_layers=0`` is a single Linear map.
    Inputs/Returns: a module mapping (..., in_dim) to (..., out_dim).
    """
    for name, v in (("in_dim", in_dim), ("out_dim", out_dim), ("H", H)):
        if not _is_int(v) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if not _is_int(n_hidden_layers) or n_hidden_layers < 0:
        raise ValueError(f"n_hidden_layers must be an integer >= 0, got {n_hidden_layers!r}")
    in_dim, out_dim, H = int(in_dim), int(out_dim), int(H)
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(int(n_hidden_layers)):
        layers += [nn.Linear(d, H), ACTIVATIONS[activation]()]
        d = H
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def reparameterize(mu_z: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The reparameterization trick (lecture: z = mu + sigma * eps, eps ~ N(0, 1)).

        z = mu_z + exp(0.5 * log_var) * eps,   eps ~ N(0, I)

    The randomness sits in eps, so z is a differentiable function of (mu_z, log_var).
    To draw K samples per data point pass mu_z, log_var expanded to (K, B, M).

    Inputs: mu_z (..., M), log_var (..., M) (the log-variance); generator (optional).
    Returns: z (..., M).
    """
    if not torch.is_tensor(mu_z) or not torch.is_tensor(log_var):
        raise TypeError("mu_z and log_var must be torch tensors")
    if mu_z.shape != log_var.shape:
        raise ValueError(f"mu_z and log_var must have the same shape, got {tuple(mu_z.shape)} and {tuple(log_var.shape)}")
    _check_generator(generator)
    if generator is None:  # the same draw; randn_like also traces under torch.compile with a varying batch
        eps = torch.randn_like(mu_z)
    else:
        eps = torch.randn(mu_z.shape, device=mu_z.device, dtype=mu_z.dtype, generator=generator)
    return mu_z + torch.exp(0.5 * log_var) * eps


class Encoder(nn.Module):
    """q_phi(z|x) = N(z | mu_z(x), diag(exp(log_var(x)))).

    Network (lecture): x -> Linear(D, H) -> ReLU -> Linear(H, 2M) -> split into mu_z, log_var.

    The second half is the LOG-VARIANCE log sigma^2, not the log-std of the slide ("We model
    means and log-std"; its code even writes ``log std`` with a space, which is not a Python
    name). Both are unconstrained outputs; with log-variance, sigma = exp(0.5 * log_var) and
    the KL term needs no squaring. A notebook that follows the slide's log-std must use
    sigma = exp(log_std) and 2 * log_std wherever a log-variance appears.
    """

    def __init__(self, D: int, M: int, H: int = 256, n_hidden_layers: int = 1, activation: str = "relu"):
        super().__init__()
        self.D, self.M = D, M
        self.net = make_mlp(D, 2 * M, H, n_hidden_layers, activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs: x (..., D) floats. Returns: mu_z (..., M), log_var (..., M)."""
        if not torch.is_tensor(x):
            raise TypeError(f"x must be a torch.Tensor of shape (..., D={self.D}), got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.D:
            raise ValueError(f"x must have shape (..., D={self.D}), got {tuple(x.shape)}")
        h = self.net(x)  # (..., 2M)
        mu_z, log_var = torch.chunk(h, 2, dim=-1)  # (..., M) each
        return mu_z, log_var

    def sample(
        self,
        x: torch.Tensor | None = None,
        *,
        mu_z: torch.Tensor | None = None,
        log_var: torch.Tensor | None = None,
        K: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """z ~ q(z|x) by reparameterization, from x or from given (mu_z, log_var).

        Inputs: x (B, D) or mu_z, log_var (B, M); K (optional) samples per data point.
        Returns: z (B, M), or (K, B, M) when K is given.
        """
        if x is not None:
            mu_z, log_var = self(x)
        elif mu_z is None or log_var is None:
            raise ValueError("Encoder.sample needs either x or both mu_z and log_var")
        if K is not None:
            if not _is_int(K) or K < 1:
                raise ValueError(f"K must be a positive integer, got {K!r}")
            mu_z = mu_z.expand(K, *mu_z.shape)  # (K, B, M)
            log_var = log_var.expand(K, *log_var.shape)  # (K, B, M)
        return reparameterize(mu_z, log_var, generator=generator)

    @staticmethod
    def log_prob(z: torch.Tensor, mu_z: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """log q(z|x) = sum_m log N(z_m | mu_z_m, exp(log_var_m)).

        Inputs: z (..., M) (e.g. (K, B, M)), mu_z and log_var broadcastable to it.
        Returns: (...,). Shapes are checked, values are not (it runs inside the training loop).
        """
        return log_normal_diag(z, mu_z, log_var, check=False)


class Decoder(nn.Module):
    """Common interface of the decoders p_theta(x|z).

    - ``decoder(z)`` -> the distribution's parameters (logits or means),
    - ``decoder.log_prob(x, z)`` or ``decoder.log_prob(x, params=...)`` -> log p(x|z) summed over D,
    - ``decoder.sample(z)`` -> x ~ p(x|z), ``decoder.mean(z)`` -> E[x|z].

    z may carry leading sample dimensions: z (K, B, M) with x (B, D) gives log_prob (K, B).
    """

    def __init__(self, D: int, M: int, out_dim: int, H: int = 256, n_hidden_layers: int = 1, activation: str = "relu"):
        super().__init__()
        self.D, self.M = D, M
        self.net = make_mlp(M, out_dim, H, n_hidden_layers, activation)

    def _params(self, z, params, x=None, event_dims: int = 1):
        """The distribution's parameters, from z or as given. With x, checks that x broadcasts to
        them: x (B, D) against parameters (..., B, D) (or (..., B, D, L) when ``event_dims`` is 2)."""
        if (z is None) == (params is None):
            raise ValueError("give exactly one of z (..., M) and params (the output of decoder(z))")
        if params is not None and not torch.is_tensor(params):
            raise TypeError(f"params must be a torch.Tensor (the output of decoder(z)), got {type(params).__name__}")
        out = self(z) if params is None else params
        if x is not None:
            target = out.shape[: out.dim() - (event_dims - 1)]  # (..., B, D)
            try:
                ok = torch.broadcast_shapes(x.shape, target) == target
            except RuntimeError:
                ok = False
            if not ok:
                given = f"z {tuple(z.shape)}" if params is None else f"params {tuple(params.shape)}"
                raise ValueError(
                    f"x {tuple(x.shape)} and {given} do not match: x (B, D) needs z (..., B, M) or params "
                    f"(..., B, D{', L' if event_dims == 2 else ''}) with the same B"
                )
        return out

    def _check_z(self, z):
        if not torch.is_tensor(z) or z.shape[-1] != self.M:
            shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"z must be a tensor of shape (..., M={self.M}), got {shape}")

    def _check_x(self, x, check: bool = True):
        """x's shape (..., D); with ``check`` also its values: finite (one host-device sync)."""
        if not torch.is_tensor(x) or x.shape[-1] != self.D:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (..., D={self.D}), got {shape}")
        if check and x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError("x must be finite, got NaN or infinite values")

    def log_prob(self, x: torch.Tensor, z: torch.Tensor | None = None, *, params=None, check: bool = True) -> torch.Tensor:
        """log p(x|z) summed over D. ``check=False`` skips the checks of x's values (finite, in
        the likelihood's range), for data validated beforehand (``VAE.check_data``)."""
        raise NotImplementedError

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BernoulliDecoder(Decoder):
    """p(x|z) = prod_d Bern(x_d | sigmoid(logits_d(z))) for binary or [0, 1]-valued x.

    log p(x|z) = sum_d [x_d * logits_d - softplus(logits_d)] = -BCEWithLogits(logits, x),
    which is numerically stable for large |logits| (no log(sigmoid) of a saturated value).
    For grey levels in [0, 1] this is the usual "continuous Bernoulli without normaliser".
    """

    def __init__(self, D: int, M: int, H: int = 256, n_hidden_layers: int = 1, activation: str = "relu"):
        super().__init__(D, M, D, H, n_hidden_layers, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Inputs: z (..., M). Returns: logits (..., D)."""
        self._check_z(z)
        return self.net(z)

    def log_prob(self, x: torch.Tensor, z: torch.Tensor | None = None, *, params=None, check: bool = True) -> torch.Tensor:
        """Inputs: x (B, D) in [0, 1]; z (..., B, M) or params=logits (..., B, D). Returns: (..., B).

        ``check`` (default True) verifies that x is finite and in [0, 1]; False skips it."""
        self._check_x(x, check)
        if check and bool(((x < 0) | (x > 1)).any()):
            raise ValueError("x must lie in [0, 1] for the Bernoulli likelihood (use scale='unit' data)")
        logits = self._params(z, params, x)
        x = x.to(logits.dtype)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ Bern(sigmoid(logits(z))). Inputs: z (..., M). Returns: (..., D) of 0./1."""
        p = torch.sigmoid(self(z))
        return torch.bernoulli(p, generator=generator)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z] = sigmoid(logits(z)). Inputs: z (..., M). Returns: (..., D)."""
        return torch.sigmoid(self(z))


class GaussianDecoder(Decoder):
    """p(x|z) = N(x | mean(z), diag(sigma2)) (lecture: N(x | theta(z), 1) with sigma2 = 1).

    log p(x|z) = sum_d [-1/2 log(2 pi sigma2_d) - (x_d - mean_d)^2 / (2 sigma2_d)].
    ``variance="fixed"``: sigma2 is a constant buffer; ``"learned"``: one log-variance per data
    dimension, a parameter independent of z (``log_var_x``, shape (D,)), initialised at log sigma2.
    """

    def __init__(
        self,
        D: int,
        M: int,
        H: int = 256,
        n_hidden_layers: int = 1,
        activation: str = "relu",
        variance: str = "fixed",
        sigma2: float = 1.0,
    ):
        super().__init__(D, M, D, H, n_hidden_layers, activation)
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {list(VARIANCES)}, got {variance!r}")
        if not _is_real(sigma2) or not math.isfinite(sigma2) or sigma2 <= 0:
            raise ValueError(f"sigma2 must be a positive finite number, got {sigma2!r}")
        self.variance = variance
        init = torch.full((D,), math.log(sigma2))
        if variance == "learned":
            self.log_var_x = nn.Parameter(init)
        else:
            self.register_buffer("log_var_x", init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Inputs: z (..., M). Returns: the mean (..., D)."""
        self._check_z(z)
        return self.net(z)

    def log_prob(self, x: torch.Tensor, z: torch.Tensor | None = None, *, params=None, check: bool = True) -> torch.Tensor:
        """Inputs: x (B, D); z (..., B, M) or params=mean (..., B, D). Returns: (..., B).

        ``check`` (default True) verifies that x is finite; False skips it."""
        self._check_x(x, check)
        mean = self._params(z, params, x)
        return log_normal_diag(x.to(mean.dtype), mean, self.log_var_x.expand_as(mean), check=False)

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = mean(z) + sigma * eps. Inputs: z (..., M). Returns: (..., D)."""
        mean = self(z)
        eps = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
        return mean + torch.exp(0.5 * self.log_var_x) * eps

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z] = mean(z). Inputs: z (..., M). Returns: (..., D)."""
        return self(z)


class CategoricalDecoder(Decoder):
    """p(x|z) = prod_d Cat(x_d | softmax(logits_d(z))), x_d in {0, ..., L-1}.

    Tomczak's book setup for the raw 8x8 digits (L = 17 levels 0..16).
    log p(x|z) = sum_d log_softmax(logits_d)[x_d].
    """

    def __init__(self, D: int, M: int, H: int = 256, n_hidden_layers: int = 1, activation: str = "relu", n_levels: int = 17):
        if not _is_int(n_levels) or n_levels < 2:
            raise ValueError(f"n_levels must be an integer >= 2, got {n_levels!r}")
        super().__init__(D, M, D * n_levels, H, n_hidden_layers, activation)
        self.L = int(n_levels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Inputs: z (..., M). Returns: logits (..., D, L)."""
        self._check_z(z)
        h = self.net(z)  # (..., D * L)
        return h.reshape(*h.shape[:-1], self.D, self.L)  # (..., D, L): pixel d's L logits

    def _levels(self, x: torch.Tensor, check: bool = True) -> torch.Tensor:
        self._check_x(x, check)
        if not check:
            return x.long()
        if x.is_floating_point() and bool((x != torch.round(x)).any()):
            raise ValueError("x must hold integer levels 0..L-1 for the categorical likelihood, got non-integers")
        xl = x.long()
        if bool(((xl < 0) | (xl > self.L - 1)).any()):
            raise ValueError(f"x must hold integer levels in 0..{self.L - 1}, got values in {int(xl.min())}..{int(xl.max())}")
        return xl

    def log_prob(self, x: torch.Tensor, z: torch.Tensor | None = None, *, params=None, check: bool = True) -> torch.Tensor:
        """Inputs: x (B, D) integer levels; z (..., B, M) or params=logits (..., B, D, L). Returns: (..., B).

        ``check`` (default True) verifies that x holds whole numbers in 0..L-1; False skips it."""
        xl = self._levels(x, check)
        logits = self._params(z, params, x, event_dims=2)
        log_p = torch.log_softmax(logits, dim=-1)  # (..., B, D, L)
        idx = xl.expand(log_p.shape[:-1]).unsqueeze(-1)  # (..., B, D, 1)
        return torch.gather(log_p, -1, idx).squeeze(-1).sum(-1)

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_d ~ Cat(softmax(logits_d)). Inputs: z (..., M). Returns: (..., D) integer levels as floats."""
        probs = torch.softmax(self(z), dim=-1)  # (..., D, L)
        flat = probs.reshape(-1, self.L)  # (N * D, L)
        x = torch.multinomial(flat, 1, generator=generator)  # (N * D, 1)
        return x.reshape(probs.shape[:-1]).to(probs.dtype)  # (..., D)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x_d|z] = sum_l l * p_l, in level units 0..L-1. Inputs: z (..., M). Returns: (..., D)."""
        probs = torch.softmax(self(z), dim=-1)  # (..., D, L)
        levels = torch.arange(self.L, device=probs.device, dtype=probs.dtype)
        return probs @ levels


def make_decoder(config: VAEConfig) -> Decoder:
    """The decoder that ``config.likelihood`` names, built with the config's architecture."""
    if not isinstance(config, VAEConfig):
        raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    common = dict(D=config.D, M=config.M, H=config.H, n_hidden_layers=config.n_hidden_layers, activation=config.activation)
    if config.likelihood == "bernoulli":
        return BernoulliDecoder(**common)
    if config.likelihood == "gaussian":
        return GaussianDecoder(**common, variance=config.variance, sigma2=config.sigma2)
    return CategoricalDecoder(**common, n_levels=config.n_levels)


# --------------------------------------------------------------------------------------
# the VAE
# --------------------------------------------------------------------------------------


class VAE(nn.Module):
    """A VAE: encoder q(z|x), decoder p(x|z), prior p(z); the loss is -ELBO (with beta on KL).

    ``forward(x)`` returns a dict of named terms per batch:
        "re":   (B,) log p(x|z) at one z ~ q(z|x) (the reconstruction term; a log-likelihood),
        "kl":   (B,) KL(q(z|x) || p(z)), analytic for the standard normal prior, else single-sample MC,
        "elbo": (B,) re - kl,
        "loss": scalar, -(re - beta * kl_weight * kl).mean(), what the optimiser minimises.

    ``kl_weight`` (1.0 by default; read and set as a number) multiplies beta in the loss; a
    trainer's KL warm-up sets it (0 -> 1 over the first epochs). It never enters "elbo". It is
    held in a buffer (a 0-d tensor, not saved in the state_dict), so that ``forward`` reads it on
    the device and ``torch.compile`` sees one graph for every value (a Python float would be a
    constant of the graph, recompiled for each new weight).

    Parameters are checked for NaN and infinities by name where they enter: ``load_state_dict``,
    the start of training (:func:`lvmlib.training.train`), ``check_parameters()`` and every call
    with ``check=True``; never in ``forward(x, check=False)``, which reads nothing on the host.

    With ``config.posterior`` a flow, ``VAE(config)`` returns a :class:`lvmlib.flows.FlowVAE`.
    """

    _flow_posterior = False  # True in the subclass that implements flow posteriors

    def __new__(cls, config=None, *args, **kwargs):
        if cls is VAE and isinstance(config, VAEConfig) and config.posterior != "gaussian":
            from lvmlib.flows.flow_vae import FlowVAE

            cls = FlowVAE
        return super().__new__(cls)

    def __init__(self, config: VAEConfig):
        super().__init__()
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
        if config.posterior != "gaussian" and not self._flow_posterior:
            raise ValueError(
                f"config.posterior={config.posterior!r}: {type(self).__name__} supports only posterior='gaussian'"
            )
        self.config = config
        c = config
        self.encoder = Encoder(c.D, c.M, c.H, c.n_hidden_layers, c.activation)
        self.decoder = make_decoder(c)
        # the VampPrior maps its pseudo-inputs through this encoder (held as a reference)
        self.prior: Prior = make_prior(c.prior, c.M, n_components=c.n_components, D=c.D, encoder=self.encoder,
                                       encoder_gradient=c.vamp_encoder_gradient)
        self.register_buffer("_kl_weight", torch.ones(()), persistent=False)
        self.to(get_device(c.device))

    @property
    def kl_weight(self) -> float:
        """The weight of the KL term in the loss (a number; held on the device in a buffer)."""
        return float(self._kl_weight)

    @kl_weight.setter
    def kl_weight(self, value) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(value)) or value < 0:
            raise ValueError(f"kl_weight must be a finite number >= 0, got {value!r}")
        with torch.no_grad():
            self._kl_weight.fill_(float(value))

    def check_parameters(self) -> None:
        """Refuse NaN or infinite parameters, naming the first one (one host read)."""
        check_finite(self.named_parameters(), f"the {type(self).__name__}'s parameter")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``, refusing first a state with NaN or infinite weights (named)."""
        check_finite(state_dict.items(), "the state_dict's", what=f"a weight of the {type(self).__name__}")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @torch.no_grad()
    def init_prior(self, x, generator: torch.Generator | None = None) -> None:
        """Initialise a data-dependent prior from training data x (N, D): the VampPrior's
        pseudo-inputs become the encoder inputs of n_components rows of x drawn without
        replacement (with replacement when N < n_components). Other priors: nothing to do.
        """
        if self.config.prior != "vamp":
            return
        x = self._as_x(x)
        K, N = self.config.n_components, x.shape[0]
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        gen_device = g.device
        idx = torch.randperm(N, generator=g, device=gen_device)[:K] if N >= K else torch.randint(0, N, (K,), generator=g, device=gen_device)
        self.prior.init_pseudo_inputs(self.encoder_input(x[idx.to(x.device)]))

    # -- helpers ---------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _x_form(self, x, name: str = "x") -> torch.Tensor:
        """The cheap part of the input checks: type, shape (B, D) with B >= 1, dtype; no look at
        the values, so no host-device synchronisation. Returns x on the model's device, as floats
        of the model's dtype (integer levels stay integers for the categorical likelihood)."""
        D = self.config.D
        if isinstance(x, np.ndarray):
            if x.dtype == object or x.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a numeric array of shape (N, D={D}), got an array of dtype {x.dtype}")
            x = torch.from_numpy(x)
        if not torch.is_tensor(x):
            raise TypeError(f"{name} must be a torch.Tensor or numpy array of shape (N, D={D}), got {type(x).__name__}")
        if x.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        if x.dim() != 2 or x.shape[1] != D:
            raise ValueError(f"{name} must have shape (N, D={D}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one row (N >= 1), got an empty batch of shape {tuple(x.shape)}")
        x = x.to(self.device)
        if self.config.likelihood != "categorical" or x.dtype == torch.bool or x.is_floating_point():
            x = x.to(self.dtype)
        return x

    def _check_values(self, x: torch.Tensor, name: str) -> None:
        """The data-dependent checks (one host-device synchronisation): finite, and in the range
        or on the levels that the likelihood models. A tensor on PyTorch's data-less ``meta`` device
        (the checks use it to see which device a learner's code puts its tensors on) has no values
        to check."""
        if x.device.type == "meta":
            return
        c = self.config
        bad = ~torch.isfinite(x) if x.is_floating_point() else torch.zeros_like(x, dtype=torch.bool)
        if c.likelihood == "bernoulli":
            out = (x < 0) | (x > 1)
        elif c.likelihood == "categorical":
            out = (x < 0) | (x > c.n_levels - 1)
            if x.is_floating_point():
                out = out | (x != torch.round(x))
        else:
            out = torch.zeros_like(bad)
        n_bad, n_out = (int(v) for v in torch.stack([bad.sum(), (out & ~bad).sum()]).tolist())
        if n_bad:
            raise ValueError(f"{name} must be finite, got {n_bad} NaN or infinite value(s)")
        if c.likelihood == "gaussian" and x.numel():
            big = math.sqrt(torch.finfo(x.dtype).max) / 4
            top = float(x.abs().max())
            if top > big:
                raise ValueError(
                    f"{name} must have values of magnitude below {big:.3g} for the Gaussian likelihood in {x.dtype} "
                    f"(it squares them), got up to {top:.3g}: standardise the data"
                )
        if n_out and c.likelihood == "bernoulli":
            raise ValueError(
                f"{name} must lie in [0, 1] for the Bernoulli likelihood (use scale='unit' data), "
                f"got values in [{float(x.min()):g}, {float(x.max()):g}]"
            )
        if n_out:
            raise ValueError(
                f"{name} must hold integer levels 0..{c.n_levels - 1} (whole numbers) for the categorical likelihood "
                f"(use scale='raw' data), got {n_out} value(s) that are not; values in [{float(x.min()):g}, {float(x.max()):g}]"
            )

    def check_data(self, x, name: str = "x") -> torch.Tensor:
        """Validate a whole data set once and return it in the form ``forward`` expects.

        Checks: a torch.Tensor or numpy array of real numbers, shape (N, D) with N >= 1, finite,
        and in the likelihood's range: [0, 1] for "bernoulli", whole numbers 0..L-1 for
        "categorical", any real for "gaussian". Raises TypeError / ValueError naming ``name``.
        Returns: x (N, D) on the model's device, as floats of the model's dtype (an integer tensor
        of levels stays integer for "categorical"). After this, ``forward(batch, check=False)``
        on slices of the result needs no further data-dependent checks.
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a string (the argument's name for error messages), got {name!r}")
        x = self._x_form(x, name)
        self._check_values(x, name)
        return x

    def _as_x(self, x, name: str = "x") -> torch.Tensor:
        return self.check_data(x, name)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees: x as floats; for the categorical likelihood x / (L - 1) in [0, 1].

        Inputs: x (B, D). Returns: (B, D) in the model's dtype.
        """
        x = x.to(self.dtype)
        if self.config.likelihood == "categorical":
            x = x / (self.config.n_levels - 1)
        return x

    # -- the model -------------------------------------------------------------------
    def encode(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x)'s parameters. Inputs: x (B, D). Returns: mu_z (B, M), log_var (B, M)."""
        x = self._as_x(x)
        return self.encoder(self.encoder_input(x))

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over D. Inputs: x (B, D), z (..., B, M). Returns: (..., B)."""
        return self.decoder.log_prob(self._as_x(x), z, check=False)

    def kl(self, mu_z: torch.Tensor, log_var: torch.Tensor, z: torch.Tensor | None = None, *, check: bool = True) -> torch.Tensor:
        """KL(q(z|x) || p(z)): analytic when the prior has a closed form, else log q(z) - log p(z) at z.

        Inputs: mu_z, log_var (B, M); z (..., B, M) needed for the Monte Carlo case; check: as
        :meth:`lvmlib.priors.Prior.log_prob` (False in the training forward: no host read).
        Returns: (B,) (the MC estimate is averaged over leading sample dimensions).
        """
        if self.prior.supports_analytic_kl:
            return self.prior.analytic_kl(mu_z, log_var)
        if z is None:
            raise ValueError("this prior has no closed-form KL: pass z ~ q(z|x) for a Monte Carlo estimate")
        mc = self.encoder.log_prob(z, mu_z, log_var) - prior_log_prob(self.prior, z, check)  # (..., B)
        return mc.reshape(-1, mu_z.shape[0]).mean(0)  # (B,)

    def forward(self, x, generator: torch.Generator | None = None, *, check: bool = True) -> dict[str, torch.Tensor]:
        """The ELBO with one reparameterized sample (lecture: "a single sample").

            ELBO(x) = log p(x | z) - KL(q(z|x) || p(z)),   z = mu_z + sigma * eps

        Inputs: x (B, D) (see the module docstring for its form per likelihood), B >= 1;
            check: True (default) validates the values as :meth:`check_data` does (finite, in
            the likelihood's range) and the parameters (finite, named), which reads them on the
            host; False checks only type and shape, with no data-dependent reduction and no
            host read anywhere in the pass (the prior's log-density included): for batches of a
            data set already validated once with :meth:`check_data` (what the trainer does).
        Returns: dict with "loss" (scalar), "elbo", "re", "kl" (B,) each.
        """
        x = self.check_data(x) if _check_bool("check", check) else self._x_form(x)
        if check:
            self.check_parameters()
        mu_z, log_var = self.encoder(self.encoder_input(x))  # q(z|x)      (B, M) each
        z = reparameterize(mu_z, log_var, generator=generator)  # z ~ q(z|x)  (B, M)
        re = self.decoder.log_prob(x, z, check=False)  # E_q log p(x|z), one sample  (B,)
        kl = self.kl(mu_z, log_var, z, check=check)  # KL(q(z|x) || p(z))                  (B,)
        elbo = re - kl
        loss = -(re - self.config.beta * self._kl_weight * kl).mean()
        return {"loss": loss, "elbo": elbo, "re": re, "kl": kl}

    def elbo(self, x, K: int = 1, analytic_kl: bool = True, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The ELBO with K samples per data point (see :func:`lvmlib.variational.elbo_terms`).

        Inputs: x (B, D); K >= 1. Returns: {"elbo", "re", "kl"} (B,) each.
        """
        from lvmlib.variational import elbo_terms

        x = self._as_x(x)
        mu_z, log_var = self.encoder(self.encoder_input(x))
        return elbo_terms(
            x, mu_z, log_var, lambda x_, z_: self.decoder.log_prob(x_, z_, check=False), self.prior,
            K=K, analytic_kl=analytic_kl, generator=generator,
        )

    def log_px(self, x, K: int = 1000, chunk: int = 100, batch_size: int | None = 256, generator=None) -> torch.Tensor:
        """Importance-sampling estimate of log p(x) (see :func:`lvmlib.variational.log_px_importance`).

        Inputs: x (N, D); K samples. Returns: (N,).
        """
        from lvmlib.variational import log_px_importance

        x = self.check_data(x)  # once for all batches; encode/log_px_given_z check each batch again (cheap)
        return log_px_importance(self, x, K=K, chunk=chunk, batch_size=batch_size, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = True) -> torch.Tensor:
        """Generate: z ~ p(z), then E[x|z] (mean=True, smooth images) or x ~ p(x|z).

        Inputs: n. Returns: (n, D) on the model's device.
        """
        z = self.prior.sample(n, generator=generator)
        return self.decoder.mean(z) if mean else self.decoder.sample(z, generator=generator)

    @torch.no_grad()
    def reconstruct(self, x, sample_z: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """E[x|z] at z = mu_z(x) (or at one z ~ q(z|x) when sample_z). Inputs: x (B, D). Returns: (B, D)."""
        mu_z, log_var = self.encode(x)
        z = reparameterize(mu_z, log_var, generator=generator) if sample_z else mu_z
        return self.decoder.mean(z)

    # -- q(z|x) as per-point parameters (the inference gap refines them) ----------------
    def posterior_params(self, x) -> dict[str, torch.Tensor]:
        """The variational parameters the encoder outputs for each point: {"mu", "log_var"} (B, M).

        A flow posterior adds its amortised parameters (:class:`lvmlib.flows.FlowVAE`).
        Inputs: x (B, D). Returns: dict of tensors with leading dimension B (with gradients to the encoder).
        """
        mu_z, log_var = self.encode(x)
        return {"mu": mu_z, "log_var": log_var}

    def _check_params(self, params) -> int:
        if not isinstance(params, dict) or not all(k in params for k in ("mu", "log_var")):
            raise TypeError("params must be a dict with at least 'mu' and 'log_var' (from posterior_params)")
        B = None
        for k, v in params.items():
            if not torch.is_tensor(v) or v.dim() < 1:
                raise TypeError(f"params[{k!r}] must be a tensor with a leading batch dimension B")
            if B is None:
                B = v.shape[0]
            elif v.shape[0] != B:
                raise ValueError(f"params[{k!r}] has leading dimension {v.shape[0]}, the others {B}")
        if params["mu"].shape != params["log_var"].shape or params["mu"].shape[-1] != self.config.M:
            raise ValueError(f"params['mu'] and params['log_var'] must have shape (B, M={self.config.M})")
        return B

    def sample_q_from_params(self, params, n: int, generator: torch.Generator | None = None):
        """z ~ q(z|x) by reparameterization with q given by ``params``, and log q(z|x) at it.

        Inputs: params (from :meth:`posterior_params`, possibly refined), n >= 1 samples per point.
        Returns: z (n, B, M), log_q (n, B); both differentiable with respect to params.
        """
        self._check_params(params)
        if not _is_int(n) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        mu, lv = params["mu"], params["log_var"]
        z = reparameterize(mu.expand(int(n), *mu.shape), lv.expand(int(n), *lv.shape), generator=generator)
        return z, log_normal_diag(z, mu, lv, check=False)

    def log_q_from_params(self, z: torch.Tensor, params) -> torch.Tensor:
        """log q(z|x) at given z (..., B, M) with q given by ``params``. Returns: (..., B)."""
        self._check_params(params)
        return log_normal_diag(z, params["mu"], params["log_var"], check=False)

    def elbo_from_params(self, x, params, n_samples: int = 1, generator: torch.Generator | None = None,
                         analytic_kl: bool = True) -> torch.Tensor:
        """The ELBO of each point with q given by ``params``, from n_samples reparameterized samples.

            ELBO(x) ~= 1/n sum_s [ log p(x|z_s) + log p(z_s) - log q(z_s|x) ],  z_s ~ q

        (for a Gaussian q and a prior with a closed-form KL and ``analytic_kl``: the sampled
        log p(x|z) minus the exact KL). Differentiable with respect to params and the model.
        Inputs: x (B, D); params (B, ...); n_samples >= 1. Returns: (B,).
        """
        x = self._as_x(x)
        B = self._check_params(params)
        if B != x.shape[0]:
            raise ValueError(f"params hold {B} points but x has {x.shape[0]} rows")
        z, log_q = self.sample_q_from_params(params, n_samples, generator=generator)  # (n, B, M), (n, B)
        re = self.decoder.log_prob(x, z, check=False).mean(0)
        if analytic_kl and not self._flow_posterior and self.prior.supports_analytic_kl:
            return re - self.prior.analytic_kl(params["mu"], params["log_var"])
        return re - (log_q - self.prior.log_prob(z)).mean(0)


def vae_step(model: "VAE", optimizer: torch.optim.Optimizer, x: torch.Tensor, eps: torch.Tensor,
             beta: float = 1.0) -> dict[str, torch.Tensor]:
    """One training step on the negative ELBO, its noise given (notebook 05's core exercise):

        mu_z, log_var = encoder(x);   z = mu_z + exp(log_var / 2) * eps
        re   = log p(x|z)                                     (B,) one sample per data point
        kl   = 1/2 sum_m (mu_z^2 + exp(log_var) - 1 - log_var)  (B,) KL(q(z|x) || N(0, I))
        loss = -(1/B) sum_b (re_b - beta kl_b)                the mean over the batch
        then zero the gradients, back-propagate the loss, take one optimizer step.

    Inputs: model a VAE with the standard normal prior; optimizer over its parameters;
        x (B, D) in the model's data form; eps (B, M) standard normal draws; beta >= 0.
    Returns: {"loss": scalar, "re": (B,), "kl": (B,)}, detached, from before the step.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be an lvmlib.vae.VAE, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not _is_real(beta) or not math.isfinite(float(beta)) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    mu_z, log_var = model.encode(x)  # (B, M) each
    if not torch.is_tensor(eps) or tuple(eps.shape) != tuple(mu_z.shape):
        raise ValueError(f"eps must be a tensor of shape (B, M) = {tuple(mu_z.shape)}, got "
                         f"{tuple(eps.shape) if torch.is_tensor(eps) else type(eps).__name__}")
    z = mu_z + torch.exp(0.5 * log_var) * eps  # (B, M)
    re = model.log_px_given_z(x, z)  # (B,)
    kl = 0.5 * (mu_z**2 + torch.exp(log_var) - 1.0 - log_var).sum(dim=-1)  # (B,)
    loss = -(re - beta * kl).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.detach(), "re": re.detach(), "kl": kl.detach()}

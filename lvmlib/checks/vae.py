"""Checks for the exercises on the variational auto-encoder (notebook 05).

- ``check_lecture_vae``: the lecture's slide code, with its bugs fixed (erratum 4): the
  decoder decodes its hidden layer (not ``x``), the reconstruction term is the Gaussian
  log-likelihood log N(x | x_hat, I) (``nn.loss.mse`` does not exist), the loss is
  -(RE - KL) with RE a log-likelihood, and the encoder's second half is a log-VARIANCE.
  :class:`LectureVAE` is the fixed reference;
- ``check_log_px_categorical``: log p(x|z) of the categorical decoder (17 grey levels);
- ``check_active_units``: the number of active latent units (Burda et al. 2016);
- ``check_vae_step`` (the core exercise): the negative ELBO of a batch and one optimizer step,
  with partial diagnosis (reconstruction, KL, reduction over the batch, the update).

Usage in a notebook::

    from lvmlib import checks
    LectureVAE = checks.vae.check_lecture_vae(LectureVAE)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lvmlib import variational
from lvmlib.checks._core import Case, ExerciseError, Part, seeded
from lvmlib.checks.variational import check_through, tensor_output
from lvmlib.gaussian import LOG_2PI, kl_normal_diag, log_normal_diag, log_normal_standard
from lvmlib.vae import CategoricalDecoder

__all__ = ["LectureVAE", "check_lecture_vae", "check_log_px_categorical", "check_active_units", "check_vae_step"]


# ----------------------------------------------------------------------------- the slide code, fixed
class LectureVAE(nn.Module):
    """The lecture's VAE (slide code) with its bugs fixed.

    Encoder: x -> Linear(D, H) -> ReLU -> Linear(H, 2M) -> (mu_z, log_var)   (H = 300 on the slide)
    Decoder: z -> Linear(M, H) -> ReLU -> Linear(H, D) -> x_hat, the mean of p(x|z) = N(x | x_hat, I)
    Loss:    -(RE - KL) per data point, RE = log N(x | x_hat, I), KL = log q(z|x) - log p(z) at the
             sampled z (the slide's single-sample estimate).
    """

    def __init__(self, D: int, M: int, H: int = 300):
        super().__init__()
        self.D, self.M = D, M
        self.enc1 = nn.Linear(in_features=D, out_features=H)
        self.enc2 = nn.Linear(in_features=H, out_features=2 * M)
        self.dec1 = nn.Linear(in_features=M, out_features=H)
        self.dec2 = nn.Linear(in_features=H, out_features=D)

    def reparameterize(self, mu_z: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """z = mu_z + exp(0.5 log_var) * eps. Inputs: (B, M) each. Returns: z (B, M)."""
        std = torch.exp(0.5 * log_var)
        eps = torch.randn_like(std)
        return mu_z + eps * std

    def forward(self, x: torch.Tensor):
        """Inputs: x (B, D). Returns: x_hat (B, D), z (B, M), mu_z (B, M), log_var (B, M)."""
        h = F.relu(self.enc1(x))
        h = self.enc2(h).view(-1, 2, self.M)  # (B, 2, M)
        mu_z, log_var = h[:, 0, :], h[:, 1, :]
        z = self.reparameterize(mu_z, log_var)
        x_hat = F.relu(self.dec1(z))
        x_hat = self.dec2(x_hat)  # the slide decodes x here: the bug
        return x_hat, z, mu_z, log_var

    def neg_elbo(self, x, x_hat, z, mu_z, log_var) -> torch.Tensor:
        """-(RE - KL), RE = log N(x | x_hat, I), KL = log N(z | mu_z, exp(log_var)) - log N(z | 0, I).

        Inputs: x, x_hat (B, D); z, mu_z, log_var (B, M). Returns: (B,).
        """
        RE = log_normal_diag(x, x_hat, torch.zeros_like(x_hat))
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return -(RE - KL)


# ----------------------------------------------------------------------------- typical wrong answers
class _StdIsVar(LectureVAE):
    def reparameterize(self, mu_z, log_var):
        std = torch.exp(log_var)
        return mu_z + torch.randn_like(std) * std


def _sse(x, x_hat):
    return ((x - x_hat) ** 2).sum(-1)


class _MseSign(LectureVAE):  # the slide: RE a squared error, then -(RE - KL)
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return -(_sse(x, x_hat) - KL)


class _HalfMseSign(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return -(0.5 * _sse(x, x_hat) - KL)


class _MseMean(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return ((x - x_hat) ** 2).mean(-1) + KL


class _NoConstant(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return 0.5 * _sse(x, x_hat) + KL


class _NoHalf(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return _sse(x, x_hat) + KL


class _NoHalfConst(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return _sse(x, x_hat) + 0.5 * x.shape[-1] * LOG_2PI + KL


class _ConstPerElement(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        D = x.shape[-1]
        RE = (-0.5 * (x - x_hat) ** 2 - 0.5 * D * LOG_2PI).sum(-1)  # the constant once per pixel, times D
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return -(RE - KL)


class _LogVarOne(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = log_normal_diag(x, x_hat, torch.ones_like(x_hat))  # variance e, not 1
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return -(RE - KL)


class _KlSign(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = log_normal_diag(x, x_hat, torch.zeros_like(x_hat))
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return -(RE + KL)


class _ElboNotNegated(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = log_normal_diag(x, x_hat, torch.zeros_like(x_hat))
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return RE - KL


class _KlLogStd(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = log_normal_diag(x, x_hat, torch.zeros_like(x_hat))
        KL = log_normal_diag(z, mu_z, 2 * log_var) - log_normal_standard(z)
        return -(RE - KL)


class _KlAnalytic(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = log_normal_diag(x, x_hat, torch.zeros_like(x_hat))
        return -(RE - kl_normal_diag(mu_z, log_var))


class _BatchMean(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        return super().neg_elbo(x, x_hat, z, mu_z, log_var).mean()


# ----------------------------------------------------------------------------- the check
_LV_BIAS = -2.0  # the fixed model's log-variances sit near -2, so variance and std differ clearly
_REPEAT = 100  # copies of each input row for the statistics of eps


def _fixed_model(D: int, M: int) -> LectureVAE:
    with seeded(20240521):
        ref = LectureVAE(D, M)
    with torch.no_grad():
        ref.enc2.bias[M:] = _LV_BIAS
    return ref


def _lecture_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(3):
        D, M, B = int(rng.integers(5, 12)), int(rng.integers(2, 4)), int(rng.integers(3, 6))

        def f(*shape, scale=1.0):
            return torch.as_tensor(scale * rng.normal(size=shape), dtype=torch.float32)

        x = torch.as_tensor(rng.uniform(0, 1, size=(B, D)), dtype=torch.float32)
        cases.append(Case((x, f(B, D), f(B, M), f(B, M), f(B, M, scale=0.5) - 1.0)))
    return cases


def _lecture_summary(cls) -> Callable:
    """Build ``cls(D, M)`` with the fixed model's weights; summarise forward and neg_elbo."""

    def summary(x, x_hat_in, z_in, mu_in, lv_in):
        B, D = x.shape
        M = z_in.shape[1]
        ref = _fixed_model(D, M)
        model = cls(D, M)
        try:
            model.load_state_dict(ref.state_dict())
        except RuntimeError as err:
            raise ExerciseError(
                "LectureVAE: keep the slide's four layers enc1 (D -> 300), enc2 (300 -> 2M), dec1 (M -> 300), "
                f"dec2 (300 -> D) with these names; loading the test weights failed: {err}"
            ) from err
        xr = x.repeat(_REPEAT, 1)  # (R*B, D): many copies, for the statistics of eps
        try:
            out = model(xr)
        except (NotImplementedError, ExerciseError):
            raise
        except RuntimeError as err:
            hint = ""
            if "mat1 and mat2" in str(err) or "shape" in str(err):
                hint = (" The slide's decoder line `x_hat = self.dec2(x)` applies dec2 to the encoder's "
                        "output instead of the decoder's hidden layer: decode x_hat = dec2(relu(dec1(z))).")
            raise ExerciseError(f"LectureVAE.forward crashed: {err}.{hint}") from err
        if not isinstance(out, (tuple, list)) or len(out) != 4:
            raise ExerciseError("LectureVAE.forward must return four tensors: x_hat, z, mu_z, log_var "
                                "(the slide returns three, but the loss needs z too)")
        x_hat, z, mu_z, log_var = out
        with torch.no_grad():
            h = ref.enc2(F.relu(ref.enc1(xr))).view(-1, 2, M)  # (R*B, 2, M)
            mu_ref, lv_ref = h[:, 0, :], h[:, 1, :]
            if tuple(z.shape) != tuple(mu_ref.shape):
                raise ExerciseError(f"LectureVAE.forward: z should have shape {tuple(mu_ref.shape)}, got {tuple(z.shape)}")
            decoded = ref.dec2(F.relu(ref.dec1(z)))  # what the decoder makes of the learner's z
            if tuple(x_hat.shape) != tuple(decoded.shape) or not torch.allclose(x_hat, decoded, atol=1e-4, rtol=1e-4):
                raise ExerciseError(
                    "LectureVAE.forward: x_hat is not the decoder applied to z. Decode the sampled z: "
                    "x_hat = dec2(relu(dec1(z))). (The slide writes `x_hat = self.dec2(x)`, decoding the wrong "
                    "tensor; decoding mu_z instead of z is also not the model.)"
                )
            eps = (z - mu_ref) / torch.exp(0.5 * lv_ref)  # should be N(0, 1) draws
            s = eps.std().item()
            eps_std = 1.0 if abs(s - 1.0) < 0.15 else round(s, 2)  # 1 up to sampling noise
        try:
            loss = model.neg_elbo(x, x_hat_in, z_in, mu_in, lv_in)
        except AttributeError as err:
            if "loss" in str(err):
                raise ExerciseError(
                    f"LectureVAE.neg_elbo: {err}. `nn.loss.mse` does not exist in PyTorch (the slide's pseudo-code). "
                    "With p(x|z) = N(x | x_hat, I) the reconstruction term is the Gaussian log-likelihood "
                    "log N(x | x_hat, I): use lvmlib.gaussian.log_normal_diag."
                ) from err
            raise
        return {
            "mu_z": mu_z[:B],
            "log_var": log_var[:B],
            "std of (z - mu_z) / exp(0.5 log_var) (1 for the right sigma)": eps_std,
            "neg_elbo": loss,
        }

    return summary


def check_lecture_vae(learner, *, strict: bool = False, seed: int = 0):
    """Check the fixed slide code: a class ``LectureVAE(D, M)`` with enc1, enc2, dec1, dec2,
    ``forward(x)`` -> (x_hat, z, mu_z, log_var) and ``neg_elbo(x, x_hat, z, mu_z, log_var)`` -> (B,).

    The class is built with fixed weights; its encoder outputs, the law of its z, its decoding
    of z and its loss on fixed inputs are compared with :class:`LectureVAE`.
    """
    return check_through(
        learner, LectureVAE, _lecture_summary, _lecture_cases(seed),
        name="LectureVAE", seed=seed, strict=strict, rtol=1e-4, atol=1e-4,
        arg_names=("x", "x_hat", "z", "mu_z", "log_var"),  # the inputs of neg_elbo (forward gets copies of x)
        known_mistakes={
            "exp(log_var) is the variance; the standard deviation is exp(0.5 * log_var) (the slide's encoder "
            "outputs a log-std, ours a log-VARIANCE).": _StdIsVar,
            "the slide's sign error: with RE a squared error (a LOSS, not a log-likelihood), -(RE - KL) "
            "rewards bad reconstructions. RE must be the log-likelihood log N(x | x_hat, I), then the loss "
            "is -(RE - KL).": _MseSign,
            "-(RE - KL) needs RE = log N(x | x_hat, I) = -1/2 ||x - x_hat||^2 - D/2 log(2 pi), a "
            "log-likelihood; with 1/2 ||x - x_hat||^2 (a loss) the sign of RE is flipped.": _HalfMseSign,
            "a MEAN squared error (F.mse_loss's default) averages over pixels: log N(x | x_hat, I) SUMS "
            "-1/2 (x_d - x_hat_d)^2 over the D pixels (and keeps the constant).": _MseMean,
            "the constant D/2 log(2 pi) of log N(x | x_hat, I) is missing. It does not change the gradients, "
            "but without it the number is not -ELBO (and cannot be compared with log p(x)).": _NoConstant,
            "log N(x | x_hat, I) has -1/2 ||x - x_hat||^2 (and the constant -D/2 log(2 pi)).": _NoHalf,
            "log N(x | x_hat, I) has -1/2 ||x - x_hat||^2, with the factor 1/2.": _NoHalfConst,
            "the constant of log N(x | x_hat, I) is -D/2 log(2 pi) once per image; adding -D/2 log(2 pi) for "
            "every pixel counts it D times.": _ConstPerElement,
            "log_normal_diag takes a LOG-variance: variance 1 is log_var = 0 (torch.zeros_like(x_hat)), "
            "not 1.": _LogVarOne,
            "the KL enters the loss with a plus sign: loss = -(RE - KL) = KL - RE.": _KlSign,
            "optimizers minimise: return the NEGATIVE ELBO, -(RE - KL).": _ElboNotNegated,
            "log q(z|x) = log N(z | mu_z, exp(log_var)): pass the log-VARIANCE as it is (it is not a log-std).":
                _KlLogStd,
            "the analytic KL is a fine choice in general, but this exercise keeps the slide's single-sample "
            "estimate log q(z|x) - log p(z) at the sampled z.": _KlAnalytic,
            "return one value per data point (B,), not the batch mean (the training wrapper averages).":
                _BatchMean,
        },
        hint="RE is the log-likelihood log N(x | x_hat, I) (a log-density, not a loss), KL the single-sample "
             "log q(z|x) - log p(z) at the sampled z; the loss is -(RE - KL), one value per data point.",
    )


# ----------------------------------------------------------------------------- categorical log p(x|z)
def _categorical_reference(x, logits):
    """log p(x|z) = sum_d log softmax(logits_d)[x_d] (through lvmlib's CategoricalDecoder)."""
    D, L = logits.shape[-2], logits.shape[-1]
    return CategoricalDecoder(D, 1, H=1, n_levels=L).log_prob(x, params=logits)


def _cat_cases(rng: np.random.Generator) -> Case:
    B, D, L = int(rng.integers(2, 6)), int(rng.integers(3, 8)), int(rng.integers(3, 18))
    while D == L:
        L += 1
    x = torch.as_tensor(rng.integers(0, L, size=(B, D)), dtype=torch.long)  # (B, D) levels
    logits = torch.as_tensor(2.0 * rng.normal(size=(B, D, L)), dtype=torch.float64)  # (B, D, L)
    return Case((x, logits))


def _gather(table, x):
    return torch.gather(table, -1, x.long().unsqueeze(-1)).squeeze(-1)  # (B, D)


def _cat_probs(x, logits):
    return _gather(torch.softmax(logits, -1), x).sum(-1)


def _cat_raw_logits(x, logits):
    return _gather(logits, x).sum(-1)


def _cat_wrong_axis(x, logits):
    return _gather(torch.log_softmax(logits, dim=-2), x).sum(-1)


def _cat_mean(x, logits):
    return _gather(torch.log_softmax(logits, -1), x).mean(-1)


def _cat_log_sigmoid(x, logits):
    return _gather(F.logsigmoid(logits), x).sum(-1)


def _cat_all_levels(x, logits):
    return torch.log_softmax(logits, -1).sum((-2, -1))


def check_log_px_categorical(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``log_px_categorical(x, logits)`` -> (B,) sum_d log softmax(logits[b, d])[x[b, d]].

    Inputs of the learner's function: x (B, D) integer levels 0..L-1, logits (B, D, L).
    """
    return check_through(
        learner, _categorical_reference, tensor_output("log_px_categorical"), _cat_cases,
        name="log_px_categorical", seed=seed, strict=strict,
        known_mistakes={
            "that sums probabilities; the log-likelihood sums LOG-probabilities: log_softmax, then pick x_d.":
                _cat_probs,
            "raw logits are not log-probabilities: normalise them over the L levels with log_softmax first.":
                _cat_raw_logits,
            "log_softmax runs over the wrong axis: the L levels of one pixel are the LAST axis (dim=-1).":
                _cat_wrong_axis,
            "the pixels are independent given z, so log p(x|z) is the SUM over the D pixels, not the mean.":
                _cat_mean,
            "log-sigmoid treats each level as a separate Bernoulli; a pixel takes exactly one of L levels: "
            "log_softmax over the levels.": _cat_log_sigmoid,
            "pick the log-probability of the observed level x_d only (torch.gather or indexing), not all levels.":
                _cat_all_levels,
        },
        hint="turn the logits into log-probabilities over the L levels (the last axis), pick each pixel's "
             "observed level, and sum over the D pixels.",
    )


# ----------------------------------------------------------------------------- active units
def _au_reference(mu_z, threshold=1e-2):
    return variational.active_units(mu_z, threshold)


def _au_case_list(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for threshold in (1e-2, 5e-2, 2e-2, 1e-2):
        N, M = int(rng.integers(500, 900)), int(rng.integers(4, 9))
        scales = np.where(rng.random(M) < 0.5, 10 ** rng.uniform(-2.5, -1.6, M), rng.uniform(0.3, 1.5, M))
        scales[:3] = 0.01, 1.0, 0.17  # a collapsed unit, an active one, one between the thresholds
        offsets = rng.normal(scale=1.0, size=M) + 0.5
        mu_z = offsets + scales * rng.normal(size=(N, M))  # (N, M)
        cases.append(Case((torch.as_tensor(mu_z, dtype=torch.float64),), {"threshold": threshold}))
    return cases


def _au_std(mu_z, threshold=1e-2):
    A = mu_z.std(0)
    return int((A > threshold).sum()), A


def _au_wrong_axis(mu_z, threshold=1e-2):
    A = mu_z.var(1, unbiased=False)
    return int((A > threshold).sum()), A


def _au_wrong_axis_unbiased(mu_z, threshold=1e-2):
    A = mu_z.var(1)  # over M latent dimensions the two normalisations differ by M / (M - 1)
    return int((A > threshold).sum()), A


def _au_uncentred(mu_z, threshold=1e-2):
    A = (mu_z**2).mean(0)
    return int((A > threshold).sum()), A


def _au_mean(mu_z, threshold=1e-2):
    A = mu_z.mean(0)
    return int((A > threshold).sum()), A


def _au_below(mu_z, threshold=1e-2):
    A = mu_z.var(0, unbiased=False)
    return int((A < threshold).sum()), A


def check_active_units(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``active_units(mu_z, threshold=1e-2)`` -> (count, A (M,)), A_m = Var_n(mu_z[n, m]).

    Either variance normalisation (1/N or 1/(N-1)) is accepted.
    """
    return check_through(
        learner, _au_reference, tensor_output("active_units", index=1), _au_case_list(seed),
        name="active_units", seed=seed, strict=strict, rtol=5e-3, atol=1e-9,
        known_mistakes={
            "A_m is the VARIANCE of the posterior means over the data, not their standard deviation.": _au_std,
            "the variance runs over the data points (axis 0, one value per latent dimension), not over "
            "the latent dimensions.": (_au_wrong_axis, _au_wrong_axis_unbiased),
            "the variance subtracts the mean: Var_n(mu) = mean_n((mu - mean_n mu)^2), not mean_n(mu^2).":
                _au_uncentred,
            "a unit is active when its posterior mean MOVES with x: use the variance over the data, not the mean.":
                _au_mean,
            "count the units ABOVE the threshold (active), not below it (collapsed).": _au_below,
        },
        hint="A_m is the variance over the data points (axis 0) of the posterior means; return the number of "
             "units whose A_m is above the threshold (an int) and A.",
    )


# ----------------------------------------------------------------------------- core exercise: one training step
HINTS = {
    "LectureVAE": (
        "Three methods, three fixes of the slide. reparameterize: the second half of the encoder's output is a "
        "log-VARIANCE here, not a log standard deviation. forward: follow the tensor through the decoder step by step. "
        "neg_elbo: one value per data point, the negative of (RE - KL).",
        "The scale of z is the standard deviation, the square root of exp(log_var). In the slide's decoder the second "
        "layer is applied to the wrong tensor: read which variable each line uses.",
        "RE is a Gaussian log-density of x with mean x_hat and unit variance (log-variance 0), summed over the pixels "
        "with its constant; the single-sample KL is the log-density of z under q(z|x) minus that under N(0, I), both "
        "at the z that forward returned. No .mean() over the batch: the loss is (B,).",
    ),
    "vae_step": (
        "Write the negative ELBO from its two terms: a reconstruction term log p(x|z) at ONE z drawn from "
        "q(z|x) with the given noise, and the KL from q(z|x) to the prior N(0, I), which for two Gaussians "
        "has a closed form. Then the usual three optimizer lines.",
        "model.encode(x) gives (mu_z, log_var); z uses the standard deviation exp(log_var / 2); "
        "model.log_px_given_z(x, z) gives one log-likelihood per image. The KL is a sum over the M latent "
        "dimensions, one value per image, and it is >= 0.",
        "The loss is ONE number: the mean over the batch of -(re - beta * kl) (a sum would scale the step "
        "with the batch size). Zero the gradients before backward(): they accumulate from the last step.",
    ),
}

_STEP_CONFIG = dict(D=6, M=2, H=8, likelihood="categorical", n_levels=5)


def _step_cases(seed: int) -> list[Case]:
    return [Case((seed * 10 + i, beta)) for i, beta in enumerate((0.5, 2.0))]


def _step_summary(fn: Callable) -> Callable:
    """Two steps of ``fn`` on a fresh small VAE and SGD: the terms of the first step (before any update, so
    that a wrong update does not hide right terms) and the parameters after the second."""
    from lvmlib.vae import VAE, VAEConfig

    def run(case_seed, beta):
        g = torch.Generator().manual_seed(int(case_seed))
        with seeded(int(case_seed)):
            model = VAE(VAEConfig(device="cpu", **_STEP_CONFIG))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        outs = []
        for _ in range(2):
            x = torch.randint(0, _STEP_CONFIG["n_levels"], (5, _STEP_CONFIG["D"]), generator=g).float()  # (B, D)
            eps = torch.randn(5, _STEP_CONFIG["M"], generator=g)  # (B, M)
            out = fn(model, optimizer, x, eps, beta)
            if not isinstance(out, dict) or not {"loss", "re", "kl"} <= set(out):
                raise ExerciseError(f"vae_step: return a dict with keys 'loss', 're', 'kl'; got {out!r:.200}")
            outs.append(out)
        params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        first = outs[0]
        return {"loss": first["loss"], "re": first["re"], "kl": first["kl"], "parameters after two steps": params}

    return run


def _step(model, optimizer, x, eps, beta=1.0, *, std="right", kl="right", reduce="mean", use_beta=True,
          zero=True, noise=True, order="right"):
    mu_z, log_var = model.encode(x)
    sd = torch.exp(0.5 * log_var) if std == "right" else torch.exp(log_var)
    z = mu_z + sd * eps if noise else mu_z
    re = model.log_px_given_z(x, z)
    terms = 0.5 * (mu_z**2 + torch.exp(log_var) - 1.0 - log_var)
    klv = {"right": terms.sum(-1), "sign": -terms.sum(-1), "mean_m": terms.mean(-1)}[kl]
    b = beta if use_beta else 1.0
    per = -(re - b * klv)
    loss = per.mean() if reduce == "mean" else per.sum()
    if zero:
        optimizer.zero_grad()
    if order == "step_first":
        optimizer.step()
        loss.backward()
    else:
        loss.backward()
        optimizer.step()
    return {"loss": loss.detach(), "re": re.detach(), "kl": klv.detach()}


STEP_PARTS = (
    Part("re (log p(x|z) at the reparameterised z)", lambda out, case: out["re"]),
    Part("kl (KL(q(z|x) || N(0, I)), one value per image)", lambda out, case: out["kl"]),
    Part("loss (the mean over the batch of -(re - beta * kl), from YOUR re and kl)",
         lambda out, case: torch.as_tensor(out["loss"]).reshape(())
         - (-(torch.as_tensor(out["re"]) - case.args[1] * torch.as_tensor(out["kl"]))).mean()),
    Part("the update (zero_grad, backward, step: the parameters after two steps)",
         lambda out, case: out["parameters after two steps"]),
)


def check_vae_step(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``vae_step(model, optimizer, x, eps, beta)`` -> {"loss", "re", "kl"}: two steps on a fresh small
    VAE (categorical likelihood) with SGD; terms and parameters compared with :func:`lvmlib.vae.vae_step`."""
    from lvmlib.vae import vae_step

    return check_through(
        learner, vae_step, _step_summary, _step_cases(seed), name="vae_step", seed=seed, strict=strict,
        rtol=1e-4, atol=1e-5, parts=STEP_PARTS, arg_names=("seed of the test model", "beta"),
        known_mistakes={
            "z was drawn with exp(log_var), the variance, as its scale; the scale is exp(log_var / 2).":
                lambda *a: _step(*a, std="var"),
            "the KL is >= 0 and enters the loss as +beta * kl: loss = -(re - beta * kl).":
                lambda *a: _step(*a, kl="sign"),
            "the loss SUMS over the batch; take the mean, so the step size does not grow with the batch.":
                lambda *a: _step(*a, reduce="sum"),
            "beta was left out: the KL is weighted by beta in the loss.": lambda *a: _step(*a, use_beta=False),
            "the gradients were not zeroed before backward(): they add up over the steps.":
                lambda *a: _step(*a, zero=False),
        },
        hint='checks.hint("vae_step") shows a hint, one more each time.',
    )

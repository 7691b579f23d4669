"""The checks of notebook 05 (lvmlib.checks.vae) accept right answers and catch wrong ones.

For every check: an independent right answer passes and is returned; an unfinished exercise
gets lvmlib's reference back, or ExerciseNotDone with strict=True; each typical wrong answer
(the lecture's slide-code errata among them) raises ExerciseError whose message names it.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lvmlib.checks import vae as vchecks

from check_helpers import named, not_done, stub


# ----------------------------------------------------------------------------- the slide code, fixed
class RightVAE(nn.Module):
    """Written independently of lvmlib: torch.distributions for every density."""

    def __init__(self, D, M, H=300):
        super().__init__()
        self.D, self.M = D, M
        self.enc1, self.enc2 = nn.Linear(D, H), nn.Linear(H, 2 * M)
        self.dec1, self.dec2 = nn.Linear(M, H), nn.Linear(H, D)

    def reparameterize(self, mu_z, log_var):
        return torch.distributions.Normal(mu_z, torch.exp(0.5 * log_var)).rsample()

    def forward(self, x):
        mu_z, log_var = self.enc2(F.relu(self.enc1(x))).view(-1, 2, self.M).unbind(1)
        z = self.reparameterize(mu_z, log_var)
        return self.dec2(F.relu(self.dec1(z))), z, mu_z, log_var

    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        Normal = torch.distributions.Normal
        RE = Normal(x_hat, 1.0).log_prob(x).sum(-1)
        KL = Normal(mu_z, torch.exp(0.5 * log_var)).log_prob(z).sum(-1) - Normal(0.0, 1.0).log_prob(z).sum(-1)
        return -(RE - KL)


class SlideBugDecodesX(RightVAE):  # erratum 4: x_hat = self.dec2(x)
    def forward(self, x):
        x = F.relu(self.enc1(x))
        x = self.enc2(x).view(-1, 2, self.M)
        mu, log_var = x[:, 0, :], x[:, 1, :]
        z = self.reparameterize(mu, log_var)
        x_hat = F.relu(self.dec1(z))
        x_hat = self.dec2(x)
        return x_hat, z, mu, log_var


class SlideBugNnLossMse(RightVAE):  # erratum 4: nn.loss.mse does not exist
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = nn.loss.mse(x, x_hat)
        return -(RE - 0.0)


class SlideBugSign(RightVAE):  # erratum 4: RE a squared error, then -(RE - KL)
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = F.mse_loss(x_hat, x, reduction="none").sum(-1)
        Normal = torch.distributions.Normal
        KL = Normal(mu_z, torch.exp(0.5 * log_var)).log_prob(z).sum(-1) - Normal(0.0, 1.0).log_prob(z).sum(-1)
        return -(RE - KL)


class SlideBugLogStd(RightVAE):  # erratum 4: the slide's std = exp(log_std) kept with a log-variance
    def reparameterize(self, mu_z, log_var):
        std = torch.exp(log_var)
        return mu_z + torch.randn_like(std) * std


class DecodesMean(RightVAE):
    def forward(self, x):
        x_hat, z, mu_z, log_var = super().forward(x)
        return self.dec2(F.relu(self.dec1(mu_z))), z, mu_z, log_var


class ThreeOutputs(RightVAE):  # the slide's forward returns (x_hat, mu, log_std) only
    def forward(self, x):
        x_hat, z, mu_z, log_var = super().forward(x)
        return x_hat, mu_z, log_var


class RenamedLayers(RightVAE):
    def __init__(self, D, M, H=300):
        super().__init__(D, M, H)
        self.encoder_hidden = self.enc1
        del self.enc1


class MseMean(RightVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        Normal = torch.distributions.Normal
        KL = Normal(mu_z, torch.exp(0.5 * log_var)).log_prob(z).sum(-1) - Normal(0.0, 1.0).log_prob(z).sum(-1)
        return F.mse_loss(x_hat, x, reduction="none").mean(-1) + KL


class KlPlus(RightVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        Normal = torch.distributions.Normal
        RE = Normal(x_hat, 1.0).log_prob(x).sum(-1)
        KL = Normal(mu_z, torch.exp(0.5 * log_var)).log_prob(z).sum(-1) - Normal(0.0, 1.0).log_prob(z).sum(-1)
        return -(RE + KL)


class NoConstant(RightVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        return super().neg_elbo(x, x_hat, z, mu_z, log_var) - 0.5 * x.shape[-1] * np.log(2 * np.pi)


class AnalyticKl(RightVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = torch.distributions.Normal(x_hat, 1.0).log_prob(x).sum(-1)
        return -(RE - 0.5 * (mu_z**2 + log_var.exp() - log_var - 1).sum(-1))


class ConstPerPixel(RightVAE):  # -D/2 log 2 pi added for every pixel
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        D = x.shape[-1]
        return super().neg_elbo(x, x_hat, z, mu_z, log_var) + (D - 1) * 0.5 * D * np.log(2 * np.pi)


class VarianceAsLogVar(RightVAE):  # log N(x | x_hat, I) with "1" passed where a log-variance belongs
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        Normal = torch.distributions.Normal
        RE = Normal(x_hat, np.exp(0.5)).log_prob(x).sum(-1)
        KL = Normal(mu_z, torch.exp(0.5 * log_var)).log_prob(z).sum(-1) - Normal(0.0, 1.0).log_prob(z).sum(-1)
        return -(RE - KL)


class StubVAE(RightVAE):
    def reparameterize(self, mu_z, log_var):
        raise NotImplementedError()

    def forward(self, x):
        raise NotImplementedError()

    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        raise NotImplementedError()


def test_lecture_vae_right_answer_passes():
    assert vchecks.check_lecture_vae(RightVAE) is RightVAE
    assert vchecks.check_lecture_vae(RightVAE, strict=True, seed=1) is None


def test_lecture_vae_not_done_gives_the_fixed_reference():
    fallback = not_done(vchecks.check_lecture_vae, StubVAE)
    model = fallback(6, 2)
    assert isinstance(model, vchecks.LectureVAE)
    x_hat, z, mu_z, log_var = model(torch.rand(4, 6))
    assert x_hat.shape == (4, 6) and z.shape == mu_z.shape == log_var.shape == (4, 2)


# the slide's code and the learner's structure, refused with a message of their own (no listed mistake)
LECTURE_VAE_UNLISTED = {
    "the slide's decoder line, self.dec2(x)": (SlideBugDecodesX, "self.dec2(x)"),
    "the slide's nn.loss.mse": (SlideBugNnLossMse, "nn.loss.mse"),
    "x_hat decoded from mu_z": (DecodesMean, "x_hat is not the decoder applied to z"),
    "forward returns three tensors (the slide's)": (ThreeOutputs, "four tensors"),
    "the layers renamed": (RenamedLayers, "enc1"),
}


@pytest.mark.parametrize("wrong, fragment", list(LECTURE_VAE_UNLISTED.values()), ids=list(LECTURE_VAE_UNLISTED))
def test_lecture_vae_says_what_is_wrong_with_the_slide_code(wrong, fragment):
    named(vchecks.check_lecture_vae, wrong, fragment)


LECTURE_VAE_WRONG = {
    "the slide's sign error": SlideBugSign,
    "log-VARIANCE": SlideBugLogStd,
    "MEAN squared error": MseMean,
    "plus sign": KlPlus,
    "constant D/2 log(2 pi)": NoConstant,
    "single-sample": AnalyticKl,
    "once per image": ConstPerPixel,
    "takes a LOG-variance": VarianceAsLogVar,
}


def test_fixed_reference_matches_torch_distributions():
    # the reference's loss, term by term, against torch.distributions' Normal log-densities
    torch.manual_seed(0)
    model = vchecks.LectureVAE(5, 2)
    x = torch.rand(3, 5)
    x_hat, z, mu_z, log_var = model(x)
    got = model.neg_elbo(x, x_hat, z, mu_z, log_var)
    want = RightVAE.neg_elbo(None, x, x_hat, z, mu_z, log_var)
    torch.testing.assert_close(got, want)


# ----------------------------------------------------------------------------- categorical log p(x|z)
def cat_right(x, logits):
    return torch.distributions.Categorical(logits=logits).log_prob(x).sum(-1)


def test_categorical_right_answer_passes():
    assert vchecks.check_log_px_categorical(cat_right) is cat_right
    assert vchecks.check_log_px_categorical(cat_right, strict=True, seed=1) is None


def test_categorical_not_done():
    not_done(vchecks.check_log_px_categorical, stub)


def _gather(table, x):
    return torch.gather(table, -1, x.unsqueeze(-1)).squeeze(-1)


CATEGORICAL_WRONG = {
    "sums probabilities": lambda x, lg: _gather(torch.softmax(lg, -1), x).sum(-1),
    "raw logits": lambda x, lg: _gather(lg, x).sum(-1),
    "wrong axis": lambda x, lg: _gather(torch.log_softmax(lg, -2), x).sum(-1),
    "SUM over the D pixels": lambda x, lg: _gather(torch.log_softmax(lg, -1), x).mean(-1),
    "log-sigmoid": lambda x, lg: _gather(F.logsigmoid(lg), x).sum(-1),
}


# ----------------------------------------------------------------------------- active units
def au_right(mu_z, threshold=1e-2):
    A = np.var(mu_z.numpy(), axis=0, ddof=1)  # the unbiased variance is accepted too
    return int((A > threshold).sum()), torch.as_tensor(A)


def test_active_units_right_answer_passes():
    assert vchecks.check_active_units(au_right) is au_right
    assert vchecks.check_active_units(au_right, strict=True, seed=1) is None


def test_active_units_not_done():
    not_done(vchecks.check_active_units, stub)


ACTIVE_UNITS_WRONG = {
    "not their standard deviation": lambda m, threshold=1e-2: (int((m.std(0) > threshold).sum()), m.std(0)),
    # the wrong axis is named with either normalisation (over M dimensions they differ by M / (M - 1))
    "over the data points": [
        lambda m, threshold=1e-2: (int((m.var(1, unbiased=False) > threshold).sum()), m.var(1, unbiased=False)),
        lambda m, threshold=1e-2: (int((m.var(1) > threshold).sum()), m.var(1)),
    ],
    "subtracts the mean": lambda m, threshold=1e-2: (int(((m**2).mean(0) > threshold).sum()), (m**2).mean(0)),
    "ABOVE the threshold": lambda m, threshold=1e-2: (int((m.var(0) < threshold).sum()), m.var(0)),
}
# the listed mistakes, written as a learner would: {exercise: {the mistake the check names: wrong answer(s)}}
WRONG_ANSWERS = {"LectureVAE": LECTURE_VAE_WRONG, "log_px_categorical": CATEGORICAL_WRONG,
                 "active_units": ACTIVE_UNITS_WRONG}
UNLISTED = {"LectureVAE": LECTURE_VAE_UNLISTED}


def test_numpy_results_are_refused_with_a_clear_message():
    named(vchecks.check_log_px_categorical, lambda x, lg: cat_right(x, lg).numpy(), "torch tensor")
    named(vchecks.check_active_units, lambda m, threshold=1e-2: (au_right(m, threshold)[0],
                                                                  au_right(m, threshold)[1].numpy()), "torch tensor")

"""The checks of notebook 07 (lvmlib.checks.priors) accept right answers and catch wrong ones.

Right answers are written independently of lvmlib (torch.distributions where it has the density);
each check is fed at least three typical wrong answers and must name them.
"""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from lvmlib.checks import ExerciseError
from lvmlib.checks import priors as pchecks

from check_helpers import named, not_done


def _right_and_not_done(check, right):
    assert check(right) is right
    assert check(right, strict=True, seed=1) is None
    return not_done(check)


# ----------------------------------------------------------------------------- mixture of Gaussians
def mog_right(z, means, log_vars, logits):
    comp = Independent(Normal(means, torch.exp(0.5 * log_vars)), 1)
    return MixtureSameFamily(Categorical(logits=logits), comp).log_prob(z)


def mog_per_dimension(z, means, log_vars, logits):
    lp = Normal(means, torch.exp(0.5 * log_vars)).log_prob(z[:, None, :])  # (B, K, M)
    return torch.logsumexp(lp + torch.log_softmax(logits, 0)[:, None], dim=1).sum(-1)


def mog_weights_not_logged(z, means, log_vars, logits):
    lp = Normal(means, torch.exp(0.5 * log_vars)).log_prob(z[:, None, :]).sum(-1)
    return torch.logsumexp(lp + torch.softmax(logits, 0), dim=1)


def mog_raw_logits(z, means, log_vars, logits):
    lp = Normal(means, torch.exp(0.5 * log_vars)).log_prob(z[:, None, :]).sum(-1)
    return torch.logsumexp(lp + logits, dim=1)


def mog_jensen(z, means, log_vars, logits):
    lp = Normal(means, torch.exp(0.5 * log_vars)).log_prob(z[:, None, :]).sum(-1)
    return (torch.softmax(logits, 0) * lp).sum(1)


def mog_numpy(z, means, log_vars, logits):
    return mog_right(z, means, log_vars, logits).numpy()


def test_mixture_log_prob_check():
    fallback = _right_and_not_done(pchecks.check_mixture_log_prob, mog_right)
    z, m, lv, lg = torch.randn(4, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64), \
        torch.zeros(3, 2, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(fallback(z, m, lv, lg), mog_right(z, m, lv, lg))
    named(pchecks.check_mixture_log_prob, mog_numpy, "torch tensor")


# ----------------------------------------------------------------------------- VampPrior
def vamp_right(z, u, encoder):
    mu, log_var = encoder(u)
    K = u.shape[0]
    comp = Independent(Normal(mu, torch.exp(0.5 * log_var)), 1)
    return MixtureSameFamily(Categorical(probs=torch.full((K,), 1.0 / K, dtype=mu.dtype, device=mu.device)), comp).log_prob(z)


def vamp_no_log_k(z, u, encoder):
    mu, log_var = encoder(u)
    return torch.logsumexp(Normal(mu, torch.exp(0.5 * log_var)).log_prob(z[:, None]).sum(-1), dim=1)


def vamp_per_dimension(z, u, encoder):
    mu, log_var = encoder(u)
    lp = Normal(mu, torch.exp(0.5 * log_var)).log_prob(z[:, None])  # (B, K, M)
    return (torch.logsumexp(lp, dim=1) - math.log(u.shape[0])).sum(-1)


def vamp_mean_of_logs(z, u, encoder):
    mu, log_var = encoder(u)
    return Normal(mu, torch.exp(0.5 * log_var)).log_prob(z[:, None]).sum(-1).mean(1)


def vamp_encodes_z(z, u, encoder):  # not a listed mistake: must still fail
    return vamp_right(z, u, encoder) + 0.3


def test_vamp_log_prob_check():
    _right_and_not_done(pchecks.check_vamp_log_prob, vamp_right)


# ----------------------------------------------------------------------------- warm-up
def warmup_right(epoch, warmup_epochs):
    if warmup_epochs == 0:
        return 1.0
    return epoch / warmup_epochs if epoch < warmup_epochs else 1.0


def test_kl_warmup_check():
    _right_and_not_done(pchecks.check_kl_warmup, warmup_right)
    with pytest.raises(ExerciseError, match="ZeroDivisionError"):
        pchecks.check_kl_warmup(lambda e, w: min(1.0, e / w))  # forgets warmup_epochs = 0


def test_the_trainer_uses_the_checked_schedule():
    # the weight lvmlib.training sets at the start of each epoch follows the same schedule
    import numpy as np

    from lvmlib.training import TrainConfig, train
    from lvmlib.vae import VAE, VAEConfig

    class Recorder(VAE):
        def forward(self, x, generator=None, *, check=True):
            self.seen.append(self.kl_weight)
            return super().forward(x, generator, check=check)

    torch.manual_seed(0)
    model = Recorder(VAEConfig(D=4, M=2, H=4, device="cpu"))
    model.seen = []
    x = (np.random.default_rng(0).random((8, 4)) > 0.5).astype(np.float32)
    train(model, x, None, TrainConfig(max_epochs=6, warmup_epochs=4, batch_size=8, progress=False, device="cpu",
                                      patience=None))
    assert model.seen == [warmup_right(e, 4) for e in range(1, 7)]
    assert model.seen[3] == 1.0  # beta reaches 1 at the configured epoch


# ----------------------------------------------------------------------------- hierarchical ELBO
def helbo_right(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
    kl1, kl2 = log_q_z1 - log_p_z1_z2, log_q_z2 - log_p_z2
    return {"elbo": log_px_z1 - (kl1 + kl2), "re": log_px_z1, "kl_z1": kl1, "kl_z2": kl2}


def helbo_single_level(a, b, c, d, e):
    out = helbo_right(a, b, c, d, e)
    out["elbo"] = a - out["kl_z2"]
    return out


def helbo_kl1_sign(a, b, c, d, e):
    out = helbo_right(a, b, c, d, e)
    out["kl_z1"] = c - b
    out["elbo"] = a - out["kl_z1"] - out["kl_z2"]
    return out


def helbo_swapped(a, b, c, d, e):
    return {"re": a, "kl_z1": b - e, "kl_z2": d - c, "elbo": a - (b - e) - (d - c)}


def helbo_plus(a, b, c, d, e):
    out = helbo_right(a, b, c, d, e)
    out["elbo"] = a + out["kl_z1"] + out["kl_z2"]
    return out


def test_hierarchical_elbo_check():
    _right_and_not_done(pchecks.check_hierarchical_elbo, helbo_right)
    with pytest.raises(ExerciseError, match="dict with keys"):
        pchecks.check_hierarchical_elbo(lambda *a: a[0])


# ----------------------------------------------------------------------------- planted wrong answers
def mog_naive(z, means, log_vars, logits):  # log of a sum of exp: right on benign inputs, -inf far away
    comp = Independent(Normal(means, torch.exp(0.5 * log_vars)), 1)
    return torch.log((torch.softmax(logits, 0) * comp.log_prob(z[:, None]).exp()).sum(-1))


def test_mixture_log_prob_without_logsumexp_is_named():
    case = pchecks._mog_underflow_case()
    assert torch.isfinite(mog_right(*case.args)).all()  # the right answer is finite there...
    assert torch.isneginf(mog_naive(*case.args)).all()  # ...and the naive one underflows
    named(pchecks.check_mixture_log_prob, mog_naive, "log of a sum of exp")


def vamp_encoder_without_grad(z, u, encoder):
    with torch.no_grad():
        mu, log_var = encoder(u)
    return vamp_right(z, u, lambda _: (mu, log_var))


def vamp_detached(z, u, encoder):
    return vamp_right(z, u.detach(), encoder)


@pytest.mark.parametrize("wrong", [vamp_encoder_without_grad, vamp_detached])
def test_vamp_log_prob_without_a_gradient_to_the_pseudo_inputs_is_named(wrong):
    named(pchecks.check_vamp_log_prob, wrong, "no gradient reaches the pseudo-inputs u")


def test_vamp_messages_describe_the_encoder_in_one_line():
    with pytest.raises(ExerciseError) as info:
        pchecks.check_vamp_log_prob(vamp_no_log_k)
    inputs = [line for line in str(info.value).splitlines() if line.strip().startswith("inputs:")]
    assert len(inputs) == 1 and "encoder(u of" in inputs[0], str(info.value)
    assert "Sequential" not in str(info.value) and "Linear" not in str(info.value)


def test_hierarchical_check_leaves_the_function_alone_and_names_its_arguments():
    import inspect

    def helbo_in_place(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
        log_q_z1 -= log_p_z1_z2
        return {"re": log_px_z1, "kl_z1": log_q_z1, "kl_z2": log_q_z2 - log_p_z2,
                "elbo": log_px_z1 - log_q_z1 - (log_q_z2 - log_p_z2)}

    before = inspect.signature(helbo_right)
    assert pchecks.check_hierarchical_elbo(helbo_right) is helbo_right
    assert not hasattr(helbo_right, "__wrapped__")
    assert inspect.signature(helbo_right) == before
    with pytest.raises(ExerciseError) as info:
        pchecks.check_hierarchical_elbo(helbo_in_place)
    assert "`log_q_z1`" in str(info.value) and "argument 1" not in str(info.value), str(info.value)
    assert not hasattr(helbo_in_place, "__wrapped__")
    assert list(inspect.signature(helbo_in_place).parameters)[1] == "log_q_z1"


# ----------------------------------------------------------------------------- the tables of the catalogue
def mog_naive_float32(z, means, log_vars, logits):  # the log of a sum of exp, in float32: underflows sooner
    comp = Independent(Normal(means.float(), torch.exp(0.5 * log_vars.float())), 1)
    return torch.log((torch.softmax(logits.float(), 0) * comp.log_prob(z.float()[:, None]).exp()).sum(-1)).double()


def mog_cpu_table(z, means, log_vars, logits):  # right on the CPU: the table is made there whatever z's device
    table = torch.empty(z.shape[0], means.shape[0], dtype=z.dtype)  # no device=
    for k in range(means.shape[0]):
        table[:, k] = Normal(means[k], torch.exp(0.5 * log_vars[k])).log_prob(z).sum(-1)
    return torch.logsumexp(table + torch.log_softmax(logits, 0), dim=1)


def mog_no_constant(z, means, log_vars, logits):
    quad = ((z[:, None] - means) ** 2 / log_vars.exp() + log_vars).sum(-1)  # (B, K) without M log(2 pi)
    return torch.logsumexp(-0.5 * quad + torch.log_softmax(logits, 0), dim=1)


def mog_mean_over_dims(z, means, log_vars, logits):
    lp = Normal(means, torch.exp(0.5 * log_vars)).log_prob(z[:, None, :]).mean(-1)
    return torch.logsumexp(lp + torch.log_softmax(logits, 0), dim=1)


def mog_over_batch(z, means, log_vars, logits):
    lp = Normal(means, torch.exp(0.5 * log_vars)).log_prob(z[:, None, :]).sum(-1)
    return torch.logsumexp(lp + torch.log_softmax(logits, 0), dim=0)


def mog_z_unsqueezed_in_place(z, means, log_vars, logits):
    z.unsqueeze_(-2)  # (B, 1, M): the caller's z changes shape
    lp = Normal(means, torch.exp(0.5 * log_vars)).log_prob(z).sum(-1)
    return torch.logsumexp(lp + torch.log_softmax(logits, 0), dim=1)


def mog_divides_by_std(z, means, log_vars, logits):  # (z - m)^2 / sigma instead of / sigma^2
    quad = ((z[:, None] - means) ** 2 / torch.exp(0.5 * log_vars) + log_vars + math.log(2 * math.pi)).sum(-1)
    return torch.logsumexp(-0.5 * quad + torch.log_softmax(logits, 0), dim=1)


def vamp_cpu_weights(z, u, encoder):  # right on the CPU: the weights live there whatever u's device
    mu, log_var = encoder(u)
    w = torch.full((u.shape[0],), 1.0 / u.shape[0], dtype=mu.dtype)  # no device=
    lp = Normal(mu, torch.exp(0.5 * log_var)).log_prob(z[:, None]).sum(-1)
    return torch.logsumexp(lp + torch.log(w), dim=1)


def vamp_log_std(z, u, encoder):  # log_var read as a log standard deviation
    mu, log_var = encoder(u)
    lp = Normal(mu, torch.exp(log_var)).log_prob(z[:, None]).sum(-1)
    return torch.logsumexp(lp, dim=1) - math.log(u.shape[0])


def helbo_in_place(log_px_z1, log_q_z1, log_p_z1_z2, log_q_z2, log_p_z2):
    log_q_z1 -= log_p_z1_z2  # the caller's log q(z1|x) becomes the KL
    return {"re": log_px_z1, "kl_z1": log_q_z1, "kl_z2": log_q_z2 - log_p_z2,
            "elbo": log_px_z1 - log_q_z1 - (log_q_z2 - log_p_z2)}


def helbo_kl2_prior_swapped(a, b, c, d, e):  # only the upper level pairs with the wrong prior
    return {"re": a, "kl_z1": b - c, "kl_z2": d - c, "elbo": a - (b - c) - (d - c)}


def helbo_elbo_batch_mean(a, b, c, d, e):
    out = helbo_right(a, b, c, d, e)
    return {**out, "elbo": out["elbo"].mean()}


def helbo_kls_as_log_ratios_added(a, b, c, d, e):  # KLs written log p - log q, consistently added
    kl1, kl2 = c - b, e - d
    return {"re": a, "kl_z1": kl1, "kl_z2": kl2, "elbo": a + kl1 + kl2}


WRONG_ANSWERS = {
    "mixture_log_prob": {"PER DIMENSION": mog_per_dimension, "log w_k": mog_weights_not_logged,
                         "normalise": mog_raw_logits, "Jensen": mog_jensen,
                         "log of a sum of exp": [mog_naive, mog_naive_float32]},
    "vamp_log_prob": {"log K is missing": vamp_no_log_k, "PER DIMENSION": vamp_per_dimension,
                      "Jensen": vamp_mean_of_logs},
    "kl_warmup": {
        "one epoch late": [lambda e, w: 1.0 if w == 0 else min(1.0, (e - 1) / w)],  # 0 at epoch 1, like e // W
        "stop at 1": lambda e, w: 1.0 if w == 0 else e / w,
        "warmup_epochs + 1": lambda e, w: min(1.0, e / (w + 1)),
        "that is no warm-up": lambda e, w: 1.0,  # agrees with max(1, e / W) until e > W
        "integer division": lambda e, w: 1.0 if w == 0 else min(1.0, e // w),
        "starts the warm-up at weight 0": lambda e, w: 1.0 if w <= 1 else min(1.0, (e - 1) / (w - 1)),
        "the cap is a MIN": lambda e, w: 1.0 if w == 0 else max(1.0, e / w),
    },
    "hierarchical_elbo": {"misses the lower level": helbo_single_level, "not the other way": helbo_kl1_sign,
                          "its own posterior": helbo_swapped, "SUBTRACTED": helbo_plus},
}
UNLISTED = {
    "mixture_log_prob": {
        "a table of component log-densities made without device=": mog_cpu_table,
        "the Gaussian's constant -M/2 log(2 pi) forgotten": mog_no_constant,
        "the mean over the dimensions instead of their sum": mog_mean_over_dims,
        "the logsumexp over the batch axis instead of the components": mog_over_batch,
        "changes z in place (unsqueeze_)": mog_z_unsqueezed_in_place,
        "the squared distance divided by the standard deviation": mog_divides_by_std,
    },
    "vamp_log_prob": {
        "the encoder run under torch.no_grad()": vamp_encoder_without_grad,
        "the pseudo-inputs detached": vamp_detached,
        "the mixture weights made without device=": vamp_cpu_weights,
        "log_var read as a log standard deviation": vamp_log_std,
        "a constant added": vamp_encodes_z,
    },
    "kl_warmup": {
        "divides by warmup_epochs = 0 (ZeroDivisionError)": lambda e, w: min(1.0, e / w),
        "no KL at all when there is no warm-up": lambda e, w: 0.0 if w == 0 else min(1.0, e / w),
        "one epoch early (epoch + 1)": lambda e, w: 1.0 if w == 0 else min(1.0, (e + 1) / w),
        "a sigmoid ramp centred on warmup_epochs / 2": lambda e, w: 1.0 if w == 0 else 1 / (1 + math.exp(w / 2 - e)),
        "warmup_epochs / epoch (the fraction upside down)": lambda e, w: 1.0 if w == 0 else min(1.0, w / e),
        "reaches 1 one epoch early (divides by warmup_epochs - 1)": lambda e, w: 1.0 if w == 0 else min(1.0, e / (w - 1)),
        "a quadratic ramp": lambda e, w: 1.0 if w == 0 else min(1.0, (e / w) ** 2),
    },
    "hierarchical_elbo": {
        "changes log_q_z1 in place": helbo_in_place,
        "kl_z2 against p(z1|z2) (one prior swapped)": helbo_kl2_prior_swapped,
        "the ELBO as a batch mean, the terms per point": helbo_elbo_batch_mean,
        "the KLs as log p - log q, added": helbo_kls_as_log_ratios_added,
    },
}

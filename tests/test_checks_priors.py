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
    named(pchecks.check_mixture_log_prob, mog_per_dimension, "PER DIMENSION")
    named(pchecks.check_mixture_log_prob, mog_weights_not_logged, "log w_k")
    named(pchecks.check_mixture_log_prob, mog_raw_logits, "normalise")
    named(pchecks.check_mixture_log_prob, mog_jensen, "Jensen")
    named(pchecks.check_mixture_log_prob, mog_numpy, "torch tensor")


# ----------------------------------------------------------------------------- VampPrior
def vamp_right(z, u, encoder):
    mu, log_var = encoder(u)
    K = u.shape[0]
    comp = Independent(Normal(mu, torch.exp(0.5 * log_var)), 1)
    return MixtureSameFamily(Categorical(probs=torch.full((K,), 1.0 / K, dtype=mu.dtype)), comp).log_prob(z)


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
    named(pchecks.check_vamp_log_prob, vamp_no_log_k, "log K is missing")
    named(pchecks.check_vamp_log_prob, vamp_per_dimension, "PER DIMENSION")
    named(pchecks.check_vamp_log_prob, vamp_mean_of_logs, "Jensen")
    with pytest.raises(ExerciseError, match="differs from the reference"):
        pchecks.check_vamp_log_prob(vamp_encodes_z)


# ----------------------------------------------------------------------------- warm-up
def warmup_right(epoch, warmup_epochs):
    if warmup_epochs == 0:
        return 1.0
    return epoch / warmup_epochs if epoch < warmup_epochs else 1.0


def test_kl_warmup_check():
    _right_and_not_done(pchecks.check_kl_warmup, warmup_right)
    named(pchecks.check_kl_warmup, lambda e, w: 1.0 if w == 0 else min(1.0, (e - 1) / w), "one epoch late")
    named(pchecks.check_kl_warmup, lambda e, w: 1.0 if w == 0 else e / w, "stop at 1")
    named(pchecks.check_kl_warmup, lambda e, w: min(1.0, e / (w + 1)), "warmup_epochs + 1")
    named(pchecks.check_kl_warmup, lambda e, w: 1.0, "no warm-up")
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
    named(pchecks.check_hierarchical_elbo, helbo_single_level, "misses the lower level")
    named(pchecks.check_hierarchical_elbo, helbo_kl1_sign, "not the other way")
    named(pchecks.check_hierarchical_elbo, helbo_swapped, "its own posterior")
    named(pchecks.check_hierarchical_elbo, helbo_plus, "SUBTRACTED")
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


@pytest.mark.parametrize("wrong, fragment", [
    (lambda e, w: 1.0 if w == 0 else min(1.0, e // w), "integer division"),
    (lambda e, w: 1.0 if w <= 1 else min(1.0, (e - 1) / (w - 1)), "starts the warm-up at weight 0"),
    (lambda e, w: 1.0 if w == 0 else max(1.0, e / w), "the cap is a MIN"),
    (lambda e, w: 1.0, "that is no warm-up"),  # agrees with max(1, e / W) until e > W
    (lambda e, w: 1.0 if w == 0 else min(1.0, (e - 1) / w), "one epoch late"),  # 0 at epoch 1, like e // W
])
def test_kl_warmup_names_each_mistake_by_the_case_that_tells_it_apart(wrong, fragment):
    named(pchecks.check_kl_warmup, wrong, fragment)


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

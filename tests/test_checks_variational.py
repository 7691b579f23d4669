"""The checks of notebook 04 (lvmlib.checks.variational) accept right answers and catch wrong ones.

For every check: an independent right answer (torch.distributions, SciPy, NumPy) passes and is
returned; an unfinished exercise gets lvmlib's reference back, or ExerciseNotDone with
strict=True; each typical wrong answer raises ExerciseError whose message names the mistake.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from lvmlib.checks import ExerciseError, ExerciseNotDone
from lvmlib.checks import variational as vchecks


def stub(*args, **kwargs):
    raise NotImplementedError()


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _assert_not_done(check):
    fallback = check(stub)
    assert fallback is not stub and getattr(fallback, "_lvmlib_substitute_for", None)
    with pytest.raises(ExerciseNotDone):
        check(stub, strict=True)
    with pytest.raises(ExerciseNotDone):  # the substitute handed back is still "not done"
        check(fallback, strict=True)


def _assert_named(check, wrong, fragment):
    with pytest.raises(ExerciseError) as info:
        check(wrong)
    assert not isinstance(info.value, ExerciseNotDone)
    assert fragment in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- reparameterize
def reparam_right(mu_z, log_var):
    # torch.distributions' rsample is the reparameterized draw, independently written
    return torch.distributions.Normal(mu_z, torch.exp(0.5 * log_var)).rsample()


def test_reparameterize_right_answers_pass():
    assert vchecks.check_reparameterize(reparam_right) is reparam_right
    # a different way of drawing eps is fine: the check looks at the law of z and its gradients
    def other_noise(mu_z, log_var):
        torch.randn(7)  # the stream is shifted, so z differs from the reference's draw
        return mu_z + torch.sqrt(torch.exp(log_var)) * -torch.randn_like(mu_z)
    assert vchecks.check_reparameterize(other_noise, seed=3) is other_noise


def test_reparameterize_not_done():
    _assert_not_done(vchecks.check_reparameterize)


REPARAM_WRONG = {
    "exp(log_var) is the VARIANCE": lambda m, lv: m + torch.exp(lv) * torch.randn_like(m),  # also the slide's log-std
    "log_var is a log-variance, not a standard deviation": lambda m, lv: m + lv * torch.randn_like(m),
    "centred on mu_z": lambda m, lv: torch.exp(0.5 * lv) * torch.randn_like(m),
    "noise eps": lambda m, lv: m + torch.exp(0.5 * lv),
    "torch.normal(mu_z, sigma) draws the right z": lambda m, lv: torch.normal(m, torch.exp(0.5 * lv)),
    # a detached mu_z was once blamed on torch.normal: each way of losing a gradient is told apart
    "mu_z was cut out of the graph": lambda m, lv: m.detach() + torch.exp(0.5 * lv) * torch.randn_like(m),
    "sigma was cut out of the graph": [
        lambda m, lv: m + torch.exp(0.5 * lv).detach() * torch.randn_like(m),
        lambda m, lv: m + torch.exp(0.5 * lv.detach()) * torch.randn_like(m),
    ],
}


def test_reparameterize_detached_and_bad_shape():
    _assert_named(vchecks.check_reparameterize,
                  lambda m, lv: (m + torch.exp(0.5 * lv) * torch.randn_like(m)).detach(), "no gradient")
    _assert_named(vchecks.check_reparameterize,
                  lambda m, lv: (m + torch.exp(0.5 * lv) * torch.randn_like(m)).mean(0), "shape")


# ----------------------------------------------------------------------------- KL(q || N(0, I))
def kl_right(mu_z, log_var):
    q = torch.distributions.Normal(mu_z, torch.exp(0.5 * log_var))
    p = torch.distributions.Normal(torch.zeros_like(mu_z), torch.ones_like(mu_z))
    return torch.distributions.kl_divergence(q, p).sum(-1)


def test_kl_right_answer_passes():
    assert vchecks.check_kl_standard_normal(kl_right) is kl_right
    assert vchecks.check_kl_standard_normal(kl_right, strict=True, seed=1) is None


def test_kl_not_done():
    _assert_not_done(vchecks.check_kl_standard_normal)


KL_WRONG = {
    "factor 1/2": lambda m, lv: (m**2 + lv.exp() - lv - 1).sum(-1),
    "sign is flipped": lambda m, lv: 0.5 * (1 + lv - m**2 - lv.exp()).sum(-1),
    "standard deviation": lambda m, lv: 0.5 * (m**2 + torch.exp(0.5 * lv) - lv - 1).sum(-1),
    "log-VARIANCE": lambda m, lv: 0.5 * (m**2 + torch.exp(2 * lv) - 2 * lv - 1).sum(-1),
    "-1 per dimension": lambda m, lv: 0.5 * (m**2 + lv.exp() - lv).sum(-1),
    "SUM over m": lambda m, lv: 0.5 * (m**2 + lv.exp() - lv - 1).mean(-1),
    "one value per data point": lambda m, lv: 0.5 * (m**2 + lv.exp() - lv - 1).sum(),
}


# ----------------------------------------------------------------------------- IWAE bound
def iwae_right(log_w):
    lw = _np(log_w)
    return torch.as_tensor(logsumexp(lw, axis=0) - math.log(lw.shape[0]))


def test_iwae_right_answer_passes():
    assert vchecks.check_iwae_bound(iwae_right) is iwae_right
    assert vchecks.check_iwae_bound(iwae_right, strict=True, seed=1) is None


def test_iwae_not_done():
    _assert_not_done(vchecks.check_iwae_bound)


IWAE_WRONG = {
    "needs its 1/K": lambda lw: torch.logsumexp(lw, 0),
    "is the ELBO": lambda lw: lw.mean(0),
    "underflows": [lambda lw: torch.log(torch.exp(lw).mean(0)),
                   lambda lw: torch.log(torch.exp(lw).sum(0)) - math.log(lw.shape[0])],
    "FIRST axis": lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]),
    "largest weight": lambda lw: lw.max(0).values,
    "MINUS log K": lambda lw: torch.logsumexp(lw, 0) + math.log(lw.shape[0]),
}


# the listed mistakes, written as a learner would: {exercise: {the mistake the check names: wrong answer(s)}}
WRONG_ANSWERS = {"reparameterize": REPARAM_WRONG, "kl_standard_normal": KL_WRONG, "iwae_bound": IWAE_WRONG}


def test_iwae_cases_really_underflow():
    # the check's hard cases are ones where exp(log_w) is 0 in float64: a naive answer must fail there
    log_ws = [c.args[0] for c in vchecks._iwae_case_list(0)]
    assert any(torch.exp(lw).max() == 0 for lw in log_ws)
    assert any(torch.exp(lw).min() > 0 for lw in log_ws)


def test_non_callable_is_a_type_error():
    with pytest.raises(TypeError):
        vchecks.check_reparameterize(None)
    with pytest.raises(TypeError):
        vchecks.check_kl_standard_normal(3.0)


def test_numpy_results_are_refused_with_a_clear_message():
    # the notebook computes on with the result in PyTorch: a NumPy array is flagged at the check
    _assert_named(vchecks.check_kl_standard_normal, lambda m, lv: kl_right(m, lv).numpy(), "torch tensor")
    _assert_named(vchecks.check_iwae_bound, lambda lw: iwae_right(lw).numpy(), "torch tensor")

"""Tests of lvmlib.priors against torch.distributions and Monte Carlo."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from lvmlib.priors import Prior, StandardNormalPrior, make_prior


def test_log_prob_matches_torch_normal():
    prior = StandardNormalPrior(5)
    z = 2.0 * torch.randn(7, 3, 5, generator=torch.Generator().manual_seed(0))
    ref = Normal(0.0, 1.0).log_prob(z).sum(-1)
    out = prior.log_prob(z)
    assert out.shape == (7, 3)
    torch.testing.assert_close(out, ref)
    # the constant enters once per vector: log N(0 | 0, I_M) = -M/2 log(2 pi)
    torch.testing.assert_close(prior.log_prob(torch.zeros(1, 5)), torch.tensor([-2.5 * math.log(2 * math.pi)]))


def test_sample_shape_device_dtype_and_moments():
    prior = StandardNormalPrior(3)
    z = prior.sample(40000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (40000, 3) and z.dtype == torch.float32 and z.device == prior.device
    # Monte Carlo: mean 0 (sd 1/sqrt(n)), variance 1 (sd sqrt(2/n))
    assert torch.all(z.mean(0).abs() < 5 / math.sqrt(40000))
    assert torch.all((z.var(0) - 1).abs() < 5 * math.sqrt(2 / 40000))
    cov = torch.cov(z.T)
    assert torch.all((cov - torch.eye(3)).abs() < 5 * math.sqrt(2 / 40000))
    # the generator makes draws reproducible; the prior follows .to(dtype)
    a = prior.sample(4, generator=torch.Generator().manual_seed(3))
    b = prior.sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert prior.to(torch.float64).sample(2).dtype == torch.float64


def test_analytic_kl_matches_torch_kl_divergence():
    prior = StandardNormalPrior(4)
    assert prior.supports_analytic_kl
    g = torch.Generator().manual_seed(1)
    mu_z = torch.randn(6, 4, generator=g)
    log_var = torch.randn(6, 4, generator=g)
    q = Independent(Normal(mu_z, torch.exp(0.5 * log_var)), 1)
    p = Independent(Normal(torch.zeros(4), torch.ones(4)), 1)
    torch.testing.assert_close(prior.analytic_kl(mu_z, log_var), kl_divergence(q, p))


def test_prior_has_no_learnable_parameters_and_state_dict_is_empty():
    prior = StandardNormalPrior(2)
    assert list(prior.parameters()) == []
    assert prior.state_dict() == {}


def test_base_class_interface_and_factory():
    assert isinstance(make_prior("standard_normal", 3), StandardNormalPrior)
    base = Prior(2)
    with pytest.raises(NotImplementedError):
        base.sample(1)
    with pytest.raises(NotImplementedError):
        base.log_prob(torch.zeros(1, 2))
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        base.analytic_kl(torch.zeros(1, 2), torch.zeros(1, 2))
    assert not base.supports_analytic_kl


@pytest.mark.parametrize("M", [0, -1, 1.5, True, "2", None])
def test_bad_M(M):
    with pytest.raises(ValueError, match="M"):
        StandardNormalPrior(M)


def test_bad_inputs():
    prior = StandardNormalPrior(3)
    with pytest.raises(ValueError, match="n"):
        prior.sample(0)
    with pytest.raises(ValueError, match="n"):
        prior.sample(2.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., M=3\)"):
        prior.log_prob(torch.zeros(5, 2))
    with pytest.raises(TypeError, match="z"):
        prior.log_prob([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="log_var"):
        prior.analytic_kl(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="prior must be one of"):
        make_prior("vamp", 3)

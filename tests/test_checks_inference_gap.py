"""The checks of notebook 08 (lvmlib.checks.inference_gap) accept right answers and name wrong ones.

Right answers are written here independently of lvmlib; the flow steps' log-dets are tested against
the autograd Jacobian. Each check is fed at least four wrong answers it names, plus wrong answers
it has no name for (which it must still refuse).
"""

import math

import pytest
import torch
import torch.nn.functional as F

from lvmlib.checks import ExerciseError
from lvmlib.checks import inference_gap as ig

from check_helpers import named, not_done


def _right_and_not_done(check, right):
    assert check(right) is right
    assert check(right, strict=True, seed=1) is None
    return not_done(check)


def refused(check, wrong):
    with pytest.raises(ExerciseError):
        check(wrong)


# ----------------------------------------------------------------------------- grid posterior
def grid_right(log_joint, h1, h2):
    B = log_joint.shape[0]
    flat = log_joint.reshape(B, -1)
    top = flat.max(1).values
    log_px = top + torch.log(torch.exp(flat - top[:, None]).sum(1) * h1 * h2)
    return log_px, log_joint - log_px.reshape(B, 1, 1)


def test_grid_posterior_check():
    fallback = _right_and_not_done(ig.check_grid_posterior, grid_right)
    lj = torch.randn(2, 5, 6, dtype=torch.float64) - 300
    torch.testing.assert_close(fallback(lj, 0.1, 0.2)[0], grid_right(lj, 0.1, 0.2)[0])
    c = ig.check_grid_posterior
    named(c, lambda lj, a, b: (torch.logsumexp(lj.flatten(-2), -1), lj - torch.logsumexp(lj.flatten(-2), -1)[:, None, None]),
          "without its cell area")
    named(c, lambda lj, a, b: grid_right(lj, 1.0, 1.0 / lj[0].numel()), "MEAN")
    named(c, lambda lj, a, b: (torch.log(torch.exp(lj).sum((1, 2)) * a * b),
                               lj - torch.log(torch.exp(lj).sum((1, 2)) * a * b)[:, None, None]), "underflows")
    named(c, lambda lj, a, b: (grid_right(lj, a, b)[0], lj), "not normalised")
    named(c, lambda lj, a, b: grid_right(lj, a, 1.0), "one side")
    named(c, lambda lj, a, b: ((torch.logsumexp(lj.flatten(), 0) + math.log(a * b)).repeat(lj.shape[0]),
                               lj - torch.logsumexp(lj.flatten(), 0) - math.log(a * b)), "over the batch")
    # not among the named mistakes: a max instead of a logsumexp; numpy output
    refused(c, lambda lj, a, b: (lj.flatten(1).max(1).values + math.log(a * b), lj))
    named(c, lambda lj, a, b: tuple(t.numpy() for t in grid_right(lj, a, b)), "torch tensor")


# ----------------------------------------------------------------------------- KL by quadrature
def kl_right(log_q, log_post, h1, h2):
    q = torch.exp(log_q)
    return torch.einsum("bij,bij->b", q, log_q - log_post) * (h1 * h2)


def test_kl_by_quadrature_check():
    fallback = _right_and_not_done(ig.check_kl_by_quadrature, kl_right)
    lq, lp = torch.randn(2, 4, 4, dtype=torch.float64), torch.randn(2, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(fallback(lq, lp, 0.3, 0.3), kl_right(lq, lp, 0.3, 0.3))
    c = ig.check_kl_by_quadrature
    named(c, lambda lq, lp, a, b: kl_right(lp, lq, a, b), "KL(p || q)")
    named(c, lambda lq, lp, a, b: kl_right(lq, lp, 1.0, 1.0), "cell area")
    named(c, lambda lq, lp, a, b: -kl_right(lq, lp, a, b), "sign")
    named(c, lambda lq, lp, a, b: (lq * (lq - lp)).sum((1, 2)) * a * b, "not by log q")
    named(c, lambda lq, lp, a, b: kl_right(lq, lp, a, b).sum(), "summed over the batch")
    # not named: the mean instead of the integral; only half the grid
    refused(c, lambda lq, lp, a, b: (lq.exp() * (lq - lp)).mean((1, 2)))
    refused(c, lambda lq, lp, a, b: kl_right(lq[:, 1:], lp[:, 1:], a, b))


# ----------------------------------------------------------------------------- planar step
def planar_right(z, w, u, b):
    wu = torch.einsum("bm,bm->b", w, u)
    m = -1 + torch.log1p(torch.exp(wu))
    u_hat = u + ((m - wu) / torch.einsum("bm,bm->b", w, w))[:, None] * w
    a = torch.einsum("bm,bm->b", w, z) + b
    z_new = z + u_hat * torch.tanh(a)[:, None]
    log_det = torch.log(torch.abs(1 + torch.einsum("bm,bm->b", u_hat, w) / torch.cosh(a) ** 2))
    return z_new, log_det


def test_planar_reference_log_det_is_the_autograd_jacobian_and_the_map_is_invertible():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        z, u, w = (torch.randn(1, 3, generator=g, dtype=torch.float64) * s for s in (1.0, 3.0, 1.0))
        b = torch.randn(1, generator=g, dtype=torch.float64)
        J = torch.autograd.functional.jacobian(lambda zz: ig.planar_step(zz[None], w, u, b)[0][0], z[0])
        _, log_det = ig.planar_step(z, w, u, b)
        assert torch.allclose(log_det, torch.linalg.slogdet(J).logabsdet, atol=1e-10)


def test_planar_step_check():
    fallback = _right_and_not_done(ig.check_planar_step, planar_right)
    c = ig.check_planar_step

    def variant(sign=1, one=1.0, constrained=True, reduce=False, deriv=True):
        def wrong(z, w, u, b):
            z_new, _ = planar_right(z, w, u, b)
            wu = (w * u).sum(-1)
            u_hat = u + ((-1 + F.softplus(wu) - wu) / (w * w).sum(-1))[:, None] * w if constrained else u
            a = (w * z).sum(-1) + b
            d = 1 - torch.tanh(a) ** 2 if deriv else torch.tanh(a)
            ld = sign * torch.log(torch.abs(one + (u_hat * w).sum(-1) * d))
            if not constrained:
                z_new = z + u * torch.tanh(a)[:, None]
            return z_new, ld.sum() if reduce else ld
        return wrong

    named(c, variant(sign=-1), "wrong sign")
    named(c, variant(one=0.0), "missing its 1 +")
    named(c, variant(constrained=False), "no constraint")
    named(c, variant(reduce=True), "summed over the batch")
    named(c, variant(deriv=False), "1 - tanh^2")
    # not named: a log-det of log(1 + |u_hat . psi|); z_new without the tanh
    refused(c, lambda z, w, u, b: (planar_right(z, w, u, b)[0],
                                   torch.log(1 + torch.abs(planar_right(z, w, u, b)[1].exp() - 1))))
    refused(c, lambda z, w, u, b: (z + u * ((w * z).sum(-1) + b)[:, None], planar_right(z, w, u, b)[1]))


# ----------------------------------------------------------------------------- Householder chain
def hh_right(z, vs):
    for k in range(vs.shape[1]):
        v = vs[:, k] / vs[:, k].norm(dim=-1, keepdim=True)
        H = torch.eye(z.shape[1], dtype=z.dtype) - 2 * v[:, :, None] * v[:, None, :]  # (B, M, M)
        z = torch.einsum("bij,bj->bi", H, z)
    return z, torch.zeros(z.shape[0], dtype=z.dtype)


def test_householder_reference_is_volume_preserving_by_autograd():
    vs = torch.randn(1, 3, 4, dtype=torch.float64)
    z = torch.randn(1, 4, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda zz: ig.householder_chain(zz[None], vs)[0][0], z[0])
    assert torch.allclose(torch.linalg.slogdet(J).logabsdet, torch.zeros((), dtype=torch.float64), atol=1e-10)
    assert torch.allclose(J @ J.T, torch.eye(4, dtype=torch.float64), atol=1e-10)  # orthogonal


def test_householder_chain_check():
    fallback = _right_and_not_done(ig.check_householder_chain, hh_right)
    c = ig.check_householder_chain
    named(c, lambda z, vs: hh_right(z, vs / vs.norm(dim=-1, keepdim=True) * 1.0) if False else
          (_apply(z, vs, normalise=False), torch.zeros(z.shape[0], dtype=z.dtype)), "not normalised")
    named(c, lambda z, vs: hh_right(z, vs.flip(1)), "reverse order")
    named(c, lambda z, vs: (hh_right(z, vs)[0], torch.full((z.shape[0],), vs.shape[1] * math.log(2), dtype=z.dtype)), "log 2")
    named(c, lambda z, vs: (hh_right(z, vs)[0], torch.tensor(0.0, dtype=z.dtype)), "scalar")
    named(c, lambda z, vs: (_apply(z, vs, sign=1.0), torch.zeros(z.shape[0], dtype=z.dtype)), "SUBTRACTS")
    named(c, lambda z, vs: (_apply(z, vs, chain=False), torch.zeros(z.shape[0], dtype=z.dtype)), "previous step")
    # not named: only the first reflection; a rotation by the Gram-Schmidt Q of vs
    refused(c, lambda z, vs: hh_right(z, vs[:, :1]))
    refused(c, lambda z, vs: (z.flip(-1), torch.zeros(z.shape[0], dtype=z.dtype)))


def _apply(z, vs, normalise=True, sign=-1.0, chain=True):
    out = z
    for k in range(vs.shape[1]):
        v = vs[:, k]
        src = out if chain else z
        n = (v * v).sum(-1, keepdim=True) if normalise else 1.0
        out = src + sign * 2 * v * (v * src).sum(-1, keepdim=True) / n
    return out


# ----------------------------------------------------------------------------- refinement loop
def refine_right(model, x, steps, lr):
    with torch.no_grad():
        mu0, lv0 = model.encode(x)
    mu = mu0.clone().requires_grad_(True)
    lv = lv0.clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, lv], lr=lr)
    for _ in range(steps):
        z = mu + torch.randn(4, *mu.shape, dtype=mu.dtype) * (0.5 * lv).exp()
        re = model.log_px_given_z(x, z).mean(0)
        kl = 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum(-1)
        grads = torch.autograd.grad(-(re - kl).sum(), [mu, lv])
        mu.grad, lv.grad = grads
        opt.step()
    return mu.detach(), lv.detach()


def _loop(model, x, steps, lr, params, make_loss, start=None):
    opt = torch.optim.Adam(params(model), lr=lr)
    for _ in range(steps):
        loss = make_loss(model)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_refine_posterior_check():
    fallback = _right_and_not_done(ig.check_refine_posterior, refine_right)
    c = ig.check_refine_posterior
    named(c, ig._refine_moves_decoder, "also moves the decoder")
    named(c, ig._refine_moves_encoder, "encoder's weights were trained")
    named(c, ig._refine_from_prior, "starts from N(0, I)")
    named(c, ig._refine_wrong_sign, "wrong sign")
    named(c, ig._refine_attached, "requires gradients")

    # written independently: SGD on everything (decoder included) with the learner's own loop
    def sgd_everything(model, x, steps, lr):
        mu, lv = (t.detach().clone().requires_grad_(True) for t in model.encode(x))
        opt = torch.optim.SGD([mu, lv, *model.parameters()], lr=0.01)
        for _ in range(steps):
            z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
            loss = -(model.log_px_given_z(x, z) - 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum(-1)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return mu.detach(), lv.detach()

    named(c, sgd_everything, "also moves the decoder")
    # not named: no steps taken at all; the KL left out (maximises the reconstruction only); wrong return
    refused(c, lambda model, x, steps, lr: tuple(t.detach() for t in model.encode(x)))

    def no_kl(model, x, steps, lr):
        mu, lv = (t.detach().clone().requires_grad_(True) for t in model.encode(x))
        opt = torch.optim.Adam([mu, lv], lr=lr)
        for _ in range(steps):
            z = mu + torch.randn(8, *mu.shape, dtype=mu.dtype) * (0.5 * lv).exp()
            loss = -model.log_px_given_z(x, z).mean(0).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return mu.detach(), lv.detach()

    refused(c, no_kl)
    with pytest.raises(ExerciseError, match="two tensors"):
        c(lambda model, x, steps, lr: refine_right(model, x, steps, lr)[0])


# ----------------------------------------------------------------------------- every known mistake, by name
def _recorded_mistakes(check):
    """The known mistakes a check hands to check_through (recorded on a run with an unfinished answer)."""
    recorded = {}
    original = ig.check_through

    def record(*args, **kwargs):
        recorded.update(kwargs.get("known_mistakes") or {})
        return original(*args, **kwargs)

    ig.check_through = record
    try:
        check(lambda *a, **k: (_ for _ in ()).throw(NotImplementedError()))
    finally:
        ig.check_through = original
    return recorded


CHECKS = [ig.check_grid_posterior, ig.check_kl_by_quadrature, ig.check_planar_step, ig.check_householder_chain,
          ig.check_refine_posterior]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_every_known_mistake_is_named_as_itself_and_refused_by_the_hidden_test(check):
    mistakes = _recorded_mistakes(check)
    assert len(mistakes) >= 4
    for description, mistake in mistakes.items():
        with pytest.raises(ExerciseError) as info:
            check(mistake)
        assert f"This is a known mistake: {description}" in str(info.value), str(info.value)
        if check is not ig.check_refine_posterior:  # (its hidden test draws another model: slow, and run above)
            with pytest.raises(ExerciseError):
                check(mistake, strict=True, seed=1)

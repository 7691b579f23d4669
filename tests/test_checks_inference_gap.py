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
    named(ig.check_grid_posterior, lambda lj, a, b: tuple(t.numpy() for t in grid_right(lj, a, b)), "torch tensor")


def grid_in_place(lj, h1, h2):
    log_px, _ = grid_right(lj, h1, h2)
    lj -= log_px[:, None, None]  # the caller's log-joint becomes the log-posterior
    return log_px, lj


GRID_LISTED = {
    "without its cell area": lambda lj, a, b: (torch.logsumexp(lj.flatten(-2), -1),
                                              lj - torch.logsumexp(lj.flatten(-2), -1)[:, None, None]),
    "MEAN": lambda lj, a, b: grid_right(lj, 1.0, 1.0 / lj[0].numel()),
    "underflows": lambda lj, a, b: (torch.log(torch.exp(lj).sum((1, 2)) * a * b),
                                    lj - torch.log(torch.exp(lj).sum((1, 2)) * a * b)[:, None, None]),
    "not normalised": lambda lj, a, b: (grid_right(lj, a, b)[0], lj),
    "one side": lambda lj, a, b: grid_right(lj, a, 1.0),
    "over the batch": lambda lj, a, b: ((torch.logsumexp(lj.flatten(), 0) + math.log(a * b)).repeat(lj.shape[0]),
                                        lj - torch.logsumexp(lj.flatten(), 0) - math.log(a * b)),
}
GRID_UNLISTED = {
    "the largest log-joint instead of a logsumexp": lambda lj, a, b: (lj.flatten(1).max(1).values + math.log(a * b), lj),
    "the posterior normalised along each row (logsumexp over the last axis only)": lambda lj, a, b: (
        grid_right(lj, a, b)[0], lj - torch.logsumexp(lj, -1, keepdim=True) - math.log(b)),
    "computed in float32 (log-joints near -900 lose their decimals)": lambda lj, a, b: tuple(
        t.double() for t in grid_right(lj.float(), a, b)),
    "changes log_joint in place": grid_in_place,
    "the posterior as a probability per node (softmax, no cell area)": lambda lj, a, b: (
        grid_right(lj, a, b)[0], torch.log_softmax(lj.flatten(1), -1).reshape(lj.shape)),
    "the cell area subtracted (- log(h1 h2))": lambda lj, a, b: grid_right(lj, 1.0 / a, 1.0 / b),
}


# ----------------------------------------------------------------------------- KL by quadrature
def kl_right(log_q, log_post, h1, h2):
    q = torch.exp(log_q)
    return torch.einsum("bij,bij->b", q, log_q - log_post) * (h1 * h2)


def test_kl_by_quadrature_check():
    fallback = _right_and_not_done(ig.check_kl_by_quadrature, kl_right)
    lq, lp = torch.randn(2, 4, 4, dtype=torch.float64), torch.randn(2, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(fallback(lq, lp, 0.3, 0.3), kl_right(lq, lp, 0.3, 0.3))


def kl_in_place(log_q, log_post, h1, h2):
    q = log_q.exp()
    log_q -= log_post  # reuses the caller's tensor for the log-ratio
    return (q * log_q).sum((1, 2)) * h1 * h2


KL_LISTED = {
    "KL(p || q)": lambda lq, lp, a, b: kl_right(lp, lq, a, b),
    "cell area": lambda lq, lp, a, b: kl_right(lq, lp, 1.0, 1.0),
    "sign": lambda lq, lp, a, b: -kl_right(lq, lp, a, b),
    "not by log q": lambda lq, lp, a, b: (lq * (lq - lp)).sum((1, 2)) * a * b,
    "summed over the batch": lambda lq, lp, a, b: kl_right(lq, lp, a, b).sum(),
}
KL_UNLISTED = {
    "the mean over the nodes instead of the integral": lambda lq, lp, a, b: (lq.exp() * (lq - lp)).mean((1, 2)),
    "only part of the grid (the first row dropped)": lambda lq, lp, a, b: kl_right(lq[:, 1:], lp[:, 1:], a, b),
    "weighted by the posterior instead of q": lambda lq, lp, a, b: (lp.exp() * (lq - lp)).sum((1, 2)) * a * b,
    "summed over one grid axis only": lambda lq, lp, a, b: (lq.exp() * (lq - lp)).sum(-1) * a * b,
    "changes log_q in place": kl_in_place,
}


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
    _right_and_not_done(ig.check_planar_step, planar_right)


def _planar_variant(sign=1, one=1.0, constrained=True, reduce=False, deriv=True):
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


PLANAR_LISTED = {
    "wrong sign": _planar_variant(sign=-1), "missing its 1 +": _planar_variant(one=0.0),
    "no constraint": _planar_variant(constrained=False), "summed over the batch": _planar_variant(reduce=True),
    "1 - tanh^2": _planar_variant(deriv=False),
}


def planar_no_minus_one(z, w, u, b):  # m(a) = softplus(a): the constraint's -1 forgotten
    wu = (w * u).sum(-1)
    u_hat = u + ((F.softplus(wu) - wu) / (w * w).sum(-1))[:, None] * w
    a = (w * z).sum(-1) + b
    return z + u_hat * torch.tanh(a)[:, None], torch.log(torch.abs(1 + (u_hat * w).sum(-1) / torch.cosh(a) ** 2))


def planar_sech_not_squared(z, w, u, b):
    z_new, _ = planar_right(z, w, u, b)
    wu = (w * u).sum(-1)
    u_hat = u + ((-1 + F.softplus(wu) - wu) / (w * w).sum(-1))[:, None] * w
    a = (w * z).sum(-1) + b
    return z_new, torch.log(torch.abs(1 + (u_hat * w).sum(-1) / torch.cosh(a)))


def planar_cpu_ones(z, w, u, b):  # right values on the CPU; the ones live there whatever z's device
    wu = (w * u).sum(-1)
    u_hat = u + ((-1 + F.softplus(wu) - wu) / (w * w).sum(-1))[:, None] * w
    a = (w * z).sum(-1) + b
    one = torch.ones(z.shape[0])  # no device=
    return z + u_hat * torch.tanh(a)[:, None], torch.log(torch.abs(one + (u_hat * w).sum(-1) / torch.cosh(a) ** 2))


PLANAR_UNLISTED = {
    "log(1 + |u_hat . psi|) instead of log|1 + u_hat . psi|": lambda z, w, u, b: (
        planar_right(z, w, u, b)[0], torch.log(1 + torch.abs(planar_right(z, w, u, b)[1].exp() - 1))),
    "z_new without the tanh": lambda z, w, u, b: (z + u * ((w * z).sum(-1) + b)[:, None], planar_right(z, w, u, b)[1]),
    "the constraint without its -1 (m(a) = softplus(a))": planar_no_minus_one,
    "the derivative of tanh as sech, not sech^2": planar_sech_not_squared,
    "torch.ones(B) made without device=": planar_cpu_ones,
}


# ----------------------------------------------------------------------------- Householder chain
def hh_right(z, vs):
    for k in range(vs.shape[1]):
        v = vs[:, k] / vs[:, k].norm(dim=-1, keepdim=True)
        H = torch.eye(z.shape[1], dtype=z.dtype, device=z.device) - 2 * v[:, :, None] * v[:, None, :]  # (B, M, M)
        z = torch.einsum("bij,bj->bi", H, z)
    return z, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)


def test_householder_reference_is_volume_preserving_by_autograd():
    vs = torch.randn(1, 3, 4, dtype=torch.float64)
    z = torch.randn(1, 4, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda zz: ig.householder_chain(zz[None], vs)[0][0], z[0])
    assert torch.allclose(torch.linalg.slogdet(J).logabsdet, torch.zeros((), dtype=torch.float64), atol=1e-10)
    assert torch.allclose(J @ J.T, torch.eye(4, dtype=torch.float64), atol=1e-10)  # orthogonal


def test_householder_chain_check():
    fallback = _right_and_not_done(ig.check_householder_chain, hh_right)


def hh_in_place(z, vs):
    for k in range(vs.shape[1]):
        v = vs[:, k]
        z -= 2 * v * (v * z).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True)  # the caller's z changes
    return z, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)


def hh_cpu_log_det(z, vs):
    return _apply(z, vs), torch.zeros(z.shape[0], dtype=z.dtype)  # no device=: on the CPU whatever z's device


def hh_over_norm(z, vs):  # divides by |v|, not |v|^2
    out = z
    for k in range(vs.shape[1]):
        v = vs[:, k]
        out = out - 2 * v * (v * out).sum(-1, keepdim=True) / v.norm(dim=-1, keepdim=True)
    return out, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)


def hh_batch_index(z, vs):
    for k in range(vs.shape[1]):
        v = vs[k]  # (K, M): the vectors of data point k, not reflection k of every data point
        z = z - 2 * v * (v * z).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True)
    return z, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)


HH_LISTED = {
    "not normalised": lambda z, vs: (_apply(z, vs, normalise=False), torch.zeros(z.shape[0], dtype=z.dtype)),
    "reverse order": lambda z, vs: hh_right(z, vs.flip(1)),
    "log 2": lambda z, vs: (hh_right(z, vs)[0], torch.full((z.shape[0],), vs.shape[1] * math.log(2), dtype=z.dtype)),
    "scalar": lambda z, vs: (hh_right(z, vs)[0], torch.tensor(0.0, dtype=z.dtype)),
    "SUBTRACTS": lambda z, vs: (_apply(z, vs, sign=1.0), torch.zeros(z.shape[0], dtype=z.dtype)),
    "previous step": lambda z, vs: (_apply(z, vs, chain=False), torch.zeros(z.shape[0], dtype=z.dtype)),
}
HH_UNLISTED = {
    "only the first reflection": lambda z, vs: hh_right(z, vs[:, :1]),
    "a permutation of the coordinates instead of the reflections": lambda z, vs: (
        z.flip(-1), torch.zeros(z.shape[0], dtype=z.dtype)),
    "changes z in place (z -= ... in the loop)": hh_in_place,
    "the log-det made without device=": hh_cpu_log_det,
    "divides by |v| instead of |v|^2": hh_over_norm,
    "vs[k] (data point k's vectors) instead of vs[:, k] (reflection k)": hh_batch_index,
}


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
        z = mu + torch.randn(4, *mu.shape, dtype=mu.dtype, device=mu.device) * (0.5 * lv).exp()
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
    _right_and_not_done(ig.check_refine_posterior, refine_right)
    with pytest.raises(ExerciseError, match="two tensors"):
        ig.check_refine_posterior(lambda model, x, steps, lr: refine_right(model, x, steps, lr)[0])


def _refine_loop(loss_of, params_of=lambda model, mu, lv: [mu, lv], optimizer=torch.optim.Adam, lr_of=lambda lr: lr,
                 n_steps=lambda steps: steps, no_grad=False, device=True):
    """A learner's refinement loop, with one thing changed by the arguments."""
    def refine(model, x, steps, lr):
        mu, lv = (t.detach().clone().requires_grad_(True) for t in model.encode(x))
        opt = optimizer(params_of(model, mu, lv), lr=lr_of(lr))
        for _ in range(n_steps(steps)):
            eps = torch.randn(8, *mu.shape, dtype=mu.dtype, device=mu.device if device else None)
            z = mu + eps * (0.5 * lv).exp()
            if no_grad:
                with torch.no_grad():
                    loss = loss_of(model, x, z, mu, lv)
            else:
                loss = loss_of(model, x, z, mu, lv)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return mu.detach(), lv.detach()
    return refine


def _neg_elbo(model, x, z, mu, lv):
    return -(model.log_px_given_z(x, z).mean(0) - 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum(-1)).sum()


REFINE_LISTED = {
    # SGD on everything (decoder included), written with the learner's own loop
    "also moves the decoder": _refine_loop(_neg_elbo, params_of=lambda model, mu, lv: [mu, lv, *model.parameters()],
                                           optimizer=torch.optim.SGD, lr_of=lambda lr: 0.01),
    "wrong sign": _refine_loop(lambda *a: -_neg_elbo(*a)),
    "did not improve the ELBO": lambda model, x, steps, lr: tuple(t.detach() for t in model.encode(x)),  # no steps
}
REFINE_UNLISTED = {
    "the KL left out (the reconstruction term alone)": _refine_loop(
        lambda model, x, z, mu, lv: -model.log_px_given_z(x, z).mean(0).sum()),
    "one step too many (range(steps + 1)): steps=0 moves q": _refine_loop(_neg_elbo, n_steps=lambda steps: steps + 1),
    "the loss computed under torch.no_grad()": _refine_loop(_neg_elbo, no_grad=True),
    "the noise drawn without device=": _refine_loop(_neg_elbo, device=False),
    "lr ignored (Adam's default 1e-3)": _refine_loop(_neg_elbo, lr_of=lambda lr: 1e-3),
}


# the listed mistakes, written as a learner would: {exercise: {the mistake the check names: wrong answer}}
WRONG_ANSWERS = {"grid_posterior": GRID_LISTED, "kl_by_quadrature": KL_LISTED, "planar_step": PLANAR_LISTED,
                 "householder_chain": HH_LISTED, "refine_posterior": REFINE_LISTED}
# plausible wrong answers that are none of the listed mistakes: {exercise: {label: wrong answer}}
UNLISTED = {"grid_posterior": GRID_UNLISTED, "kl_by_quadrature": KL_UNLISTED, "planar_step": PLANAR_UNLISTED,
            "householder_chain": HH_UNLISTED, "refine_posterior": REFINE_UNLISTED}


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

"""The core exercises of notebooks 02-07: partial diagnosis, hints on demand.

For each core check: an independent right answer (NumPy/SciPy or torch.distributions, not
lvmlib) passes; an unfinished one gets the reference; six plausible wrong answers, three of
them not among the check's listed mistakes, are each caught, and the first line of the
message names the part of the answer that is wrong (the first wrong part in the order of the
computation), with the known mistake named where it is one.
"""

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from lvmlib import checks, ppca
from lvmlib.checks import ExerciseError, ExerciseNotDone, Part, hints, check_function
from lvmlib.checks import ppca as pchecks
from lvmlib.checks import priors as prchecks
from lvmlib.checks import vae as vchecks
from lvmlib.checks import training as tchecks
from lvmlib.checks import variational as qchecks
from check_helpers import not_done


def wrong_parts(check, fn) -> tuple[list[str], str]:
    """The wrong parts named on the first line of the check's message, and the whole message."""
    with pytest.raises(ExerciseError) as info:
        check(fn)
    assert not isinstance(info.value, ExerciseNotDone)
    text = str(info.value)
    first = text.splitlines()[0]
    assert "wrong: " in first, text
    listed = first.split("wrong: ", 1)[1].split("; right:")[0].rstrip(".")
    return listed.split("; "), text


def assert_caught(check, fn, part, mistake=None):
    parts, text = wrong_parts(check, fn)
    assert parts[0].startswith(part), text
    if mistake is None:
        assert "known mistake" not in text, text
    else:
        assert "known mistake" in text and mistake in text, text


# ------------------------------------------------------------------ the machinery
def test_diagnosis_names_wrong_and_right_parts_and_a_relation():
    parts = (Part("the first term", lambda out, case: out[0]), Part("the second term", lambda out, case: out[1]),
             Part("the total (from your own terms)", lambda out, case: out[2] - (out[0] + out[1])))
    ref = lambda a: (a, 2 * a, 3 * a)
    cases = [checks.Case((torch.tensor([1.0, 2.0]),))]
    with pytest.raises(ExerciseError) as info:
        check_function(lambda a: (a, 3 * a, 4 * a), ref, cases, name="toy", parts=parts)
    first = str(info.value).splitlines()[0]
    assert first == "toy: not right yet — wrong: the second term; right: the first term, the total (from your own terms)."
    with pytest.raises(ExerciseError) as info:  # right terms, a wrong total: the relation is named
        check_function(lambda a: (a, 2 * a, 6 * a), ref, cases, name="toy", parts=parts)
    assert "wrong: the total (from your own terms); right: the first term, the second term." in str(info.value)
    with pytest.raises(ExerciseError) as info:  # a part that cannot be read is wrong, with why
        check_function(lambda a: a, ref, cases, name="toy", parts=parts)
    assert "cannot be read from your result" in str(info.value)


def test_hints_come_one_at_a_time_never_the_solution():
    hints.reset()
    every = hints.all_hints()
    assert {"fit_and_score", "em_until_converged", "k_sample_bounds", "vae_step", "train_epoch", "rate_terms",
            "iwae_bound", "LectureVAE"} <= set(every)
    for name, texts in every.items():
        assert 2 <= len(texts) <= 3
        shown = [hints.hint(name, show=False) for _ in range(len(texts) + 1)]
        assert [f"Hint {i} of {len(texts)}" in s for i, s in enumerate(shown[:-1], 1)] == [True] * len(texts)
        assert shown[-1] == shown[-2] and "last hint" in shown[-1]  # the last one repeats
        assert "Hint 1 of" in hints.hint(name, 1, show=False)
    for code_line in ("torch.logsumexp(log_w, dim=0) - math.log(K)", "-(re - beta * kl).mean()",
                      "eigenvalues[n_components:].mean()", "history[-1] - history[-2] < tol",
                      "torch.randperm(n, generator=generator, device=x.device)", "(total / n).item()",
                      "torch.logsumexp(table, dim=-1) - math.log(N)", "torch.exp(0.5 * log_var)",
                      "torch.logsumexp(log_w, dim=0)"):
        assert not any(code_line in t for texts in every.values() for t in texts)
    with pytest.raises(KeyError, match="exercises with hints"):
        checks.hint("no_such_exercise")
    with pytest.raises(ValueError, match="level must be an integer from 1 to"):
        checks.hint("vae_step", 7)


# ------------------------------------------------------------------ 02: fit_and_score
def _np(t):
    return t.detach().numpy() if torch.is_tensor(t) else np.asarray(t)


def fs_right(X_train, X_test, M):
    X, Xt = _np(X_train), _np(X_test)
    mu = X.mean(0)
    lam, U = np.linalg.eigh(np.cov(X.T, bias=True))
    lam, U = lam[::-1], U[:, ::-1]
    s2 = lam[M:].mean()
    R = stats.ortho_group.rvs(M, random_state=0) if M > 1 else np.array([[-1.0]])
    W = U[:, :M] * np.sqrt(lam[:M] - s2) @ R  # any rotation is right
    ll = stats.multivariate_normal(mu, W @ W.T + s2 * np.eye(len(mu))).logpdf(Xt)
    return {"mu": mu, "W": W, "sigma2": s2, "test_loglik": float(np.mean(ll))}


def _fs_with(**change):
    def fn(X_train, X_test, M):
        out = fs_right(X_train, X_test, M)
        for key, f in change.items():
            out[key] = f(out, _np(X_train), _np(X_test))
        return out
    return fn


def test_fit_and_score():
    check = pchecks.check_fit_and_score
    assert check(fs_right) is fs_right
    check(fs_right, strict=True, seed=1)
    not_done(check)
    for mistake, (fn, part) in WRONG_ANSWERS["fit_and_score"].items():
        assert_caught(check, fn, part, mistake)
    for fn, part in UNLISTED["fit_and_score"].values():  # not among the listed mistakes
        assert_caught(check, fn, part)


# ------------------------------------------------------------------ 03: em_until_converged
def em_right(X, W0, s20, tol=1e-6, max_iter=500):
    """Bishop 12.54-12.57 in NumPy; the mean log-likelihood by SciPy."""
    X = _np(X)
    N, D = X.shape
    mu = X.mean(0)
    Xc = X - mu
    W, s2 = _np(W0).copy(), float(s20)
    ll = lambda W, s2: float(stats.multivariate_normal(mu, W @ W.T + s2 * np.eye(D)).logpdf(X).mean())
    history = [ll(W, s2)]
    for _ in range(max_iter):
        Minv = np.linalg.inv(W.T @ W + s2 * np.eye(W.shape[1]))
        Ez = Xc @ W @ Minv
        sum_Ezz = N * s2 * Minv + Ez.T @ Ez
        W = Xc.T @ Ez @ np.linalg.inv(sum_Ezz)
        s2 = ((Xc**2).sum() - 2 * np.sum(Ez * (Xc @ W)) + np.trace(sum_Ezz @ W.T @ W)) / (N * D)
        history.append(ll(W, s2))
        if history[-1] - history[-2] < tol:
            break
    return {"W": W, "sigma2": s2, "history": np.array(history), "n_steps": len(history) - 1}


def _em_with(**change):
    def fn(*args, **kwargs):
        out = em_right(*args, **kwargs)
        for key, f in change.items():
            out[key] = f(out, args)
        return out
    return fn


def test_em_until_converged():
    check = pchecks.check_em_until_converged
    assert check(em_right) is em_right
    not_done(check)
    for mistake, (fn, part) in WRONG_ANSWERS["em_until_converged"].items():
        assert_caught(check, fn, part, mistake)
    for fn, part in UNLISTED["em_until_converged"].values():
        assert_caught(check, fn, part)


# ------------------------------------------------------------------ 04: k_sample_bounds
def ksb_right(x, mu_z, log_var, eps, log_px_given_z):
    sd = torch.exp(0.5 * log_var)
    z = mu_z + sd * eps
    log_px_z = log_px_given_z(x, z)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz = torch.distributions.Normal(mu_z, sd).log_prob(z).sum(-1)
    log_w = (log_px_z + log_pz - log_qz).numpy()
    K = log_w.shape[0]
    return {"z": z, "log_px_z": log_px_z, "log_pz": log_pz, "log_qz": log_qz,
            "elbo": log_w.mean(0), "iwae": special.logsumexp(log_w, axis=0) - math.log(K)}


def test_k_sample_bounds():
    check = qchecks.check_k_sample_bounds
    assert check(ksb_right) is ksb_right
    not_done(check)
    for mistake, (fn, part) in WRONG_ANSWERS["k_sample_bounds"].items():
        assert_caught(check, fn, part, mistake)
    for fn, part in UNLISTED["k_sample_bounds"].values():
        assert_caught(check, fn, part)


# ------------------------------------------------------------------ 05: vae_step
def step_right(model, optimizer, x, eps, beta=1.0):
    mu_z, log_var = model.encode(x)
    q = torch.distributions.Normal(mu_z, torch.exp(0.5 * log_var))
    z = mu_z + q.scale * eps  # the given noise
    re = model.log_px_given_z(x, z)
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    loss = torch.mean(beta * kl - re)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "re": re.detach(), "kl": kl.detach()}


def test_vae_step():
    check = vchecks.check_vae_step
    assert check(step_right) is step_right
    not_done(check)
    for mistake, (fn, part) in WRONG_ANSWERS["vae_step"].items():
        assert_caught(check, fn, part, mistake)
    for fn, part in UNLISTED["vae_step"].values():
        assert_caught(check, fn, part)


def _iwae_max(*a):
    out = ksb_right(*a)
    log_w = out["log_px_z"] + out["log_pz"] - out["log_qz"]
    return {**out, "iwae": log_w.max(0).values}


# wrong answers NOT among the checks' listed mistakes: {exercise: {label: (function, the part to be named)}}
UNLISTED = {
    "fit_and_score": {
        "centred and returned with the test set's mean": (_fs_with(mu=lambda o, X, Xt: Xt.mean(0)), "mu (the training mean)"),
        "W scaled by sqrt(2)": (_fs_with(W=lambda o, X, Xt: o["W"] * np.sqrt(2.0)), "W W^T"),
        "the score without its constant -D/2 log(2 pi)": (
            _fs_with(test_loglik=lambda o, X, Xt: o["test_loglik"] + 0.5 * Xt.shape[1] * math.log(2 * math.pi)),
            "the scoring step"),
    },
    "em_until_converged": {
        "mu = 0 instead of the data's mean": (lambda *a, **k: pchecks._emc(*a, **k, fixed_mu=True), "history[0]"),
        "returns the starting W": (_em_with(W=lambda out, args: _np(args[1])), "the final W"),
        "history skips the first step": (
            _em_with(history=lambda out, args: np.concatenate([out["history"][:1], out["history"][2:]])), "history[1]"),
    },
    "k_sample_bounds": {
        "log p(z) without its constant": (lambda *a: qchecks._ksb(*a, pz="no_const"), "log_pz"),
        "averages over the batch axis": (lambda *a: qchecks._ksb(*a, axis=1), "elbo"),
        "the largest log-weight for the IWAE bound": (_iwae_max, "iwae"),
    },
    "vae_step": {
        "KL averaged over the latent dimensions": (lambda *a: vchecks._step(*a, kl="mean_m"), "kl ("),
        "z = mu_z (no noise)": (lambda *a: vchecks._step(*a, noise=False), "re ("),
        "optimizer.step() before backward()": (lambda *a: vchecks._step(*a, order="step_first"), "the update"),
    },
}


# the listed mistakes: {exercise: {the mistake the check names: (function, the part to be named)}}
WRONG_ANSWERS = {
    "fit_and_score": {
        "1/(N - 1)": (lambda *a: pchecks._fs(*a, ddof=1), "sigma2"),
        "SUM": (lambda *a: pchecks._fs(*a, score="sum"), "the scoring step"),
        "X_train": (lambda *a: pchecks._fs(*a, on_train=True), "the scoring step"),
    },
    "em_until_converged": {
        "starting value": (lambda *a, **k: pchecks._emc(*a, **k, first=False), "history[0]"),
        "never stopped": (lambda *a, **k: pchecks._emc(*a, **k, rule="never"), "n_steps"),
        "counts the values": (lambda *a, **k: pchecks._emc(*a, **k, count="values"), "n_steps"),
    },
    "k_sample_bounds": {
        "variance": (lambda *a: qchecks._ksb(*a, std="var"), "z (the reparameterised samples)"),
        "underflows": (lambda *a: qchecks._ksb(*a, iwae="naive"), "iwae"),
        "change of variables": (lambda *a: qchecks._ksb(*a, qz="standard"), "log_qz"),
    },
    "vae_step": {
        "SUMS over the batch": (lambda *a: vchecks._step(*a, reduce="sum"), "loss"),
        "not zeroed": (lambda *a: vchecks._step(*a, zero=False), "the update"),
        "exp(log_var / 2)": (lambda *a: vchecks._step(*a, std="var"), "re ("),
    },
}


def test_the_references_refuse_bad_input_by_name():
    from lvmlib import variational, vae
    x, mu_z, lv = torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 2)
    decoder = lambda x, z: z.sum(-1)  # noqa: E731  (K, B)
    with pytest.raises(ValueError, match=r"eps must have shape \(K, B, M\) = \(K, 2, 2\)"):
        variational.k_sample_bounds(x, mu_z, lv, torch.zeros(4, 2), decoder)
    with pytest.raises(ValueError, match="log_var must have the shape of mu_z"):
        variational.k_sample_bounds(x, mu_z, torch.zeros(2, 3), torch.zeros(4, 2, 2), decoder)
    with pytest.raises(ValueError, match=r"log_px_given_z must return a tensor of shape \(K, B\)"):
        variational.k_sample_bounds(x, mu_z, lv, torch.zeros(4, 2, 2), lambda x, z: z)
    model = vae.VAE(vae.VAEConfig(device="cpu", **vchecks._STEP_CONFIG))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xb = torch.zeros(3, 6)
    with pytest.raises(ValueError, match=r"eps must be a tensor of shape \(B, M\) = \(3, 2\)"):
        vae.vae_step(model, opt, xb, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        vae.vae_step(model, opt, xb, torch.zeros(3, 2), beta=-1.0)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        vae.vae_step(model, None, xb, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="X_test must have D = 3 columns"):
        ppca.fit_and_score(torch.randn(10, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64), 1)
    with pytest.raises(ValueError, match="max_iter"):
        ppca.em_until_converged(torch.randn(10, 3, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float64), 1.0,
                                max_iter=0)


# ------------------------------------------------------------------ 06: train_epoch
def epoch_right(model, optimizer, x, batch_size, generator=None):
    """Written from the statement, not from lvmlib: the data on x's device, one read at the end."""
    n = x.shape[0]
    order = torch.randperm(n, generator=generator, device=x.device)
    batch_losses, sizes = [], []
    for chunk in torch.split(order, batch_size):
        xb = torch.bernoulli(x.index_select(0, chunk), generator=generator)
        loss = model(xb, generator=generator, check=False)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        batch_losses.append(loss.detach())
        sizes.append(len(chunk))
    return float((torch.stack(batch_losses) * x.new_tensor(sizes)).sum() / n)


def test_train_epoch_reference_matches_an_independent_epoch_and_refuses_bad_input():
    from lvmlib import vae
    from lvmlib.training.batches import train_epoch
    x = torch.rand(11, 6, generator=torch.Generator().manual_seed(0))
    results = []
    for fn in (train_epoch, epoch_right):
        torch.manual_seed(0)
        model = vae.VAE(vae.VAEConfig(D=6, M=2, H=8, likelihood="bernoulli", device="cpu"))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = fn(model, opt, x, 4, torch.Generator().manual_seed(3))
        results.append((loss, torch.cat([p.detach().reshape(-1) for p in model.parameters()])))
    assert isinstance(results[0][0], float) and results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-7)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        train_epoch(model, opt, x, 0)
    with pytest.raises(ValueError, match=r"x must be a float tensor of shape \(N, D\)"):
        train_epoch(model, opt, x[0], 4)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        train_epoch(model, None, x, 4)


@pytest.mark.slow  # about 2-5 s: two epochs per case, and one on the meta device
def test_train_epoch_passes_right_answers_and_refuses_unfinished():
    check = tchecks.check_train_epoch
    assert check(epoch_right) is epoch_right
    check(epoch_right, strict=True, seed=1)
    not_done(check)


TRAIN_EPOCH_LISTED = {  # the mistake's option of the planted answer: (the part named first, words of the mistake)
    "item per batch": (dict(read="item"), "host reads", "loss.item()"),
    "model's checks on": (dict(check=True), "host reads", "with its checks on"),
    "permutation on the CPU": (dict(perm_device="cpu"), "the device", "made on the CPU"),
    "no shuffle": (dict(shuffle="none"), "the batches", "not shuffled"),
    "threshold": (dict(binar="threshold"), "fresh binary images", "fixed threshold"),
    "generator seeded inside": (dict(binar="seeded_inside"), "the binary images", "seeded inside"),
    "global generator": (dict(binar="global"), "the binary images", "global generator"),
    "mean of batch losses": (dict(reduce="per_batch"), "the mean loss", "short last batch like a full one"),
    "sum": (dict(reduce="sum"), "the mean loss", "the SUM"),
    "batches x batch_size": (dict(reduce="batches_times_size"), "the mean loss", "number of batches x batch_size"),
    "no zero_grad": (dict(zero="never"), "the update", "not zeroed"),
    "one step per epoch": (dict(step="epoch"), "the update", "one optimizer step per epoch"),
}


@pytest.mark.slow  # each about 1-3 s: the check runs two epochs, a meta-device epoch and the planted mistakes
@pytest.mark.parametrize("label", list(TRAIN_EPOCH_LISTED))
def test_train_epoch_names_each_listed_mistake(label):
    options, part, words = TRAIN_EPOCH_LISTED[label]
    assert_caught(tchecks.check_train_epoch, lambda *a: tchecks._epoch(*a, **options), part, words)


def test_train_epoch_lists_every_planted_mistake():
    assert len(tchecks.MISTAKES) == len(TRAIN_EPOCH_LISTED) >= 6
    for _, _, words in TRAIN_EPOCH_LISTED.values():
        assert sum(words in d for d in tchecks.MISTAKES) == 1, words


def _epoch_with(**options):
    return lambda *a: tchecks._epoch(*a, **options)


UNLISTED["train_epoch"] = {
    "grey images fed to the Bernoulli decoder": (_epoch_with(binar="grey"), "fresh binary images"),
    "the whole data set binarized up front": (_epoch_with(binar="whole"), "the binary images"),
    "Bernoulli(1 - x)": (_epoch_with(binar="flipped"), "the batches"),  # its index pixels flip too
    "batches drawn with replacement": (_epoch_with(shuffle="replacement"), "the batches"),
    "the permutation from the global generator": (_epoch_with(shuffle="global"), "the batches"),
    "the short last batch dropped": (_epoch_with(last=False), "the batches"),
    # the generator's stream shifts:
    "the model's noise from the global generator": (_epoch_with(noise="global"), "the binary images"),
    "backward() but no optimizer step": (_epoch_with(step="none"), "the update"),
    "zero_grad() between backward() and step()": (_epoch_with(zero="between"), "the update"),
    "the batch losses summed unweighted, over N": (_epoch_with(reduce="unweighted"), "the mean loss"),
    "the last batch's loss returned": (_epoch_with(reduce="last"), "the mean loss"),
    "the total copied to the host per batch (.cpu())": (_epoch_with(read="cpu"), "host reads"),
    "a NaN guard bool(torch.isnan(loss)) per batch": (_epoch_with(read="nan_guard"), "host reads"),
    "the total returned as a tensor (never read)": (_epoch_with(read="never"), "the result's type"),
}


@pytest.mark.slow
@pytest.mark.parametrize("label", list(UNLISTED["train_epoch"]))
def test_train_epoch_catches_unlisted_mistakes(label):
    fn, part = UNLISTED["train_epoch"][label]
    assert_caught(tchecks.check_train_epoch, fn, part)
    assert len(UNLISTED["train_epoch"]) >= len(tchecks.MISTAKES)
    with pytest.raises(ExerciseError) as info:  # the hidden test, on other inputs
        tchecks.check_train_epoch(fn, strict=True, seed=1)
    assert not isinstance(info.value, ExerciseNotDone)


# ------------------------------------------------------------------ 07: rate_terms
def rate_right(mu_z, log_var, eps, log_prior):
    """SciPy's densities in float64 and its logsumexp over the mixture's components; the prior is the given one."""
    mu, lv, e = _np(mu_z).astype(np.float64), _np(log_var).astype(np.float64), _np(eps).astype(np.float64)
    sd = np.exp(0.5 * lv)
    z = mu + sd * e  # (S, N, M)
    log_q_zx = stats.norm.logpdf(z, mu, sd).sum(-1)  # (S, N)
    table = stats.norm.logpdf(z[:, :, None, :], mu, sd).sum(-1)  # (S, N, N)
    log_q_z = special.logsumexp(table, axis=-1, b=1.0 / mu.shape[0])
    log_p_z = _np(log_prior(torch.as_tensor(z, dtype=torch.float32)))
    return {"log_q_zx": log_q_zx, "log_q_z": log_q_z, "log_p_z": log_p_z,
            "rate": float(np.mean(log_q_zx - log_p_z)), "mutual_info": float(np.mean(log_q_zx - log_q_z)),
            "marginal_kl": float(np.mean(log_q_z - log_p_z))}


def test_rate_terms_passes_right_answers_and_refuses_unfinished():
    check = prchecks.check_rate_terms
    assert check(rate_right) is rate_right
    check(rate_right, strict=True, seed=1)
    not_done(check)


RATE_LISTED = {  # the planted answer's option: (the part named first, words of the named mistake)
    "logsumexp without - log N": (dict(agg="no_log_n"), "log_q_z", "log of their SUM"),
    "mutual information with the prior": (dict(mi="prior"), "mutual_info", "not with the prior"),
    "KL(q(z) || p(z)) with the wrong sign": (dict(mkl="sign"), "marginal_kl", "the wrong sign"),
    "the mean of the logs (averaging inside the log)": (dict(agg="mean_of_logs"), "log_q_z", "Jensen"),
    "exp() then log in float32": (dict(agg="naive"), "log_q_z", "underflows in float32"),
    "q(z) = image n's own posterior": (dict(agg="own"), "log_q_z", "ALL N posteriors"),
    "the variance as the scale of z": (dict(std="var"), "log_q_zx", "the variance, as its scale"),
}


@pytest.mark.parametrize("label", list(RATE_LISTED))
def test_rate_terms_names_each_listed_mistake(label):
    options, part, words = RATE_LISTED[label]
    assert_caught(prchecks.check_rate_terms, lambda *a: prchecks._rt(*a, **options), part, words)
    assert len(prchecks.RATE_MISTAKES) == len(RATE_LISTED) >= 6


def _rt_with(**options):
    return lambda *a: prchecks._rt(*a, **options)


UNLISTED["rate_terms"] = {
    "+ log N instead of - log N": (_rt_with(agg="plus_log_n"), "log_q_z"),
    "the log-sum-exp over the samples' images, not the posteriors": (_rt_with(agg="wrong_axis"), "log_q_z"),
    "the rate in closed form (not from the same samples)": (_rt_with(rate="closed"), "rate"),
    "the standard normal instead of the given prior": (_rt_with(prior="standard"), "log_p_z"),
    "the mutual information with the wrong sign": (_rt_with(mi="sign"), "mutual_info"),
    "log q(z|x) with 2 log_var": (_rt_with(qzx="var"), "log_q_zx"),
    "z = mu_z (no noise)": (_rt_with(std="none"), "log_q_zx"),
}


@pytest.mark.parametrize("label", list(UNLISTED["rate_terms"]))
def test_rate_terms_catches_unlisted_mistakes(label):
    fn, part = UNLISTED["rate_terms"][label]
    assert_caught(prchecks.check_rate_terms, fn, part)
    assert len(UNLISTED["rate_terms"]) >= len(prchecks.RATE_MISTAKES)
    with pytest.raises(ExerciseError) as info:  # the hidden test, on other inputs
        prchecks.check_rate_terms(fn, strict=True, seed=1)
    assert not isinstance(info.value, ExerciseNotDone)


def test_rate_terms_reference_agrees_with_the_closed_form_rate():
    """The Monte Carlo rate against the closed-form average KL to N(0, I), within 4 standard errors; the
    identity rate = mutual_info + marginal_kl to rounding; 0 <= I <= log N up to noise."""
    from lvmlib import variational
    g = torch.Generator().manual_seed(0)
    N, M, S = 40, 2, 400
    mu, lv = 1.5 * torch.randn(N, M, generator=g, dtype=torch.float64), -2 * torch.rand(N, M, generator=g,
                                                                                         dtype=torch.float64)
    out = variational.rate_terms(mu, lv, torch.randn(S, N, M, generator=g, dtype=torch.float64), _std_normal)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * lv))
    closed = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1).mean()
    per_sample = out["log_q_zx"] - out["log_p_z"]
    se = (per_sample.var(0).mean() / (S * N)).sqrt()  # the error of the mean over s of each image's S samples
    assert abs(out["rate"] - closed) < 4 * se, (float(out["rate"]), float(closed), float(se))
    assert abs(out["rate"] - out["mutual_info"] - out["marginal_kl"]) < 1e-10
    assert -0.05 < out["mutual_info"] < math.log(N) and out["marginal_kl"] > -0.05
    with pytest.raises(ValueError, match=r"eps must have shape \(S, N, M\)"):
        variational.rate_terms(mu, lv, torch.zeros(3, N), _std_normal)
    with pytest.raises(TypeError, match="log_prior must be a function"):
        variational.rate_terms(mu, lv, torch.zeros(3, N, M, dtype=torch.float64), None)


def _std_normal(z):
    return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)

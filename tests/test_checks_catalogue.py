"""A catalogue of typical wrong answers, one row per exercise and wrong answer.

Every exercise of notebooks 00-05 has at least three wrong answers here that are NOT on its
check's list of known mistakes (a sign slip, a forgotten centring, an answer that changes its
input in place, a wrong shape, ...). Each is run through the check as the notebook's visible
check cell calls it, and as the hidden test of an autograder calls it (``strict=True, seed=1``):
both must reject it with an ExerciseError (not "not done yet").

A second test feeds every known mistake of every check back to that check (as the notebook's
check cell calls it) and asserts that the message names that mistake and no other: the check's
inputs tell the mistakes apart.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lvmlib import checks, gaussian as lg
from lvmlib.checks import ExerciseError, ExerciseNotDone
from lvmlib.checks import _core
from lvmlib.checks import gaussian as gchecks, generative as gen, ppca as pchecks
from lvmlib.checks import variational as varchecks, vae as vaechecks
from lvmlib.checks.vae import LectureVAE

INV = torch.linalg.inv


def _eye(n):
    return torch.eye(n, dtype=torch.float64)


# ----------------------------------------------------------------------------- NB00
def _lj_in_place(a, b):
    a += b[:, None]  # changes the caller's log p(y|x)
    return a


LOG_JOINT = {
    "no class axis (broadcasts wrongly or fails)": lambda a, b: a + b,
    "subtracts log p(x)": lambda a, b: a - b[:, None],
    "probabilities, not logs": lambda a, b: a.exp() * b.exp()[:, None],
    "log p(x) alone": lambda a, b: b[:, None].expand_as(a),
    "changes its input in place": _lj_in_place,
}

UNFAMILIAR = {
    "a Gaussian rule: below mean - 2 std": lambda lp, ref, fraction=0.01: lp < ref.mean() - 2 * ref.std(),
    "the quantile of reference and inputs pooled":
        lambda lp, ref, fraction=0.01: lp < torch.quantile(torch.cat([ref, lp]), fraction),
    "fraction read as a percentage": lambda lp, ref, fraction=0.01: lp < torch.quantile(ref, fraction * 100),
    "returns the count, not one flag per input":
        lambda lp, ref, fraction=0.01: (lp < torch.quantile(ref, fraction)).sum(),
    "flags the inputs below the least probable reference input": lambda lp, ref, fraction=0.01: lp < ref.min(),
}


# ----------------------------------------------------------------------------- NB01
LOG_NORMAL_FULL = {
    "diagonal of cov only": lambda x, mu, cov: torch.distributions.Normal(mu, cov.diagonal().sqrt()).log_prob(x).sum(-1),
    "the density, not its log": lambda x, mu, cov: lg.log_normal_full(x, mu, cov).exp(),
    "summed over the data points": lambda x, mu, cov: lg.log_normal_full(x, mu, cov).sum(),
    "cov read as a precision": lambda x, mu, cov: torch.distributions.MultivariateNormal(
        mu, precision_matrix=cov).log_prob(x),
    "an (N, N) matrix of cross terms": lambda x, mu, cov: -0.5 * (x - mu) @ INV(cov) @ (x - mu).T,
}

MARGINAL = {
    "A^T in the wrong place (shape Dx x Dx)": lambda mu, Lam, A, b, L: (A @ mu + b, INV(L) + A.T @ INV(Lam) @ A),
    "inverts the sum of precisions": lambda mu, Lam, A, b, L: (A @ mu + b, INV(L + A @ Lam @ A.T)),
    "subtracts the offset": lambda mu, Lam, A, b, L: (A @ mu - b, INV(L) + A @ INV(Lam) @ A.T),
    "the prior's moments": lambda mu, Lam, A, b, L: (mu, INV(Lam)),
    "returns the precision of p(y)": lambda mu, Lam, A, b, L: (A @ mu + b, INV(INV(L) + A @ INV(Lam) @ A.T)),
}


def _post_parts(y, mu, Lam, A, b, L):
    Sigma = INV(Lam + A.T @ L @ A)
    return Sigma, ((y - b) @ L @ A + Lam @ mu) @ Sigma


POSTERIOR_LG = {
    "the prior covariance": lambda y, mu, Lam, A, b, L: (_post_parts(y, mu, Lam, A, b, L)[1], INV(Lam)),
    "mean not multiplied by Sigma": lambda y, mu, Lam, A, b, L: ((y - b) @ L @ A + Lam @ mu,
                                                                 _post_parts(y, mu, Lam, A, b, L)[0]),
    "one mean for the average y": lambda y, mu, Lam, A, b, L: (_post_parts(y.mean(0, keepdim=True), mu, Lam, A, b, L)[1][0],
                                                               _post_parts(y, mu, Lam, A, b, L)[0]),
    "A where A^T belongs (fails on the shapes)": lambda y, mu, Lam, A, b, L: (
        (A @ L @ (y - b).T).T, INV(Lam + A @ L @ A.T)),
}


# ----------------------------------------------------------------------------- NB02
M_MATRIX = {
    "sigma2 multiplies instead of adds": lambda W, s2: W.T @ W * s2,
    "an identity of size D (fails)": lambda W, s2: W.T @ W + s2 * _eye(W.shape[0]),
    "the inverse of M": lambda W, s2: INV(W.T @ W + s2 * _eye(W.shape[1])),
    "sigma, not sigma2, on the diagonal": lambda W, s2: W.T @ W + math.sqrt(s2) * _eye(W.shape[1]),
}


def _Minv(W, s2):
    return INV(W.T @ W + s2 * _eye(W.shape[1]))


C_INVERSE = {
    "plus instead of minus": lambda W, s2: (_eye(W.shape[0]) + W @ _Minv(W, s2) @ W.T) / s2,
    "the projector without sigma2 in M": lambda W, s2: (_eye(W.shape[0]) - W @ INV(W.T @ W) @ W.T) / s2,
    "inverse of the noise only": lambda W, s2: _eye(W.shape[0]) / s2,
    "W^T M^-1 W (fails on the shapes)": lambda W, s2: (_eye(W.shape[0]) - W.T @ _Minv(W, s2) @ W) / s2,
}


def _ll_in_place(X, W, mu, s2):
    X -= mu  # the example: right numbers, the caller's X centred
    return lg.log_normal_full(X, torch.zeros_like(mu), W @ W.T + s2 * _eye(W.shape[0]))


LOG_LIKELIHOOD = {
    "C where C^-1 belongs": lambda X, W, mu, s2: -0.5 * (
        X.shape[1] * math.log(2 * math.pi) + torch.logdet(W @ W.T + s2 * _eye(W.shape[0]))
        + ((X - mu) @ (W @ W.T + s2 * _eye(W.shape[0])) * (X - mu)).sum(1)),
    "no log-determinant": lambda X, W, mu, s2: lg.log_normal_full(X, mu, W @ W.T + s2 * _eye(W.shape[0]))
        + 0.5 * torch.logdet(W @ W.T + s2 * _eye(W.shape[0])),
    "W ignored (isotropic noise only)": lambda X, W, mu, s2: lg.log_normal_full(X, mu, s2 * _eye(W.shape[0])),
    "a plus sign in front of the quadratic form": lambda X, W, mu, s2: 2 * (
        -0.5 * X.shape[1] * math.log(2 * math.pi) - 0.5 * torch.logdet(W @ W.T + s2 * _eye(W.shape[0])))
        - lg.log_normal_full(X, mu, W @ W.T + s2 * _eye(W.shape[0])),
    "changes X in place": _ll_in_place,
}


def _eig_desc(X, centre=True):
    Xc = X - X.mean(0) if centre else X
    lam, U = torch.linalg.eigh(Xc.T @ Xc / X.shape[0])
    return lam.flip(0), U.flip(1)


def _s2_in_place(X, M):
    X -= X.mean(0)  # the example: right value, the caller's X centred
    return torch.linalg.eigvalsh(X.T @ X / X.shape[0]).flip(0)[M:].mean()


SIGMA2_ML = {
    "changes X in place": _s2_in_place,
    "S without centring": lambda X, M: _eig_desc(X, centre=False)[0][M:].mean(),
    "the discarded eigenvalues, not their average": lambda X, M: _eig_desc(X)[0][M:],
    "singular values of the centred data": lambda X, M: torch.linalg.svdvals(X - X.mean(0))[M:].mean(),
    "the median of the discarded eigenvalues": lambda X, M: _eig_desc(X)[0][M:].median(),
}


def _W(X, M, centre=True):
    lam, U = _eig_desc(X, centre)
    return U[:, :M] * (lam[:M] - lam[M:].mean()).clamp_min(0).sqrt()


def _W_in_place(X, M):
    X -= X.mean(0)
    return _W(X, M)


W_ML = {
    "changes X in place": _W_in_place,
    "S without centring": lambda X, M: _W(X, M, centre=False),
    "rows of U instead of columns (shape M x D)": lambda X, M: _W(X, M).T,
    "square root taken before subtracting sigma2": lambda X, M: _eig_desc(X)[1][:, :M] * (
        _eig_desc(X)[0][:M].sqrt() - _eig_desc(X)[0][M:].mean()),
    "the right W plus noise": lambda X, M: _W(X, M) + 0.1,
}


def _post_in_place(X, W, mu, s2):
    X -= mu  # the example: it used to be told "mu is missing"
    return X @ W @ _Minv(W, s2), s2 * _Minv(W, s2)


POSTERIOR = {
    "changes X in place": _post_in_place,
    "covariance s2 (W^T W)^-1": lambda X, W, mu, s2: ((X - mu) @ W @ _Minv(W, s2), s2 * INV(W.T @ W)),
    "the sigma2 -> 0 projection as the mean": lambda X, W, mu, s2: ((X - mu) @ W @ INV(W.T @ W), s2 * _Minv(W, s2)),
    "mean transposed (M, N)": lambda X, W, mu, s2: (((X - mu) @ W @ _Minv(W, s2)).T, s2 * _Minv(W, s2)),
    "the prior as the posterior": lambda X, W, mu, s2: (torch.zeros(X.shape[0], W.shape[1], dtype=X.dtype),
                                                        _eye(W.shape[1])),
}


def _rec_in_place(X, W, mu, s2):
    X -= mu
    return X @ W @ _Minv(W, s2) @ W.T + mu


RECONSTRUCT = {
    "changes X in place": _rec_in_place,
    "returns X itself": lambda X, W, mu, s2: X,
    "encodes x without subtracting mu": lambda X, W, mu, s2: X @ W @ _Minv(W, s2) @ W.T + mu,
    "decodes a sampled z instead of E[z|x]": lambda X, W, mu, s2: (
        (X - mu) @ W @ _Minv(W, s2) + torch.randn(X.shape[0], W.shape[1], dtype=X.dtype)) @ W.T + mu,
}


def _em_in_place(X, W, mu, s2):
    X -= mu
    return pchecks.ppca.em_step(X, W, torch.zeros_like(mu), s2)


EM_STEP = {
    "returns the old W": lambda X, W, mu, s2: (W, pchecks.ppca.em_step(X, W, mu, s2)[1]),
    "sigma2 not updated": lambda X, W, mu, s2: (pchecks.ppca.em_step(X, W, mu, s2)[0], s2),
    "x not centred on mu": lambda X, W, mu, s2: pchecks.ppca.em_step(X, W, torch.zeros_like(mu), s2),
    "changes X in place": _em_in_place,
}


# ----------------------------------------------------------------------------- NB04
KL = {
    "KL the other way round, KL(p || q)": lambda m, lv: 0.5 * ((1 + m**2) * (-lv).exp() + lv - 1).sum(-1),
    "mu^2 forgotten": lambda m, lv: 0.5 * (lv.exp() - lv - 1).sum(-1),
    "not summed (B, M)": lambda m, lv: 0.5 * (m**2 + lv.exp() - lv - 1),
    "summed over the batch (M,)": lambda m, lv: 0.5 * (m**2 + lv.exp() - lv - 1).sum(0),
}

REPARAMETERIZE = {
    "uniform noise": lambda m, lv: m + torch.exp(0.5 * lv) * torch.rand_like(m),
    "one eps shared by every sample": lambda m, lv: m + torch.exp(0.5 * lv) * torch.randn(m.shape[-1], dtype=m.dtype),
    "sqrt(log_var) as the std (NaN for negative log_var)": lambda m, lv: m + lv.sqrt() * torch.randn_like(m),
    "mu times the noise": lambda m, lv: m * torch.exp(0.5 * lv) * torch.randn_like(m),
    "returns (z, eps)": lambda m, lv: (m + torch.exp(0.5 * lv) * torch.randn_like(m), torch.randn_like(m)),
}

IWAE = {
    "logsumexp divided by K": lambda lw: torch.logsumexp(lw, 0) / lw.shape[0],
    "minus log B instead of log K": lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[1]),
    "one number for the batch": lambda lw: (torch.logsumexp(lw, 0) - math.log(lw.shape[0])).mean(),
    "log of a sum of exps (underflows)": lambda lw: torch.log(torch.exp(lw).sum(0)) - math.log(lw.shape[0]),
    "the ELBO minus log K": lambda lw: lw.mean(0) - math.log(lw.shape[0]),
}


# ----------------------------------------------------------------------------- NB05
class _NoSampling(LectureVAE):
    def reparameterize(self, mu_z, log_var):
        return mu_z


class _SwappedHalves(LectureVAE):
    def forward(self, x):
        x_hat, z, mu_z, log_var = super().forward(x)
        h = self.enc2(F.relu(self.enc1(x))).view(-1, 2, self.M)
        mu_z, log_var = h[:, 1, :], h[:, 0, :]
        z = self.reparameterize(mu_z, log_var)
        return self.dec2(F.relu(self.dec1(z))), z, mu_z, log_var


class _NoEncoderRelu(LectureVAE):
    def forward(self, x):
        h = self.enc2(self.enc1(x)).view(-1, 2, self.M)
        mu_z, log_var = h[:, 0, :], h[:, 1, :]
        z = self.reparameterize(mu_z, log_var)
        return self.dec2(F.relu(self.dec1(z))), z, mu_z, log_var


class _BatchSum(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        return super().neg_elbo(x, x_hat, z, mu_z, log_var).sum()


class _BceLoss(LectureVAE):
    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        KL = lg.log_normal_diag(z, mu_z, log_var) - lg.log_normal_standard(z)
        return F.binary_cross_entropy_with_logits(x_hat, x, reduction="none").sum(-1) + KL


LECTURE_VAE = {
    "no sampling: z = mu_z": _NoSampling,
    "mu_z and log_var swapped": _SwappedHalves,
    "no ReLU in the encoder": _NoEncoderRelu,
    "summed over the batch": _BatchSum,
    "a Bernoulli loss for a Gaussian decoder": _BceLoss,
}


def _gather(table, x):
    return torch.gather(table, -1, x.long().unsqueeze(-1)).squeeze(-1)


CATEGORICAL = {
    "cross-entropy, a loss (the sign is flipped)": lambda x, lg_: F.cross_entropy(
        lg_.permute(0, 2, 1), x, reduction="none").sum(-1),
    "one number for the batch": lambda x, lg_: -F.cross_entropy(lg_.reshape(-1, lg_.shape[-1]), x.reshape(-1),
                                                                reduction="sum"),
    "the level off by one": lambda x, lg_: _gather(torch.log_softmax(lg_, -1), (x - 1).clamp_min(0)).sum(-1),
    "the most probable level, not the observed one": lambda x, lg_: torch.log_softmax(lg_, -1).max(-1).values.sum(-1),
}


def _var0(m):
    return m.var(0)


ACTIVE_UNITS = {
    "threshold ignored (always 0.01)": lambda m, threshold=1e-2: (int((_var0(m) > 0.01).sum()), _var0(m)),
    "the fraction of active units, not their count": lambda m, threshold=1e-2: (
        float((_var0(m) > threshold).float().mean()), _var0(m)),
    "(A, count) in the wrong order": lambda m, threshold=1e-2: (_var0(m), int((_var0(m) > threshold).sum())),
    "the range max - min instead of the variance": lambda m, threshold=1e-2: (
        int(((m.max(0).values - m.min(0).values) > threshold).sum()), m.max(0).values - m.min(0).values),
}


# ----------------------------------------------------------------------------- the core exercises (02-05)
from test_checks_core_exercises import UNLISTED  # noqa: E402  (their wrong answers, also tested for the part named)

# ----------------------------------------------------------------------------- the catalogue
EXERCISES = {
    "log_joint": (gen.check_log_joint, LOG_JOINT),
    "unfamiliar": (gen.check_unfamiliar, UNFAMILIAR),
    "log_normal_full": (gchecks.check_log_normal_full, LOG_NORMAL_FULL),
    "linear_gaussian_marginal": (gchecks.check_linear_gaussian_marginal, MARGINAL),
    "linear_gaussian_posterior": (gchecks.check_linear_gaussian_posterior, POSTERIOR_LG),
    "M_matrix": (pchecks.check_M_matrix, M_MATRIX),
    "C_inverse": (pchecks.check_C_inverse, C_INVERSE),
    "log_likelihood": (pchecks.check_log_likelihood, LOG_LIKELIHOOD),
    "sigma2_ml": (pchecks.check_sigma2_ml, SIGMA2_ML),
    "W_ml": (pchecks.check_W_ml, W_ML),
    "posterior": (pchecks.check_posterior, POSTERIOR),
    "reconstruct": (pchecks.check_reconstruct, RECONSTRUCT),
    "em_step": (pchecks.check_em_step, EM_STEP),
    "kl_standard_normal": (varchecks.check_kl_standard_normal, KL),
    "reparameterize": (varchecks.check_reparameterize, REPARAMETERIZE),
    "iwae_bound": (varchecks.check_iwae_bound, IWAE),
    "LectureVAE": (vaechecks.check_lecture_vae, LECTURE_VAE),
    "log_px_categorical": (vaechecks.check_log_px_categorical, CATEGORICAL),
    "active_units": (vaechecks.check_active_units, ACTIVE_UNITS),
    "fit_and_score": (pchecks.check_fit_and_score, {k: f for k, (f, _) in UNLISTED["fit_and_score"].items()}),
    "em_until_converged": (pchecks.check_em_until_converged,
                           {k: f for k, (f, _) in UNLISTED["em_until_converged"].items()}),
    "k_sample_bounds": (varchecks.check_k_sample_bounds, {k: f for k, (f, _) in UNLISTED["k_sample_bounds"].items()}),
    "vae_step": (vaechecks.check_vae_step, {k: f for k, (f, _) in UNLISTED["vae_step"].items()}),
}

SLOW = {"reparameterize", "LectureVAE", "vae_step"}  # their checks sample 40,000 draws or train-size batches per call


def _param(exercise, *rest, id):
    return pytest.param(exercise, *rest, id=id, marks=[pytest.mark.slow] if exercise in SLOW else [])


ROWS = [_param(ex, label, wrong, id=f"{ex}: {label}")
        for ex, (_, table) in EXERCISES.items() for label, wrong in table.items()]


def test_the_catalogue_covers_every_exercise_with_at_least_three_wrong_answers():
    import nbformat
    from pathlib import Path

    graded = set()
    for path in sorted(Path(__file__).resolve().parents[1].glob("solutions/0[0-5]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade") and "checks." in cell.source:
                graded.add(cell.source.split("= checks.")[1].split("(")[0])
    assert graded == {f"{check.__module__.rsplit('.', 1)[1]}.{check.__name__}" for check, _ in EXERCISES.values()}
    assert len(graded) == 23
    assert all(len(table) >= 3 for _, table in EXERCISES.values())


def _known_mistakes(check) -> dict:
    """The known mistakes a check passes to check_function / check_through (recorded on a run with a stub)."""
    recorded = {}
    module = __import__(check.__module__, fromlist=["_"])
    originals = {name: getattr(module, name) for name in ("check_function", "check_through") if hasattr(module, name)}

    def recorder(original):
        def record(*args, **kwargs):
            recorded.update(kwargs.get("known_mistakes") or {})
            return original(*args, **kwargs)
        return record

    def stub(*args, **kwargs):
        raise NotImplementedError()

    class StubVAE(LectureVAE):
        def forward(self, x):
            raise NotImplementedError()

    try:
        for name, original in originals.items():
            setattr(module, name, recorder(original))
        check(StubVAE if check is vaechecks.check_lecture_vae else stub)
    finally:
        for name, original in originals.items():
            setattr(module, name, original)
    return recorded


@pytest.mark.parametrize("exercise, label, wrong", ROWS)
def test_a_typical_wrong_answer_is_rejected_by_the_visible_check_and_the_hidden_test(exercise, label, wrong):
    check, _ = EXERCISES[exercise]
    known = _known_mistakes(check)
    assert label not in known and wrong not in [v for vs in known.values()
                                                for v in (vs if isinstance(vs, (tuple, list)) else (vs,))]
    for kwargs in ({}, {"strict": True, "seed": 1}):  # the notebook's check cell, the hidden test
        with pytest.raises(ExerciseError) as info:
            check(wrong, **kwargs)
        assert not isinstance(info.value, ExerciseNotDone), (label, kwargs, str(info.value))
        if label.startswith("changes") and "in place" in label:
            assert "in place" in str(info.value), str(info.value)


KNOWN = [_param(ex, desc, variant, id=f"{ex}: {desc[:50]} ({i})")
         for ex, (check, _) in EXERCISES.items()
         for desc, variants in _known_mistakes(check).items()
         for i, variant in enumerate(variants if isinstance(variants, (tuple, list)) else (variants,))]


@pytest.mark.parametrize("exercise, description, mistake", KNOWN)
def test_every_known_mistake_is_named_as_itself(exercise, description, mistake):
    check, _ = EXERCISES[exercise]
    with pytest.raises(ExerciseError) as info:  # the notebook's check cell: there the message is read
        check(mistake)
    assert f"This is a known mistake: {description}" in str(info.value), str(info.value)

"""The catalogue of wrong answers: every graded exercise of the course against its typical mistakes.

The exercises are read from the graded check cells of ``solutions/`` and their wrong answers gathered
from the tables ``WRONG_ANSWERS`` and ``UNLISTED`` of every ``tests/test_checks_*.py`` (see
``tests/wrong_answers.py``; this file holds the tables of notebooks 00-05's short exercises). The rule:
every exercise has at least five wrong answers, at least half of them not among its check's listed
mistakes. Every entry is run through the check:

- an unlisted wrong answer (a sign slip, a forgotten centring, an answer that changes its input in place,
  a wrong shape, ...) is rejected with an ExerciseError (not "not done yet") by the notebook's check cell
  and by the hidden test of an autograder (``strict=True, seed=1``), and no listed mistake is named;
- a listed mistake, written as a learner would write it, is named as itself by the check cell;
- no message hands over a line of the exercise's solution code (read from ``solutions/``).

A last test feeds every known mistake of the checks of notebooks 00-05 (the check's own emulation) back to
that check and asserts that the message names that mistake and no other: the check's inputs tell the
mistakes apart.
"""

from __future__ import annotations

import functools
import math
import re

import pytest
import torch
import torch.nn.functional as F

from lvmlib import gaussian as lg
from lvmlib.checks import ExerciseError, ExerciseNotDone
from lvmlib.checks import ppca as pchecks
from lvmlib.checks import variational as varchecks, vae as vaechecks
from lvmlib.checks.vae import LectureVAE

import wrong_answers
from training_helpers import one_thread  # noqa: F401  (an autouse fixture: the checks' inputs are tiny)

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


def _post_lg_in_place(y, mu, Lam, A, b, L):
    y -= b  # the caller's y loses its offset
    return _post_parts(y, mu, Lam, A, torch.zeros_like(b), L)[::-1]


POSTERIOR_LG = {
    "changes y in place": _post_lg_in_place,
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
    "the mean over the data points, one number": lambda X, W, mu, s2: lg.log_normal_full(
        X, mu, W @ W.T + s2 * _eye(W.shape[0])).mean(),
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
def _kl_in_place(m, lv):
    var = lv.exp_()  # the caller's log_var becomes the variance
    return 0.5 * (m**2 + var - var.log() - 1).sum(-1)


KL = {
    "changes log_var in place (exp_)": _kl_in_place,
    "the mean's term alone": lambda m, lv: 0.5 * (m**2).sum(-1),
    "the textbook's -KL without its -1/2": lambda m, lv: (1 + lv - m**2 - lv.exp()).sum(-1),
    "KL the other way round, KL(p || q)": lambda m, lv: 0.5 * ((1 + m**2) * (-lv).exp() + lv - 1).sum(-1),
    "mu^2 forgotten": lambda m, lv: 0.5 * (lv.exp() - lv - 1).sum(-1),
    "not summed (B, M)": lambda m, lv: 0.5 * (m**2 + lv.exp() - lv - 1),
    "summed over the batch (M,)": lambda m, lv: 0.5 * (m**2 + lv.exp() - lv - 1).sum(0),
}

def _rp_no_grad(m, lv):
    with torch.no_grad():  # "sampling needs no gradient": but z must carry them to mu_z and log_var
        return m + torch.exp(0.5 * lv) * torch.randn_like(m)


REPARAMETERIZE = {
    "the draw made under torch.no_grad()": _rp_no_grad,
    "adds the noise into mu_z with add_": lambda m, lv: m.add_(torch.exp(0.5 * lv) * torch.randn_like(m)),
    "one eps per data point, shared by its dimensions": lambda m, lv: m + torch.exp(0.5 * lv) * torch.randn(
        m.shape[0], 1, dtype=m.dtype),
    "softplus(log_var) as the standard deviation": lambda m, lv: m + F.softplus(lv) * torch.randn_like(m),
    "uniform noise": lambda m, lv: m + torch.exp(0.5 * lv) * torch.rand_like(m),
    "one eps shared by every sample": lambda m, lv: m + torch.exp(0.5 * lv) * torch.randn(m.shape[-1], dtype=m.dtype),
    "sqrt(log_var) as the std (NaN for negative log_var)": lambda m, lv: m + lv.sqrt() * torch.randn_like(m),
    "mu times the noise": lambda m, lv: m * torch.exp(0.5 * lv) * torch.randn_like(m),
    "returns (z, eps)": lambda m, lv: (m + torch.exp(0.5 * lv) * torch.randn_like(m), torch.randn_like(m)),
}

def _iwae_in_place(lw):
    top = lw.max(0).values
    lw -= top  # stabilised in the caller's tensor
    return top + torch.log(torch.exp(lw).mean(0))


IWAE = {
    "changes log_w in place (subtracts the max)": _iwae_in_place,
    "minus log(K - 1)": lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[0] - 1),
    "the softmax-weighted mean of the log-weights": lambda lw: (torch.softmax(lw, 0) * lw).sum(0),
    "the estimate of p(x), not its log": lambda lw: torch.exp(torch.logsumexp(lw, 0) - math.log(lw.shape[0])),
    "logsumexp divided by K": lambda lw: torch.logsumexp(lw, 0) / lw.shape[0],
    "minus log B instead of log K": lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[1]),
    "one number for the batch": lambda lw: (torch.logsumexp(lw, 0) - math.log(lw.shape[0])).mean(),
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
    "log_softmax over the batch axis": lambda x, lg_: _gather(torch.log_softmax(lg_, 0), x).sum(-1),
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
    "one variance over all entries": lambda m, threshold=1e-2: (int(m.var() > threshold) * m.shape[1], m.var()),
    "threshold ignored (always 0.01)": lambda m, threshold=1e-2: (int((_var0(m) > 0.01).sum()), _var0(m)),
    "the fraction of active units, not their count": lambda m, threshold=1e-2: (
        float((_var0(m) > threshold).float().mean()), _var0(m)),
    "(A, count) in the wrong order": lambda m, threshold=1e-2: (_var0(m), int((_var0(m) > threshold).sum())),
    "the range max - min instead of the variance": lambda m, threshold=1e-2: (
        int(((m.max(0).values - m.min(0).values) > threshold).sum()), m.max(0).values - m.min(0).values),
}


# ----------------------------------------------------------------------------- the tables of this file
# {exercise: {label: wrong answer}}: plausible wrong answers that are none of the check's listed mistakes
UNLISTED = {
    "log_joint": LOG_JOINT,
    "unfamiliar": UNFAMILIAR,
    "log_normal_full": LOG_NORMAL_FULL,
    "linear_gaussian_marginal": MARGINAL,
    "linear_gaussian_posterior": POSTERIOR_LG,
    "M_matrix": M_MATRIX,
    "C_inverse": C_INVERSE,
    "log_likelihood": LOG_LIKELIHOOD,
    "sigma2_ml": SIGMA2_ML,
    "W_ml": W_ML,
    "posterior": POSTERIOR,
    "reconstruct": RECONSTRUCT,
    "em_step": EM_STEP,
    "kl_standard_normal": KL,
    "reparameterize": REPARAMETERIZE,
    "iwae_bound": IWAE,
    "LectureVAE": LECTURE_VAE,
    "log_px_categorical": CATEGORICAL,
    "active_units": ACTIVE_UNITS,
}


# ----------------------------------------------------------------------------- the catalogue
# entries whose check costs over a second a call (40,000 draws, a training-size batch, a refinement loop)
SLOW = {"reparameterize", "LectureVAE", "vae_step", "refine_posterior", "train_epoch"}


@functools.cache
def _inventory():
    """Read once per process: the solutions and the tables do not change while the tests run."""
    return wrong_answers.inventory()


def _known_mistakes(check) -> dict:
    """The known mistakes a check passes to check_function / check_through (recorded on a run with a stub),
    {description: emulation}; for a check that runs its own tests, {description: ()} from its module's MISTAKES."""
    if check in _RECORDED:
        return _RECORDED[check]
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
    if not recorded:  # a check with its own tests in place of check_function: its module lists the texts
        recorded = {text: () for text in getattr(module, "MISTAKES", {}).values()}
    _RECORDED[check] = recorded
    return recorded


_RECORDED: dict = {}


def _variants(value):
    return value if isinstance(value, (tuple, list)) else (value,)


def _marks(exercise):
    return [pytest.mark.slow] if exercise in SLOW else []


def pytest_generate_tests(metafunc):
    # the rows are made once this module is imported whole: the inventory reads this module's tables too
    names = metafunc.fixturenames
    if "unlisted" in names:
        metafunc.parametrize("exercise, label, unlisted", [
            pytest.param(ex.name, label, fn, id=f"{ex.name}: {label[:60]}", marks=_marks(ex.name))
            for ex in _inventory().values() for label, fn in ex.unlisted])
    elif "listed" in names:
        metafunc.parametrize("exercise, mistake, listed", [
            pytest.param(ex.name, mistake, fn, id=f"{ex.name}: {mistake[:50]} ({i})", marks=_marks(ex.name))
            for ex in _inventory().values() for i, (mistake, fn) in enumerate(ex.listed)])
    elif "emulation" in names:
        metafunc.parametrize("exercise, description, emulation", [
            pytest.param(ex.name, desc, variant, id=f"{ex.name}: {desc[:50]} ({i})", marks=_marks(ex.name))
            for ex in _inventory().values() if ex.notebook[:2] <= "05"
            for desc, variants in _known_mistakes(ex.check).items()
            for i, variant in enumerate(_variants(variants))])


def test_every_exercise_has_five_wrong_answers_at_least_half_of_them_unlisted():
    exercises = _inventory()
    assert len(exercises) >= 35  # the graded exercises of notebooks 00-08
    assert {"log_joint", "fit_and_score", "LectureVAE", "householder_chain"} <= set(exercises)
    assert all(ex.follows_the_rule() for ex in exercises.values()), "\n" + wrong_answers.format_table(exercises)


def test_the_exercises_are_read_from_the_graded_cells_of_the_solutions(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("kl = checks.variational.check_kl_standard_normal(kl)",
                                          metadata={"nbgrader": {"grade": True, "grade_id": "kl_check"}}),
                nbformat.v4.new_code_cell("x = checks.ppca.check_M_matrix(x)")]  # not graded: not an exercise
    nbformat.write(nb, tmp_path / "09_x.ipynb")
    found = wrong_answers.graded_exercises(tmp_path)
    assert list(found) == ["kl"] and found["kl"].check is varchecks.check_kl_standard_normal


_CODE: dict = {}


def _assert_no_solution_code(exercise, message):
    """A message names what is wrong; it never hands over a line of the solution's code, and prints numbers
    as numbers (no tensor or 0-d array repr)."""
    assert "array()" not in message and not re.search(r"(?<![.\w])tensor\(", message), message
    if not _CODE:
        _CODE.update(wrong_answers.solution_code())
    squeeze = lambda text: re.sub(r"\s+", "", text)  # noqa: E731
    text = squeeze(message)
    for line in _CODE.get(exercise, []):
        code = squeeze(line).removeprefix("return")
        assert len(code) < 24 or code not in text, f"the message gives the solution's line {line!r}:\n{message}"


def test_the_inventory_refuses_a_table_for_no_exercise_and_a_label_given_twice(monkeypatch):
    import types

    fake = types.SimpleNamespace(__name__="test_checks_fake", UNLISTED={"no_such_exercise": {"x": len}})
    monkeypatch.setattr(wrong_answers, "_test_modules", lambda: [fake])
    with pytest.raises(KeyError, match="no_such_exercise"):
        wrong_answers.inventory()
    twice = types.SimpleNamespace(__name__="test_checks_twice", UNLISTED={"log_joint": {"a slip": len}})
    monkeypatch.setattr(wrong_answers, "_test_modules", lambda: [twice, twice])
    with pytest.raises(ValueError, match="repeats 'a slip'"):
        wrong_answers.inventory()
    # the rule: five in all, as many unlisted as listed (or more)
    ex = wrong_answers.Exercise("x", "00_x.ipynb", len, listed=[("m", len)] * 2, unlisted=[("u", len)] * 3)
    assert ex.follows_the_rule()
    ex.listed += [("m", len)] * 2
    assert not ex.follows_the_rule()  # 4 listed, 3 unlisted
    assert not wrong_answers.Exercise("x", "00_x.ipynb", len, unlisted=[("u", len)] * 4).follows_the_rule()


def _rejects(check, wrong, **kwargs) -> str:
    with pytest.raises(ExerciseError) as info:
        check(wrong, **kwargs)
    assert not isinstance(info.value, ExerciseNotDone), (kwargs, str(info.value))
    return str(info.value)


def test_an_unlisted_wrong_answer_is_rejected_by_the_check_cell_and_the_hidden_test(exercise, label, unlisted):
    check = _inventory()[exercise].check
    known = _known_mistakes(check)
    assert label not in known and unlisted not in [v for vs in known.values() for v in _variants(vs)]
    for kwargs in ({}, {"strict": True, "seed": 1}):  # the notebook's check cell, the hidden test
        message = _rejects(check, unlisted, **kwargs)
        assert "This is a known mistake" not in message, (label, kwargs, message)  # none of the listed ones
        _assert_no_solution_code(exercise, message)
        if label.startswith("changes") and "in place" in label:
            assert "in place" in message, message


def test_a_listed_mistake_is_named_as_itself(exercise, mistake, listed):
    check = _inventory()[exercise].check
    assert any(mistake in description for description in _known_mistakes(check)), \
        f"{mistake!r} is not among the listed mistakes of {check.__name__}"
    message = _rejects(check, listed)  # the notebook's check cell: there the message is read
    named = [line for line in message.splitlines() if "This is a known mistake: " in line]
    assert named and mistake in named[0], message
    _assert_no_solution_code(exercise, message)


def test_every_known_mistake_is_named_as_itself(exercise, description, emulation):
    check = _inventory()[exercise].check
    message = _rejects(check, emulation)
    assert f"This is a known mistake: {description}" in message, message

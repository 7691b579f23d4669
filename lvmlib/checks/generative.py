"""Checks for notebook 00, why generative models: the log joint and the unfamiliar-input flag."""

from __future__ import annotations

import numpy as np
import torch

from lvmlib import generative
from lvmlib.checks._core import Case, check_function


def _log_softmax_rows(rng, n, k):
    return torch.log_softmax(torch.as_tensor(rng.normal(size=(n, k)) * 3), dim=1)


def check_log_joint(fn, *, strict=False, seed=0):
    """log_joint(log_p_y_given_x (N, K), log_p_x (N,)) -> log p(x, y) (N, K)."""

    def cases(rng):
        n, k = int(rng.integers(3, 8)), int(rng.integers(2, 11))
        # log p(x) between -6 and 1: exp(log p(x)) is then not negligible next to p(y|x), so that
        # "adding probabilities" differs from "log p(y|x) alone" (with log p(x) near -50 they coincide)
        return Case((_log_softmax_rows(rng, n, k), torch.as_tensor(rng.uniform(-6.0, 1.0, size=n))))

    return check_function(
        fn, generative.log_joint, cases, name="log_joint", strict=strict, seed=seed,
        known_mistakes={
            "multiplying the log-probabilities; a product of probabilities is a sum of logs":
                lambda a, b: a * b[:, None],
            "adding probabilities instead of log-probabilities":
                lambda a, b: torch.log(a.exp() + b.exp()[:, None]),
            "returning log p(y|x) alone, which ignores how probable x is": lambda a, b: a,
        },
        hint="log p(x, y) = log p(y|x) + log p(x); give log p(x) a class axis with [:, None].",
    )


def _quantile_band(ref: np.ndarray, fraction: float) -> tuple[float, float]:
    """An interval that holds the fraction-quantile of ``ref`` under every usual definition.

    Definitions differ (interpolating, lower, higher, nearest, the empirical CDF ...), but each
    lies between the order statistics just around position fraction * (R - 1); the interval
    reaches one order statistic further on each side.
    """
    s = np.sort(ref)
    pos = fraction * (len(s) - 1)
    lo, hi = max(0, int(np.floor(pos)) - 1), min(len(s) - 1, int(np.ceil(pos)) + 1)
    return float(s[lo]), float(s[hi])


def _unfamiliar_cases(rng: np.random.Generator) -> Case:
    ref = rng.normal(0, 10, size=int(rng.integers(50, 200)))
    fraction = float(rng.choice([0.01, 0.05, 0.1]))
    lp = np.concatenate([rng.normal(0, 10, size=20), rng.normal(-60, 20, size=10)])
    # no input sits where quantile definitions disagree: any of them gives the same flags
    lo, hi = _quantile_band(ref, fraction)
    inside = (lp >= lo - 0.5) & (lp <= hi + 0.5)
    lp[inside] = np.where(rng.random(int(inside.sum())) < 0.5, lo - 0.5 - rng.uniform(0.5, 5.0, int(inside.sum())),
                          hi + 0.5 + rng.uniform(0.5, 5.0, int(inside.sum())))
    return Case((torch.as_tensor(lp), torch.as_tensor(ref)), {"fraction": fraction})


def check_unfamiliar(fn, *, strict=False, seed=0):
    """unfamiliar(log_p_x (N,), log_p_x_reference (R,), fraction) -> boolean (N,).

    Any usual definition of the quantile is accepted (torch.quantile's interpolation, NumPy's
    other methods, a sorted index, the empirical CDF): no input lies where they disagree.
    """
    return check_function(
        fn, generative.unfamiliar, _unfamiliar_cases, name="unfamiliar", strict=strict, seed=seed,
        known_mistakes={
            "flagging the most probable inputs (> instead of <)":
                lambda lp, ref, fraction=0.01: lp > torch.quantile(ref, fraction),
            "using the (1 - fraction)-quantile; the threshold sits in the lower tail":
                lambda lp, ref, fraction=0.01: lp < torch.quantile(ref, 1 - fraction),
            "taking the quantile of the inputs themselves instead of the reference data":
                lambda lp, ref, fraction=0.01: lp < torch.quantile(lp, fraction),
        },
        hint="the threshold is the fraction-quantile of the REFERENCE inputs' log p(x); flag the inputs below it.",
    )

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
        return Case((_log_softmax_rows(rng, n, k), torch.as_tensor(rng.normal(-50, 20, size=n))))

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


def check_unfamiliar(fn, *, strict=False, seed=0):
    """unfamiliar(log_p_x (N,), log_p_x_reference (R,), fraction) -> boolean (N,)."""

    def cases(rng):
        ref = torch.as_tensor(rng.normal(0, 10, size=int(rng.integers(50, 200))))
        lp = torch.as_tensor(np.concatenate([rng.normal(0, 10, size=20), rng.normal(-60, 20, size=10)]))
        return Case((lp, ref), {"fraction": float(rng.choice([0.01, 0.05, 0.1]))})

    return check_function(
        fn, generative.unfamiliar, cases, name="unfamiliar", strict=strict, seed=seed,
        known_mistakes={
            "flagging the most probable inputs (> instead of <)":
                lambda lp, ref, fraction=0.01: lp > torch.quantile(ref, fraction),
            "using the (1 - fraction)-quantile; the threshold sits in the lower tail":
                lambda lp, ref, fraction=0.01: lp < torch.quantile(ref, 1 - fraction),
            "taking the quantile of the inputs themselves instead of the reference data":
                lambda lp, ref, fraction=0.01: lp < torch.quantile(lp, fraction),
        },
        hint="threshold = torch.quantile(log_p_x_reference, fraction); flag log_p_x below it.",
    )

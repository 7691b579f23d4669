"""How close do the ELBO and the importance-weighted estimate get to the exact log p(x)?

Probabilistic PCA is the one latent variable model of the course whose log-likelihood is
exact, so it measures the estimators of ``lvmlib.variational`` without any guesswork:

BASELINE  the exact PPCA log-likelihood log N(x | mu, W W^T + sigma2 I) (``lvmlib.ppca``),
          fitted in closed form (M = 8) on the 1000 training digits, evaluated on the 447
          test digits (scale "unit").
OURS      with q(z|x) = N(exact posterior mean, diag(exact posterior variances)) (the best a
          VAE's diagonal encoder can do here, since the true posterior covariance is full
          unless W^T W is diagonal; we rotate W by a random orthogonal R so that it is not):
          - the closed-form ELBO of that q (``gaussian_elbo_linear``),
          - the importance-sampling estimate ``log_px_importance`` for K = 1 .. 5000,
          - the same at K = 5000 with different chunk sizes (same answer, time per chunk size).

Reported: mean over the test set of (estimate - exact) in nats, its spread over 5 repeated
runs, and wall time. Written to results/iwae_ppca.{md,json}.

    python benchmarks/bench_iwae_ppca.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lvmlib import ppca  # noqa: E402
from lvmlib.data import digits_split  # noqa: E402
from lvmlib.priors import StandardNormalPrior  # noqa: E402
from lvmlib.variational import gaussian_elbo_linear, log_px_importance  # noqa: E402

from machine import cpu_model  # benchmarks/machine.py (the script's folder is on sys.path)

RESULTS = Path(__file__).resolve().parent / "results"
M = 8
DT = torch.float64


class PPCAWithDiagonalQ:
    """PPCA as a latent variable model with a diagonal-Gaussian encoder (the proposal)."""

    def __init__(self, W, mu, sigma2):
        self.W, self.mu, self.sigma2 = W, mu, float(sigma2)
        self.prior = StandardNormalPrior(W.shape[1]).to(DT)

    def encode(self, x):
        mean, cov = ppca.posterior(x, self.W, self.mu, self.sigma2)
        return mean, torch.log(torch.diagonal(cov)).expand_as(mean)

    def log_px_given_z(self, x, z):
        mean = z @ self.W.T + self.mu  # (K, B, D)
        return -0.5 * (((x - mean) ** 2).sum(-1) / self.sigma2 + x.shape[-1] * np.log(2 * np.pi * self.sigma2))


def main() -> None:
    torch.set_num_threads(1)
    split = digits_split(scale="unit")
    x_train = torch.as_tensor(split.train, dtype=DT)
    x_test = torch.as_tensor(split.test, dtype=DT)
    W, mu, sigma2 = ppca.closed_form(x_train, M)
    R = torch.linalg.qr(torch.randn(M, M, generator=torch.Generator().manual_seed(0), dtype=DT))[0]
    W = W @ R  # same model (the likelihood is invariant to R), but a non-diagonal posterior covariance
    exact = ppca.log_likelihood(x_test, W, mu, sigma2)  # (N,)
    model = PPCAWithDiagonalQ(W, mu, sigma2)
    q_mean, q_log_var = model.encode(x_test)
    elbo = gaussian_elbo_linear(x_test, W, mu, sigma2, q_mean, q_log_var)["elbo"]

    rows = [{"estimator": "exact log p(x) (baseline)", "K": None, "chunk": None,
             "mean_error": 0.0, "sd_over_runs": 0.0, "seconds": None}]
    rows.append({"estimator": "ELBO, closed form", "K": None, "chunk": None,
                 "mean_error": float((elbo - exact).mean()), "sd_over_runs": 0.0, "seconds": None})
    for K, chunk in [(1, 1), (10, 10), (100, 100), (1000, 250), (5000, 250), (5000, 1000), (5000, 5000)]:
        errs, secs = [], []
        for rep in range(5):
            g = torch.Generator().manual_seed(rep)
            t = time.perf_counter()
            est = log_px_importance(model, x_test, K=K, chunk=chunk, batch_size=None, generator=g)
            secs.append(time.perf_counter() - t)
            errs.append(float((est - exact).mean()))
        rows.append({"estimator": "importance sampling", "K": K, "chunk": chunk,
                     "mean_error": float(np.mean(errs)), "sd_over_runs": float(np.std(errs)),
                     "seconds": float(np.median(secs))})

    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "torch": torch.__version__, "python": platform.python_version()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "iwae_ppca.json").write_text(json.dumps({"machine": machine, "M": M,
        "n_test": len(x_test), "exact_mean_log_px": float(exact.mean()), "rows": rows}, indent=1))
    lines = [
        "# log p(x) estimators against the exact PPCA log-likelihood (digits, M = 8)",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
        f"({machine['torch_threads']} thread), Python {machine['python']}.",
        f"Test set: {len(x_test)} digits; exact mean log p(x) = {float(exact.mean()):.3f} nats.",
        "Error = mean over the test set of (estimate - exact), nats; sd over 5 runs; time = median of 5.",
        "",
        "| estimator | K | chunk | error (nats) | sd over runs | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = "" if r["seconds"] is None else f"{r['seconds']:.3f}"
        lines.append(f"| {r['estimator']} | {r['K'] or ''} | {r['chunk'] or ''} | {r['mean_error']:+.4f} | "
                     f"{r['sd_over_runs']:.4f} | {t} |")
    (RESULTS / "iwae_ppca.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Beyond the standard VAE on the 8x8 digits: learnable priors and a hierarchical VAE, side by side.

Setup: Tomczak's digits setup as in ``bench_vae_digits.py`` (first 1000 / next 350 / last 447
images, a 17-level categorical likelihood on the raw levels, M = 16), and lvmlib's standard VAE
configuration from there (``OURS_MODEL`` / ``OURS_TRAIN``: one hidden layer of 256 tanh units,
beta 1.5, Adam lr 8e-3, batch 256, weight decay 1e-2, weight averaging, early stopping on the
validation ELBO with patience 20). Each variant below changes ONLY the prior (or adds the second
latent level), keeping the encoder, the decoder and the training budget:

- standard normal prior (lvmlib's standard VAE, the reference of the comparison),
- a learnable mixture of Gaussians (``VAEConfig(prior="mog")``),
- the VampPrior (``VAEConfig(prior="vamp")``, pseudo-inputs initialised from training images),
- a two-level hierarchical VAE (``lvmlib.hierarchical``), z1 of 16 and z2 of 8 dimensions.

For each variant and each seed (0, 1, 2 by default; 1 torch thread): test -ELBO (averaged over
10 passes), test -log p(x) by importance sampling (K = 1000), the test KL (rate), active units,
epochs and wall time to the best model. Then means and standard deviations over the seeds.

    python benchmarks/bench_priors_digits.py           # writes results/priors_digits.{md,json}
    python benchmarks/bench_priors_digits.py --quick   # a few epochs, K = 50, one seed: sanity only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench_vae_digits import OURS_MODEL, OURS_TRAIN, machine_description  # noqa: E402

from lvmlib.data import digits_split  # noqa: E402
from lvmlib.hierarchical import HierarchicalVAE, HierarchicalVAEConfig  # noqa: E402
from lvmlib.training import TrainConfig, evaluate, train  # noqa: E402
from lvmlib.vae import VAE, VAEConfig  # noqa: E402
from lvmlib.variational import active_units, log_px_importance  # noqa: E402

RESULTS = HERE / "results"

# (name, model class, changes to OURS_MODEL, changes to OURS_TRAIN); the first is the reference.
VARIANTS = [
    ("standard normal prior", "vae", {}, {}),
    ("mixture of 16 Gaussians", "vae", {"prior": "mog", "n_components": 16}, {}),
    ("VampPrior, 16 pseudo-inputs", "vae", {"prior": "vamp", "n_components": 16}, {}),
    ("hierarchical, z1 16 + z2 8", "hvae", {"M2": 8}, {}),
]


def build(kind: str, model_kw: dict):
    cfg = {**OURS_MODEL, **model_kw, "device": "cpu"}
    if kind == "hvae":
        return HierarchicalVAE(HierarchicalVAEConfig(**cfg))
    return VAE(VAEConfig(**cfg))


def run_one(split, kind, model_kw, train_kw, seed, max_epochs, patience, K):
    torch.manual_seed(seed)
    model = build(kind, model_kw)
    model.init_prior(split.train, generator=torch.Generator().manual_seed(seed))
    kw = {**OURS_TRAIN, **train_kw, "max_epochs": max_epochs, "patience": patience, "seed": seed, "device": "cpu",
          "progress": False}
    result = train(model, split.train, split.val, TrainConfig(**kw))
    x_test = torch.as_tensor(split.test)
    torch.manual_seed(seed)
    passes = [evaluate(model, x_test) for _ in range(10)]
    neg_elbo = -float(np.mean([p["elbo"] for p in passes]))
    kl = float(np.mean([p["kl"] for p in passes]))
    with torch.no_grad():
        mu_z, _ = model.encode(x_test)
    au, _ = active_units(mu_z)
    t0 = time.perf_counter()
    log_px = log_px_importance(model, x_test, K=K, generator=torch.Generator().manual_seed(seed))
    return {
        "seed": seed, "test_neg_elbo": neg_elbo, "test_neg_log_px": -float(log_px.mean()), "test_kl": kl,
        "active_units": au, "epochs": result.epochs, "best_epoch": result.best_epoch,
        "time_to_best": result.time_to_best, "total_time": result.total_time, "is_time": time.perf_counter() - t0,
    }


METRICS = ("test_neg_elbo", "test_neg_log_px", "test_kl", "active_units", "epochs", "best_epoch", "time_to_best",
           "total_time")


def summarise(runs):
    out = {}
    for k in METRICS:
        v = np.array([r[k] for r in runs], dtype=float)
        out[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "values": v.tolist()}
    return out


def pm(s, fmt="{:.2f}"):
    return f"{fmt.format(s['mean'])} ± {fmt.format(s['sd'])}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 epochs, K = 50, seed 0: a sanity check, not a measurement")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="(default: 0 1 2; --quick: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--K", type=int, default=1000, help="importance samples for log p(x) (default: 1000)")
    p.add_argument("--only", type=int, nargs="+", default=None, help="indices of VARIANTS to run (default: all)")
    p.add_argument("--out", default=None, help="folder for priors_digits.md/.json (default: benchmarks/results; "
                   "not written with --quick unless given)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    max_epochs, patience, K = (3, 2, 50) if args.quick else (1000, 20, args.K)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    variants = [VARIANTS[i] for i in args.only] if args.only else VARIANTS
    split = digits_split(scale="raw")
    machine = machine_description(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    rows = []
    for name, kind, model_kw, train_kw in variants:
        runs = []
        for seed in seeds:
            r = run_one(split, kind, model_kw, train_kw, seed, max_epochs, patience, K)
            print(f"{name:32s} seed {seed}: -ELBO {r['test_neg_elbo']:.2f}  -log p(x) {r['test_neg_log_px']:.2f}  "
                  f"KL {r['test_kl']:.2f}  AU {r['active_units']}  epochs {r['epochs']} ({r['best_epoch']})  "
                  f"time to best {r['time_to_best']:.1f} s", flush=True)
            runs.append(r)
        rows.append({"name": name, "kind": kind, "model": {**OURS_MODEL, **model_kw}, "train": {**OURS_TRAIN, **train_kw},
                     "runs": runs, "summary": summarise(runs)})
    try:
        load_end = os.getloadavg()
    except OSError:
        load_end = None
    ref = rows[0]["summary"]
    for row in rows:
        s = row["summary"]
        gain = ref["test_neg_log_px"]["mean"] - s["test_neg_log_px"]["mean"]
        spread = max(ref["test_neg_log_px"]["sd"], s["test_neg_log_px"]["sd"])
        row["gain_over_reference"] = gain
        row["beats_reference_by_more_than_spread"] = bool(gain > spread)
        row["time_ratio_to_reference"] = s["time_to_best"]["mean"] / ref["time_to_best"]["mean"]
    best = min(rows, key=lambda r: r["summary"]["test_neg_log_px"]["mean"])
    record = {
        "benchmark": "priors_digits", "quick": args.quick, "started": started, "seeds": seeds, "K": K,
        "max_epochs": max_epochs, "patience": patience,
        "machine": {**machine, "load_average_at_end": load_end}, "rows": rows,
        "best": best["name"],
        "targets": {"best_test_neg_log_px_at_most": 89.0, "best_time_at_most_times_reference": 2.0},
        "targets_met": {"nll": best["summary"]["test_neg_log_px"]["mean"] <= 89.0,
                        "time": best["time_ratio_to_reference"] <= 2.0},
    }
    print(f"best: {best['name']} at {pm(best['summary']['test_neg_log_px'])} nats")
    out = Path(args.out) if args.out else (None if args.quick else RESULTS)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "priors_digits.json").write_text(json.dumps(record, indent=1, default=str))
        (out / "priors_digits.md").write_text(markdown(record))
        print(f"wrote {out / 'priors_digits.md'} and {out / 'priors_digits.json'}")
    return 0


# What the recorded run showed and what else was measured; printed under the tables of a full run.
NOTES = """
## Targets and what was tried

- **Each learnable prior beats the standard prior by more than the spread: not met.** See the gains in the
  table: the mixture of Gaussians and the standard prior are within about the seed-to-seed spread of each other,
  and the VampPrior and the hierarchical VAE are worse than the standard prior on these 1000 training images.
- **Best model at most 89.0 nats: not met.** The best mean of this run is in the line "Best" above; the gap to
  89.0 is that mean minus 89.0 (1.63 nats in the run of 2026-12-01).
- Before this run, single-seed screens (seed 0, -log p(x) with K = 250, same encoder, decoder and training as
  here unless named; throwaway scripts, not recorded benchmarks) measured: standard prior 90.65; mixture of 16
  Gaussians 90.70, with beta 2 90.96, with beta 1 91.27, with lr 4e-3 91.27, 4 components 91.20; VampPrior with 16
  pseudo-inputs 92.61, 64 92.59, 500 92.55, 16 with beta 2 92.82, 16 without weight decay 92.94, 64 with beta 1
  92.22. None came near 89 nats.
- What the numbers show: with a learnable prior the KL charged per image falls (test KL column), but the
  validation ELBO turns sooner (the VampPrior's best epoch is about 40-60 against about 100 for the standard
  prior): on 1000 images the extra flexibility is spent fitting the training set. The VampPrior's components are
  the encoder's posteriors at 16 (or more) training images, narrow Gaussians, so test codes between them pay a
  large KL. Tomczak & Welling (2018) measured the VampPrior's gains on data sets of tens of thousands of images.
- The standard prior's rows repeat lvmlib's standard VAE of `results/vae_digits.md` seed for seed (same
  configuration and seeds; the -log p(x) values agree to the last digit).
- Not tried for lack of time: a top-down inference path for the hierarchical VAE, MNIST.

## MNIST

MNIST figures are still to be measured: no GPU was available for this run, and the shared 2-core CPU (load
average 15-20 while this benchmark ran) is too slow for a bounded MNIST training of four models with three seeds
each. `python -m lvmlib.training --dataset mnist --prior vamp --hierarchical ...` trains the same models there.
"""


def markdown(rec) -> str:
    m = rec["machine"]
    lines = [
        "# Beyond the standard VAE on the digits: learnable priors and a hierarchical VAE",
        "",
        f"Run {rec['started']}{' (QUICK sanity mode: not a measurement)' if rec['quick'] else ''} with "
        f"`python benchmarks/bench_priors_digits.py`; seeds {', '.join(map(str, rec['seeds']))}; mean ± standard "
        f"deviation over the seeds; -log p(x) by importance sampling with K = {rec['K']}.",
        "",
        "| model | test -log p(x) | test -ELBO | test KL (rate) | active units | epochs (best) | time to best (s) | "
        "gain over the standard prior (nats) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rec["rows"]:
        s = r["summary"]
        if r is rec["rows"][0]:
            beats = "reference"
        elif r["gain_over_reference"] <= 0:
            beats = f"{r['gain_over_reference']:+.2f} (worse)"
        else:
            beats = (f"{r['gain_over_reference']:+.2f} ({'more' if r['beats_reference_by_more_than_spread'] else 'not more'} "
                     "than the spread)")
        lines.append(
            f"| {r['name']} | {pm(s['test_neg_log_px'])} | {pm(s['test_neg_elbo'])} | {pm(s['test_kl'])} | "
            f"{pm(s['active_units'], '{:.1f}')} | {pm(s['epochs'], '{:.0f}')} ({pm(s['best_epoch'], '{:.0f}')}) | "
            f"{pm(s['time_to_best'], '{:.1f}')} | {beats} |")
    best = next(r for r in rec["rows"] if r["name"] == rec["best"])
    lines += [
        "",
        f"Best: **{best['name']}**, {pm(best['summary']['test_neg_log_px'])} nats, time to best "
        f"{best['time_ratio_to_reference']:.2f}x the standard VAE's. Targets: at most 89.0 nats: "
        f"{'met' if rec['targets_met']['nll'] else 'NOT met'}; at most twice the standard VAE's time: "
        f"{'met' if rec['targets_met']['time'] else 'NOT met'}.",
        "",
        "Per seed (-log p(x)):",
        "",
        "| model | " + " | ".join(f"seed {s}" for s in rec["seeds"]) + " |",
        "|---|" + "---|" * len(rec["seeds"]),
    ]
    for r in rec["rows"]:
        lines.append(f"| {r['name']} | " + " | ".join(f"{x['test_neg_log_px']:.2f}" for x in r["runs"]) + " |")
    lines += ["", NOTES.strip(), ""] if not rec["quick"] else []
    lines += [
        "",
        "## Setup",
        "",
        "Every model: the configuration of lvmlib's standard VAE from `bench_vae_digits.py` "
        f"({', '.join(f'{k}={v}' for k, v in rec['rows'][0]['model'].items())}; trained with "
        f"{', '.join(f'{k}={v}' for k, v in rec['rows'][0]['train'].items())}), at most {rec['max_epochs']} epochs, "
        f"patience {rec['patience']}. Only the prior changes (or the second latent level is added). The KL of the "
        "learnable priors is a Monte Carlo estimate (one sample per image in training; averaged over 10 test "
        "passes here); the hierarchical model's KL is the total rate kl_z1 + kl_z2. Active units: Var_x(mu_z) > 0.01 "
        "on the test images (for the hierarchical model, of z1). The spread compared with a gain is the larger of "
        "the two models' standard deviations over the seeds.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']} ({m['logical_cpus']} logical CPUs), torch threads: {m['torch_threads']}",
        f"- torch {m['torch']}, numpy {m['numpy']}, Python {m['python']}, {m['platform']}",
        f"- load average at start / end: {m['load_average_at_start']} / {m['load_average_at_end']}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

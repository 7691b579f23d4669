"""Flow posteriors against the Gaussian posterior on the 8x8 digits.

Setup: the digits setup of ``bench_vae_digits.py`` (first 1000 / next 350 / last 447 images, a
17-level categorical likelihood on the raw levels, M = 16) with lvmlib's standard configuration
from there (``OURS_MODEL`` / ``OURS_TRAIN``: one hidden layer of 256 tanh units, beta 1.5, Adam lr
8e-3, batch 256, weight decay 1e-2, weight averaging, early stopping on the validation ELBO with
patience 20). Each variant changes ONLY q(z|x) (``VAEConfig(posterior=..., flow_length=K)``) and,
in the last pair, the prior; budget, schedule and early stopping are the same for every contender:

- the Gaussian posterior (the reference),
- planar, Householder and IAF flows of K steps on top of it (``lvmlib.flows``),
- then the learned prior of ``bench_priors_digits.py``'s best model (a mixture of 64 Gaussians with
  a KL warm-up of 20 epochs) under the Gaussian posterior and under the flow that has the best
  VALIDATION log-likelihood among the flows above (chosen on validation only, never test).

For each variant and each seed (0, 1, 2 by default; 1 torch thread): validation -log p(x) (importance
sampling, K = 200; what choices are made on), test -log p(x) (K = 1000), test -ELBO (mean of 10
passes), epochs and wall time. Differences to the reference are paired by seed: mean, sd and a 95%
t-interval over the seeds.

    python benchmarks/bench_flows_digits.py           # writes results/flows_digits.{md,json}
    python benchmarks/bench_flows_digits.py --quick   # a few epochs, K = 20, one seed: sanity only
"""

from __future__ import annotations

import argparse
import math
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

from bench_vae_digits import OURS_MODEL, OURS_TRAIN, machine_description, pm, seed_summary  # noqa: E402
from machine import write_results  # noqa: E402

from lvmlib.data import digits_split  # noqa: E402
from lvmlib.inference_gap import inference_gaps  # noqa: E402
from lvmlib.training import TrainConfig, evaluate, train  # noqa: E402
from lvmlib.vae import VAE, VAEConfig  # noqa: E402
from lvmlib.variational import log_px_importance  # noqa: E402

RESULTS = HERE / "results"
MOG = ({"prior": "mog", "n_components": 64}, {"warmup_epochs": 20})
METRICS = ("val_neg_log_px", "test_neg_log_px", "test_neg_elbo", "epochs", "best_epoch", "time_to_best", "total_time")
GAP_METRICS = ("gap_approximation", "gap_amortisation", "gap_log_px", "gap_elbo_star", "gap_elbo_phi")
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def variants(flow_length: int, long_planar: int | None):
    rows = [
        ("Gaussian posterior", {}, {}),
        (f"planar flow, K = {flow_length}", {"posterior": "planar", "flow_length": flow_length}, {}),
        (f"Householder flow, K = {flow_length}", {"posterior": "householder", "flow_length": flow_length}, {}),
        (f"IAF, K = {flow_length}", {"posterior": "iaf", "flow_length": flow_length}, {}),
    ]
    if long_planar:
        rows.append((f"planar flow, K = {long_planar}", {"posterior": "planar", "flow_length": long_planar}, {}))
    return rows


def run_one(split, model_kw, train_kw, seed, max_epochs, patience, K, K_val, n_gap, gap_steps):
    torch.manual_seed(seed)
    model = VAE(VAEConfig(**{**OURS_MODEL, **model_kw, "device": "cpu"}))
    model.init_prior(split.train, generator=torch.Generator().manual_seed(seed))
    kw = {**OURS_TRAIN, **train_kw, "max_epochs": max_epochs, "patience": patience, "seed": seed, "device": "cpu",
          "progress": False}
    result = train(model, split.train, split.val, TrainConfig(**kw))
    x_val, x_test = torch.as_tensor(split.val), torch.as_tensor(split.test)
    torch.manual_seed(seed)
    neg_elbo = -float(np.mean([evaluate(model, x_test)["elbo"] for _ in range(10)]))
    val = log_px_importance(model, x_val, K=K_val, generator=torch.Generator().manual_seed(seed + 100))
    t0 = time.perf_counter()
    test = log_px_importance(model, x_test, K=K, generator=torch.Generator().manual_seed(seed))
    out = {
        "seed": seed, "val_neg_log_px": -float(val.mean()), "test_neg_log_px": -float(test.mean()),
        "test_neg_elbo": neg_elbo, "epochs": result.epochs, "best_epoch": result.best_epoch,
        "time_to_best": result.time_to_best, "total_time": result.total_time, "is_time": time.perf_counter() - t0,
    }
    if n_gap:
        # Cremer et al.'s split of log p(x) - ELBO on the first n_gap test images (lvmlib.inference_gap)
        t0 = time.perf_counter()
        gaps = inference_gaps(model, x_test[:n_gap], K=K, n_elbo=500, steps=gap_steps,
                              generator=torch.Generator().manual_seed(seed + 200)).summary()
        out.update({"gap_approximation": gaps["approximation"]["mean"], "gap_amortisation": gaps["amortisation"]["mean"],
                    "gap_log_px": gaps["log_px"]["mean"], "gap_elbo_star": gaps["elbo_star"]["mean"],
                    "gap_elbo_phi": gaps["elbo_phi"]["mean"], "gap_time": time.perf_counter() - t0, "gap_detail": gaps})
    return out


def paired(ref_runs, runs, key="test_neg_log_px"):
    """Per-seed ref - variant (positive: the variant is better), mean, sd and a 95% t-interval."""
    d = np.array([a[key] - b[key] for a, b in zip(ref_runs, runs)])
    n = len(d)
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    half = T975.get(n - 1, 1.96) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"values": d.tolist(), "mean": float(d.mean()), "sd": sd, "ci95": [float(d.mean() - half), float(d.mean() + half)]}


def run_variant(name, model_kw, train_kw, split, seeds, args, budget):
    runs = []
    for seed in seeds:
        r = run_one(split, model_kw, train_kw, seed, *budget)
        print(f"{name:44s} seed {seed}: val -log p(x) {r['val_neg_log_px']:.2f}  test -log p(x) {r['test_neg_log_px']:.2f}  "
              f"-ELBO {r['test_neg_elbo']:.2f}  epochs {r['epochs']} ({r['best_epoch']})  "
              f"time to best {r['time_to_best']:.1f} s", flush=True)
        runs.append(r)
    metrics = METRICS + (GAP_METRICS if "gap_approximation" in runs[0] else ())
    return {"name": name, "model": {**OURS_MODEL, **model_kw}, "train": {**OURS_TRAIN, **train_kw}, "runs": runs,
            "summary": seed_summary(runs, metrics)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 epochs, K = 20, seed 0: a sanity check, not a measurement")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="(default: 0 1 2; --quick: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--K", type=int, default=1000, help="importance samples for the test log p(x) (default: 1000)")
    p.add_argument("--flow-length", type=int, default=4, help="K, flow steps of every flow (default: 4)")
    p.add_argument("--long-planar", type=int, default=16,
                   help="also a planar flow of this many steps among the flows (0: none) (default: 16)")
    p.add_argument("--gap-images", type=int, default=100,
                   help="test images for the approximation/amortisation gaps (0: none) (default: 100)")
    p.add_argument("--gap-steps", type=int, default=200, help="refinement steps of q* per point (default: 200)")
    p.add_argument("--out", default=None, help="folder for flows_digits.md/.json (default: benchmarks/results; "
                   "not written with --quick unless given)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    max_epochs, patience, K, K_val = (3, 2, 20, 10) if args.quick else (1000, 20, args.K, 200)
    n_gap, gap_steps = (min(args.gap_images, 10), 5) if args.quick else (args.gap_images, args.gap_steps)
    budget = (max_epochs, patience, K, K_val, n_gap, gap_steps)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    split = digits_split(scale="raw")
    machine = machine_description(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    t_start = time.perf_counter()
    rows = [run_variant(n, mk, tk, split, seeds, args, budget) for n, mk, tk in variants(args.flow_length, args.long_planar)]
    ref = rows[0]
    for row in rows[1:]:
        row["paired_gain"] = paired(ref["runs"], row["runs"])
    chosen = min(rows[1:], key=lambda r: r["summary"]["val_neg_log_px"]["mean"])
    print(f"flow chosen on validation: {chosen['name']}", flush=True)
    mog_kw, mog_train = MOG
    prior_ref = run_variant("Gaussian posterior, mixture of 64 Gaussians (warm-up 20)", mog_kw, mog_train, split, seeds,
                            args, budget)
    prior_flow = run_variant(f"{chosen['name']}, mixture of 64 Gaussians (warm-up 20)",
                             {**{k: v for k, v in chosen["model"].items() if k in ("posterior", "flow_length")}, **mog_kw},
                             mog_train, split, seeds, args, budget)
    prior_ref["paired_gain"] = paired(ref["runs"], prior_ref["runs"])
    prior_flow["paired_gain"] = paired(ref["runs"], prior_flow["runs"])
    prior_flow["paired_gain_over_same_prior"] = paired(prior_ref["runs"], prior_flow["runs"])
    rows += [prior_ref, prior_flow]
    best_flow = chosen
    best = min(rows, key=lambda r: r["summary"]["val_neg_log_px"]["mean"])
    try:
        load_end = os.getloadavg()
    except OSError:
        load_end = None
    record = {
        "benchmark": "flows_digits", "quick": args.quick, "started": started, "seeds": seeds, "K": K, "K_val": K_val,
        "max_epochs": max_epochs, "patience": patience, "flow_length": args.flow_length,
        "gap_images": n_gap, "gap_steps": gap_steps,
        "wall_time_s": time.perf_counter() - t_start,
        "machine": {**machine, "load_average_at_end": load_end}, "rows": rows,
        "flow_chosen_on_validation": best_flow["name"], "best_on_validation": best["name"],
        "targets": {"best_flow_gain_at_least": 1.0, "best_test_neg_log_px_at_most": 89.0},
        "targets_met": {"flow_gain": best_flow["paired_gain"]["mean"] >= 1.0,
                        "nll": best["summary"]["test_neg_log_px"]["mean"] <= 89.0},
    }
    print(f"best flow (validation): {best_flow['name']}, paired gain {best_flow['paired_gain']['mean']:+.2f} nats; "
          f"best model (validation): {best['name']} at {pm(best['summary']['test_neg_log_px'])} nats", flush=True)
    out = Path(args.out) if args.out else (None if args.quick else RESULTS)
    write_results(out, "flows_digits", record, markdown(record))
    return 0


def _gain(g):
    if g is None:
        return "reference"
    lo, hi = g["ci95"]
    return f"{g['mean']:+.2f} ± {g['sd']:.2f} [{lo:+.2f}, {hi:+.2f}]"


def markdown(rec) -> str:
    m = rec["machine"]
    lines = [
        "# Flow posteriors against the Gaussian posterior on the digits",
        "",
        f"Run {rec['started']} with `python benchmarks/bench_flows_digits.py`; seeds {', '.join(map(str, rec['seeds']))}; "
        f"mean ± standard deviation over the seeds; test -log p(x) by importance sampling with K = {rec['K']}, "
        f"validation -log p(x) with K = {rec['K_val']} (choices are made on it). Flows have K = {rec['flow_length']} "
        f"steps unless named. Same encoder, decoder, budget (at most {rec['max_epochs']} epochs, patience {rec['patience']}) and "
        "schedule for every row; only q(z|x) (and in the last two rows the prior) changes.",
        "",
        f"Machine: {m.get('cpu', m)}; {m.get('torch_threads', '')} torch thread(s), torch {m.get('torch', '')}; the 2 cores were shared with other work "
        f"(load average at the end {m.get('load_average_at_end')}), so times are indicative only; nats are unaffected. "
        f"Whole run: {rec['wall_time_s'] / 60:.1f} min.",
        "",
        "Paired gain = reference (Gaussian posterior, standard prior) minus the row, per seed, in test nats: mean ± sd "
        "[95% t-interval]; positive is better.",
        "",
        "| model | test -log p(x) | test -ELBO | val -log p(x) | paired gain (nats) | epochs (best) | time to best (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    has_gaps = "gap_approximation" in rec["rows"][0]["summary"]
    if has_gaps:
        lines[-2] = lines[-2] + " approximation gap | amortisation gap |"
        lines[-1] = lines[-1] + "---|---|"
    for row in rec["rows"]:
        s = row["summary"]
        gaps = f" {pm(s['gap_approximation'])} | {pm(s['gap_amortisation'])} |" if has_gaps else ""
        lines.append(
            f"| {row['name']} | {pm(s['test_neg_log_px'])} | {pm(s['test_neg_elbo'])} | {pm(s['val_neg_log_px'])} | "
            f"{_gain(row.get('paired_gain'))} | {s['epochs']['mean']:.0f} ± {s['epochs']['sd']:.0f} "
            f"({s['best_epoch']['mean']:.0f}) | {pm(s['time_to_best'], '{:.1f}')} |" + gaps
        )
    lines += ["", "Per seed (test -log p(x)):", "", "| model | " + " | ".join(f"seed {s}" for s in rec["seeds"]) + " |",
              "|---|" + "---|" * len(rec["seeds"])]
    for row in rec["rows"]:
        lines.append(f"| {row['name']} | " + " | ".join(f"{r['test_neg_log_px']:.2f}" for r in row["runs"]) + " |")
    last = rec["rows"][-1]
    if has_gaps:
        lines += ["", f"Gaps (Cremer, Li & Duvenaud 2018; `lvmlib.inference_gap.inference_gaps`) on the first "
                  f"{rec['gap_images']} test images, q* refined per point for {rec['gap_steps']} steps from the encoder's "
                  "output: approximation = log p(x) - ELBO(q*), amortisation = ELBO(q*) - ELBO(q_phi), nats, mean ± sd "
                  "over the seeds (each seed's value a mean over the images)."]
    lines += [
        "",
        f"Flow chosen on validation: **{rec['flow_chosen_on_validation']}**; best model on validation: "
        f"**{rec['best_on_validation']}**.",
        f"The flow with the learned prior against the Gaussian posterior with the same prior: "
        f"{_gain(last.get('paired_gain_over_same_prior'))} nats.",
        "",
        f"Targets: best flow at least 1 nat better than the Gaussian posterior: "
        f"{'met' if rec['targets_met']['flow_gain'] else 'NOT met'}; best digits model at most 89.0 nats: "
        f"{'met' if rec['targets_met']['nll'] else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

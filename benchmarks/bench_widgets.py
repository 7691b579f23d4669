"""How long does a latent widget take to redraw when a slider moves?

A slider feels live when the picture follows the hand, roughly under 50 ms per redraw. Measured
side by side in one run, on a VAE of the digits' size (D = 64, M = 16, H = 256) and of MNIST's size
(D = 784, M = 20, H = 512) (random weights: the time does not depend on training):

BASELINE  the way the p(x) explorer of notebook 01 redraws: decode E[x|z], draw a new matplotlib
          figure (imshow of the image) and render it to PNG, as ``display(fig)`` in an Output does.
OURS      the latent explorers of ``lvmlib.widgets``: decode on the model's device without
          gradients, map the grey levels through the colour map and write the PNG directly;
          timed by the widgets themselves (``drawn["seconds"]``, from the slider's new value to the
          PNG handed to the page) for the traversal, the interpolation and the 2-D latent space (which
          also marks the point on its pre-drawn two-panel picture and re-encodes that).

Reported: median and 90th percentile over 60 slider moves, one torch thread (as the notebooks set)
and torch's default thread count. Written to results/widgets.{md,json}.

    python benchmarks/bench_widgets.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lvmlib import vae, widgets  # noqa: E402

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {"digits size (D=64, M=16, H=256)": (64, 16, 256), "MNIST size (D=784, M=20, H=512)": (784, 20, 512)}


def model_and_data(D, M, H):
    torch.manual_seed(0)
    model = vae.VAE(vae.VAEConfig(D=D, M=M, H=H, likelihood="bernoulli", device="cpu"))
    x = torch.bernoulli(torch.full((200, D), 0.3), generator=torch.Generator().manual_seed(0))
    return model, x


def baseline_redraw(model, z, side):
    """Decode, then a new matplotlib figure rendered to PNG (what an Output + display(fig) does)."""
    start = time.perf_counter()
    with torch.no_grad():
        image = model.decoder.mean(torch.as_tensor(z[None], dtype=torch.float32))[0].numpy().reshape(side, side)
    fig, ax = plt.subplots(figsize=(2.3, 2.3))
    ax.imshow(image, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return time.perf_counter() - start


def moves(n):
    return np.concatenate([np.linspace(-2.5, 2.5, n // 2), np.linspace(2.5, -2.5, n - n // 2)])


def measure(n_moves):
    rows = []
    for size, (D, M, H) in SIZES.items():
        model, x = model_and_data(D, M, H)
        side = int(round(D ** 0.5))
        model_2d = vae.VAE(vae.VAEConfig(D=D, M=2, H=H, likelihood="bernoulli", device="cpu"))
        traversal = widgets.latent_traversal_explorer(model, x)
        interp = widgets.interpolation_explorer(model, x, 0, 1)
        space = widgets.latent_space_explorer(model_2d, x, grid=10)
        contenders = {
            "baseline: matplotlib figure per redraw": None,
            "ours: traversal": (traversal, traversal.controls[f"z{traversal.dims[0]}"]),
            "ours: interpolation": (interp, interp.controls["t"]),
            "ours: 2-D latent space": (space, space.controls["z0"]),
        }
        for name, what in contenders.items():
            seconds = []
            for v in moves(n_moves):
                if what is None:
                    z = np.zeros(M, dtype=np.float32)
                    z[0] = v
                    seconds.append(baseline_redraw(model, z, side))
                else:
                    box, slider = what
                    slider.value = float(np.clip(v / 2.5, 0, 1)) if slider.description == "t" else float(v)
                    seconds.append(box.drawn["seconds"])
            rows.append({"size": size, "contender": name, "threads": torch.get_num_threads(),
                         "median_ms": 1e3 * statistics.median(seconds),
                         "p90_ms": 1e3 * float(np.percentile(seconds, 90)), "n": len(seconds)})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 moves per contender, no results written")
    args = parser.parse_args(argv)
    n = 10 if args.quick else 60
    default_threads = torch.get_num_threads()
    rows = []
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        rows += measure(n)
    torch.set_num_threads(default_threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (f"{cpu_model()}, {os.cpu_count()} cores, {default_threads} torch threads by default, "
               f"torch {torch.__version__}, Python {platform.python_version()}; load average {load:.1f} at the end "
               "(a shared machine: other work ran beside the benchmark)")
    lines = ["# Redraw time of the latent widgets when a slider moves", "",
             f"Machine: {machine}.",
             f"Median and 90th percentile over {n} slider moves; the widgets time themselves (drawn['seconds']).", "",
             "| model | redraw | torch threads | median (ms) | 90th percentile (ms) |", "|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['contender']} | {r['threads']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} |"
              for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "widgets.md").write_text(text)
        (RESULTS / "widgets.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""VAE on MNIST: a loop written the way the PyTorch examples' VAE is written, against lvmlib.

Both train the same model on the same data for the same number of epochs, in one run:

- data: the 60,000 MNIST training images as grey levels in [0, 1] (the examples' ToTensor),
  the 10,000 test images for the test -ELBO;
- model: 784-400-20 MLP encoder (ReLU), 20-400-784 decoder (ReLU, sigmoid), Bernoulli
  likelihood (binary cross-entropy summed over pixels) plus the analytic KL to N(0, I);
- Adam with lr 1e-3, mini-batches of 128, shuffled each epoch.

BASELINE  the examples' structure: a module with fc1 (784-400), fc21 and fc22 (400-20), fc3
          (20-400) and fc4 (400-784); ``loss = BCE(sum) + KL``; a ``DataLoader`` over a
          ``Dataset`` that converts each uint8 image to a float tensor in [0, 1] per item (as
          torchvision's ToTensor does), with one worker and pinned memory on CUDA; the model
          moved to the device, each batch moved with ``.to(device)``, ``loss.item()`` every step.
OURS      ``lvmlib.vae.VAE`` (D=784, M=20, H=400, one hidden ReLU layer, Bernoulli) trained by
          ``lvmlib.training.train`` (the data on the device once, batches by indexing, one read
          from the device per epoch, the fused Adam), no validation split, same epochs.

OURS, COMPILED  the same, with ``TrainConfig(compile_model=True)`` (``torch.compile``); its first
          epoch includes the compilation, reported apart (``--no-compiled`` leaves it out).
FLOOR     the eleven matrix products of one training step alone (four in the forward pass, seven
          in the backward pass; same shapes and layouts, random data), repeated for one epoch's
          number of steps: no float32 implementation of this model on this BLAS can take less, so
          baseline / floor is the largest speed-up any loop could reach.

Measured: seconds per epoch of training (every epoch, and the median), images per second,
and the test -ELBO (nats per image, one z per image) after the same number of epochs.

    python benchmarks/bench_vae_mnist.py --data-dir /path/to/mnist          # CPU, 1 thread each
    python benchmarks/bench_vae_mnist.py --device cuda [--bf16]             # on a GPU
    python benchmarks/bench_vae_mnist.py --quick                             # a sanity run, writes nothing

The MNIST folder comes from --data-dir, else $LVMLIB_MNIST_DIR (see ``lvmlib.data.mnist_dir``).
Results: results/vae_mnist.{md,json} (CPU) or results/vae_mnist_cuda.{md,json} (GPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from machine import cpu_model, write_results  # noqa: E402  (benchmarks/machine.py; the script's folder is on sys.path)
from lvmlib.data import load_mnist  # noqa: E402
from lvmlib.runtime import get_device  # noqa: E402
from lvmlib.training import TrainConfig, evaluate, train  # noqa: E402
from lvmlib.vae import VAE, VAEConfig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BATCH, LR = 128, 1e-3


# ------------------------------------------------------------------------------- baseline


class ItemDataset(torch.utils.data.Dataset):
    """MNIST images stored as uint8; each item converted on access to a (1, 28, 28) float tensor
    in [0, 1], the way torchvision's ToTensor turns a PIL image into a tensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = images.reshape(-1, 28, 28)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        img = torch.from_numpy(np.array(self.images[i], dtype=np.uint8))  # (28, 28), a copy per item
        return img.unsqueeze(0).float().div(255.0), int(self.labels[i])


class ExampleVAE(nn.Module):
    """Layer for layer the examples' VAE: fc1, fc21/fc22, fc3, fc4; ReLU; sigmoid output."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def example_loss(recon, x, mu, logvar):
    """Binary cross-entropy summed over pixels and images, plus the KL summed likewise."""
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def run_baseline(data, epochs: int, device: torch.device, seed: int) -> dict:
    torch.manual_seed(seed)
    kwargs = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    train_loader = torch.utils.data.DataLoader(
        ItemDataset(data["train_images"], data["train_labels"]), batch_size=BATCH, shuffle=True, **kwargs
    )
    test_loader = torch.utils.data.DataLoader(
        ItemDataset(data["test_images"], data["test_labels"]), batch_size=BATCH, shuffle=False, **kwargs
    )
    model = ExampleVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    epoch_s, cpu_s, train_loss = [], [], []
    for _ in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        total = 0.0
        for x, _ in train_loader:
            x = x.to(device)
            optimizer.zero_grad()
            recon, mu, logvar = model(x)
            loss = example_loss(recon, x, mu, logvar)
            loss.backward()
            total += loss.item()
            optimizer.step()
        epoch_s.append(time.perf_counter() - t0)
        cpu_s.append(time.process_time() - c0)
        train_loss.append(total / len(train_loader.dataset))
    model.eval()
    test_total = 0.0
    with torch.no_grad():
        for x, _ in test_loader:
            x = x.to(device)
            recon, mu, logvar = model(x)
            test_total += example_loss(recon, x, mu, logvar).item()
    return {"epoch_s": epoch_s, "cpu_s": cpu_s, "train_neg_elbo": train_loss,
            "test_neg_elbo": test_total / len(test_loader.dataset)}


# ------------------------------------------------------------------------------- ours


def run_ours(data, epochs: int, device: torch.device, seed: int, bf16: bool, compile_model: bool) -> dict:
    torch.manual_seed(seed)
    model = VAE(VAEConfig(D=784, M=20, H=400, n_hidden_layers=1, activation="relu", likelihood="bernoulli",
                          device=str(device)))
    x_train = data["train_images"].astype(np.float32) / 255.0
    x_test = data["test_images"].astype(np.float32) / 255.0
    cfg = TrainConfig(optimizer="adam", lr=LR, batch_size=BATCH, max_epochs=epochs, patience=None, seed=seed,
                      device=str(device), progress=False, bf16=bf16, compile_model=compile_model)
    cpu_s = []

    def cpu_clock(info):  # process CPU time of each epoch, read at its end
        cpu_s.append(time.process_time())

    c0 = time.process_time()
    result = train(model, x_train, None, cfg, callbacks=[cpu_clock])
    cpu_s = [b - a for a, b in zip([c0] + cpu_s[:-1], cpu_s)]
    times = result.history["time"]
    epoch_s = [b - a for a, b in zip([0.0] + times[:-1], times)]  # wall time of each whole epoch
    torch.manual_seed(seed)
    test = evaluate(model, x_test)
    return {"epoch_s": epoch_s, "cpu_s": cpu_s, "train_pass_s": result.history["train_time"],
            "train_neg_elbo": [-v for v in result.history["train"]["elbo"]], "test_neg_elbo": -test["elbo"]}


# ------------------------------------------------------------------------------- floor


def matmul_floor(n_train: int, device: torch.device, seed: int, repeats: int = 3) -> dict:
    """Seconds per epoch of the matrix products of training alone (the best of ``repeats`` epochs).

    One step of the 784-400-20 VAE at batch B does four products forward (x W1^T, h W2^T with
    W2 (2M, H), z W3^T, h' W4^T) and seven backward (dW4, dh', dW3, dz, dW2, dh, dW1; no product
    for the gradient of the data x). Here they run with the step's shapes and transposed
    layouts (``F.linear`` forward, ``g^T a`` and ``g W`` backward), nothing else in between.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    D, H, M, B = 784, 400, 20, BATCH

    def r(*shape):
        return (torch.randn(*shape, generator=g) * 0.05).to(device)

    W1, b1, W2, b2, W3, b3, W4, b4 = r(H, D), r(H), r(2 * M, H), r(2 * M), r(H, M), r(H), r(D, H), r(D)
    x, h, z, h2 = r(B, D), r(B, H), r(B, M), r(B, H)
    g4, g3, g2, g1 = r(B, D), r(B, H), r(B, 2 * M), r(B, H)
    steps = -(-n_train // BATCH)
    # multiply-adds per step: D*H five times (x W1^T, h' W4^T, dW4, dh', dW1), 2M*H three times
    # (h W2^T, dW2, dh), M*H three times (z W3^T, dW3, dz); two flops each
    flops = 2 * B * (5 * D * H + 3 * (2 * M) * H + 3 * M * H)

    def one_step():
        F.linear(x, W1, b1), F.linear(h, W2, b2), F.linear(z, W3, b3), F.linear(h2, W4, b4)
        g4.t() @ h2, g4 @ W4, g3.t() @ z, g3 @ W3, g2.t() @ h, g2 @ W2, g1.t() @ x

    for _ in range(20):
        one_step()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            one_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return {"epoch_s": best, "steps": steps, "gflop_per_epoch": flops * steps / 1e9,
            "gflop_per_s": flops * steps / best / 1e9}


# ------------------------------------------------------------------------------- report


def machine(device: torch.device, threads: int) -> dict:
    info = {
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical CPUs)",
        "torch_threads": threads,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


SIDES = {"baseline": "baseline (examples' loop, DataLoader)", "ours": "ours (lvmlib.training)",
         "compiled": "ours, compiled"}


def steady(rec: dict, side: str, key: str) -> list[float]:
    """The epochs that measure steady training: all but the first for the compiled run (its first
    epoch includes the compilation), every epoch otherwise."""
    xs = rec[side][key]
    return xs[1:] if side == "compiled" and len(xs) > 1 else xs


def summarise(rec: dict) -> dict:
    out = {}
    sides = [k for k in SIDES if k in rec]
    for side in sides:
        s = statistics.median(steady(rec, side, "epoch_s"))
        c = statistics.median(steady(rec, side, "cpu_s"))
        out[side] = {"median_epoch_s": s, "images_per_s": rec["n_train"] / s, "median_epoch_cpu_s": c}
        if side != "baseline":
            out[side]["speedup"] = out["baseline"]["median_epoch_s"] / s
            out[side]["speedup_cpu_time"] = out["baseline"]["median_epoch_cpu_s"] / c
            out[side]["test_neg_elbo_diff"] = rec[side]["test_neg_elbo"] - rec["baseline"]["test_neg_elbo"]
    if "compiled" in rec and len(rec["compiled"]["epoch_s"]) > 1:
        out["compiled"]["compile_s"] = rec["compiled"]["epoch_s"][0] - out["compiled"]["median_epoch_s"]
    out["speedup"] = out["ours"]["speedup"]  # the default trainer, no compilation
    best = max((k for k in sides if k != "baseline"), key=lambda k: out[k]["speedup"])
    out["best"] = best
    if "floor" in rec:
        out["floor_speedup"] = out["baseline"]["median_epoch_s"] / rec["floor"]["epoch_s"]
    return out


def markdown(rec: dict) -> str:
    s = rec["summary"]
    cuda = rec["device"].startswith("cuda")
    target = 30.0 if cuda else 3.0
    sides = [k for k in SIDES if k in rec]
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    row = lambda label, f: f"| {label} | " + " | ".join(f(k) for k in sides) + " |"  # noqa: E731
    n_med = {k: len(steady(rec, k, "epoch_s")) for k in sides}
    lines = [
        f"# VAE on MNIST ({'GPU' if cuda else 'CPU'}): the PyTorch examples' loop vs. lvmlib",
        "",
        f"Run {rec['date']} with `{rec['command']}`.",
        "",
        "| | " + " | ".join(SIDES[k] for k in sides) + " |",
        "|---|" + "---|" * len(sides),
        row("seconds per epoch (median)", lambda k: f"{s[k]['median_epoch_s']:.2f} (of {n_med[k]})"),
        row("seconds of each epoch", lambda k: fmt(rec[k]["epoch_s"])),
        row("process CPU seconds per epoch (median)", lambda k: f"{s[k]['median_epoch_cpu_s']:.2f}"),
        row("images per second", lambda k: f"{s[k]['images_per_s']:,.0f}"),
        row("speed-up per epoch over the baseline", lambda k: "1" if k == "baseline" else f"**{s[k]['speedup']:.2f}x**"),
        row("training -ELBO per epoch (nats/image)", lambda k: fmt(rec[k]["train_neg_elbo"])),
        row(f"test -ELBO after {rec['epochs']} epochs (nats/image)", lambda k: f"{rec[k]['test_neg_elbo']:.2f}"),
        "",
    ]
    for k in sides[1:]:
        lines.append(
            f"- {SIDES[k]}: **{s[k]['speedup']:.2f}x** per epoch (target: at least {target:.0f}x: "
            f"{'met' if s[k]['speedup'] >= target else 'NOT met'}); in process CPU time, which the load of other "
            f"work on the machine does not stretch, {s[k]['speedup_cpu_time']:.2f}x; test -ELBO minus the "
            f"baseline's {s[k]['test_neg_elbo_diff']:+.2f} nats."
        )
    if "compile_s" in s.get("compiled", {}):
        lines.append(f"- The compiled run's first epoch includes {s['compiled']['compile_s']:.1f} s of compilation "
                     "(its steady epochs are the later ones).")
    if "floor" in rec:
        f = rec["floor"]
        lines += [
            "",
            "## The floor: the matrix products alone",
            "",
            f"The eleven matrix products of a training step ({f['gflop_per_epoch']:.0f} GFLOP per epoch of "
            f"{f['steps']} steps), run alone with the same shapes: **{f['epoch_s']:.2f} s per epoch** "
            f"({f['gflop_per_s']:.0f} GFLOP/s; best of 3). No float32 loop for this model on this BLAS and "
            f"thread count takes less, so the largest speed-up any loop could reach over this baseline is "
            f"{s['floor_speedup']:.2f}x. A {target:.0f}x epoch would take "
            f"{s['baseline']['median_epoch_s'] / target:.2f} s, leaving "
            f"{s['baseline']['median_epoch_s'] / target - f['epoch_s']:.2f} s per epoch for everything that is "
            f"not a matrix product (the batches, the activations, the loss and its gradient, Adam); "
            + ", ".join(f"{SIDES[k]} spends {s[k]['median_epoch_s'] - f['epoch_s']:.2f} s on it" for k in sides[1:])
            + ".",
        ]
    lines += [
        "",
        "## Setup",
        "",
        f"MNIST, the {rec['n_train']} training images as grey levels in [0, 1], the {rec['n_test']} test images; "
        f"784-400-20 encoder and 20-400-784 decoder with ReLU, Bernoulli likelihood (summed binary cross-entropy) "
        f"and the analytic KL; Adam lr 1e-3; batch 128; {rec['epochs']} epochs; seed {rec['seed']}; device "
        f"{rec['device']}; lvmlib options: bf16={rec['bf16']}.",
        "",
        "- baseline: written in this script with the examples' structure (fc1, fc21/fc22, fc3, fc4; sigmoid and "
        "`binary_cross_entropy(reduction='sum')` + KL; `DataLoader(shuffle=True)` over a `Dataset` that converts "
        "each uint8 image per item; `loss.item()` each step).",
        "- ours: `lvmlib.vae.VAE` + `lvmlib.training.train`, no validation split; the seconds per epoch are the "
        "wall time of each whole epoch of `train`.",
        "- ours, compiled: the same with `TrainConfig(compile_model=True)`; the median is over its epochs after "
        "the first.",
        "- all: test -ELBO with one z per image over the whole test set (the examples' test loss).",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in rec["machine"].items()],
        f"- load average (1, 5, 15 min) at start / end: {rec['load_start']} / {rec['load_end']}",
        "",
    ]
    if not cuda:
        lines += [
            "## GPU",
            "",
            "The GPU figures (target: at least 30x the baseline's epoch time on the same GPU, and an lvmlib MNIST "
            "epoch at batch 128 in under 0.5 s on one H200) are still to be measured: no GPU was available for this "
            "run. Measure them with `python benchmarks/bench_vae_mnist.py --device cuda` (optionally `--bf16`); "
            "that run writes results/vae_mnist_cuda.md.",
            "",
        ]
    if rec.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in rec["notes"]], ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $LVMLIB_MNIST_DIR)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for both (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true", help="lvmlib: bfloat16 autocast (CUDA)")
    p.add_argument("--no-compiled", action="store_true", help="leave out the compiled run of lvmlib")
    p.add_argument("--no-floor", action="store_true", help="leave out the matrix products' floor")
    p.add_argument("--quick", action="store_true", help="6,000 training images, 1 epoch; writes nothing unless --out")
    p.add_argument("--out", default=None, help="results folder (default: benchmarks/results, not with --quick)")
    p.add_argument("--note", action="append", default=[], help="a note for the results file")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be positive integers")
    device = get_device(args.device)
    torch.set_num_threads(args.threads)
    data = load_mnist(args.data_dir, download=False)
    epochs = args.epochs
    if args.quick:
        data = {k: v[:6000] if k.startswith("train") else v[:2000] for k, v in data.items()}
        epochs = 1

    load_start = [round(v, 2) for v in os.getloadavg()]
    baseline = run_baseline(data, epochs, device, args.seed)
    print(f"baseline: {statistics.median(baseline['epoch_s']):.2f} s/epoch, test -ELBO {baseline['test_neg_elbo']:.2f}")
    ours = run_ours(data, epochs, device, args.seed, args.bf16, False)
    print(f"ours:     {statistics.median(ours['epoch_s']):.2f} s/epoch, test -ELBO {ours['test_neg_elbo']:.2f}")
    extra = {}
    if not args.no_compiled:
        extra["compiled"] = run_ours(data, epochs, device, args.seed, args.bf16, True)
        print(f"compiled: {extra['compiled']['epoch_s']} s per epoch, test -ELBO {extra['compiled']['test_neg_elbo']:.2f}")
    if not args.no_floor:
        extra["floor"] = matmul_floor(len(data["train_images"]), device, args.seed)
        print(f"floor:    {extra['floor']['epoch_s']:.2f} s/epoch of matrix products alone")
    rec = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": "python benchmarks/bench_vae_mnist.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(device),
        "epochs": epochs,
        "seed": args.seed,
        "bf16": args.bf16,
        "n_train": len(data["train_images"]),
        "n_test": len(data["test_images"]),
        "baseline": baseline,
        "ours": ours,
        **extra,
        "machine": machine(device, args.threads),
        "load_start": load_start,
        "load_end": [round(v, 2) for v in os.getloadavg()],
        "notes": args.note,
    }
    rec["summary"] = summarise(rec)
    for k in [k for k in SIDES if k in rec][1:]:
        print(f"speed-up per epoch, {SIDES[k]}: {rec['summary'][k]['speedup']:.2f}x; test -ELBO difference "
              f"{rec['summary'][k]['test_neg_elbo_diff']:+.2f} nats")
    out = Path(args.out) if args.out else (None if args.quick else RESULTS)
    write_results(out, "vae_mnist_cuda" if device.type == "cuda" else "vae_mnist", rec, markdown(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())

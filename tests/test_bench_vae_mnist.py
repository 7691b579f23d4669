"""The MNIST benchmark's floor counts the same matrix products as a real training step."""

import importlib.util
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from lvmlib.vae import VAE, VAEConfig

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("bench_vae_mnist", ROOT / "benchmarks" / "bench_vae_mnist.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return mod


def test_floor_counts_the_flops_of_a_training_step():
    bench = load_bench()
    floor = bench.matmul_floor(bench.BATCH, torch.device("cpu"), seed=0, repeats=1)  # one step per "epoch"
    assert floor["steps"] == 1 and floor["epoch_s"] > 0

    torch.manual_seed(0)
    model = VAE(VAEConfig(D=784, M=20, H=400, n_hidden_layers=1, activation="relu", likelihood="bernoulli"))
    x = torch.rand(bench.BATCH, 784)
    with FlopCounterMode(display=False) as counter:
        model(x)["loss"].backward()
    matmul_flops = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "mm" in str(k))
    assert matmul_flops == counter.get_total_flops()  # every counted flop is a matrix product
    assert floor["gflop_per_epoch"] * 1e9 == matmul_flops

"""What the training tests share: one torch thread for tiny models, and a tiny VAE."""

import pytest
import torch

from lvmlib.training import main
from lvmlib.vae import VAE, VAEConfig


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The models here are tiny: one thread is fastest and does not stall on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_vae(seed: int = 0, **kw) -> VAE:
    """A Bernoulli VAE with D=6, M=2, H=8 on the CPU, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    cfg = dict(D=6, M=2, H=8, n_hidden_layers=1, likelihood="bernoulli", device="cpu")
    cfg.update(kw)
    return VAE(VAEConfig(**cfg))


def run_cli(argv, capsys):
    """``python -m lvmlib.training`` with ``argv`` in this process: (exit code, what it wrote to stderr)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err

"""Pretrained VAEs shipped with lvmlib, verified by SHA-256 before they are loaded.

Each model is two files in this folder: ``NAME.pt``, a dict of plain values and tensors
({"format", "name", "model_config", "model_state"}) read with ``torch.load(weights_only=True)``,
and ``NAME.json``, which records the file's SHA-256, the exact command that trained it, the data,
the epochs, the wall time, the machine, and its test -ELBO and importance-sampled test
log-likelihood. ``load`` checks the bytes against the recorded SHA-256 first and refuses a file
that does not match; nothing is downloaded.

    from lvmlib import pretrained
    vae = pretrained.load("mnist_vae")      # 784-400-20 ReLU, Bernoulli, dynamically binarized MNIST
    vae2 = pretrained.load("mnist_vae_2d")  # M = 2: a latent space to look at
    pretrained.info("mnist_vae")["test_neg_log_px"]
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["available", "info", "load", "PretrainedChecksumError", "FOLDER"]

FOLDER = Path(__file__).resolve().parent
FORMAT = 1


class PretrainedChecksumError(ValueError):
    """A shipped model file does not match the SHA-256 recorded beside it."""


def available(folder: str | os.PathLike | None = None) -> list[str]:
    """The names of the models in ``folder`` (default: the ones shipped with lvmlib)."""
    folder = FOLDER if folder is None else Path(folder)
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.pt").is_file())


def info(name: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The record beside model ``name``: sha256, command, data, epochs, wall time, machine, scores."""
    folder = FOLDER if folder is None else Path(folder)
    names = available(folder)
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"name must be one of the pretrained models {names}, got {name!r}")
    return json.loads((folder / f"{name}.json").read_text())


def sha256_of(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(name: str, device: str | torch.device = "cpu", folder: str | os.PathLike | None = None):
    """The pretrained ``lvmlib.vae.VAE`` called ``name``, in eval mode on ``device``.

    The file's SHA-256 is checked against the recorded one before anything is unpickled, and the
    verified bytes are read with ``weights_only=True`` (tensors and plain values only).
    Raises: ValueError for an unknown name, PretrainedChecksumError for a file that was altered.
    """
    from lvmlib.runtime import get_device
    from lvmlib.training.checkpoints import vae_from_state

    folder = FOLDER if folder is None else Path(folder)
    record = info(name, folder)
    path = folder / f"{name}.pt"
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != record.get("sha256"):
        raise PretrainedChecksumError(
            f"the pretrained model file {str(path)!r} does not match its recorded SHA-256 "
            f"(recorded {record.get('sha256')}, the file has {digest}): it was altered or damaged, "
            "so it is not loaded; reinstall lvmlib to get the original file"
        )
    content = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if not isinstance(content, dict) or content.get("format") != FORMAT or "model_state" not in content:
        raise ValueError(f"{str(path)!r} is not a pretrained model file of format {FORMAT}")
    dev = get_device(device)
    return vae_from_state(content["model_config"], content["model_state"], repr(str(path)), dev)

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


def _folder(folder) -> Path:
    if folder is None:
        return FOLDER
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike) or None, got {type(folder).__name__}")
    path = Path(folder).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"folder {str(path)!r} does not exist: pass the folder that holds NAME.pt and "
                                "NAME.json, or folder=None for the models shipped with lvmlib")
    if not path.is_dir():
        raise NotADirectoryError(f"folder must name a folder (holding NAME.pt and NAME.json), but {str(path)!r} is a file")
    return path


def available(folder: str | os.PathLike | None = None) -> list[str]:
    """The names of the models in ``folder`` (default: the ones shipped with lvmlib): a NAME.json with its NAME.pt."""
    folder = _folder(folder)
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.pt").is_file())


def info(name: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The record beside model ``name``: sha256, command, data, epochs, wall time, machine, scores."""
    folder = _folder(folder)
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be the name of a pretrained model such as 'mnist_vae', got {name!r}")
    record_path, weights = folder / f"{name}.json", folder / f"{name}.pt"
    if not record_path.is_file():
        names = available(folder)
        lone = f" ({weights} is there, but not its record {record_path.name})" if weights.is_file() else ""
        raise ValueError(f"name must be one of the pretrained models {names} (in {str(folder)!r}), got {name!r}{lone}")
    if not weights.is_file():
        raise FileNotFoundError(f"the pretrained model {name!r} has its record {str(record_path)!r} but not its weights "
                                f"{str(weights)!r}: put the .pt file beside the .json (or reinstall lvmlib)")
    try:
        record = json.loads(record_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"the record {str(record_path)!r} of the pretrained model {name!r} is not valid JSON "
                         f"({err}): restore it (or reinstall lvmlib)") from None
    if not isinstance(record, dict):
        raise ValueError(f"the record {str(record_path)!r} must hold a JSON object, got {type(record).__name__}")
    return record


def sha256_of(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(name: str, device: str | torch.device = "cpu", folder: str | os.PathLike | None = None):
    """The pretrained ``lvmlib.vae.VAE`` called ``name``, in eval mode on ``device``.

    The file's SHA-256 is checked against the recorded one before anything is unpickled, and the
    verified bytes are read with ``weights_only=True`` (tensors and plain values only).
    Raises: ValueError for an unknown name or a record that is not valid JSON or has no "sha256",
    FileNotFoundError for a missing folder or weights file, PretrainedChecksumError for a file
    that was altered.
    """
    from lvmlib.runtime import get_device
    from lvmlib.training.checkpoints import vae_from_state

    dev = get_device(device)  # before reading anything: a device this machine lacks is not the file's fault
    folder = _folder(folder)
    record = info(name, folder)
    path = folder / f"{name}.pt"
    recorded = record.get("sha256")
    if not isinstance(recorded, str) or len(recorded) != 64:
        raise ValueError(f"the record {str(folder / (name + '.json'))!r} has no \"sha256\" of the weights (64 hex "
                         f"digits), got {recorded!r}: without it the weights cannot be verified, so they are not "
                         "loaded; restore the record (tools/export_pretrained.py writes it)")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != recorded:
        raise PretrainedChecksumError(
            f"the pretrained model file {str(path)!r} does not match its recorded SHA-256 "
            f"(recorded {recorded}, the file has {digest}): it was altered or damaged, "
            "so it is not loaded; reinstall lvmlib to get the original file"
        )
    content = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if not isinstance(content, dict) or content.get("format") != FORMAT or "model_state" not in content:
        raise ValueError(f"{str(path)!r} is not a pretrained model file of format {FORMAT}")
    return vae_from_state(content["model_config"], content["model_state"], repr(str(path)), dev,
                          content.get("model_class"))

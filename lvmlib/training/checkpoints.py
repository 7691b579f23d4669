"""Checkpoints: plain dicts of tensors and built-in values, written atomically, read with weights_only.

A checkpoint holds everything a run needs to continue exactly: the weights, the optimiser and
schedule, the history, the best weights so far, the elapsed time and the random state.
Keys: "format", "model_state", "model_config" (dict or None), "model_class", "train_config",
"optimizer_state", "scheduler_state", "history", "epoch", "best_state", "best_epoch",
"best_val", "elapsed", "time_to_best", "rng_state", "ema_state".
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lvmlib.training.results import plain

__all__ = ["save_checkpoint", "load_checkpoint", "load_vae", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a checkpoint dict with ``torch.save`` (atomically: a temporary file, then rename).

    The dict must hold only tensors and built-in containers/scalars so that
    ``torch.load(path, weights_only=True)`` can read it (no pickled classes).
    Inputs: path, state (dict). Returns: the path written.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``train``/``save_checkpoint`` with ``weights_only=True``.

    Keys: "format", "model_state", "model_config" (dict or None), "train_config",
    "optimizer_state", "scheduler_state", "history", "epoch", "best_state", "best_epoch",
    "best_val", "elapsed", "time_to_best", "rng_state".
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or "model_state" not in ckpt:
        raise ValueError(f"{str(path)!r} is not a checkpoint written by lvmlib.training (no 'model_state')")
    return ckpt


def load_vae(path: str | os.PathLike, map_location: str | torch.device | None = "cpu", *, best: bool = True) -> nn.Module:
    """Rebuild a ``lvmlib.vae.VAE`` from a checkpoint: ``VAE(VAEConfig(**model_config))``.

    best=True loads the best weights (the ones ``train`` restored), otherwise the latest.
    The model is returned in eval mode on ``map_location``.
    """
    from lvmlib.vae import VAE, VAEConfig

    ckpt = load_checkpoint(path, map_location=map_location)
    cfg_dict = ckpt.get("model_config")
    if not cfg_dict:
        raise ValueError(f"{str(path)!r} holds no model_config; it was not written for a VAE")
    fields = {f.name for f in dataclasses.fields(VAEConfig)}
    unknown = set(cfg_dict) - fields
    if unknown:
        raise ValueError(f"model_config in {str(path)!r} has fields VAEConfig does not know: {sorted(unknown)}")
    cfg_dict = dict(cfg_dict)
    if "device" in cfg_dict and map_location is not None:
        cfg_dict["device"] = str(map_location)
    model = VAE(VAEConfig(**cfg_dict))
    state = ckpt.get("best_state") if best and ckpt.get("best_state") is not None else ckpt["model_state"]
    model.load_state_dict(state)
    if map_location is not None:
        model.to(map_location)
    return model.eval()


def plain_scheduler_state(scheduler: Any) -> dict | None:
    if scheduler is None:
        return None
    sd = scheduler.state_dict()
    return {k: plain(v) if not isinstance(v, torch.Tensor) else v for k, v in sd.items()}


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Any] | None) -> None:
    if not state:
        return
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)

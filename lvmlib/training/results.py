"""What a run reports: the epoch record callbacks see, the result of ``train``, its error type.

Also ``plain``: the conversion to built-in containers and scalars that both the JSON files
and the checkpoints (read with ``torch.load(..., weights_only=True)``) rely on.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["NonFiniteLossError", "EpochInfo", "TrainResult", "plain", "empty_history"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and the batch."""


@dataclass
class EpochInfo:
    """What an epoch-end callback sees. A callback returning True stops training."""

    epoch: int
    train: dict[str, float]
    val: dict[str, float] | None
    best_epoch: int
    best_val_loss: float
    model: nn.Module
    optimizer: torch.optim.Optimizer


@dataclass
class TrainResult:
    """The outcome of ``train``.

    history: {"epoch": [...], "lr": [...], "time": [...] (seconds since the start, at the end
             of each epoch), "train": {key: [...]}, "val_epoch": [...], "val": {key: [...]}};
             ``train[key][i]`` is the epoch average of the model's output ``key`` at epoch
             ``epoch[i]``; ``val[key][j]`` at epoch ``val_epoch[j]``.
    best_epoch / best_val_loss: the epoch whose weights were restored, its validation score
             (the monitored term, "loss" by default; negated when monitor_mode is "max";
             without validation data: the epoch with the best training score).
    time_to_best: seconds of training until the end of the best epoch.
    total_time: seconds of training in all (resumed runs add up across sessions).
    epochs: epochs completed; stopped_early: early stopping ended the run;
    interrupted: a KeyboardInterrupt ended it; checkpoint_path: the file written, if any.
    """

    history: dict[str, Any]
    best_epoch: int
    best_val_loss: float
    time_to_best: float
    total_time: float
    epochs: int
    stopped_early: bool = False
    interrupted: bool = False
    checkpoint_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return plain(dataclasses.asdict(self))

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write ``to_dict()`` as JSON to ``path`` (folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def empty_history() -> dict[str, Any]:
    """The history of a run that has not started (see ``TrainResult.history``)."""
    return {"epoch": [], "lr": [], "time": [], "train": {}, "val_epoch": [], "val": {}}


def plain(obj: Any) -> Any:
    """Built-in containers and scalars only (what ``weights_only=True`` and JSON accept)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, torch.device):
        return str(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    return repr(obj)


def model_config_dict(model: nn.Module) -> dict[str, Any] | None:
    """The model's ``config`` dataclass as a plain dict (None when it has none)."""
    cfg = getattr(model, "config", None)
    if cfg is not None and dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return plain(dataclasses.asdict(cfg))
    return None

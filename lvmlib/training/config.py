"""How to train: ``TrainConfig``, every field checked when it is made."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("adam", "adamax", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "plateau")
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, mini-batches, early stopping, checkpoints.

    optimizer      "adam" | "adamax" | "adamw" | "sgd"
    lr             learning rate (> 0)
    batch_size     mini-batch size (>= 1; larger than the data means full batch)
    max_epochs     upper bound on the number of epochs (>= 1)
    patience       stop after this many epochs without a better validation loss
                   (None: never stop early; needs validation data otherwise)
    min_delta      an improvement must lower the validation loss by more than this
    monitor        the output term that early stopping watches. "auto" (default): the model's
                   "elbo" (higher is better) when its output has one, else "loss". For a VAE the
                   ELBO is the real bound whatever beta or the KL warm-up weight is, while the
                   loss -(re - beta * kl_weight * kl) is not -ELBO when beta != 1 or during
                   warm-up; with beta = 1 and no warm-up both choose the same epoch. Or name
                   any key of the model's output, with monitor_mode "min" (default) or "max"
                   saying which way is better (monitor_mode is ignored for "auto")
    weight_decay   L2 penalty passed to the optimiser (>= 0)
    grad_clip      clip the global gradient norm to this value (None: no clipping)
    lr_schedule    "constant" | "cosine" (to lr * lr_min_factor at max_epochs) |
                   "plateau" (multiply by lr_factor after lr_patience bad epochs)
    lr_min_factor  final learning rate of "cosine" and floor of "plateau", as a fraction of lr
    lr_factor      "plateau": factor applied to the learning rate on a plateau (0 < f < 1)
    lr_patience    "plateau": epochs without improvement before the learning rate drops
    ema_decay      keep an exponential moving average of the weights (Polyak averaging),
                   theta_ema <- d * theta_ema + (1 - d) * theta after every step, with
                   d = min(ema_decay, (1 + t) / (10 + t)) at step t; validation, early stopping
                   and the restored best model use the averaged weights (None: off)
    drop_last      drop the last incomplete mini-batch of each epoch
    eval_every     validate every this many epochs (the last epoch is always validated)
    eval_batch_size  batch size for validation (None: 1024 on the CPU, 4096 on a GPU)
    seed           seeds the per-epoch permutations and the global torch RNG at the start
    device         "auto" | "cpu" | "cuda" | "cuda:N" (see ``lvmlib.runtime.get_device``)
    progress       show a tqdm progress bar (works in notebooks and terminals)
    checkpoint_path  where to write checkpoints (None: no file is written)
    checkpoint_every write the checkpoint every this many epochs (and on failure/at the end)
    warmup_epochs  KL warm-up: at the start of (1-based) epoch e the model's ``kl_weight`` is set
                   to min(1, e / warmup_epochs), so it reaches 1 at epoch warmup_epochs and the
                   loss is -(re - beta * kl_weight * kl); 0 = off. Needs a model with a
                   ``kl_weight`` attribute; it is 1 again when training ends
    binarize       dynamic binarization: each epoch the training data (the first tensor, values
                   in [0, 1], e.g. grey levels) are replaced batch by batch by a fresh Bernoulli
                   draw x_b ~ Bern(x), seeded by (seed, epoch) on the device (resume stays
                   exact); validation data are used as given
    bf16           run the forward pass under bfloat16 autocast (meant for CUDA; the weights, the
                   optimiser and the loss stay float32)
    compile_model  train through ``torch.compile(model)`` (fewer, fused kernels; the first epoch
                   pays the compilation); validation uses the model as it is
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 1000
    patience: int | None = 20
    min_delta: float = 0.0
    monitor: str = "auto"
    monitor_mode: str = "min"
    weight_decay: float = 0.0
    grad_clip: float | None = None
    lr_schedule: str = "constant"
    lr_min_factor: float = 0.0
    lr_factor: float = 0.5
    lr_patience: int = 10
    ema_decay: float | None = None
    drop_last: bool = False
    eval_every: int = 1
    eval_batch_size: int | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    checkpoint_path: str | None = None
    checkpoint_every: int = 1
    warmup_epochs: int = 0
    binarize: bool = False
    bf16: bool = False
    compile_model: bool = False

    def __post_init__(self) -> None:
        def _int(name: str, lo: int, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                extra = " or None" if allow_none else ""
                raise ValueError(f"TrainConfig.{name} must be an integer >= {lo}{extra}, got {v!r}")

        def _float(name: str, lo: float, strict: bool, allow_none: bool = False, hi: float | None = None) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            ok = (
                not isinstance(v, bool)
                and isinstance(v, (int, float, np.floating, np.integer))
                and math.isfinite(float(v))
                and (v > lo if strict else v >= lo)
                and (hi is None or v < hi)
            )
            if not ok:
                rng = f"{'>' if strict else '>='} {lo}" + (f" and < {hi}" if hi is not None else "")
                extra = " or None" if allow_none else ""
                raise ValueError(f"TrainConfig.{name} must be a finite number {rng}{extra}, got {v!r}")

        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not isinstance(self.lr_schedule, str) or self.lr_schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        _float("lr", 0.0, strict=True)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ValueError(
                f"TrainConfig.monitor must be 'auto' or the name of an output term such as 'loss' or 'elbo', "
                f"got {self.monitor!r}"
            )
        if self.monitor_mode not in ("min", "max"):
            raise ValueError(f"TrainConfig.monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}")
        _int("batch_size", 1)
        _int("max_epochs", 1)
        _int("patience", 1, allow_none=True)
        _float("min_delta", 0.0, strict=False)
        _float("weight_decay", 0.0, strict=False)
        _float("grad_clip", 0.0, strict=True, allow_none=True)
        _float("lr_min_factor", 0.0, strict=False, hi=1.0 + 1e-12)
        _float("lr_factor", 0.0, strict=True, hi=1.0)
        _int("lr_patience", 0)
        _float("ema_decay", 0.0, strict=True, allow_none=True, hi=1.0)
        _int("eval_every", 1)
        _int("eval_batch_size", 1, allow_none=True)
        _int("seed", 0)
        if self.seed > MAX_SEED:
            raise ValueError(f"TrainConfig.seed must be an integer between 0 and 2**32 - 1, got {self.seed!r}")
        _int("checkpoint_every", 1)
        _int("warmup_epochs", 0)
        for name in ("drop_last", "progress", "binarize", "bf16", "compile_model"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"TrainConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.device, str):
            raise TypeError(f"TrainConfig.device must be a string like 'auto' or 'cpu', got {self.device!r}")
        if self.checkpoint_path is not None and not isinstance(self.checkpoint_path, (str, os.PathLike)):
            raise TypeError(f"TrainConfig.checkpoint_path must be a path or None, got {self.checkpoint_path!r}")
        if self.device != "auto":
            try:
                dev = torch.device(self.device)
            except (RuntimeError, ValueError):
                dev = None
            if dev is None or dev.type not in ("cpu", "cuda", "mps"):
                raise ValueError(f"TrainConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        self._normalise()

    def _normalise(self) -> None:
        """Built-in types only (numpy integers, floats and bools become int, float, bool), so that
        a config compares, prints and is saved the same however its numbers were made."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (bool, np.bool_)):
                v = bool(v)
            elif isinstance(v, (int, np.integer)):
                v = float(v) if f.type in ("float", "float | None") else int(v)
            elif isinstance(v, np.floating):
                v = float(v)
            elif isinstance(v, os.PathLike):
                v = os.fspath(v)
            object.__setattr__(self, f.name, v)
        object.__setattr__(self, "optimizer", self.optimizer.lower())

"""The training loop every notebook uses: early stopping, progress bar, history, checkpoints.

The lecture trains its VAE by maximising the ELBO averaged over the data,

    max_theta,phi  (1/N) sum_n ELBO(x_n; theta, phi),

with a stochastic gradient method on mini-batches, and keeps the model with the best
ELBO on held-out validation data (early stopping). This module implements that loop once,
for any ``nn.Module`` whose ``forward`` returns a dict of named terms with a scalar
``"loss"`` to minimise (for the VAE, ``loss`` = -ELBO averaged over the batch):

- the data are moved to the device ONCE and mini-batches are made by indexing with a
  seeded permutation per epoch (no ``DataLoader``: on small data sets this is most of the
  speed);
- every key of the model's output dict is averaged over the epoch, for training and for
  validation, and kept in the history;
- early stopping with ``patience`` epochs on the validation loss; the best weights are
  restored into the model at the end;
- a failure loses nothing already learned: on ``KeyboardInterrupt`` the loop stops, restores
  the best weights and returns a result marked ``interrupted``; on an error (a NaN/inf loss
  raises ``NonFiniteLossError`` naming the epoch and batch) the best weights are restored
  and the checkpoint of the last completed epoch is written before the error propagates;
- checkpoints are plain dicts of tensors and built-in types (``torch.load(...,
  weights_only=True)`` reads them), and ``train(..., resume_from=path)`` continues a run so
  that it ends exactly like an uninterrupted one (permutations come from a generator seeded
  per epoch, and the global torch RNG state is saved with the checkpoint).

Command line (``python -m lvmlib.training --help``)::

    python -m lvmlib.training --dataset digits --latent 16 --hidden 256 \\
        --likelihood categorical --epochs 500 --patience 20 --out runs/digits
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lvmlib.runtime import get_device, progress_bar

__all__ = [
    "TrainConfig",
    "TrainResult",
    "EpochInfo",
    "NonFiniteLossError",
    "train",
    "evaluate",
    "save_checkpoint",
    "load_checkpoint",
    "load_vae",
    "main",
]

CHECKPOINT_FORMAT = 1
_OPTIMIZERS = ("adam", "adamax", "adamw", "sgd")
_SCHEDULES = ("constant", "cosine", "plateau")


# --------------------------------------------------------------------------- configuration


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
    monitor        the output term that early stopping watches: "loss" (default), or another
                   key of the model's output such as "elbo" (e.g. for a beta-VAE, whose loss is
                   not -ELBO); monitor_mode "min" (default) or "max" says which way is better
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
    eval_batch_size  batch size for validation (None: 1024)
    seed           seeds the per-epoch permutations and the global torch RNG at the start
    device         "auto" | "cpu" | "cuda" | "cuda:N" (see ``lvmlib.runtime.get_device``)
    progress       show a tqdm progress bar (works in notebooks and terminals)
    checkpoint_path  where to write checkpoints (None: no file is written)
    checkpoint_every write the checkpoint every this many epochs (and on failure/at the end)
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 1000
    patience: int | None = 20
    min_delta: float = 0.0
    monitor: str = "loss"
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

        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in _OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if not isinstance(self.lr_schedule, str) or self.lr_schedule not in _SCHEDULES:
            raise ValueError(f"TrainConfig.lr_schedule must be one of {_SCHEDULES}, got {self.lr_schedule!r}")
        _float("lr", 0.0, strict=True)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ValueError(f"TrainConfig.monitor must be the name of an output term such as 'loss', got {self.monitor!r}")
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
        _int("checkpoint_every", 1)
        for name in ("drop_last", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"TrainConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.device, str):
            raise TypeError(f"TrainConfig.device must be a string like 'auto' or 'cpu', got {self.device!r}")
        if self.checkpoint_path is not None and not isinstance(self.checkpoint_path, (str, os.PathLike)):
            raise TypeError(f"TrainConfig.checkpoint_path must be a path or None, got {self.checkpoint_path!r}")


# --------------------------------------------------------------------------- results


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
        return _plain(dataclasses.asdict(self))

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write ``to_dict()`` as JSON to ``path`` (folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def _empty_history() -> dict[str, Any]:
    return {"epoch": [], "lr": [], "time": [], "train": {}, "val_epoch": [], "val": {}}


# --------------------------------------------------------------------------- helpers


def _plain(obj: Any) -> Any:
    """Built-in containers and scalars only (what ``weights_only=True`` and JSON accept)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
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


def _model_config_dict(model: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "config", None)
    if cfg is not None and dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return _plain(dataclasses.asdict(cfg))
    return None


def _to_tensors(data: Any, name: str, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Data as a tuple of tensors on ``device`` sharing the first dimension (N)."""
    if data is None:
        raise ValueError(f"{name} must be a tensor or numpy array (or a tuple of them), got None")
    parts = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    if len(parts) == 0:
        raise ValueError(f"{name} must not be an empty tuple")
    out = []
    for p in parts:
        if isinstance(p, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(p))
        elif isinstance(p, torch.Tensor):
            t = p.detach()
        else:
            raise TypeError(f"{name} must be a torch.Tensor or numpy array (or a tuple of them), got {type(p).__name__}")
        if t.dim() == 0:
            raise ValueError(f"{name} must have a first (batch) dimension, got a scalar")
        if t.is_floating_point():
            t = t.to(dtype)
        out.append(t.to(device))
    n = out[0].shape[0]
    if n == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if any(t.shape[0] != n for t in out):
        raise ValueError(f"{name}: all parts must have the same number of rows, got {[t.shape[0] for t in out]}")
    return tuple(out)


def _call(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> Mapping[str, Any]:
    out = model(*batch)
    if not isinstance(out, Mapping) or "loss" not in out:
        raise TypeError(
            "train() needs a model whose forward returns a dict with a scalar 'loss' "
            f"(got {type(out).__name__}{' without a loss key' if isinstance(out, Mapping) else ''})"
        )
    return out


def _batch_terms(out: Mapping[str, Any], nb: int) -> dict[str, torch.Tensor]:
    """Sum over the batch of every scalar or per-example (B,) term, detached."""
    terms = {}
    for k, v in out.items():
        if isinstance(v, torch.Tensor):
            if v.dim() == 0:
                terms[k] = v.detach().float() * nb
            elif v.dim() == 1 and v.shape[0] == nb:
                terms[k] = v.detach().float().sum()
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            terms[k] = torch.tensor(float(v) * nb)
    return terms


class _Accumulator:
    """Epoch averages of the output terms, with one device-to-host copy per epoch."""

    def __init__(self) -> None:
        self.sums: dict[str, list[torch.Tensor]] = {}
        self.n = 0

    def add(self, out: Mapping[str, Any], nb: int) -> None:
        for k, v in _batch_terms(out, nb).items():
            self.sums.setdefault(k, []).append(v)
        self.n += nb

    def result(self) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = list(self.sums)
        dev = self.sums[keys[0]][0].device
        totals = torch.stack([torch.stack([t.to(dev) for t in self.sums[k]]).sum() for k in keys])
        return {k: v / self.n for k, v in zip(keys, totals.tolist())}


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Any, *, batch_size: int = 1024, device: str | torch.device | None = None
) -> dict[str, float]:
    """Every term of the model's output averaged over ``data``, in eval mode and without gradients.

    For the VAE, ``-evaluate(model, x_test)["elbo"]`` is the test -ELBO per example,
    -(1/N) sum_n ELBO(x_n) (lecture: ln p(x) >= E_q[ln p(x|z)] - KL(q(z|x)||p(z))), one
    sample of z per example; with beta = 1 it equals ``["loss"]``.

    Inputs: data (N, ...) tensor/array or tuple of them. Returns: {key: float}.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    dev = _model_device(model) if device is None else get_device(device)
    parts = _to_tensors(data, "data", dev, _model_dtype(model))
    was_training = model.training
    model.eval()
    acc = _Accumulator()
    n = parts[0].shape[0]
    try:
        for s in range(0, n, batch_size):
            batch = tuple(p[s : s + batch_size] for p in parts)
            acc.add(_call(model, batch), batch[0].shape[0])
    finally:
        model.train(was_training)
    return acc.result()


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def _monitored(terms: Mapping[str, float], cfg: TrainConfig, what: str) -> float:
    """The early-stopping score (lower is better) from an epoch's averaged terms."""
    if cfg.monitor not in terms:
        raise KeyError(
            f"TrainConfig.monitor={cfg.monitor!r} is not among the model's {what} terms {sorted(terms)}"
        )
    v = terms[cfg.monitor]
    return v if cfg.monitor_mode == "min" else -v


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    name = cfg.optimizer.lower()
    cls = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax, "adamw": torch.optim.AdamW,
           "sgd": torch.optim.SGD}[name]
    kw: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if name == "sgd":
        kw["momentum"] = 0.9
    # The fused kernels (Adam, AdamW, SGD; CPU and CUDA) update all tensors in one call:
    # several times faster than the default per-tensor loop on small models. Adamax has
    # none; its multi-tensor ("foreach") path is the next best.
    if name != "adamax" and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        try:
            return cls(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            pass
    return cls(params, foreach=True, **kw)


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_epochs, eta_min=cfg.lr * cfg.lr_min_factor)
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.lr * cfg.lr_min_factor
        )
    return None


def _clone_state(module_or_opt: Any, to_cpu: bool = False) -> dict:
    sd = module_or_opt.state_dict()

    def _c(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            v = v.detach()
            return v.to("cpu", copy=True) if to_cpu else v.clone()
        if isinstance(v, dict):
            return {k: _c(x) for k, x in v.items()}
        if isinstance(v, list):
            return [_c(x) for x in v]
        return copy.deepcopy(v)

    return _c(sd)


class _EMA:
    """Exponential moving average of a model's floating-point parameters (Polyak averaging)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.params = [p for p in model.parameters() if p.is_floating_point()]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = float(decay)
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        self.steps += 1
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the live weights and the averaged ones (call twice to undo)."""
        for p, s in zip(self.params, self.shadow):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "shadow": [s.detach().to("cpu", copy=True) for s in self.shadow]}

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if len(state["shadow"]) != len(self.shadow):
            raise ValueError("the checkpoint's averaged weights do not match the model's parameters")
        self.steps = int(state["steps"])
        for s, v in zip(self.shadow, state["shadow"]):
            s.copy_(v)


class _averaged:
    """Context: the model holds the averaged weights inside (no-op without averaging)."""

    def __init__(self, ema: _EMA | None) -> None:
        self.ema = ema

    def __enter__(self) -> None:
        if self.ema is not None:
            self.ema.swap()

    def __exit__(self, *exc: Any) -> None:
        if self.ema is not None:
            self.ema.swap()


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: Mapping[str, Any] | None) -> None:
    if not state:
        return
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # One generator per epoch: epoch e's permutation depends on (seed, e) alone, so a
    # resumed run draws the same batches as an uninterrupted one.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


# --------------------------------------------------------------------------- checkpoints


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


# --------------------------------------------------------------------------- the loop


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    return progress_bar(total=total, initial=initial, unit="epoch", desc="training")


def train(
    model: nn.Module,
    train_data: Any,
    val_data: Any = None,
    config: TrainConfig | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    callbacks: Sequence[Callable[[EpochInfo], Any]] | None = None,
) -> TrainResult:
    """Minimise the model's ``loss`` with mini-batch stochastic gradients and early stopping.

    For the VAE the loss is the negative ELBO averaged over the batch (lecture: the ELBO),
        loss = -(1/B) sum_b [ E_q(z|x_b)[ln p(x_b|z)] - KL(q(z|x_b) || p(z)) ].
    Each epoch visits the training data in a fresh seeded permutation in batches of
    ``batch_size``; after each (every ``eval_every``) epoch the validation loss (or the term
    named by ``config.monitor``) is computed; the weights with the best validation score are
    restored into ``model`` at the end.

    Inputs:
        model       nn.Module, ``model(*batch)`` returns {"loss": scalar, other terms: scalar or (B,)}
        train_data  (N, ...) tensor or numpy array, or a tuple of them (passed as model(*batch))
        val_data    (N_val, ...) like train_data, or None (no early stopping then; patience ignored)
        config      TrainConfig (None: the defaults)
        checkpoint  path of the checkpoint file (overrides config.checkpoint_path)
        resume_from continue the run saved in this checkpoint (weights, optimiser, history, RNG)
        callbacks   callables taking an EpochInfo after each epoch; returning True stops training
    Returns:
        TrainResult (history per epoch, best epoch and loss, time to best, total time).
    Raises:
        NonFiniteLossError when the loss is NaN/inf (best weights restored, checkpoint written).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    cfg = TrainConfig() if config is None else config
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(cfg).__name__}")
    callbacks = list(callbacks or [])
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables taking an EpochInfo, got {cb!r}")
    ckpt_path = checkpoint if checkpoint is not None else cfg.checkpoint_path
    ckpt_path = Path(ckpt_path) if ckpt_path is not None else None

    device = get_device(cfg.device)
    model.to(device)
    dtype = _model_dtype(model)
    train_parts = _to_tensors(train_data, "train_data", device, dtype)
    val_parts = _to_tensors(val_data, "val_data", device, dtype) if val_data is not None else None
    n_train = train_parts[0].shape[0]
    bs = min(cfg.batch_size, n_train)
    n_batches = n_train // bs if cfg.drop_last else math.ceil(n_train / bs)
    eval_bs = cfg.eval_batch_size or 1024

    optimizer = _make_optimizer(model, cfg)
    scheduler = _make_scheduler(optimizer, cfg)
    ema = _EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
    model_config = _model_config_dict(model)

    history = _empty_history()
    start_epoch = 1
    best_epoch, best_val = 0, math.inf
    best_state = _clone_state(model)
    elapsed_before, time_to_best = 0.0, 0.0
    if resume_from is not None:
        ck = load_checkpoint(resume_from, map_location=device)
        saved = ck.get("train_config") or {}
        for name in ("optimizer", "lr_schedule"):
            if name in saved and saved[name] != getattr(cfg, name):
                raise ValueError(
                    f"cannot resume {str(resume_from)!r}: it was trained with {name}={saved[name]!r}, "
                    f"the config asks for {name}={getattr(cfg, name)!r}"
                )
        model.load_state_dict(ck["model_state"])
        if ck.get("optimizer_state") is not None:
            optimizer.load_state_dict(ck["optimizer_state"])
        if scheduler is not None and ck.get("scheduler_state") is not None:
            scheduler.load_state_dict(ck["scheduler_state"])
        history = ck.get("history") or _empty_history()
        start_epoch = int(ck["epoch"]) + 1
        best_epoch = int(ck.get("best_epoch", 0))
        best_val = float(ck.get("best_val", math.inf))
        if ck.get("best_state") is not None:
            best_state = ck["best_state"]
        if ema is not None:
            if ck.get("ema_state") is None:
                raise ValueError(f"{str(resume_from)!r} was saved without ema_decay; resume with the same TrainConfig")
            ema.load_state_dict(ck["ema_state"])
        elapsed_before = float(ck.get("elapsed", 0.0))
        time_to_best = float(ck.get("time_to_best", 0.0))
        _set_rng_state(ck.get("rng_state"))
    else:
        torch.manual_seed(cfg.seed)

    def snapshot(epoch: int, elapsed: float) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model_state": _clone_state(model, to_cpu=True),
            "model_config": model_config,
            "model_class": type(model).__name__,
            "train_config": _plain(dataclasses.asdict(cfg)),
            "optimizer_state": _clone_state(optimizer, to_cpu=True),
            "scheduler_state": _plain_scheduler_state(scheduler),
            "history": copy.deepcopy(history),
            "epoch": epoch,
            "best_state": {k: v.detach().to("cpu", copy=True) for k, v in best_state.items()},
            "best_epoch": best_epoch,
            "best_val": best_val,
            "elapsed": elapsed,
            "time_to_best": time_to_best,
            "rng_state": _rng_state(),
            "ema_state": ema.state_dict() if ema is not None else None,
        }

    last_snapshot: dict[str, Any] | None = None  # the last completed epoch, not yet on disk
    written_epoch = start_epoch - 1 if resume_from is not None and ckpt_path is not None and Path(resume_from) == ckpt_path else -1
    bar = _progress_bar(cfg.max_epochs, start_epoch - 1, cfg.progress)
    t0 = time.perf_counter()
    epoch = start_epoch - 1
    stopped_early = interrupted = False

    def elapsed_now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return elapsed_before + time.perf_counter() - t0

    try:
        if best_epoch > 0 and cfg.patience is not None and val_parts is not None and epoch - best_epoch >= cfg.patience:
            stopped_early = True  # a resumed run that had already stopped
        while not stopped_early and epoch < cfg.max_epochs:
            epoch += 1
            model.train()
            perm = torch.randperm(n_train, generator=_epoch_generator(cfg.seed, epoch)).to(device)
            acc = _Accumulator()
            losses = []
            check_now = device.type == "cpu"  # a per-batch host sync is free on the CPU
            for batch_idx in range(n_batches):
                idx = perm[batch_idx * bs : (batch_idx + 1) * bs]
                batch = tuple(p[idx] for p in train_parts)
                out = _call(model, batch)
                loss = out["loss"]
                if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                    raise TypeError(f"the model's 'loss' must be a scalar tensor, got {getattr(loss, 'shape', loss)!r}")
                if check_now and not math.isfinite(loss.item()):
                    raise NonFiniteLossError(f"the loss is {loss.item()} at epoch {epoch}, batch {batch_idx + 1}/{n_batches}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update()
                losses.append(loss.detach())
                acc.add(out, idx.shape[0])
            if not check_now:
                bad = ~torch.isfinite(torch.stack(losses))
                if bool(bad.any()):
                    first = int(bad.nonzero()[0, 0])
                    raise NonFiniteLossError(
                        f"the loss is {losses[first].item()} at epoch {epoch}, batch {first + 1}/{n_batches}"
                    )
            train_terms = acc.result()
            val_terms = None
            do_eval = val_parts is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.max_epochs)
            if do_eval:
                with _averaged(ema):
                    val_terms = evaluate(model, val_parts, batch_size=eval_bs)
                if not math.isfinite(val_terms["loss"]):
                    raise NonFiniteLossError(f"the validation loss is {val_terms['loss']} at epoch {epoch}")
                score = _monitored(val_terms, cfg, "validation")
            elif val_parts is None:
                score = _monitored(train_terms, cfg, "training")
            else:
                score = None
            now = elapsed_now()
            # the epoch's record goes into the history all at once (an interrupt leaves it whole)
            history["epoch"].append(epoch)
            history["lr"].append(optimizer.param_groups[0]["lr"])
            history["time"].append(now)
            for k, v in train_terms.items():
                history["train"].setdefault(k, []).append(v)
            if val_terms is not None:
                history["val_epoch"].append(epoch)
                for k, v in val_terms.items():
                    history["val"].setdefault(k, []).append(v)
            if score is not None and score < best_val - cfg.min_delta:
                best_val, best_epoch, time_to_best = score, epoch, now
                with _averaged(ema):
                    best_state = _clone_state(model)
            if scheduler is not None:
                if cfg.lr_schedule == "plateau":
                    if score is not None:
                        scheduler.step(score)
                else:
                    scheduler.step()

            if bar is not None:
                post = {"train": f"{train_terms['loss']:.3f}"}
                if val_terms is not None:
                    post["val"] = f"{val_terms['loss']:.3f}"
                post["best"] = f"{best_val:.3f}@{best_epoch}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)

            if cfg.patience is not None and val_parts is not None and epoch - best_epoch >= cfg.patience:
                stopped_early = True
            if callbacks:
                info = EpochInfo(epoch, train_terms, val_terms, best_epoch, best_val, model, optimizer)
                for cb in callbacks:
                    if cb(info) is True:
                        stopped_early = True
            if ckpt_path is not None:
                last_snapshot = snapshot(epoch, elapsed_now())
                if epoch % cfg.checkpoint_every == 0:
                    save_checkpoint(ckpt_path, last_snapshot)
                    written_epoch = epoch
    except KeyboardInterrupt:
        interrupted = True
        if bar is not None:
            bar.write(f"interrupted during epoch {epoch}; keeping the best model (epoch {best_epoch})")
    except BaseException:
        # Keep what was learned: best weights back into the model, last good epoch on disk.
        if bar is not None:
            bar.close()
        model.load_state_dict(best_state)
        if ckpt_path is not None and last_snapshot is not None and written_epoch != last_snapshot["epoch"]:
            save_checkpoint(ckpt_path, last_snapshot)
        raise
    finally:
        if bar is not None:
            bar.close()

    total = elapsed_now()
    if best_epoch > 0:
        model.load_state_dict(best_state)
    if ckpt_path is not None and last_snapshot is not None:
        if written_epoch != last_snapshot["epoch"]:
            save_checkpoint(ckpt_path, last_snapshot)
    return TrainResult(
        history=history,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        time_to_best=time_to_best,
        total_time=total,
        epochs=history["epoch"][-1] if history["epoch"] else 0,
        stopped_early=stopped_early,
        interrupted=interrupted,
        checkpoint_path=str(ckpt_path) if ckpt_path is not None else None,
    )


def _plain_scheduler_state(scheduler: Any) -> dict | None:
    if scheduler is None:
        return None
    sd = scheduler.state_dict()
    return {k: _plain(v) if not isinstance(v, torch.Tensor) else v for k, v in sd.items()}


# --------------------------------------------------------------------------- command line


def _argument(convert, description: str, ok):
    """An argparse type: ``convert`` the text, then require ``ok(value)``, else say what was expected."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value

    return parse


_positive_int = _argument(int, "a positive integer", lambda v: v >= 1)
_nonneg_int = _argument(int, "an integer >= 0", lambda v: v >= 0)
_positive_float = _argument(float, "a positive number", lambda v: v > 0 and math.isfinite(v))


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lvmlib.training",
        description="Train a VAE on the 8x8 digits (embedded) or MNIST (IDX files) with early stopping; "
        "write the checkpoint, the history (JSON) and a summary with the test -ELBO and log-likelihood.",
        epilog="The defaults are the book's VAE (two hidden layers of 256 LeakyReLU units, M = 16). The best "
        "digits configuration measured in benchmarks/bench_vae_digits.py adds: --layers 1 --activation tanh "
        "--beta 1.5 --weight-decay 1e-2 --ema-decay 0.999 --batch-size 256 --lr 8e-3",
    )
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=["digits", "mnist"], default="digits", help="data set (default: digits)")
    d.add_argument("--data-dir", default=None, help="folder with the MNIST IDX .gz files (default: lvmlib.data's)")
    m = p.add_argument_group("model (lvmlib.vae.VAEConfig)")
    m.add_argument("--latent", type=_positive_int, default=16, help="M, latent dimensions (default: 16)")
    m.add_argument("--hidden", type=_positive_int, default=256, help="H, units per hidden layer (default: 256)")
    m.add_argument("--layers", type=_nonneg_int, default=2, help="hidden layers in encoder and decoder (default: 2)")
    m.add_argument(
        "--activation", choices=["relu", "leaky_relu", "tanh", "elu"], default="leaky_relu", help="(default: leaky_relu)"
    )
    m.add_argument(
        "--likelihood",
        choices=["bernoulli", "gaussian", "categorical"],
        default="categorical",
        help="p(x|z); categorical models raw levels (digits 0..16, MNIST 0..255) (default: categorical)",
    )
    m.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (default: 1)")
    t = p.add_argument_group("training (lvmlib.training.TrainConfig)")
    t.add_argument("--epochs", type=_positive_int, default=500, help="maximum epochs (default: 500)")
    t.add_argument("--patience", type=_positive_int, default=20, help="early-stopping patience in epochs (default: 20)")
    t.add_argument("--batch-size", type=_positive_int, default=64, help="(default: 64)")
    t.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate (default: 1e-3)")
    t.add_argument("--optimizer", choices=list(_OPTIMIZERS), default="adam", help="(default: adam)")
    t.add_argument("--lr-schedule", choices=list(_SCHEDULES), default="constant", help="(default: constant)")
    t.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty (default: 0)")
    t.add_argument("--ema-decay", type=float, default=None, help="average the weights (e.g. 0.999) (default: off)")
    t.add_argument("--seed", type=_nonneg_int, default=0, help="(default: 0)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--resume", action="store_true", help="continue the run saved in OUT/checkpoint.pt")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="folder for checkpoint.pt, history.json and summary.json")
    o.add_argument(
        "--eval-samples",
        type=_nonneg_int,
        default=1000,
        help="K importance samples for the test log-likelihood (0: skip it) (default: 1000)",
    )
    return p


def _load_dataset(name: str, likelihood: str, data_dir: str | None, seed: int):
    """(train, val, test, D, n_levels) as numpy arrays in the form the likelihood models."""
    from lvmlib import data as lvdata

    scale = "raw" if likelihood == "categorical" else "unit"
    if name == "digits":
        split = lvdata.digits_split(scale=scale)
        n_levels = 17
    else:
        kwargs = {"scale": scale}
        if data_dir is not None:
            kwargs["data_dir"] = data_dir
        split = lvdata.mnist_split(**kwargs)
        n_levels = 256
    tr, va, te = (np.asarray(a) for a in (split.train, split.val, split.test))
    tr, va, te = (a.reshape(a.shape[0], -1) for a in (tr, va, te))  # (N, D)
    return tr, va, te, tr.shape[1], n_levels


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lvmlib.training``: train a VAE, write checkpoint.pt, history.json, summary.json."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not (math.isfinite(args.beta) and args.beta >= 0):
        parser.error(f"--beta must be a finite number >= 0, got {args.beta}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        parser.error(f"--weight-decay must be a finite number >= 0, got {args.weight_decay}")
    if args.ema_decay is not None and not 0 < args.ema_decay < 1:
        parser.error(f"--ema-decay must lie strictly between 0 and 1, got {args.ema_decay}")
    try:
        device = get_device(args.device)
    except (ValueError, TypeError, RuntimeError) as err:
        parser.error(f"--device: {err}")

    from lvmlib.vae import VAE, VAEConfig

    try:
        x_train, x_val, x_test, D, n_levels = _load_dataset(args.dataset, args.likelihood, args.data_dir, args.seed)
    except (FileNotFoundError, OSError) as err:
        print(f"error: cannot load {args.dataset}: {err}", file=sys.stderr)
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    if args.resume and not ckpt_path.is_file():
        parser.error(f"--resume: there is no checkpoint at {ckpt_path}")

    torch.manual_seed(args.seed)
    vcfg = VAEConfig(
        D=D,
        M=args.latent,
        H=args.hidden,
        n_hidden_layers=args.layers,
        activation=args.activation,
        likelihood=args.likelihood,
        n_levels=n_levels,
        beta=args.beta,
        device=str(device),
    )
    model = VAE(vcfg)
    tcfg = TrainConfig(
        optimizer=args.optimizer,
        lr=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        patience=args.patience,
        lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay,
        ema_decay=args.ema_decay,
        monitor="elbo",  # early stopping on the validation ELBO, whatever beta is
        monitor_mode="max",
        seed=args.seed,
        device=str(device),
        progress=not args.no_progress,
    )
    result = train(
        model, x_train, x_val, tcfg, checkpoint=ckpt_path, resume_from=ckpt_path if args.resume else None
    )
    result.save_json(out / "history.json")

    summary: dict[str, Any] = {
        "dataset": args.dataset,
        "model_config": _plain(dataclasses.asdict(vcfg)),
        "train_config": _plain(dataclasses.asdict(tcfg)),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "time_to_best_s": result.time_to_best,
        "total_time_s": result.total_time,
        "stopped_early": result.stopped_early,
        "interrupted": result.interrupted,
    }
    torch.manual_seed(args.seed)
    test = evaluate(model, x_test)
    summary["test_neg_elbo"] = -test["elbo"] if "elbo" in test else test["loss"]
    print(f"best epoch {result.best_epoch} of {result.epochs}; validation -ELBO {result.best_val_loss:.3f}")
    print(f"test -ELBO                 {summary['test_neg_elbo']:.3f} nats per example")
    if args.eval_samples > 0:
        from lvmlib.variational import log_px_importance

        model.eval()
        with torch.no_grad():
            x_t = torch.as_tensor(x_test, device=device)
            log_px = log_px_importance(model, x_t, K=args.eval_samples)
        summary["test_neg_log_px"] = -float(log_px.mean())
        summary["eval_samples"] = args.eval_samples
        print(f"test -log p(x)             {summary['test_neg_log_px']:.3f} nats per example "
              f"(importance sampling, K={args.eval_samples})")
    (out / "summary.json").write_text(json.dumps(_plain(summary), indent=1))
    print(f"wrote {ckpt_path}, {out / 'history.json'}, {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

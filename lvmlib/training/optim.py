"""The optimiser, the learning-rate schedule, weight averaging and the per-epoch seeds."""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
from torch import nn

from lvmlib.training.config import TrainConfig

__all__: list[str] = []


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
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


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_epochs, eta_min=cfg.lr * cfg.lr_min_factor)
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.lr * cfg.lr_min_factor
        )
    return None


def clone_state(module_or_opt: Any, to_cpu: bool = False) -> dict:
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


class EMA:
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


class averaged:
    """Context: the model holds the averaged weights inside (no-op without averaging)."""

    def __init__(self, ema: EMA | None) -> None:
        self.ema = ema

    def __enter__(self) -> None:
        if self.ema is not None:
            self.ema.swap()

    def __exit__(self, *exc: Any) -> None:
        if self.ema is not None:
            self.ema.swap()


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """The seed of epoch ``epoch``'s random draws: depends on (seed, epoch, stream) alone, so a
    resumed run draws exactly what an uninterrupted one does. stream 0: the permutation,
    1: the dynamic binarization."""
    return (seed * 1_000_003 + epoch + stream * 7_919_000_003) % 2**63


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for epoch ``epoch``'s permutation of the training data."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))

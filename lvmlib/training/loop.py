"""The training loop: mini-batch gradient steps, validation, early stopping, checkpoints.

``train`` sets up a ``_Run`` (the model, its data on the device, the optimiser and the state a
checkpoint holds) and drives it epoch by epoch; each step of an epoch is a method of ``_Run``
so that the loop itself reads as the algorithm:

    for each epoch:  train on a seeded permutation  ->  validate  ->  record the history
                     ->  keep the best weights  ->  step the schedule  ->  callbacks  ->  checkpoint
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from lvmlib.priors import check_finite
from lvmlib.runtime import get_device, progress_bar
from lvmlib.training.batches import Accumulator, call_model, checks_data_once, evaluate, prepare_data
from lvmlib.training.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    check_writable,
    load_checkpoint,
    plain_scheduler_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from lvmlib.training.config import TrainConfig
from lvmlib.training.optim import (
    EMA,
    averaged,
    clone_state,
    epoch_generator,
    epoch_seed,
    make_optimizer,
    make_scheduler,
)
from lvmlib.training.results import (
    EpochInfo,
    NonFiniteLossError,
    TrainResult,
    empty_history,
    model_config_dict,
    plain,
)

__all__ = ["train"]


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    return progress_bar(total=total, initial=initial, unit="epoch", desc="training")


def _monitored(terms: Mapping[str, float], cfg: TrainConfig, what: str) -> float:
    """The early-stopping score (lower is better) from an epoch's averaged terms."""
    name, mode = _resolve_monitor(terms, cfg)
    if name not in terms:
        raise KeyError(
            f"TrainConfig.monitor={cfg.monitor!r} is not among the model's {what} terms {sorted(terms)}"
        )
    v = terms[name]
    return v if mode == "min" else -v


def _resolve_monitor(terms: Mapping[str, float], cfg: TrainConfig) -> tuple[str, str]:
    """(term, mode) that early stopping watches; "auto" is the ELBO when the model reports one."""
    if cfg.monitor == "auto":
        return ("elbo", "max") if "elbo" in terms else ("loss", "min")
    return cfg.monitor, cfg.monitor_mode


def _checks_each_step(device: torch.device) -> bool:
    """Check each loss as it comes (on the CPU, where reading it costs nothing), or all of an
    epoch's losses at its end (on a GPU, where reading one would wait for the device)."""
    return device.type == "cpu"


def _all_finite(tensors) -> bool:
    """True when every tensor is finite (one read from the device for all of them)."""
    flags = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True


def _check_unit_interval(x: torch.Tensor) -> None:
    if not x.is_floating_point():
        raise ValueError(f"TrainConfig.binarize needs train_data as floats in [0, 1] (grey levels), got dtype {x.dtype}")
    lo, hi = (float(v) for v in torch.stack([x.min(), x.max()]).tolist())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"TrainConfig.binarize needs train_data in [0, 1] (grey levels, the probabilities of the "
            f"Bernoulli draw), got values in [{lo:g}, {hi:g}]"
        )


def _check_same_model(path, ck: Mapping[str, Any], model: nn.Module, config: dict | None) -> None:
    """Refuse to resume a checkpoint into a model of another class or configuration."""
    saved_class = ck.get("model_class")
    if saved_class is not None and saved_class != type(model).__name__:
        raise ValueError(
            f"cannot resume {str(path)!r}: it was saved from a {saved_class}, the model is a {type(model).__name__}"
        )
    saved = ck.get("model_config")
    if saved is None or config is None:
        return
    # fields one side lacks (added to the configuration later) are not compared
    diff = [k for k in sorted(set(saved) & set(config)) if k != "device" and saved[k] != config[k]]
    if diff:
        pairs = ", ".join(f"{k}={saved.get(k)!r} (the model has {config.get(k)!r})" for k in diff)
        raise ValueError(f"cannot resume {str(path)!r}: it was trained with a model of {pairs}")


class _Run:
    """One call of ``train``: what it trains with, and the state a checkpoint holds.

    State: history, epoch (the last completed one), best_epoch / best_val / best_state,
    elapsed_before (seconds of earlier sessions), time_to_best; the flags stopped_early and
    interrupted; last_snapshot (the last completed epoch as a checkpoint dict) and
    written_epoch (the epoch whose checkpoint is on disk).
    """

    def __init__(self, model, cfg, train_data, val_data, ckpt_path, callbacks) -> None:
        self.model, self.cfg, self.callbacks, self.ckpt_path = model, cfg, callbacks, ckpt_path
        if ckpt_path is not None:
            check_writable(ckpt_path)  # now, not after the first epoch
        self.device = get_device(cfg.device)
        model.to(self.device)
        # every parameter finite, the first bad one named (one read), before anything trains
        check_finite(model.named_parameters(), "the model's parameter", what="before training")
        if cfg.warmup_epochs and not hasattr(model, "kl_weight"):
            raise TypeError(
                f"TrainConfig.warmup_epochs={cfg.warmup_epochs} needs a model with a kl_weight attribute "
                f"(the weight of the KL term in its loss); {type(model).__name__} has none"
            )
        # Each split is validated once here; batches are slices of it and skip the checks.
        self.train_parts = prepare_data(model, train_data, "train_data", self.device)
        self.val_parts = prepare_data(model, val_data, "val_data", self.device) if val_data is not None else None
        self.checked = checks_data_once(model) and len(self.train_parts) == 1
        if cfg.binarize:
            _check_unit_interval(self.train_parts[0])
        self.n_train = self.train_parts[0].shape[0]
        self.batch_size = min(cfg.batch_size, self.n_train)
        n, bs = self.n_train, self.batch_size
        self.n_batches = n // bs if cfg.drop_last else math.ceil(n / bs)
        self.eval_batch_size = cfg.eval_batch_size or (4096 if self.device.type == "cuda" else 1024)
        # dynamic=False: the full batches and the one short last batch get a graph each, both with
        # fixed shapes, rather than one graph for any batch size
        self.step_model = torch.compile(model, dynamic=False) if cfg.compile_model else model

        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
        self.model_config = model_config_dict(model)

        self.history = empty_history()
        self.epoch = 0
        self.best_epoch, self.best_val = 0, math.inf
        self.best_state = clone_state(model)
        self.elapsed_before, self.time_to_best = 0.0, 0.0
        self.stopped_early = self.interrupted = False
        self.last_snapshot: dict[str, Any] | None = None
        self.written_epoch = -1
        self.t0 = time.perf_counter()
        self.train_seconds = 0.0

    # -- state in and out ------------------------------------------------------------------
    def resume(self, path: str | os.PathLike) -> None:
        """Continue the run saved at ``path``: weights, optimiser, schedule, history, RNG."""
        cfg = self.cfg
        ck = load_checkpoint(path, map_location=self.device)
        saved = ck.get("train_config") or {}
        for name in ("optimizer", "lr_schedule", "warmup_epochs", "binarize"):
            if name in saved and saved[name] != getattr(cfg, name):
                raise ValueError(
                    f"cannot resume {str(path)!r}: it was trained with {name}={saved[name]!r}, "
                    f"the config asks for {name}={getattr(cfg, name)!r}"
                )
        epoch = ck.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            found = "no 'epoch' entry" if "epoch" not in ck else f"'epoch' = {epoch!r}"
            raise CheckpointError(
                f"cannot resume {str(path)!r}: it has {found}, where the last completed epoch (an integer >= 0) "
                "belongs; it was not written by lvmlib.training.train: load its weights with load_vae and "
                "train without resume_from"
            )
        if cfg.lr_schedule != "constant" and "lr" in saved and saved["lr"] != cfg.lr:
            raise ValueError(
                f"cannot resume {str(path)!r} with lr={cfg.lr!r}: it was trained with lr={saved['lr']!r} under the "
                f"{cfg.lr_schedule!r} schedule, whose state depends on it; resume with the same lr, or use "
                "lr_schedule='constant' to change it"
            )
        _check_same_model(path, ck, self.model, self.model_config)
        self.model.load_state_dict(ck["model_state"])
        if ck.get("optimizer_state") is not None:
            self.optimizer.load_state_dict(ck["optimizer_state"])
            # the restored state carries the old run's hyperparameters: apply the ones asked for now
            for group in self.optimizer.param_groups:
                group["lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
                if "initial_lr" in group:
                    group["initial_lr"] = cfg.lr
        if self.scheduler is not None and ck.get("scheduler_state") is not None:
            self.scheduler.load_state_dict(ck["scheduler_state"])
        self.history = ck.get("history") or empty_history()
        self.epoch = int(ck["epoch"])
        self.best_epoch = int(ck.get("best_epoch", 0))
        self.best_val = float(ck.get("best_val", math.inf))
        if ck.get("best_state") is not None:
            self.best_state = ck["best_state"]
        if self.ema is not None:
            if ck.get("ema_state") is None:
                raise ValueError(f"{str(path)!r} was saved without ema_decay; resume with the same TrainConfig")
            self.ema.load_state_dict(ck["ema_state"])
        self.elapsed_before = float(ck.get("elapsed", 0.0))
        self.time_to_best = float(ck.get("time_to_best", 0.0))
        set_rng_state(ck.get("rng_state"))
        if self.ckpt_path is not None and Path(path) == self.ckpt_path:
            self.written_epoch = self.epoch  # that checkpoint is already on disk
        self.last_snapshot = ck  # the state an interrupt before the next epoch's checkpoint goes back to

    def snapshot(self) -> dict[str, Any]:
        """The checkpoint dict of the last completed epoch (tensors copied to the CPU)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model_state": clone_state(self.model, to_cpu=True),
            "model_config": self.model_config,
            "model_class": type(self.model).__name__,
            "train_config": plain(dataclasses.asdict(self.cfg)),
            "optimizer_state": clone_state(self.optimizer, to_cpu=True),
            "scheduler_state": plain_scheduler_state(self.scheduler),
            "history": copy.deepcopy(self.history),
            "epoch": self.epoch,
            "best_state": {k: v.detach().to("cpu", copy=True) for k, v in self.best_state.items()},
            "best_epoch": self.best_epoch,
            "best_val": self.best_val,
            "elapsed": self.elapsed_now(),
            "time_to_best": self.time_to_best,
            "rng_state": rng_state(),
            "ema_state": self.ema.state_dict() if self.ema is not None else None,
        }

    def back_to_last_checkpoint(self) -> None:
        """After an interrupt inside an epoch's bookkeeping: the run's record goes back to the last
        completed checkpoint, so that the history, the best epoch and the file on disk agree."""
        if self.ckpt_path is None:
            return  # nothing on disk to agree with
        snap = self.last_snapshot
        if snap is None:  # a fresh run interrupted before its first checkpoint: nothing was completed
            self.history, self.epoch, self.best_epoch, self.best_val = empty_history(), 0, 0, math.inf
            return
        if snap["epoch"] == self.epoch and len(self.history["epoch"]) == len((snap.get("history") or {}).get("epoch", [])):
            return
        self.history = copy.deepcopy(snap.get("history") or empty_history())
        self.epoch = int(snap["epoch"])
        self.best_epoch, self.best_val = int(snap.get("best_epoch", 0)), float(snap.get("best_val", math.inf))
        if snap.get("best_state") is not None:
            self.best_state = {k: v.to(self.device) for k, v in snap["best_state"].items()}
        self.time_to_best = float(snap.get("time_to_best", 0.0))

    def save_pending(self) -> None:
        """Write the last completed epoch's checkpoint unless it is on disk already."""
        if self.ckpt_path is not None and self.last_snapshot is not None:
            if self.written_epoch != self.last_snapshot["epoch"]:
                save_checkpoint(self.ckpt_path, self.last_snapshot)
                self.written_epoch = self.last_snapshot["epoch"]

    def elapsed_now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return self.elapsed_before + time.perf_counter() - self.t0

    def already_stopped(self) -> bool:
        """A resumed run whose early stopping had already fired."""
        cfg = self.cfg
        return (
            self.best_epoch > 0
            and cfg.patience is not None
            and self.val_parts is not None
            and self.epoch - self.best_epoch >= cfg.patience
        )

    # -- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        """One pass over the training data in a seeded permutation; the epoch averages.

        Nothing in the loop waits for the device: the losses and the terms are summed there
        and read once at the end (on the CPU, where reading is free, each loss is checked at once).
        """
        model, cfg, epoch, bs = self.model, self.cfg, self.epoch, self.batch_size
        t_start = time.perf_counter()
        model.train()
        if cfg.warmup_epochs:
            model.kl_weight = min(1.0, epoch / cfg.warmup_epochs)
        perm = torch.randperm(self.n_train, generator=epoch_generator(cfg.seed, epoch)).to(self.device)
        draw = None
        if cfg.binarize:
            draw = torch.Generator(device=self.device).manual_seed(epoch_seed(cfg.seed, epoch, stream=1))
        acc = Accumulator()
        losses = []
        check_now = _checks_each_step(self.device)
        for batch_idx in range(self.n_batches):
            idx = perm[batch_idx * bs : (batch_idx + 1) * bs]
            batch = tuple(p.index_select(0, idx) for p in self.train_parts)  # the same rows as p[idx], copied faster
            if draw is not None:  # dynamic binarization: x_b ~ Bernoulli(x), fresh every epoch
                batch = (torch.bernoulli(batch[0], generator=draw), *batch[1:])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                out = call_model(self.step_model, batch, checked=self.checked)
            loss = out["loss"]
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise TypeError(f"the model's 'loss' must be a scalar tensor, got {getattr(loss, 'shape', loss)!r}")
            if check_now and not math.isfinite(loss.item()):
                raise NonFiniteLossError(
                    f"the loss is {loss.item()} at epoch {epoch}, batch {batch_idx + 1}/{self.n_batches}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update()
            losses.append(loss.detach())
            acc.add(out, idx.shape[0])
        if not check_now:
            bad = ~torch.isfinite(torch.stack(losses))
            if bool(bad.any()):
                first = int(bad.nonzero()[0, 0])
                raise NonFiniteLossError(
                    f"the loss is {losses[first].item()} at epoch {epoch}, batch {first + 1}/{self.n_batches}"
                )
        if not _all_finite(model.parameters()):
            raise NonFiniteLossError(
                f"the weights became NaN or infinite during epoch {epoch} while every loss was finite "
                "(an exploding step: lower TrainConfig.lr or set TrainConfig.grad_clip)"
            )
        terms = acc.result()  # the epoch's one read from the device
        self.train_seconds = time.perf_counter() - t_start
        return terms

    def validate(self) -> dict[str, float] | None:
        """The validation averages (with the averaged weights), or None when not due this epoch."""
        cfg = self.cfg
        if self.val_parts is None or not (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.max_epochs):
            return None
        with averaged(self.ema):
            val_terms = evaluate(self.model, self.val_parts, batch_size=self.eval_batch_size, checked=True)
        if not math.isfinite(val_terms["loss"]):
            raise NonFiniteLossError(f"the validation loss is {val_terms['loss']} at epoch {self.epoch}")
        return val_terms

    def score(self, train_terms, val_terms) -> float | None:
        """The early-stopping score of this epoch (lower is better), None without one."""
        if val_terms is not None:
            return _monitored(val_terms, self.cfg, "validation")
        if self.val_parts is None:
            return _monitored(train_terms, self.cfg, "training")
        return None

    def record(self, train_terms, val_terms, now: float) -> None:
        """Append the epoch to the history all at once (an interrupt leaves it whole)."""
        h = self.history
        h["epoch"].append(self.epoch)
        h["lr"].append(self.optimizer.param_groups[0]["lr"])
        h["time"].append(now)
        h.setdefault("train_time", []).append(self.train_seconds)
        if self.cfg.warmup_epochs:
            h.setdefault("kl_weight", []).append(float(self.model.kl_weight))
        for k, v in train_terms.items():
            h["train"].setdefault(k, []).append(v)
        if val_terms is not None:
            h["val_epoch"].append(self.epoch)
            for k, v in val_terms.items():
                h["val"].setdefault(k, []).append(v)

    def keep_if_best(self, score: float | None, now: float) -> None:
        if score is None or not score < self.best_val - self.cfg.min_delta:
            return
        with averaged(self.ema):
            state = clone_state(self.model)
        if not _all_finite(v for v in state.values() if v.is_floating_point()):
            # never a new best whose weights are not finite (the averaged ones included)
            raise NonFiniteLossError(f"the weights are NaN or infinite after epoch {self.epoch}")
        self.best_val, self.best_epoch, self.time_to_best = score, self.epoch, now
        self.best_state = state

    def step_schedule(self, score: float | None) -> None:
        if self.scheduler is None:
            return
        if self.cfg.lr_schedule == "plateau":
            if score is not None:
                self.scheduler.step(score)
        else:
            self.scheduler.step()

    def show(self, bar, train_terms, val_terms) -> None:
        if bar is None:
            return
        post = {"train": f"{train_terms['loss']:.3f}"}
        if val_terms is not None:
            post["val"] = f"{val_terms['loss']:.3f}"
        post["best"] = f"{self.best_val:.3f}@{self.best_epoch}"
        bar.set_postfix(post, refresh=False)
        bar.update(1)

    def should_stop(self, train_terms, val_terms) -> bool:
        """Early stopping on patience, or a callback that returned True."""
        cfg = self.cfg
        stop = cfg.patience is not None and self.val_parts is not None and self.epoch - self.best_epoch >= cfg.patience
        if self.callbacks:
            info = EpochInfo(self.epoch, train_terms, val_terms, self.best_epoch, self.best_val, self.model,
                             self.optimizer)
            for cb in self.callbacks:
                if cb(info) is True:
                    stop = True
        return stop

    def checkpoint_epoch(self) -> None:
        if self.ckpt_path is None:
            return
        self.last_snapshot = self.snapshot()
        if self.epoch % self.cfg.checkpoint_every == 0:
            save_checkpoint(self.ckpt_path, self.last_snapshot)
            self.written_epoch = self.epoch

    def one_epoch(self, bar) -> None:
        self.epoch += 1
        train_terms = self.train_epoch()
        val_terms = self.validate()
        score = self.score(train_terms, val_terms)
        now = self.elapsed_now()
        self.record(train_terms, val_terms, now)
        self.keep_if_best(score, now)
        self.step_schedule(score)
        self.show(bar, train_terms, val_terms)
        if self.should_stop(train_terms, val_terms):
            self.stopped_early = True
        self.checkpoint_epoch()

    def result(self) -> TrainResult:
        return TrainResult(
            history=self.history,
            best_epoch=self.best_epoch,
            best_val_loss=self.best_val,
            time_to_best=self.time_to_best,
            total_time=self.elapsed_now(),
            epochs=self.history["epoch"][-1] if self.history["epoch"] else 0,
            stopped_early=self.stopped_early,
            interrupted=self.interrupted,
            checkpoint_path=str(self.ckpt_path) if self.ckpt_path is not None else None,
        )


def _check_arguments(model, config, callbacks, checkpoint):
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
    return cfg, callbacks, (Path(ckpt_path) if ckpt_path is not None else None)


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
    ``batch_size``; after each (every ``eval_every``) epoch the validation terms are computed
    and early stopping watches ``config.monitor`` ("auto": the ELBO when the model reports one,
    which stays the real bound under beta != 1 or a KL warm-up); the weights with the best score
    are restored into ``model`` at the end. Only finite weights can become the best.

    Speed: each split is moved to the device and validated once (``VAE.check_data``); batches
    are slices of it, passed to ``forward(batch, check=False)``; the loop reads from the device
    once per epoch. Options: KL warm-up (``warmup_epochs``), dynamic binarization
    (``binarize``), bfloat16 autocast (``bf16``), ``torch.compile`` (``compile_model``).

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
        NonFiniteLossError when the loss or the weights become NaN/inf (best weights restored,
        the checkpoint of the last good epoch written); TypeError/ValueError naming the argument
        for bad data or configuration, before any step; on resume, ValueError when the checkpoint
        was made with another model configuration, optimizer, schedule, warm-up or binarization.
    """
    cfg, callbacks, ckpt_path = _check_arguments(model, config, callbacks, checkpoint)
    run = _Run(model, cfg, train_data, val_data, ckpt_path, callbacks)
    if resume_from is not None:
        run.resume(resume_from)
    else:
        torch.manual_seed(cfg.seed)
    kl_weight_before = getattr(model, "kl_weight", None)

    bar = _progress_bar(cfg.max_epochs, run.epoch, cfg.progress)
    run.t0 = time.perf_counter()
    try:
        run.stopped_early = run.already_stopped()
        while not run.stopped_early and run.epoch < cfg.max_epochs:
            run.one_epoch(bar)
    except KeyboardInterrupt:
        run.interrupted = True
        run.back_to_last_checkpoint()
        if bar is not None:
            bar.write(f"interrupted during epoch {run.epoch}; keeping the best model (epoch {run.best_epoch})")
    except BaseException as err:
        # Keep what was learned: best weights back into the model, last good epoch on disk.
        if bar is not None:
            bar.close()
        model.load_state_dict(run.best_state)
        try:
            run.save_pending()
        except Exception as save_err:  # the first error is the one to report
            if hasattr(err, "add_note"):
                err.add_note(f"the checkpoint of epoch {run.last_snapshot['epoch']} could not be written: {save_err}")
        raise
    finally:
        if bar is not None:
            bar.close()
        if cfg.warmup_epochs:
            model.kl_weight = 1.0 if kl_weight_before is None else kl_weight_before

    result = run.result()
    if run.best_epoch > 0:
        model.load_state_dict(run.best_state)
    run.save_pending()
    return result

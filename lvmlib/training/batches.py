"""Data on the device, mini-batches, and the epoch averages of the model's output terms.

The data are moved to the device once; a mini-batch is an index into them. Every term the
model returns, a scalar or one value per example, is summed on the device and copied to the
host once per epoch (``Accumulator``). ``train_epoch`` is one such epoch written out by hand for a
Bernoulli VAE with dynamic binarization (the reference of notebook 06's core exercise).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from lvmlib.runtime import get_device

__all__ = ["evaluate", "train_epoch"]


def to_tensors(data: Any, name: str, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Data as a tuple of tensors on ``device`` sharing the first dimension (N).

    Floating-point parts take the model's dtype and must be finite (checked once, here).
    """
    if data is None:
        raise ValueError(f"{name} must be a tensor or numpy array (or a tuple of them), got None")
    parts = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    if len(parts) == 0:
        raise ValueError(f"{name} must not be an empty tuple")
    out = []
    for p in parts:
        if isinstance(p, np.ndarray):
            if p.dtype.kind not in "biuf":
                raise TypeError(f"{name} must hold numbers (bool, integer or float), got a numpy array of dtype {p.dtype}")
            t = torch.from_numpy(np.ascontiguousarray(p))
        elif isinstance(p, torch.Tensor):
            t = p.detach()
            if t.is_complex():
                raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
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
    floats = [t for t in out if t.is_floating_point()]
    if floats:
        n_bad = int(torch.stack([(~torch.isfinite(t)).sum() for t in floats]).sum())
        if n_bad:
            raise ValueError(f"{name} must be finite, got {n_bad} NaN or infinite value(s)")
    return tuple(out)


def checks_data_once(model: nn.Module) -> bool:
    """True for a model that validates a whole data set with ``check_data(x, name)`` and whose
    forward takes ``check=False`` (no per-batch data-dependent checks, no host sync)."""
    if not callable(getattr(model, "check_data", None)):
        return False
    try:
        return "check" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def prepare_data(model: nn.Module, data: Any, name: str, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A split on the device, validated once: by the model's ``check_data`` when it has one
    (the VAE: shape (N, D), finite, in the likelihood's range), else by ``to_tensors``."""
    parts = to_tensors(data, name, device, model_dtype(model))
    if len(parts) == 1 and checks_data_once(model):
        return (model.check_data(parts[0], name),)
    return parts


def call_model(model: nn.Module, batch: tuple[torch.Tensor, ...], checked: bool = False) -> Mapping[str, Any]:
    """``model(*batch)``, with ``check=False`` when the data were validated once (``checked``)."""
    out = model(*batch, check=False) if checked else model(*batch)
    if not isinstance(out, Mapping) or "loss" not in out:
        raise TypeError(
            "train() needs a model whose forward returns a dict with a scalar 'loss' "
            f"(got {type(out).__name__}{' without a loss key' if isinstance(out, Mapping) else ''})"
        )
    return out


def batch_terms(out: Mapping[str, Any], nb: int) -> dict[str, torch.Tensor]:
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


class Accumulator:
    """Epoch averages of the output terms, with one device-to-host copy per epoch."""

    def __init__(self) -> None:
        self.sums: dict[str, list[torch.Tensor]] = {}
        self.n = 0

    def add(self, out: Mapping[str, Any], nb: int) -> None:
        for k, v in batch_terms(out, nb).items():
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
    model: nn.Module, data: Any, *, batch_size: int = 1024, device: str | torch.device | None = None,
    checked: bool = False,
) -> dict[str, float]:
    """Every term of the model's output averaged over ``data``, in eval mode and without gradients.

    For the VAE, ``-evaluate(model, x_test)["elbo"]`` is the test -ELBO per example,
    -(1/N) sum_n ELBO(x_n) (lecture: ln p(x) >= E_q[ln p(x|z)] - KL(q(z|x)||p(z))), one
    sample of z per example; with beta = 1 it equals ``["loss"]``.

    Inputs: data (N, ...) tensor/array or tuple of them (validated once, as ``train`` does;
    ``checked=True``: a tuple of tensors from ``prepare_data``, used as given).
    Returns: {key: float}.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    dev = model_device(model) if device is None else get_device(device)
    parts = tuple(data) if checked else prepare_data(model, data, "data", dev)
    fast = checks_data_once(model) and len(parts) == 1
    was_training = model.training
    model.eval()
    acc = Accumulator()
    n = parts[0].shape[0]
    try:
        for s in range(0, n, batch_size):
            batch = tuple(p[s : s + batch_size] for p in parts)
            acc.add(call_model(model, batch, checked=fast), batch[0].shape[0])
    finally:
        model.train(was_training)
    return acc.result()


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, batch_size: int,
                generator: torch.Generator | None = None) -> float:
    """One epoch of a VAE with a Bernoulli decoder on dynamically binarized data; the epoch's mean loss.

    Everything stays on the device of ``x`` (the model's): the permutation is made there, each
    batch is binarized there, b ~ Bernoulli(x_batch), afresh every epoch, and the losses are
    summed there; the host reads the result once, at the end (no ``.item()`` per batch).
    Order of the draws from ``generator`` (so that a seeded generator gives the same epoch again):
    the permutation of the N images, then for each batch its binary images and the model's noise.

    Inputs: model a ``vae.VAE`` (``model(xb, generator=..., check=False)["loss"]`` is the mean
        -ELBO of the batch); optimizer over its parameters; x (N, D) grey levels in [0, 1] on the
        model's device (checked by the caller once, e.g. with ``model.check_data``); batch_size a
        positive integer (the last batch is shorter when N is not a multiple of it); generator a
        torch.Generator on x's device, or None for PyTorch's global one.
    Returns: the mean loss over the N images, (1/N) sum_batches B_b * loss_b (a Python float).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not torch.is_tensor(x) or x.dim() != 2 or x.shape[0] == 0 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor of shape (N, D) with N >= 1, got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    n, bs = x.shape[0], int(batch_size)
    model.train()
    perm = torch.randperm(n, generator=generator, device=x.device)         # (N,) made on the device
    total = x.new_zeros(())                                                 # the sum of B_b * loss_b, on the device
    for start in range(0, n, bs):
        xb = torch.bernoulli(x[perm[start:start + bs]], generator=generator)   # (B, D) of 0./1., fresh draws
        loss = model(xb, generator=generator, check=False)["loss"]          # the mean -ELBO of the batch
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total = total + loss.detach() * xb.shape[0]
    return (total / n).item()                                               # the epoch's one read from the device

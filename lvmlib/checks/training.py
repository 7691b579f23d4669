"""Checks of the training exercises (notebook 06): one device-correct epoch with dynamic binarization.

``check_train_epoch`` runs the learner's ``train_epoch`` for two epochs on a small VAE with a
Bernoulli decoder and SGD, on data whose rows carry their own index in pixels that are exactly 0
or 1 (a Bernoulli draw keeps them), so the rows of every batch the model sees can be read back.
It then runs the function once more on PyTorch's ``meta`` device (shapes and devices, no data),
watching every tensor made there. What it compares, part by part (partial diagnosis):

- the batches: which images, in which order, how many at a time;
- whether the binary images are drawn afresh each epoch;
- the binary images themselves (drawn with the generator, batch by batch);
- the device: tensors made in the epoch on another device than the data's;
- the update (zero_grad, backward, one step per batch), read from the parameters;
- the mean loss returned, from the losses of the learner's own batches, as a Python float;
- host reads (``.item()``, ``.cpu()``, ``float(t)``, ``.tolist()``, ``bool(t)``) per batch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from lvmlib.checks._core import Case, ExerciseError, Part, check_through, _is_device_mismatch, seeded

__all__ = ["check_train_epoch", "HINTS"]

HINTS = {
    "train_epoch": (
        "An epoch is: one shuffled order of the N images, then for each batch of that order a fresh binary "
        "version of its images, the model's loss on it and one optimizer step. Every random draw comes from "
        "the generator you are given, and every tensor you make goes where x already is.",
        "The permutation and the binary images are drawn with PyTorch's random functions, which take both a "
        "generator= and a device= argument. The model's loss is a MEAN over its batch, and the last batch may "
        "be shorter: weight each batch's loss by its number of images before dividing by N.",
        "Keep the running total as a tensor on the device and add the detached loss to it; a Python float "
        "made from the loss in the loop (loss.item(), float(loss)) makes the host wait for the device at "
        "every batch. Read the total once, after the loop. The model's own checks read the host too: "
        "call it with check=False.",
    ),
}

_D_CODE, _D_GREY = 4, 6  # pixels holding the row's index in binary (exactly 0 or 1), grey pixels
_D = _D_CODE + _D_GREY
_N = 13  # rows: not a multiple of the batch sizes below, so the last batch is shorter
_EPOCHS = 2
_READS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")
_FACTORIES = ("randperm", "arange", "zeros", "ones", "empty", "full", "rand", "randn", "randint", "tensor",
              "as_tensor", "from_numpy", "linspace", "bernoulli")
_STAND_IN = {"__bool__": False, "__int__": 0, "__index__": 0}


class _Watch:
    """While active: counts host reads (Tensor.item, .cpu, float(t), ...); with ``meta``, answers a read of a meta
    tensor with a stand-in and lists the tensors that torch's factories made off the meta device outside the
    model (``inside`` counts the model's calls in progress)."""

    def __init__(self, meta: bool = False):
        self.meta, self.reads, self.elsewhere, self.inside, self._saved = meta, 0, [], 0, {}

    def _read(self, name, original):
        def read(t, *args, **kwargs):
            self.reads += 1
            if self.meta and t.is_meta:
                return _STAND_IN.get(name, 0.0)
            return original(t, *args, **kwargs)
        return read

    def _factory(self, name, original):
        def make(*args, **kwargs):
            out = original(*args, **kwargs)
            # a 0-d CPU tensor (a start value) mixes with device tensors without a copy: not counted
            if not self.inside and torch.is_tensor(out) and not out.is_meta and out.dim() > 0:
                self.elsewhere.append(name)
            return out
        return make

    def _patch(self, owner, name, make):
        original = getattr(owner, name)
        # (owner, name) -> the attribute to put back, or None where it was inherited (then it is deleted again)
        self._saved[(owner, name)] = owner.__dict__.get(name)
        setattr(owner, name, make(name, original))

    def __enter__(self):
        for name in _READS:
            self._patch(torch.Tensor, name, self._read)
        if self.meta:
            for name in _FACTORIES:
                self._patch(torch, name, self._factory)
        return self

    def __exit__(self, *exc):
        for (owner, name), original in self._saved.items():
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._saved.clear()
        return False


def _data(case_seed: int) -> torch.Tensor:
    rng = np.random.default_rng(int(case_seed))
    code = (np.arange(_N)[:, None] >> np.arange(_D_CODE)[None, :]) & 1  # (N, 4): row n's index in binary
    grey = rng.uniform(0.2, 0.8, size=(_N, _D_GREY))  # (N, 6) grey levels, never 0 or 1
    return torch.as_tensor(np.concatenate([code, grey], axis=1), dtype=torch.float32)  # (N, D)


def _model(case_seed: int):
    from lvmlib.vae import VAE, VAEConfig

    with seeded(int(case_seed)):
        return VAE(VAEConfig(D=_D, M=2, H=8, likelihood="bernoulli", device="cpu"))


def _recording(model):
    """Hooks that keep each batch the model sees and the loss it returns."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    pending = []

    def before(module, args, kwargs):
        xb = args[0] if args else kwargs.get("x")
        pending.append(xb.detach().clone() if torch.is_tensor(xb) else xb)

    def after(module, args, kwargs, out):
        loss = out.get("loss") if isinstance(out, dict) else None
        seen.append((pending.pop() if pending else None, loss.detach().clone() if torch.is_tensor(loss) else None))

    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(after, with_kwargs=True)
    return seen


# (function, case) -> count, for lvmlib's own functions only (the reference, the planted mistakes)
_META_CACHE: dict = {}


def _meta_run(fn: Callable, case_seed: int, batch_size: int) -> int:
    """Tensors with data made on another device than the data's, with everything on ``meta`` (slow: a meta
    tensor's operations run through Python; lvmlib's own functions are run there once per case)."""
    from lvmlib.training.batches import train_epoch

    ours = fn is train_epoch or any(fn is m for m in MISTAKES.values())
    key = (fn, int(case_seed), int(batch_size))
    if ours and key in _META_CACHE:
        return _META_CACHE[key]
    count = _meta_count(fn, case_seed, batch_size)
    if ours:
        _META_CACHE[key] = count
    return count


def _meta_count(fn: Callable, case_seed: int, batch_size: int) -> int:
    model = _model(case_seed).to("meta")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = _data(case_seed).to("meta")
    watch = _Watch(meta=True)
    model.register_forward_pre_hook(lambda *a: setattr(watch, "inside", watch.inside + 1))
    model.register_forward_hook(lambda *a: setattr(watch, "inside", watch.inside - 1))
    try:
        with watch:
            fn(model, optimizer, x, batch_size, None)
    except Exception as err:  # nothing is computed on meta: only a mix of devices says something here
        if _is_device_mismatch(err):
            return len(watch.elsewhere) + 1
    return len(watch.elsewhere)


def _summary(fn: Callable) -> Callable:
    def run(case_seed, batch_size):
        model = _model(case_seed)
        seen = _recording(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x = _data(case_seed)
        returned, watch, per_epoch = [], _Watch(), []
        for epoch in range(_EPOCHS):
            generator = torch.Generator().manual_seed(int(case_seed) * 100 + epoch)  # one per epoch, as the trainer
            before = len(seen)
            with watch:
                returned.append(fn(model, optimizer, x, batch_size, generator))
            per_epoch.append(seen[before:])
        if any(xb is None or loss is None for ep in per_epoch for xb, loss in ep):
            raise ExerciseError("train_epoch: call the model on each batch, model(xb, generator=generator, "
                                "check=False), and use the 'loss' of the dict it returns")
        weights = 2 ** torch.arange(_D_CODE)
        rows = [tuple((xb[:, :_D_CODE].round() * weights).sum(1).long() for xb, _ in ep) for ep in per_epoch]
        draws = [tuple(xb[:, _D_CODE:] for xb, _ in ep) for ep in per_epoch]
        # afresh: for each image, do its binary pixels in epoch 2 all equal those of epoch 1?
        binary = {}
        for e in range(_EPOCHS):
            for r, d in zip(rows[e], draws[e]):
                for i, row in enumerate(r.tolist()):
                    binary.setdefault(row, []).append(d[i])
        fixed = [bool(torch.equal(v[0], v[1])) for v in binary.values() if len(v) >= 2]
        n_batches = sum(len(ep) for ep in per_epoch)
        mean_from_batches = [sum(float(loss) * xb.shape[0] for xb, loss in ep) / _N for ep in per_epoch]
        return {
            "batches": tuple(r for ep in rows for r in ep),
            "the same binary images every epoch": bool(fixed) and all(fixed),
            "binary images": tuple(d for ep in draws for d in ep),
            "tensors made off the data's device": _meta_run(fn, case_seed, batch_size),
            "parameters after two epochs": torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
            "returned": torch.tensor([float(torch.as_tensor(r)) if r is not None else float("nan")
                                      for r in returned]),
            "returned - (1/N) sum_b B_b loss_b": torch.tensor([float(torch.as_tensor(r)) - m if r is not None
                                                               else float("nan")
                                                               for r, m in zip(returned, mean_from_batches)]),
            "a Python float returned": all(isinstance(r, float) for r in returned),
            "host reads per batch besides the final one": max(watch.reads - _EPOCHS, 0) / max(n_batches, 1),
        }

    return run


PARTS = (
    Part("the batches (one permutation of the N images per epoch, batch_size at a time, drawn with the generator)",
         lambda out, case: out["batches"]),
    Part("fresh binary images each epoch (not one fixed binarization)",
         lambda out, case: out["the same binary images every epoch"]),
    Part("the binary images (Bernoulli draws with the generator, batch by batch after the permutation)",
         lambda out, case: out["binary images"]),
    Part("the device (tensors made in the epoch on the data's device)",
         lambda out, case: out["tensors made off the data's device"]),
    Part("the update (zero_grad, backward, one optimizer step per batch: the parameters after two epochs)",
         lambda out, case: out["parameters after two epochs"]),
    Part("the mean loss returned ((1/N) sum over YOUR batches of B_b * loss_b)",
         lambda out, case: out["returned - (1/N) sum_b B_b loss_b"]),
    Part("the result's type (a Python float, read from the device once, after the loop)",
         lambda out, case: out["a Python float returned"]),
    Part("host reads in the loop (.item(), .cpu(), float(t) per batch; one read at the end only)",
         lambda out, case: out["host reads per batch besides the final one"]),
)


# ----------------------------------------------------------------------------- planted mistakes (tests use them)
def _epoch(model, optimizer, x, batch_size, generator=None, *, perm_device="data", shuffle="perm", binar="fresh",
           reduce="weighted", read="end", zero="before", step="batch", check=False, noise="generator", last=True):
    n = x.shape[0]
    if shuffle == "none":
        perm = torch.arange(n, device=x.device)
    elif shuffle == "replacement":
        perm = torch.randint(0, n, (n,), generator=generator, device=x.device)
    elif shuffle == "global":
        perm = torch.randperm(n, device=x.device)
    elif perm_device == "cpu":
        perm = torch.randperm(n, generator=generator if generator is None or generator.device.type == "cpu" else None)
    else:
        perm = torch.randperm(n, generator=generator, device=x.device)
    own = torch.Generator(device=x.device).manual_seed(0) if binar == "seeded_inside" and x.device.type != "meta" \
        else None
    whole = torch.bernoulli(x, generator=generator) if binar == "whole" else None
    total, losses, floats = x.new_zeros(()), [], 0.0
    if step == "epoch":
        optimizer.zero_grad()
    stop = n if last else n - n % batch_size
    for start in range(0, stop, batch_size):
        idx = perm[start:start + batch_size]
        xg = x[idx]
        xb = {"fresh": lambda: torch.bernoulli(xg, generator=generator),
              "threshold": lambda: (xg > 0.5).to(xg.dtype),
              "global": lambda: torch.bernoulli(xg),
              "seeded_inside": lambda: torch.bernoulli(xg, generator=own),
              "flipped": lambda: torch.bernoulli(1.0 - xg, generator=generator),
              "whole": lambda: whole[idx],
              "grey": lambda: xg}[binar]()
        kw = {"generator": generator} if noise == "generator" else {}
        out = model(xb, **kw) if check else model(xb, check=False, **kw)
        loss = out["loss"]
        if step == "batch":
            if zero == "before":
                optimizer.zero_grad()
            loss.backward()
            if zero == "between":
                optimizer.zero_grad()
            optimizer.step()
        elif step == "epoch":
            (loss * xb.shape[0] / n).backward()
        else:  # no step at all
            optimizer.zero_grad()
            loss.backward()
        if read == "item":
            floats += loss.item() * xb.shape[0]
        elif read == "cpu":
            total = total + loss.detach().cpu() * xb.shape[0]
            losses.append(loss.detach())
            continue
        elif read == "nan_guard" and bool(torch.isnan(loss)):
            raise FloatingPointError("the loss is NaN")
        total = total + loss.detach() * xb.shape[0]
        losses.append(loss.detach())
    if step == "epoch":
        optimizer.step()
    if read == "item":
        return floats / n
    result = {"weighted": lambda: total / n, "per_batch": lambda: torch.stack(losses).mean(),
              "sum": lambda: total, "batches_times_size": lambda: total / (len(losses) * batch_size),
              "unweighted": lambda: torch.stack(losses).sum() / n, "last": lambda: losses[-1]}[reduce]()
    return result if read == "never" else result.item()


MISTAKES = {
    "loss.item() (or float(loss)) in the loop: every batch the host waits for the device to finish. Keep the "
    "running total as a tensor on the device and read it once, after the loop.": lambda *a: _epoch(*a, read="item"),
    "the model was called with its checks on (model(xb) reads the batch's values on the host at every batch): "
    "call model(xb, generator=generator, check=False).": lambda *a: _epoch(*a, check=True),
    "the permutation was made on the CPU (torch.randperm without device=): on a GPU each batch's indices then "
    "cross from the host; make it with device=x.device.": lambda *a: _epoch(*a, perm_device="cpu"),
    "the batches were not shuffled: draw one permutation per epoch with torch.randperm and the generator.":
        lambda *a: _epoch(*a, shuffle="none"),
    "a fixed threshold (x > 0.5) is not a Bernoulli draw: every epoch sees the same binary images, and the grey "
    "levels are thrown away.": lambda *a: _epoch(*a, binar="threshold"),
    "a generator seeded inside the function draws the same binary images every epoch (static binarization): "
    "draw with the generator you are given.": lambda *a: _epoch(*a, binar="seeded_inside"),
    "the binary images were drawn from PyTorch's global generator: draw with the generator you are given, so "
    "that a seeded generator gives the same epoch again.": lambda *a: _epoch(*a, binar="global"),
    "the mean of the batch losses weights the short last batch like a full one: weight each batch's loss by its "
    "number of images and divide by N.": lambda *a: _epoch(*a, reduce="per_batch"),
    "the SUM of B_b * loss_b was returned: divide by N, the number of images.": lambda *a: _epoch(*a, reduce="sum"),
    "the total was divided by (number of batches x batch_size), which counts the short last batch as full: "
    "divide by N.": lambda *a: _epoch(*a, reduce="batches_times_size"),
    "the gradients were not zeroed before backward(): they add up over the batches.":
        lambda *a: _epoch(*a, zero="never"),
    "one optimizer step per epoch (gradients accumulated over the batches): step once per batch.":
        lambda *a: _epoch(*a, step="epoch"),
}


def _cases(seed: int) -> list[Case]:
    return [Case((seed * 10 + 1, 5)), Case((seed * 10 + 2, 4))]


def check_train_epoch(learner: Callable, *, strict: bool = False, seed: int = 0) -> Callable:
    """Check ``train_epoch(model, optimizer, x, batch_size, generator)`` -> the epoch's mean loss: two epochs on
    a small Bernoulli VAE with SGD, compared part by part with :func:`lvmlib.training.batches.train_epoch`, and
    one run on the ``meta`` device for the tensors' devices."""
    from lvmlib.training.batches import train_epoch

    return check_through(
        learner, train_epoch, _summary, _cases(seed), name="train_epoch", seed=seed, strict=strict,
        rtol=1e-4, atol=1e-6, parts=PARTS, arg_names=("seed of the test data", "batch_size"),
        known_mistakes=MISTAKES, hint='checks.hint("train_epoch") shows a hint, one more each time.',
    )

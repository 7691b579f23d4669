"""Checks for the exercises on a VAE's latent space (notebook 06).

- ``check_latent_sweep``: one row of a latent traversal, E[x | z] as one dimension of z sweeps
  over values with the others fixed (reference: :func:`lvmlib.widgets.latent_sweep`);
- ``check_interpolate``: decoded images along the straight path between two images'
  posterior means (reference: :func:`lvmlib.widgets.interpolate`).

Both run the learner's function and the reference on small random Bernoulli VAEs and inputs,
give each its own copy of the inputs, and say so when the learner's function changed one or returned
images that carry a computation graph (decoded without ``torch.no_grad()``). Then
they run it once more with the model and the inputs on a second device (CUDA where present, else
PyTorch's ``meta`` device) and reject a function that makes its tensors on the CPU regardless
(``torch.linspace(0, 1, steps)`` without ``device=``): it passes on a CPU and stops on a GPU.

Usage in a notebook::

    from lvmlib import checks
    latent_sweep = checks.latent_space.check_latent_sweep(latent_sweep)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from lvmlib.checks._core import Case, ExerciseError, check_follows_device, check_function, seeded
from lvmlib.vae import VAE, VAEConfig
from lvmlib.widgets import interpolate as _interpolate
from lvmlib.widgets import latent_sweep as _latent_sweep

__all__ = ["check_latent_sweep", "check_interpolate"]


class _SmallVAE(VAE):
    """A VAE whose repr fits on one line in a check's message."""

    def __repr__(self) -> str:
        c = self.config
        return f"VAE(D={c.D}, M={c.M}, likelihood={c.likelihood!r})"

    def _as_x(self, x, name: str = "x") -> torch.Tensor:
        # on the meta device (the device check) there are no values to validate: only the type and the form
        if torch.is_tensor(x) and x.device.type == "meta":
            return x.to(self.dtype)
        return super()._as_x(x, name)


_MODELS: dict[tuple[int, int], _SmallVAE] = {}


def _model(M: int, seed: int) -> _SmallVAE:
    """A small random Bernoulli VAE (D = 16) on the CPU, one per (M, seed), built once."""
    key = (M, seed)
    if key not in _MODELS:
        with seeded(1000 + seed):
            model = _SmallVAE(VAEConfig(D=16, M=M, H=16, likelihood="bernoulli", device="cpu"))
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(3.0)  # larger weights: images that differ clearly from one z to the next
        _MODELS[key] = model
    return _MODELS[key]


def _guard_inputs(learner: Callable, name: str, arg_names: tuple[str, ...]) -> Callable:
    """Run the learner on its own copies of the tensor inputs; an in-place change is an ExerciseError."""

    def guarded(*args):
        before = [a.clone() if torch.is_tensor(a) else None for a in args]
        out = learner(*args)
        for arg_name, a, b in zip(arg_names, args, before):
            if b is not None and not torch.equal(a, b):
                raise ExerciseError(
                    f"{name}: your function changed its input {arg_name} in place. Work on a copy "
                    f"(e.g. {arg_name}.clone(), or build a new tensor) so that the caller's {arg_name} stays as it was.")
        if torch.is_tensor(out) and (out.requires_grad or out.grad_fn is not None):
            raise ExerciseError(
                f"{name}: not right yet — the images are right but carry the computation graph that made them "
                f"(requires_grad=True, grad_fn={type(out.grad_fn).__name__ if out.grad_fn is not None else None}): "
                "the decoder ran with gradients on.\n"
                "  For pictures no gradient is needed: decode under `with torch.no_grad():`, which also saves the "
                "memory the graph holds (and plotting a tensor that requires grad fails).")
        return out

    guarded.__name__ = getattr(learner, "__name__", name)
    guarded._lvmlib_substitute_for = getattr(learner, "_lvmlib_substitute_for", None)
    return guarded


def _unguarded(fn: Callable, guarded: Callable) -> Callable:
    """What the check returns: the learner's own function, or the (marked) reference; the stand-in itself
    when the check runs again on it, so that re-running a check cell changes nothing."""
    if getattr(fn, "_lvmlib_substitute_for", None):
        return fn
    return guarded if getattr(guarded, "_lvmlib_substitute_for", None) else fn


# ----------------------------------------------------------------------------- latent sweep
def _sweep_case(rng: np.random.Generator) -> Case:
    M = int(rng.integers(3, 6))
    model = _model(M, int(rng.integers(0, 3)))
    z0 = torch.as_tensor(rng.normal(size=M), dtype=torch.float32)
    dim = int(rng.integers(0, M))
    values = torch.linspace(-2.5, 2.5, int(rng.integers(4, 9)))
    return Case((model, z0, dim, values))


def _sweep_logits(model, z0, dim, values):
    z = z0.expand(len(values), -1).clone()
    z[:, dim] = values
    with torch.no_grad():
        return model.decoder(z)


def _sweep_added(model, z0, dim, values):
    z = z0.expand(len(values), -1).clone()
    z[:, dim] = z0[dim] + values
    with torch.no_grad():
        return model.decoder.mean(z)


def _sweep_from_zero(model, z0, dim, values):
    z = torch.zeros(len(values), len(z0))
    z[:, dim] = values
    with torch.no_grad():
        return model.decoder.mean(z)


def _sweep_every_dim(model, z0, dim, values):
    z = values[:, None].expand(-1, len(z0)).clone()
    with torch.no_grad():
        return model.decoder.mean(z)


def _sweep_sampled(model, z0, dim, values):
    z = z0.expand(len(values), -1).clone()
    z[:, dim] = values
    with torch.no_grad():
        return model.decoder.sample(z)


SWEEP_MISTAKES = {
    "model.decoder(z) gives the decoder's logits; the image is the mean E[x|z] = model.decoder.mean(z)": _sweep_logits,
    "the value was added to z0[dim]; a traversal sets z[dim] to each value": _sweep_added,
    "the sweep starts from z = 0, not from z0: the other dimensions must keep z0's values": _sweep_from_zero,
    "every dimension was set to the value; only dimension dim moves, the others stay at z0": _sweep_every_dim,
    "images were sampled from p(x|z); a traversal shows the mean E[x|z] = model.decoder.mean(z)": _sweep_sampled,
}


def check_latent_sweep(latent_sweep: Callable, *, strict: bool = False, seed: int = 0, n_trials: int = 4) -> Callable:
    """Check ``latent_sweep(model, z0, dim, values) -> (S, D)``, the decoded means E[x | z_s] with
    z_s = z0 except z_s[dim] = values[s], against :func:`lvmlib.widgets.latent_sweep`."""
    guarded = _guard_inputs(latent_sweep, "latent_sweep", ("model", "z0", "dim", "values")) \
        if callable(latent_sweep) else latent_sweep
    out = check_function(guarded, _latent_sweep, _sweep_case, name="latent_sweep", n_trials=n_trials, seed=seed,
                         rtol=1e-4, atol=1e-6, known_mistakes=SWEEP_MISTAKES, strict=strict,
                         hint="copy z0 into S rows, set column dim to the values, decode the means without gradients")
    if getattr(out, "_lvmlib_substitute_for", None) is None:
        check_follows_device(latent_sweep, _latent_sweep, _sweep_case(np.random.default_rng(seed)), name="latent_sweep")
    return out if out is None else _unguarded(latent_sweep, out)


# ----------------------------------------------------------------------------- interpolation
def _interp_case(rng: np.random.Generator) -> Case:
    model = _model(int(rng.integers(2, 5)), int(rng.integers(0, 3)))
    x_a = torch.as_tensor(rng.uniform(size=16), dtype=torch.float32)
    x_b = torch.as_tensor(rng.uniform(size=16), dtype=torch.float32)
    return Case((model, x_a, x_b, int(rng.integers(4, 9))))


def _interp_with(z_fn, decode="mean", t_fn=None):
    def wrong(model, x_a, x_b, steps):
        with torch.no_grad():
            z_a, z_b = z_fn(model, x_a, x_b)
            t = (torch.linspace(0, 1, steps) if t_fn is None else t_fn(steps))[:, None]
            z = (1 - t) * z_a + t * z_b
            return model.decoder.mean(z) if decode == "mean" else model.decoder(z)
    return wrong


def _means(model, x_a, x_b):
    mu, _ = model.encode(torch.stack([x_a, x_b]))
    return mu[0], mu[1]


def _samples(model, x_a, x_b):
    mu, log_var = model.encode(torch.stack([x_a, x_b]))
    z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
    return z[0], z[1]


def _pixel_blend(model, x_a, x_b, steps):
    t = torch.linspace(0, 1, steps)[:, None]
    return (1 - t) * x_a + t * x_b


INTERPOLATE_MISTAKES = {
    "the images were blended in pixel space, (1 - t) x_a + t x_b; interpolate the codes mu_z(x) and decode them":
        _pixel_blend,
    "the path misses its last point: t = k / steps for k < steps never reaches 1 (use torch.linspace(0, 1, steps))":
        _interp_with(_means, t_fn=lambda steps: torch.arange(steps) / steps),
    "the path runs backwards, from x_b to x_a: at t = 0 it must decode mu_z(x_a)":
        _interp_with(lambda m, a, b: _means(m, a, b)[::-1]),
    "the ends are samples z ~ q(z|x), not the posterior means mu_z(x): the path changes from call to call":
        _interp_with(_samples),
    "model.decoder(z) gives the decoder's logits; the images are the means E[x|z] = model.decoder.mean(z)":
        _interp_with(_means, decode="logits"),
}


def check_interpolate(interpolate: Callable, *, strict: bool = False, seed: int = 0, n_trials: int = 4) -> Callable:
    """Check ``interpolate(model, x_a, x_b, steps) -> (steps, D)``, E[x | z_k] along
    z_k = (1 - t_k) mu_z(x_a) + t_k mu_z(x_b), t_k = k / (steps - 1), against
    :func:`lvmlib.widgets.interpolate`."""
    guarded = _guard_inputs(interpolate, "interpolate", ("model", "x_a", "x_b", "steps")) \
        if callable(interpolate) else interpolate
    out = check_function(guarded, _interpolate, _interp_case, name="interpolate", n_trials=n_trials, seed=seed,
                         rtol=1e-4, atol=1e-6, known_mistakes=INTERPOLATE_MISTAKES, strict=strict,
                         hint="mu_z, _ = model.encode(...) for both images, the path of latent_path-like points "
                              "(both ends included), then model.decoder.mean")
    if getattr(out, "_lvmlib_substitute_for", None) is None:
        check_follows_device(interpolate, _interpolate, _interp_case(np.random.default_rng(seed)), name="interpolate")
    return out if out is None else _unguarded(interpolate, out)


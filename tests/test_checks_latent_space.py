"""The checks of notebook 06's latent-space exercises (lvmlib.checks.latent_space) accept right answers
and catch wrong ones.

For each check: independently written right answers pass and are returned; an unfinished exercise gets
lvmlib's reference back, or ExerciseNotDone with strict=True; each typical wrong answer raises
ExerciseError whose message names the mistake; a function that changes an input in place is caught.
The references (lvmlib.widgets.latent_sweep, interpolate) are tested in tests/test_widgets_latent.py.
"""

import pytest
import torch

from lvmlib.checks import latent_space as lchecks

from check_helpers import named, not_done


def sigmoid(a):
    return 1 / (1 + torch.exp(-a))


# ----------------------------------------------------------------------------- latent sweep
@torch.no_grad()
def sweep_loop(model, z0, dim, values):
    """Right, one z at a time, the mean written as a sigmoid of the decoder's logits."""
    rows = []
    for v in values:
        z = z0.clone()
        z[dim] = v
        rows.append(sigmoid(model.decoder.net(z)))
    return torch.stack(rows)


@torch.no_grad()
def sweep_onehot(model, z0, dim, values):
    """Right, vectorised with a one-hot mask."""
    e = torch.zeros_like(z0)
    e[dim] = 1.0
    z = z0 * (1 - e) + values[:, None] * e
    return model.decoder.mean(z)


@torch.no_grad()
def sweep_in_place(model, z0, dim, values):
    rows = []
    for v in values:
        z0[dim] = v
        rows.append(model.decoder.mean(z0))
    return torch.stack(rows)


@torch.no_grad()
def sweep_wrong_dim(model, z0, dim, values):
    z = z0.expand(len(values), -1).clone()
    z[:, (dim + 1) % len(z0)] = values
    return model.decoder.mean(z)


def test_latent_sweep_accepts_right_answers(capsys):
    for right in (sweep_loop, sweep_onehot):
        assert lchecks.check_latent_sweep(right) is right
        assert lchecks.check_latent_sweep(right, strict=True, seed=1) is None
    assert "✓ latent_sweep" in capsys.readouterr().out


def test_latent_sweepnot_done():
    fallback = not_done(lchecks.check_latent_sweep)
    model = lchecks._model(3, 0)
    out = fallback(model, torch.zeros(3), 1, torch.linspace(-1, 1, 4))
    assert out.shape == (4, 16)


@pytest.mark.parametrize("description", list(lchecks.SWEEP_MISTAKES))
def test_latent_sweep_names_each_typical_mistake(description):
    named(lchecks.check_latent_sweep, lchecks.SWEEP_MISTAKES[description], description)


def test_latent_sweep_catches_more_wrong_answers():
    named(lchecks.check_latent_sweep, sweep_in_place, "changed its input z0 in place")
    named(lchecks.check_latent_sweep, sweep_wrong_dim, "not right yet")


# ----------------------------------------------------------------------------- interpolation
@torch.no_grad()
def interp_loop(model, x_a, x_b, steps):
    """Right, one point at a time from the encoder's network, means as sigmoids."""
    M = model.config.M
    h = model.encoder.net(torch.stack([x_a, x_b]))
    z_a, z_b = h[0, :M], h[1, :M]
    out = []
    for k in range(steps):
        t = k / (steps - 1)
        out.append(sigmoid(model.decoder.net(z_a + t * (z_b - z_a))))
    return torch.stack(out)


@torch.no_grad()
def interp_lerp(model, x_a, x_b, steps):
    """Right: torch.lerp on the posterior means, one image at a time."""
    mu_a, _ = model.encode(x_a[None])
    mu_b, _ = model.encode(x_b[None])
    t = torch.arange(steps, dtype=torch.float32)[:, None] / (steps - 1)
    return model.decoder.mean(torch.lerp(mu_a, mu_b, t))


def interp_in_place(model, x_a, x_b, steps):
    x_a.mul_(1.0).clamp_(0, 0.5)  # "tidies" the input
    return interp_loop(model, x_a, x_b, steps)


@torch.no_grad()
def interp_codes(model, x_a, x_b, steps):
    mu, _ = model.encode(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None]
    return (1 - t) * mu[0] + t * mu[1]


def test_interpolate_accepts_right_answers(capsys):
    for right in (interp_loop, interp_lerp):
        assert lchecks.check_interpolate(right) is right
        assert lchecks.check_interpolate(right, strict=True, seed=1) is None
    assert "✓ interpolate" in capsys.readouterr().out


def test_interpolatenot_done():
    fallback = not_done(lchecks.check_interpolate)
    x = torch.rand(2, 16)
    assert fallback(lchecks._model(2, 0), x[0], x[1], 5).shape == (5, 16)


@pytest.mark.parametrize("description", list(lchecks.INTERPOLATE_MISTAKES))
def test_interpolate_names_each_typical_mistake(description):
    named(lchecks.check_interpolate, lchecks.INTERPOLATE_MISTAKES[description], description)


def test_interpolate_catches_more_wrong_answers():
    named(lchecks.check_interpolate, interp_in_place, "changed its input x_a in place")
    named(lchecks.check_interpolate, interp_codes, "has shape")

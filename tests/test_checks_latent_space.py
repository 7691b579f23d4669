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
from lvmlib.checks._core import second_device

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
    t = torch.arange(steps, dtype=torch.float32, device=mu_a.device)[:, None] / (steps - 1)
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


# ----------------------------------------------------------------------------- the inputs' device
# Right on a CPU, wrong on a GPU: each makes a tensor on the CPU whatever the inputs' device is. The checks run
# the function once more on a second device (CUDA where present, else "meta") and must reject all of them.
@torch.no_grad()
def sweep_cpu_zeros(model, z0, dim, values):
    z = torch.zeros(len(values), len(z0))        # no device=
    z[:] = z0
    z[:, dim] = values
    return model.decoder.mean(z)


@torch.no_grad()
def sweep_returns_cpu(model, z0, dim, values):
    z = z0.expand(len(values), -1).clone()
    z[:, dim] = values
    return model.decoder.mean(z).cpu()


@torch.no_grad()
def interp_cpu_linspace(model, x_a, x_b, steps):
    mu, _ = model.encode(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None]     # no device=
    return model.decoder.mean((1 - t) * mu[0] + t * mu[1])


def test_device_ignoring_answers_are_right_on_the_cpu():
    # what makes them wrong is the device alone: on the CPU their values are the reference's
    model, z0, values = lchecks._model(3, 0), torch.randn(3), torch.linspace(-1, 1, 4)
    assert torch.allclose(sweep_cpu_zeros(model, z0, 1, values), lchecks._latent_sweep(model, z0, 1, values))
    x_a, x_b = torch.rand(16), torch.rand(16)
    assert torch.allclose(interp_cpu_linspace(model, x_a, x_b, 5), lchecks._interpolate(model, x_a, x_b, 5),
                          atol=1e-6)


@pytest.mark.parametrize("check, wrong", [
    (lchecks.check_latent_sweep, sweep_cpu_zeros),
    (lchecks.check_interpolate, interp_cpu_linspace),
])
def test_checks_reject_tensors_made_on_the_cpu(check, wrong):
    named(check, wrong, "mixed devices")
    named(check, wrong, "device=")


def test_checks_reject_a_result_moved_to_the_cpu():
    if second_device().type == "meta":
        pytest.skip("moving a meta tensor to the CPU fails by itself (no data); the CUDA case tests this")
    named(lchecks.check_latent_sweep, sweep_returns_cpu, "returned a tensor on 'cpu'")


def test_device_check_runs_on_a_device_other_than_the_cpu():
    # the check is worth something on a CPU-only machine: the second device is never the CPU itself
    assert second_device().type in ("cuda", "meta")


# ----------------------------------------------------------------------------- planted wrong answers
def sweep_with_gradients(model, z0, dim, values):  # right values, decoded with gradients on
    z = z0.expand(len(values), -1).clone()
    z[:, dim] = values
    return model.decoder.mean(z)


def interpolate_with_gradients(model, x_a, x_b, steps):
    mu, _ = model.encode(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps, device=mu.device)[:, None]
    return model.decoder.mean((1 - t) * mu[0] + t * mu[1])


@pytest.mark.parametrize("check, wrong", [(lchecks.check_latent_sweep, sweep_with_gradients),
                                          (lchecks.check_interpolate, interpolate_with_gradients)])
def test_checks_reject_images_that_carry_a_graph(check, wrong):
    named(check, wrong, "carry the computation graph")
    right = torch.no_grad()(wrong)  # the same code decoding without gradients is right
    assert check(right) is right


@pytest.mark.parametrize("check", [lchecks.check_latent_sweep, lchecks.check_interpolate])
def test_rerunning_a_check_on_its_stand_in_returns_the_same_stand_in(check):
    def unfinished(*args):
        raise NotImplementedError()

    stand_in = check(unfinished)
    assert getattr(stand_in, "_lvmlib_substitute_for", None)
    assert check(stand_in) is stand_in
    assert check(check(stand_in)) is stand_in


# ----------------------------------------------------------------------------- the tables of the catalogue
@torch.no_grad()
def sweep_logits(model, z0, dim, values):  # the decoder's network output read as the image
    z = z0.repeat(len(values), 1)
    z[:, dim] = values
    return model.decoder(z)


@torch.no_grad()
def sweep_added(model, z0, dim, values):
    return torch.stack([model.decoder.mean(z0 + v * torch.eye(len(z0))[dim]) for v in values])


@torch.no_grad()
def sweep_from_zero(model, z0, dim, values):
    z = torch.zeros(len(values), len(z0), device=z0.device)
    z[:, dim] = values
    return model.decoder.mean(z)


@torch.no_grad()
def sweep_one_value(model, z0, dim, values):  # the first value only, repeated
    z = z0.repeat(len(values), 1)
    z[:, dim] = values[0]
    return model.decoder.mean(z)


@torch.no_grad()
def sweep_values_reversed(model, z0, dim, values):
    z = z0.repeat(len(values), 1)
    z[:, dim] = values.flip(0)
    return model.decoder.mean(z)


@torch.no_grad()
def interp_pixels(model, x_a, x_b, steps):
    return torch.stack([x_a + k / (steps - 1) * (x_b - x_a) for k in range(steps)])


@torch.no_grad()
def interp_no_end(model, x_a, x_b, steps):
    mu, _ = model.encode(torch.stack([x_a, x_b]))
    t = torch.arange(steps, device=mu.device)[:, None] / steps  # never reaches 1
    return model.decoder.mean(mu[0] + t * (mu[1] - mu[0]))


@torch.no_grad()
def interp_backwards(model, x_a, x_b, steps):
    mu, _ = model.encode(torch.stack([x_b, x_a]))
    t = torch.linspace(0, 1, steps, device=mu.device)[:, None]
    return model.decoder.mean((1 - t) * mu[0] + t * mu[1])


@torch.no_grad()
def interp_log_var_ends(model, x_a, x_b, steps):  # the encoder's second output taken for the mean
    _, lv = model.encode(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps, device=lv.device)[:, None]
    return model.decoder.mean((1 - t) * lv[0] + t * lv[1])


@torch.no_grad()
def interp_one_step_short(model, x_a, x_b, steps):  # torch.linspace(0, 1, steps - 1): one image missing
    mu, _ = model.encode(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps - 1, device=mu.device)[:, None]
    return model.decoder.mean((1 - t) * mu[0] + t * mu[1])


WRONG_ANSWERS = {
    "latent_sweep": {"gives the decoder's logits": sweep_logits, "was added to z0[dim]": sweep_added,
                     "starts from z = 0": sweep_from_zero},
    "interpolate": {"blended in pixel space": interp_pixels, "misses its last point": interp_no_end,
                    "runs backwards": interp_backwards},
}
UNLISTED = {
    "latent_sweep": {
        "changes z0 in place": sweep_in_place,
        "the next dimension moved instead of dim": sweep_wrong_dim,
        "a table made with torch.zeros without device=": sweep_cpu_zeros,
        "decoded with gradients on": sweep_with_gradients,
        "the first value only": sweep_one_value,
        "the values in reverse order": sweep_values_reversed,
    },
    "interpolate": {
        "changes x_a in place": interp_in_place,
        "the codes returned, not the images": interp_codes,
        "the path made with torch.linspace without device=": interp_cpu_linspace,
        "decoded with gradients on": interpolate_with_gradients,
        "log_var taken for the means": interp_log_var_ends,
        "one image short (linspace over steps - 1)": interp_one_step_short,
    },
}

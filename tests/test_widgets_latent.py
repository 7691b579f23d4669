"""The latent explorers of lvmlib.widgets (traversal, interpolation, the 2-D latent space), driven from Python.

Each test moves the widgets by setting ``value`` (or clicking a button) the way a learner does with
the mouse, catches what the decoder received with a forward hook on ``model.decoder``, and compares
the picture with the decoder mean computed here from the decoder's own logits:
categorical E[x_d|z] = sum_l l softmax(logits_d)_l, Bernoulli E[x_d|z] = sigmoid(logits_d).
"""

from __future__ import annotations

import statistics
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lvmlib import data, vae, widgets  # noqa: E402

# Every public explorer of lvmlib.widgets must be exercised in tests/test_widgets*.py.
TESTED_EXPLORERS = {"latent_traversal_explorer", "interpolation_explorer", "latent_space_explorer"}

ipywidgets = pytest.importorskip("ipywidgets")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def digits():
    d = data.digits_split(scale="raw", return_labels=True)
    return d.test[:120], d.y_test[:120]  # (120, 64) levels 0..16, labels


def make_vae(M, likelihood="categorical", seed=0, device="cpu"):
    torch.manual_seed(seed)
    return vae.VAE(vae.VAEConfig(D=64, M=M, H=32, likelihood=likelihood, device=device))


class DecoderSpy:
    """Records every z the decoder receives (a forward hook on model.decoder)."""

    def __init__(self, model):
        self.z = []
        self.handle = model.decoder.register_forward_hook(lambda mod, inp, out: self.z.append(inp[0].detach().clone()))

    def last(self):
        assert self.z, "the decoder was never called"
        return self.z[-1]


def expected_mean(model, z):
    """E[x|z] written out from the decoder's logits. z (n, M) numpy; returns (n, D)."""
    with torch.no_grad():
        logits = model.decoder.net(torch.as_tensor(np.asarray(z), dtype=torch.float32))
    if model.config.likelihood == "bernoulli":
        return (1.0 / (1.0 + torch.exp(-logits))).numpy()
    L = model.config.n_levels
    p = torch.softmax(logits.reshape(len(z), model.config.D, L), dim=-1).numpy()
    return (p * np.arange(L)).sum(-1)


def encoder_means(model, x):
    with torch.no_grad():
        h = model.encoder.net(torch.as_tensor(np.asarray(x), dtype=torch.float32) / (model.config.n_levels - 1))
    return h[:, :model.config.M].numpy()  # the first half of the encoder's output is mu_z


def png_pixels(png_bytes):
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGBA"))


# --------------------------------------------------------------------------- latent traversal

def test_traversal_orders_sliders_by_activity_and_starts_at_the_prior_mean(digits):
    x, _ = digits
    model = make_vae(6)
    box = widgets.latent_traversal_explorer(model, x, max_sliders=4)
    A = encoder_means(model, x).var(axis=0)  # population variance of each mu_z,m over the data
    np.testing.assert_allclose(box.activity, A, rtol=1e-4)
    assert box.dims == list(np.argsort(-A)[:4])
    assert set(box.controls) == {"z%d" % m for m in box.dims} | {"start", "index", "reset"}
    assert all(box.controls[f"z{m}"].value == 0.0 for m in box.dims)
    np.testing.assert_allclose(box.drawn["z"], np.zeros(6))
    np.testing.assert_allclose(box.drawn["image"].reshape(-1), expected_mean(model, np.zeros((1, 6)))[0], rtol=1e-5)


def test_moving_a_slider_decodes_the_intended_latent_and_changes_the_image(digits):
    x, _ = digits
    model = make_vae(5)
    box = widgets.latent_traversal_explorer(model, x, start=7)
    z0 = encoder_means(model, x[7:8])[0]
    np.testing.assert_allclose(box.drawn["z0"], z0, rtol=1e-5, atol=1e-6)
    spy = DecoderSpy(model)
    before = box.drawn["image"].copy()
    before_png = box.drawn["png"]
    m = box.dims[1]
    box.controls[f"z{m}"].value = 2.4
    want = z0.copy()
    want[m] = 2.4
    np.testing.assert_allclose(spy.last().numpy(), want[None], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(box.drawn["image"].reshape(-1), expected_mean(model, want[None])[0], rtol=1e-4)
    assert np.abs(box.drawn["image"] - before).max() > 1e-3, "the decoded image did not change"
    assert not np.array_equal(png_pixels(box.drawn["png"]), png_pixels(before_png)), "the picture shown did not change"
    # a second dimension adds to the first
    m2 = box.dims[0]
    box.controls[f"z{m2}"].value = -1.5
    want[m2] = -1.5
    np.testing.assert_allclose(spy.last().numpy(), want[None], rtol=1e-5, atol=1e-6)


def test_reset_and_the_start_choice(digits):
    x, _ = digits
    model = make_vae(4)
    box = widgets.latent_traversal_explorer(model, x)
    spy = DecoderSpy(model)
    for m in box.dims:
        box.controls[f"z{m}"].value = 1.0
    box.controls["reset"].click()
    np.testing.assert_allclose(spy.last().numpy(), np.zeros((1, 4)))
    assert [box.controls[f"z{m}"].value for m in box.dims] == [0.0] * 4
    box.controls["index"].value = 11  # choosing a test image starts from its posterior mean
    assert box.controls["start"].value == "posterior"
    z11 = encoder_means(model, x[11:12])[0]
    np.testing.assert_allclose(spy.last().numpy()[0], z11, rtol=1e-5, atol=1e-6)
    assert box.drawn["index"] == 11 and box.drawn["start"] == "posterior"
    box.controls[f"z{box.dims[0]}"].value = -2.0
    box.controls["reset"].click()
    np.testing.assert_allclose(box.drawn["z"], z11, rtol=1e-5, atol=1e-6)
    box.controls["start"].value = "prior"
    np.testing.assert_allclose(spy.last().numpy(), np.zeros((1, 4)))


def test_dimensions_without_a_slider_stay_at_the_start_point(digits):
    x, _ = digits
    model = make_vae(8)
    box = widgets.latent_traversal_explorer(model, x, start=3, max_sliders=2)
    z0 = encoder_means(model, x[3:4])[0]
    assert len(box.dims) == 2
    spy = DecoderSpy(model)
    box.controls[f"z{box.dims[0]}"].value = 1.25
    want = z0.copy()
    want[box.dims[0]] = 1.25
    np.testing.assert_allclose(spy.last().numpy()[0], want, rtol=1e-5, atol=1e-6)


def test_without_data_the_sliders_are_the_first_dimensions():
    model = make_vae(12, likelihood="bernoulli")
    box = widgets.latent_traversal_explorer(model, max_sliders=5, value_range=(-2.0, 2.0))
    assert box.dims == [0, 1, 2, 3, 4] and box.activity is None
    assert set(box.controls) == {"z0", "z1", "z2", "z3", "z4", "reset"}
    box.controls["z3"].value = 5.0  # beyond the range: the slider clamps, the decoded z follows it
    assert box.drawn["z"][3] == 2.0
    img = box.drawn["image"]
    assert img.shape == (8, 8) and img.min() >= 0 and img.max() <= 1


def test_traversal_static_figure_shows_the_sweeps(digits):
    x, _ = digits
    model = make_vae(5)
    fig = widgets.latent_traversal_explorer(model, x, start=2, max_sliders=3, steps=5, static=True)
    assert isinstance(fig, matplotlib.figure.Figure)
    canvas = fig.axes[0].images[0].get_array().filled(np.nan)
    A = encoder_means(model, x).var(axis=0)
    dims = list(np.argsort(-A)[:3])
    z0 = encoder_means(model, x[2:3])[0]
    values = np.linspace(-3, 3, 5)
    for r, m in enumerate(dims):
        for c, v in enumerate(values):
            z = z0.copy()
            z[m] = v
            np.testing.assert_allclose(canvas[r * 9:r * 9 + 8, c * 9:c * 9 + 8].reshape(-1),
                                       expected_mean(model, z[None])[0], rtol=1e-4, atol=1e-5)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"z{m}" for m in dims]


def test_traversal_redraw_time_is_measured_and_live(digits):
    """The redraw time on this machine's CPU, one torch thread (as the notebooks set): printed and recorded."""
    x, _ = digits
    model = make_vae(10)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        box = widgets.latent_traversal_explorer(model, x)
        slider = box.controls[f"z{box.dims[0]}"]
        seconds = []
        for v in np.linspace(-2.5, 2.5, 21):
            slider.value = float(v)
            seconds.append(box.drawn["seconds"])
    finally:
        torch.set_num_threads(threads)
    median = statistics.median(seconds)
    print(f"\nlatent traversal redraw (decode + PNG + send), median of 21: {1e3 * median:.1f} ms")
    assert all(0 < s < 5 for s in seconds)
    assert median < 0.25, f"a redraw took {1e3 * median:.0f} ms (median): too slow to feel live"


# --------------------------------------------------------------------------- interpolation

def test_latent_path_is_the_straight_segment_with_both_ends():
    z_a, z_b = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 2.0, 0.5])
    path = widgets.latent_path(z_a, z_b, 5)
    assert path.shape == (5, 3)
    for k in range(5):  # z_a + (k/4)(z_b - z_a), written another way
        np.testing.assert_allclose(path[k].numpy(), (z_a + k / 4 * (z_b - z_a)).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="steps"):
        widgets.latent_path(z_a, z_b, 1)
    with pytest.raises(ValueError, match="z_a and z_b"):
        widgets.latent_path(z_a, z_b[:2], 4)


def test_interpolate_decodes_the_path_between_posterior_means(digits):
    x, _ = digits
    model = make_vae(3)
    xa, xb = torch.as_tensor(x[0]), torch.as_tensor(x[5])
    images = widgets.interpolate(model, xa, xb, steps=6)
    za, zb = encoder_means(model, x[[0, 5]])
    z = np.stack([za + k / 5 * (zb - za) for k in range(6)])
    np.testing.assert_allclose(images.numpy(), expected_mean(model, z), rtol=1e-4, atol=1e-5)


def test_interpolation_slider_decodes_the_point_of_the_path(digits):
    x, _ = digits
    model = make_vae(4)
    box = widgets.interpolation_explorer(model, x, 2, 9, steps=7)
    za, zb = encoder_means(model, x[[2, 9]])
    spy = DecoderSpy(model)
    before = box.drawn["image"].copy()
    box.controls["t"].value = 0.9
    np.testing.assert_allclose(spy.last().numpy()[0], 0.1 * za + 0.9 * zb, rtol=1e-4, atol=1e-6)
    assert np.abs(box.drawn["image"] - before).max() > 1e-3
    box.controls["t"].value = 0.0
    np.testing.assert_allclose(box.drawn["z"], za, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(box.drawn["strip"],
                               widgets.interpolate(model, torch.as_tensor(x[2]), torch.as_tensor(x[9]), 7).numpy(),
                               rtol=1e-4, atol=1e-5)
    box.controls["j"].value = 30  # another end image: the path and the strip follow
    z30 = encoder_means(model, x[30:31])[0]
    np.testing.assert_allclose(box.drawn["path"][-1], z30, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(box.drawn["strip"][-1], expected_mean(model, z30[None])[0], rtol=1e-4, atol=1e-5)
    assert box.drawn["j"] == 30


def test_interpolation_static_strip(digits):
    x, _ = digits
    model = make_vae(4)
    fig = widgets.interpolation_explorer(model, x, 1, 4, steps=5, static=True)
    canvas = fig.axes[0].images[0].get_array().filled(np.nan)
    strip = widgets.interpolate(model, torch.as_tensor(x[1]), torch.as_tensor(x[4]), 5).numpy()
    tiles = [x[1], *strip, x[4]]
    for c, want in enumerate(tiles):
        np.testing.assert_allclose(canvas[:, c * 9:c * 9 + 8].reshape(-1), want, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- the 2-D latent space

def test_manifold_tiles_are_decoded_on_the_grid():
    model = make_vae(2)
    picture, z = widgets.manifold(model, grid=4, extent=2.0)
    v = np.linspace(-2, 2, 4)
    assert picture.shape == (4 * 9 - 1, 4 * 9 - 1)
    for r in range(4):
        for c in range(4):
            assert tuple(z[r, c]) == (v[c], v[3 - r])  # z_0 to the right, z_1 upwards
            np.testing.assert_allclose(picture[r * 9:r * 9 + 8, c * 9:c * 9 + 8].reshape(-1),
                                       expected_mean(model, z[r, c][None])[0], rtol=1e-4, atol=1e-5)


def test_latent_space_sliders_decode_and_mark_the_chosen_point(digits):
    x, y = digits
    model = make_vae(2)
    box = widgets.latent_space_explorer(model, x, y, grid=6)
    spy = DecoderSpy(model)
    before = box.drawn["image"].copy()
    marks0 = box.drawn["marks"]
    box.controls["z0"].value = 1.5
    np.testing.assert_allclose(spy.last().numpy(), [[1.5, 0.0]])
    assert np.abs(box.drawn["image"] - before).max() > 1e-3
    marks1 = box.drawn["marks"]
    for name in ("manifold", "codes"):  # the mark moves right, not up
        assert marks1[name][1] > marks0[name][1] and marks1[name][0] == marks0[name][0]
    box.controls["z1"].value = 1.0
    marks2 = box.drawn["marks"]
    for name in ("manifold", "codes"):
        assert marks2[name][0] < marks1[name][0]  # up the picture: a smaller row
    layer = png_pixels(box.drawn["marks_png"])  # the transparent layer over the two pictures
    assert layer.shape == png_pixels(box.drawn["map_png"]).shape
    for r, c in marks2.values():
        assert tuple(layer[r, c]) == (214, 39, 40, 255)
        assert tuple(layer[r + 12, c + 12]) == (0, 0, 0, 0)  # off the cross: see-through
    assert (layer[..., 3] > 0).sum() == 2 * 2 * 3 * 17 - 2 * 9  # two crosses of two 3 x 17 bars
    box.controls["index"].value = 17
    box.controls["go"].click()
    mu17 = encoder_means(model, x[17:18])[0]
    np.testing.assert_allclose(spy.last().numpy()[0], np.clip(mu17, -3, 3), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(box.drawn["means"], encoder_means(model, x), rtol=1e-4, atol=1e-5)


def test_latent_space_static_figure(digits):
    x, y = digits
    model = make_vae(2)
    fig = widgets.latent_space_explorer(model, x, y, static=True)
    ax_m, ax_c = fig.axes[:2]
    assert len(ax_m.images) == 1
    assert sum(len(col.get_offsets()) for col in ax_c.collections) == len(x)
    assert sorted(t.get_text() for t in ax_c.get_legend().get_texts()) == sorted(str(k) for k in np.unique(y))


# --------------------------------------------------------------------------- fallbacks and bad input

@pytest.mark.parametrize("make", [
    lambda m, x, y: widgets.latent_traversal_explorer(m, x),
    lambda m, x, y: widgets.interpolation_explorer(m, x, 0, 1),
    lambda m, x, y: widgets.latent_space_explorer(m, x, y),
])
def test_without_ipywidgets_a_figure_is_drawn(monkeypatch, digits, make):
    x, y = digits
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert not widgets.widgets_available()
    assert isinstance(make(make_vae(2), x, y), matplotlib.figure.Figure)


class NotAVAE(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("call, error, name", [
    (lambda m, x: widgets.latent_traversal_explorer(NotAVAE(), x), TypeError, "model"),
    (lambda m, x: widgets.latent_traversal_explorer("vae", x), TypeError, "model"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x[:, :10]), ValueError, "data"),
    (lambda m, x: widgets.latent_traversal_explorer(m, [[0.0] * 64]), TypeError, "data"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x + 0.5), ValueError, "data must hold integer levels"),
    (lambda m, x: widgets.latent_traversal_explorer(m, np.full((3, 64), 17)), ValueError, "data must hold integer"),
    (lambda m, x: widgets.interpolation_explorer(make_vae(2, "bernoulli"), x), ValueError, "data must lie in"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, start="posterior"), ValueError, "start"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, start=len(x)), IndexError, "start"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, start=-1), IndexError, "start"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, start=True), TypeError, "start"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, start=2.0), TypeError, "start"),
    (lambda m, x: widgets.latent_traversal_explorer(m, None, start=3), ValueError, "start"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, max_sliders=0), ValueError, "max_sliders"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, value_range=(2, -2)), ValueError, "value_range"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, value_range=3), TypeError, "value_range"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, steps=1), ValueError, "steps"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, image_shape=(4, 4)), ValueError, "image_shape"),
    (lambda m, x: widgets.latent_traversal_explorer(m, x, vmin=5, vmax=1), ValueError, "vmin"),
    (lambda m, x: widgets.interpolation_explorer(NotAVAE(), x), TypeError, "model"),
    (lambda m, x: widgets.interpolation_explorer(m, x, 0, len(x)), IndexError, "j"),
    (lambda m, x: widgets.interpolation_explorer(m, x, -3, 1), IndexError, "i"),
    (lambda m, x: widgets.interpolation_explorer(m, x, "0", 1), TypeError, "i"),
    (lambda m, x: widgets.interpolation_explorer(m, x, 0, 1, steps=1), ValueError, "steps"),
    (lambda m, x: widgets.interpolation_explorer(m, x[:, :63]), ValueError, "data"),
    (lambda m, x: widgets.latent_space_explorer(m, x), ValueError, "M = 2"),
    (lambda m, x: widgets.latent_space_explorer(NotAVAE(), x), TypeError, "model"),
    (lambda m, x: widgets.latent_space_explorer(make_vae(2), x, np.zeros(3, dtype=int)), ValueError, "labels"),
    (lambda m, x: widgets.latent_space_explorer(make_vae(2), x, np.zeros(len(x))), ValueError, "labels"),
    (lambda m, x: widgets.latent_space_explorer(make_vae(2), x, grid=1), ValueError, "grid"),
    (lambda m, x: widgets.latent_space_explorer(make_vae(2), x, extent=-1.0), ValueError, "extent"),
    (lambda m, x: widgets.latent_space_explorer(make_vae(2), x, max_points=0), ValueError, "max_points"),
])
def test_bad_input_is_named(monkeypatch, digits, static, call, error, name):
    x, _ = digits
    if static:
        monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(error, match=name):
        call(make_vae(3), x)
    assert plt.get_fignums() == [], "a figure was left open by a call that failed"


@pytest.mark.parametrize("static", ["yes", 1])
def test_static_must_be_a_bool_or_none(digits, static):
    with pytest.raises(TypeError, match="static"):
        widgets.latent_traversal_explorer(make_vae(2), digits[0], static=static)


# --------------------------------------------------------------------------- on a GPU

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: PyTorch sees no GPU on this machine")
def test_widgets_decode_on_the_models_gpu(digits):
    x, y = digits
    model = make_vae(2, device="cuda")
    spy = DecoderSpy(model)
    box = widgets.latent_traversal_explorer(model, x, start=1)
    assert spy.last().device.type == "cuda"
    box.controls["z0"].value = 0.5
    assert spy.last().device.type == "cuda" and spy.last()[0, 0].item() == 0.5
    box = widgets.latent_space_explorer(model, x, y)
    box.controls["z1"].value = -1.0
    assert spy.last().device.type == "cuda"
    np.testing.assert_allclose(spy.last().cpu().numpy(), [[0.0, -1.0]])
    images = widgets.interpolate(model, torch.as_tensor(x[0]), torch.as_tensor(x[1]), 4)
    assert images.device.type == "cuda" and images.shape == (4, 64)


# --------------------------------------------------------------------------- the shipped models

def _shipped(name):
    from lvmlib import pretrained

    if name not in pretrained.available():
        pytest.skip(f"lvmlib ships no pretrained model {name!r} in this checkout")
    return pretrained.load(name)


def test_traversal_and_interpolation_on_the_shipped_mnist_vae():
    model = _shipped("mnist_vae")
    x = torch.bernoulli(torch.full((30, 784), 0.2), generator=torch.Generator().manual_seed(0))
    box = widgets.latent_traversal_explorer(model, x, start=0)
    assert len(box.dims) == min(8, model.config.M)
    before = box.drawn["image"].copy()
    box.controls[f"z{box.dims[0]}"].value = 2.5
    assert box.drawn["image"].shape == (28, 28) and np.abs(box.drawn["image"] - before).max() > 1e-3
    strip = widgets.interpolation_explorer(model, x, 0, 1, steps=5).drawn["strip"]
    assert strip.shape == (5, 784)


def test_latent_space_on_the_shipped_2d_mnist_vae():
    model = _shipped("mnist_vae_2d")
    x = torch.bernoulli(torch.full((30, 784), 0.2), generator=torch.Generator().manual_seed(0))
    box = widgets.latent_space_explorer(model, x, np.arange(30) % 10, grid=5)
    box.controls["z1"].value = 1.0
    np.testing.assert_allclose(box.drawn["z"], [0.0, 1.0])

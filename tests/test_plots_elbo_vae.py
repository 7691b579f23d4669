"""The figures of notebooks 04-05 draw what they say and reject bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lvmlib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_jensen_gap_runs_from_mean_of_log_to_log_of_mean():
    w = np.random.default_rng(0).lognormal(sigma=0.8, size=300)
    out = plots.jensen_inequality(torch.as_tensor(w))
    (x_mean, y_low), = np.asarray(out["mean_of_log"].get_xydata())
    (_, y_high), = np.asarray(out["log_of_mean"].get_xydata())
    assert x_mean == pytest.approx(w.mean())
    assert y_low == pytest.approx(np.log(w).mean())
    assert y_high == pytest.approx(np.log(w.mean()))
    assert y_high > y_low  # Jensen: log E[w] >= E[log w]
    segment = out["gap"].get_segments()[0]
    np.testing.assert_allclose(sorted(segment[:, 1]), [np.log(w).mean(), np.log(w.mean())])


def test_jensen_rejects_non_positive_weights():
    with pytest.raises(ValueError, match="positive"):
        plots.jensen_inequality(np.array([1.0, 0.0, 2.0]))


def test_gap_vs_kl_points_and_diagonal():
    out = plots.gap_vs_kl([0.0, 1.0, 2.5], [0.0, 1.0, 2.5], labels=["a", "b", "c"])
    assert len(out["points"]) == 3
    xs, ys = out["diagonal"].get_data()
    np.testing.assert_allclose(xs, ys)
    with pytest.raises(ValueError, match="same length"):
        plots.gap_vs_kl([1.0, 2.0], [1.0])


def test_gradient_variance_is_log_log_with_the_given_values():
    out = plots.gradient_variance([1, 10, 100], {"a": [1.0, 0.1, 0.01]})
    ax = out["a"].axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    np.testing.assert_allclose(out["a"].get_ydata(), [1.0, 0.1, 0.01])
    with pytest.raises(ValueError, match="sample sizes"):
        plots.gradient_variance([1, 10], {"a": [1.0]})


def test_iwae_vs_k_line_band_and_limit():
    out = plots.iwae_vs_k([1, 2, 4], [-5.0, -4.5, -4.2], log_px=-4.0, spread=[0.1, 0.1, 0.1])
    np.testing.assert_allclose(out["bound"].get_ydata(), [-5.0, -4.5, -4.2])
    assert out["log_px"].get_ydata()[0] == pytest.approx(-4.0)
    assert "band" in out
    with pytest.raises(ValueError, match="same length"):
        plots.iwae_vs_k([1, 2], [-5.0])


def _history(values):
    n = len(values)
    return {"epoch": list(range(1, n + 1)), "train": {"loss": values, "kl": values},
            "val_epoch": list(range(1, n + 1)), "val": {"loss": [v + 1 for v in values]}}


def test_training_curves_one_and_several_runs():
    out = plots.training_curves(_history([3.0, 2.0, 1.0]))
    assert set(out) == {"train", "val"}
    np.testing.assert_allclose(out["val"].get_ydata(), [4.0, 3.0, 2.0])
    out = plots.training_curves({"a": _history([1.0, 0.5]), "b": _history([2.0, 1.0])})
    assert set(out) == {"a train", "a val", "b train", "b val"}
    kl_only = plots.training_curves(_history([1.0, 0.5]), "kl")
    assert set(kl_only) == {"train"}  # the validation history has no "kl"
    with pytest.raises(ValueError, match="no term 'elbo'"):
        plots.training_curves(_history([1.0]), "elbo")


def test_latent_activity_bars_and_threshold():
    out = plots.latent_activity({"a": np.array([1.0, 1e-3, 0.5]), "b": torch.tensor([1e-4, 1e-4, 2.0])},
                                threshold=1e-2)
    assert [bar.get_height() for bar in out["b"]] == pytest.approx([1e-4, 1e-4, 2.0])
    assert out["threshold"].get_ydata()[0] == pytest.approx(1e-2)
    assert out["a"][0].axes.get_yscale() == "log"


def test_latent_traversal_layout_and_errors():
    images = np.random.default_rng(0).random((3, 5, 64))
    im = plots.latent_traversal(images, np.linspace(-2, 2, 5), dims=[4, 0, 7], vmin=0, vmax=1)
    canvas = im.get_array()
    assert canvas.shape == (3 * 9 - 1, 5 * 9 - 1)
    np.testing.assert_allclose(canvas[9:17, 18:26], images[1, 2].reshape(8, 8))  # row 1, step 2
    assert [t.get_text() for t in im.axes.get_yticklabels()] == ["z4", "z0", "z7"]
    assert im.get_clim() == (0, 1)
    with pytest.raises(ValueError, match="steps"):
        plots.latent_traversal(images, np.linspace(-2, 2, 4))
    with pytest.raises(ValueError, match="R, S, H\\*W"):
        plots.latent_traversal(images[0], np.linspace(-2, 2, 5))

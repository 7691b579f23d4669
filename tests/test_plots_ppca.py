"""The figures and the p(x) explorer of notebooks 01-03 draw what they say and reject bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lvmlib import plots, widgets  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_covariance_ellipse_lies_on_the_n_std_contour():
    mean = np.array([1.0, -2.0])
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    line = plots.covariance_ellipse(torch.as_tensor(mean), torch.as_tensor(cov), n_std=2.0)
    pts = np.stack(line.get_data(), axis=1) - mean  # (n, 2)
    mahalanobis = np.einsum("nd,de,ne->n", pts, np.linalg.inv(cov), pts)
    np.testing.assert_allclose(mahalanobis, 4.0, rtol=1e-10)


def test_covariance_ellipse_rejects_other_dimensions():
    with pytest.raises(ValueError, match="2-D Gaussians"):
        plots.covariance_ellipse(np.zeros(3), np.eye(3))


def test_monte_carlo_gaussian_draws_formula_and_empirical_contours():
    rng = np.random.default_rng(0)
    s = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 2]], size=500)
    out = plots.monte_carlo_gaussian(s, np.zeros(2), np.array([[1, 0.5], [0.5, 2]]), label="kept")
    assert set(out) == {"samples", "formula", "empirical"}
    assert out["samples"].get_label() == "kept"
    with pytest.raises(ValueError, match=r"\(S, 2\)"):
        plots.monte_carlo_gaussian(np.zeros((5, 3)), np.zeros(2), np.eye(2))


def test_ppca_marginal_contour_matches_W_WT_plus_sigma2():
    W, s2 = np.array([[1.5], [0.5]]), 0.3
    out = plots.ppca_marginal(W, s2)
    pts = np.stack(out["C"].get_data(), axis=1)
    C = W @ W.T + s2 * np.eye(2)
    np.testing.assert_allclose(np.einsum("nd,de,ne->n", pts, np.linalg.inv(C), pts), 4.0, rtol=1e-10)
    with pytest.raises(ValueError, match=r"W must be \(2, 1\)"):
        plots.ppca_marginal(np.ones((2, 2)), 0.3)
    with pytest.raises(ValueError, match="sigma2 must be positive"):
        plots.ppca_marginal(W, 0.0)


def test_ppca_projection_2d_draws_every_point_and_its_reconstruction():
    X = np.random.default_rng(1).normal(size=(30, 2))
    out = plots.ppca_projection_2d(X, np.zeros(2), np.array([[1.0], [0.0]]), X * [1, 0])
    assert out["data"].get_offsets().shape == (30, 2)
    assert len(out["links"].get_segments()) == 30
    with pytest.raises(ValueError, match="X_rec like X"):
        plots.ppca_projection_2d(X, np.zeros(2), np.ones((2, 1)), X[:5])


def test_reconstructions_by_components_labels_each_row():
    imgs = np.random.default_rng(2).uniform(size=(4, 64))
    im = plots.reconstructions_by_components(imgs, {1: imgs, 5: imgs})
    labels = [t.get_text() for t in im.axes.get_yticklabels()]
    assert labels == ["data", "M = 1", "M = 5"]
    with pytest.raises(ValueError, match="row 'M = 2'"):
        plots.reconstructions_by_components(imgs, {2: imgs[:3]})


def test_curves_check_their_lengths():
    out = plots.loglik_vs_components([1, 2, 5], {"train": [1, 2, 3], "test": [0, 1, 2]})
    assert set(out) == {"train", "test"}
    with pytest.raises(ValueError, match="curve 'test'"):
        plots.loglik_vs_components([1, 2], {"test": [1, 2, 3]})
    out = plots.loglik_history({"EM": [0, 1, 2, 2.5]}, reference=3.0, skip=1)
    np.testing.assert_array_equal(out["EM"].get_xdata(), [1, 2, 3])
    with pytest.raises(ValueError, match="times\\['EM'\\]"):
        plots.timing_vs_dimension([10, 20], {"EM": [1.0]})


def test_eigen_spectrum_and_latent_1d_return_axes():
    ax = plots.eigen_spectrum(np.array([0.1, 3.0, 1.0, 0.2]), 2, 0.15)
    assert len(ax.patches) == 4
    ax = plots.latent_1d(np.random.default_rng(3).normal(size=50), torch.tensor([[0.2]]))
    assert ax.get_xlabel() == "z"


def test_explorer_static_grid_and_interactive_widget():
    fig = widgets.ppca_marginal_explorer(static=True)
    assert len(fig.axes) == 9
    if widgets.widgets_available():
        import ipywidgets

        box = widgets.ppca_marginal_explorer(static=False)
        assert isinstance(box, ipywidgets.VBox)
        sliders = box.children[0].children
        assert [s.description for s in sliders] == ["|W|", "angle of W", "sigma2"]
    with pytest.raises(ValueError, match="w_length"):
        widgets.ppca_marginal_explorer(static=True, w_length=(2.0, 1.0))
    with pytest.raises(TypeError, match="static"):
        widgets.ppca_marginal_explorer(static="yes")

"""The explorers of lvmlib.widgets, driven from Python the way a learner drives them with the mouse.

Each test moves sliders by setting ``slider.value`` and reads the geometry of what was drawn
(the points of the contour, the arrow, the noise circle, the title) back from the matplotlib
artists. Expected values are computed here from the definitions: W = |W| (cos a, sin a)^T,
C = W W^T + sigma2 I, whose eigenvalues are |W|^2 + sigma2 (along W) and sigma2 (across W).
"""

from __future__ import annotations

import inspect
import re
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lvmlib import widgets  # noqa: E402

N_STD = 2.0  # the explorer draws the 2-standard-deviation contour (lvmlib.plots.ppca_marginal's default)
C_LABEL = "p(x): W W^T + sigma2 I"
NOISE_LABEL = "noise alone: sigma2 I"

# Every public explorer of lvmlib.widgets must be exercised here; see test_every_explorer_is_tested.
TESTED_EXPLORERS = {"ppca_marginal_explorer"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- reference geometry

def W_expected(length, angle_deg):
    """The column of W for a length and an angle in degrees, as a (2, 1) array."""
    a = np.radians(angle_deg)
    return length * np.array([[np.cos(a)], [np.sin(a)]])  # (2, 1)


def C_expected(length, angle_deg, sigma2):
    """C = W W^T + sigma2 I written out entry by entry (no matrix product), (2, 2)."""
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    L2 = length ** 2
    return np.array([[L2 * c * c + sigma2, L2 * c * s], [L2 * c * s, L2 * s * s + sigma2]])


def assert_is_contour_of(points, C, n_std=N_STD):
    """The points (n, 2) trace the whole n_std contour {x : x^T C^-1 x = n_std^2} of N(0, C).

    Three independent checks: every point is on the quadric; the extreme radii are the semi-axes
    n_std sqrt(|W|^2 + sigma2) and n_std sqrt(sigma2); the enclosed (shoelace) area is the ellipse's
    pi n_std^2 sqrt(det C), which fails for a partial arc or a wrong covariance.
    """
    points = np.asarray(points, dtype=float)
    assert points.ndim == 2 and points.shape[1] == 2 and len(points) >= 50
    q = np.einsum("ni,ij,nj->n", points, np.linalg.inv(C), points)
    np.testing.assert_allclose(q, n_std ** 2, rtol=1e-9)
    evals = np.linalg.eigvalsh(C)
    r = np.linalg.norm(points, axis=1)
    np.testing.assert_allclose(r.max(), n_std * np.sqrt(evals[1]), rtol=2e-3)
    np.testing.assert_allclose(r.min(), n_std * np.sqrt(evals[0]), rtol=2e-3)
    x, y = points[:, 0], points[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    np.testing.assert_allclose(area, np.pi * n_std ** 2 * np.sqrt(np.linalg.det(C)), rtol=2e-3)


def title_numbers(ax):
    """The numbers in an axes title: |W|, sigma2, and the two eigenvalues of C."""
    return [float(v) for v in re.findall(r"-?\d+\.\d+", ax.get_title())]


def line_labelled(ax, label):
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(found) == 1, f"expected one line labelled {label!r}, found {[ln.get_label() for ln in ax.get_lines()]}"
    return found[0]


def arrow_tip(ax):
    """Where the arrow of W points to (its tail is at mu = 0)."""
    arrows = [t for t in ax.texts if hasattr(t, "xy") and getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 1
    np.testing.assert_allclose(arrows[0].xyann, [0.0, 0.0], atol=1e-12)
    return np.asarray(arrows[0].xy, dtype=float)


def render(fig):
    """The figure's pixels (H, W, 4) as drawn by Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the explorer closes its figures once shown, so draw on a fresh canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


# --------------------------------------------------------------------------- interactive explorer

def explorer(**kw):
    ipywidgets = pytest.importorskip("ipywidgets")
    box = widgets.ppca_marginal_explorer(static=False, **kw)

    assert isinstance(box, ipywidgets.Box)
    return box


def assert_drawn_matches_sliders(box):
    """What was last drawn is p(x) for the sliders' current values."""
    ctl, drawn = box.controls, box.drawn
    length, angle, sigma2 = ctl["length"].value, ctl["angle"].value, ctl["sigma2"].value
    C = C_expected(length, angle, sigma2)
    ax = drawn["figure"].axes[0]
    assert drawn["artists"]["C"] is line_labelled(ax, C_LABEL)
    assert_is_contour_of(drawn["artists"]["C"].get_xydata(), C)
    assert_is_contour_of(drawn["artists"]["noise"].get_xydata(), sigma2 * np.eye(2))
    np.testing.assert_allclose(arrow_tip(ax), W_expected(length, angle)[:, 0], atol=1e-12)
    w_norm, s2, lam1, lam2 = title_numbers(ax)
    np.testing.assert_allclose([w_norm, s2, lam1, lam2],
                               [length, sigma2, length ** 2 + sigma2, sigma2], atol=0.006)
    return C


def test_explorer_shows_its_sliders_and_draws_the_starting_setting():
    box = explorer()
    ctl = box.controls
    assert set(ctl) == {"length", "angle", "sigma2"}
    # the sliders are what the learner sees in the first row of the container
    assert list(box.children[0].children) == [ctl["length"], ctl["angle"], ctl["sigma2"]]
    assert (ctl["length"].min, ctl["length"].max) == (0.0, 2.5)
    np.testing.assert_allclose([10 ** ctl["sigma2"].min, 10 ** ctl["sigma2"].max], [0.05, 1.5])
    assert_drawn_matches_sliders(box)


def test_longer_W_stretches_p_x_along_W_only():
    box = explorer()
    ctl = box.controls
    ctl["angle"].value = 30.0
    ctl["sigma2"].value = 0.3
    ctl["length"].value = 0.5
    before = box.drawn["artists"]["C"].get_xydata()
    first_fig = box.drawn["figure"]
    ctl["length"].value = 2.25
    assert box.drawn["figure"] is not first_fig, "moving the |W| slider did not redraw"
    C = assert_drawn_matches_sliders(box)
    after = box.drawn["artists"]["C"].get_xydata()
    # along W the reach grows from 2 sqrt(0.25 + 0.3) to 2 sqrt(2.25^2 + 0.3); across W it stays 2 sqrt(0.3)
    u = W_expected(1.0, 30.0)[:, 0]
    v = np.array([-u[1], u[0]])
    np.testing.assert_allclose(np.abs(before @ u).max(), 2 * np.sqrt(0.25 + 0.3), rtol=2e-3)
    np.testing.assert_allclose(np.abs(after @ u).max(), 2 * np.sqrt(2.25 ** 2 + 0.3), rtol=2e-3)
    np.testing.assert_allclose(np.abs(after @ v).max(), np.abs(before @ v).max(), rtol=2e-3)
    np.testing.assert_allclose(np.linalg.eigvalsh(C), [0.3, 2.25 ** 2 + 0.3])


def test_angle_turns_the_ellipse_with_W():
    box = explorer()
    ctl = box.controls
    ctl["length"].value = 2.0
    ctl["sigma2"].value = 0.2
    for angle in (-60.0, 0.0, 45.0, 90.0):
        ctl["angle"].value = angle
        assert_drawn_matches_sliders(box)
        pts = box.drawn["artists"]["C"].get_xydata()
        far = pts[np.argmax(np.linalg.norm(pts, axis=1))]
        direction = far / np.linalg.norm(far)
        u = W_expected(1.0, angle)[:, 0]
        # the farthest point of the contour lies along +-W (to within the contour's sampling)
        assert abs(direction @ u) > np.cos(np.radians(2.0)), (angle, direction, u)


def test_larger_sigma2_inflates_every_direction():
    box = explorer()
    ctl = box.controls
    ctl["length"].value = 1.5
    ctl["angle"].value = 30.0
    ctl["sigma2"].value = 0.1
    small = box.drawn["artists"]["C"].get_xydata()
    ctl["sigma2"].value = 1.2
    C_big = assert_drawn_matches_sliders(box)
    # every point of the old contour is strictly inside the new one: x^T C_big^-1 x < n_std^2
    q = np.einsum("ni,ij,nj->n", small, np.linalg.inv(C_big), small)
    assert q.max() < N_STD ** 2 * 0.95
    noise = box.drawn["artists"]["noise"].get_xydata()
    np.testing.assert_allclose(np.linalg.norm(noise, axis=1), 2 * np.sqrt(1.2), rtol=1e-9)


def test_the_rendered_picture_changes_when_a_slider_moves():
    box = explorer()
    pixels = render(box.drawn["figure"])
    box.controls["sigma2"].value = 1.0
    moved = render(box.drawn["figure"])
    assert pixels.shape == moved.shape
    changed = np.any(pixels != moved, axis=-1).mean()
    assert changed > 0.005, f"only {changed:.2%} of the pixels changed"


def test_custom_ranges_bound_the_sliders_and_what_is_drawn():
    box = explorer(w_length=(2.0, 3.0), sigma2_range=(0.5, 0.8), lim=9.0)
    ctl = box.controls
    assert 2.0 <= ctl["length"].value <= 3.0
    assert 0.5 - 1e-9 <= ctl["sigma2"].value <= 0.8 + 1e-9
    assert_drawn_matches_sliders(box)
    ax = box.drawn["figure"].axes[0]
    assert ax.get_xlim() == (-9.0, 9.0) and ax.get_ylim() == (-9.0, 9.0)
    ctl["length"].value = 10.0  # beyond the range: the slider clamps, the picture follows the slider
    assert ctl["length"].value == 3.0
    assert_drawn_matches_sliders(box)
    np.testing.assert_allclose(np.linalg.norm(arrow_tip(box.drawn["figure"].axes[0])), 3.0)


# --------------------------------------------------------------------------- static fallback

def check_static_grid(fig, w_length=(0.0, 2.5), sigma2_range=(0.05, 1.5)):
    """A 3 x 3 grid, rows sigma2 (growing down, ends of the range included), columns |W| (growing
    right, up to the top of the range); each panel is p(x) for its own W and sigma2."""
    assert isinstance(fig, matplotlib.figure.Figure)
    axes = np.array(fig.axes).reshape(3, 3)
    s2 = np.empty((3, 3))
    wn = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            ax = axes[i, j]
            rows, cols = ax.get_subplotspec().rowspan, ax.get_subplotspec().colspan
            assert (rows.start, cols.start) == (i, j)
            noise = line_labelled(ax, NOISE_LABEL).get_xydata()
            s2[i, j] = (np.linalg.norm(noise, axis=1).mean() / N_STD) ** 2  # noise circle radius n_std sigma
            tip = arrow_tip(ax)
            wn[i, j] = np.linalg.norm(tip)
            C = np.outer(tip, tip) + s2[i, j] * np.eye(2)
            assert_is_contour_of(line_labelled(ax, C_LABEL).get_xydata(), C)
            w_norm, s2_title, lam1, lam2 = title_numbers(ax)
            np.testing.assert_allclose([w_norm, s2_title, lam1, lam2],
                                       [wn[i, j], s2[i, j], wn[i, j] ** 2 + s2[i, j], s2[i, j]], atol=0.006)
    np.testing.assert_allclose(s2, s2[:, :1] * np.ones((1, 3)), rtol=1e-9)  # one sigma2 per row
    np.testing.assert_allclose(wn, np.ones((3, 1)) * wn[:1, :], rtol=1e-9)  # one |W| per column
    assert np.all(np.diff(s2[:, 0]) > 0) and np.all(np.diff(wn[0]) > 0)
    np.testing.assert_allclose([s2[0, 0], s2[-1, 0]], sigma2_range, rtol=1e-9)
    np.testing.assert_allclose(wn[0, -1], w_length[1], rtol=1e-9)
    assert w_length[0] < wn[0, 0]


def test_static_grid_draws_the_settings_it_promises():
    check_static_grid(widgets.ppca_marginal_explorer(static=True))


def test_static_grid_follows_custom_ranges():
    check_static_grid(widgets.ppca_marginal_explorer(static=True, w_length=(1.0, 2.0), sigma2_range=(0.2, 0.9)),
                      w_length=(1.0, 2.0), sigma2_range=(0.2, 0.9))


@pytest.mark.parametrize("static", [None, False])
def test_without_ipywidgets_the_static_grid_is_drawn(monkeypatch, static):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # "import ipywidgets" now raises ImportError
    with pytest.raises(ImportError):
        import ipywidgets  # noqa: F401
    assert not widgets.widgets_available()
    check_static_grid(widgets.ppca_marginal_explorer(static=static))


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("kwargs, error, name", [
    ({"w_length": (2.0, 1.0)}, ValueError, "w_length"),
    ({"w_length": (-1.0, 1.0)}, ValueError, "w_length"),
    ({"w_length": (0.0, np.inf)}, ValueError, "w_length"),
    ({"w_length": 2.5}, TypeError, "w_length"),
    ({"w_length": (0.0, 1.0, 2.0)}, TypeError, "w_length"),
    ({"w_length": ("a", "b")}, TypeError, "w_length"),
    ({"sigma2_range": (0.0, 1.0)}, ValueError, "sigma2_range"),
    ({"sigma2_range": (1.0, 0.5)}, ValueError, "sigma2_range"),
    ({"sigma2_range": (0.1, np.nan)}, ValueError, "sigma2_range"),
    ({"sigma2_range": None}, TypeError, "sigma2_range"),
    ({"lim": 0.0}, ValueError, "lim"),
    ({"lim": -3}, ValueError, "lim"),
    ({"lim": "6"}, TypeError, "lim"),
    ({"lim": np.inf}, ValueError, "lim"),
])
def test_bad_arguments_are_named(static, kwargs, error, name):
    with pytest.raises(error, match=name):
        widgets.ppca_marginal_explorer(static=static, **kwargs)
    assert plt.get_fignums() == [], "a figure was left open by a call that failed"


@pytest.mark.parametrize("static", ["yes", 1, 0.0])
def test_static_must_be_a_bool_or_none(static):
    with pytest.raises(TypeError, match="static"):
        widgets.ppca_marginal_explorer(static=static)


# --------------------------------------------------------------------------- coverage of the module

def test_every_explorer_is_tested():
    """A new explorer in lvmlib.widgets needs its tests in tests/test_widgets*.py (and its name in a TESTED_EXPLORERS)."""
    import test_widgets_latent

    public = {name for name in widgets.__all__ if name.endswith("_explorer")}
    package_functions = {name for name, obj in inspect.getmembers(widgets, inspect.isfunction)
                         if obj.__module__.startswith(widgets.__name__ + ".") and name.endswith("_explorer")}
    assert package_functions <= public, f"explorers missing from lvmlib.widgets.__all__: {package_functions - public}"
    assert "ppca_marginal_explorer" in public
    tested = TESTED_EXPLORERS | test_widgets_latent.TESTED_EXPLORERS
    assert public <= tested, f"explorers without tests in tests/test_widgets*.py: {public - tested}"

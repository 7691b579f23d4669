"""Notebook 06 as a learner meets it: JupyterLab in headless Chromium, the latent widgets moved by keyboard.

Opens the learner's notebook 06 (smoke mode) in JupyterLab, runs all cells from the menu, moves the
first slider of the latent traversal (the most active latent dimension) with the keyboard and checks
that the readout moves and the decoded picture the browser shows changes, and that reset puts the
slider back; then moves z0 of the 2-D latent space and checks that its red mark moves right on the
pictures. Screenshots before and after are saved in the test's temporary folder. The server, the browser and their
isolation from the network come from ``browser_support``.

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright for Python; skipped when either is missing.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from browser_support import (REPO, TOKEN, _settled_src, browser_tools, jupyter_lab,  # noqa: F401
                             lab_page, run_all_cells, wait_for_idle_kernel)

pytestmark = pytest.mark.browser

NOTEBOOK = "06_the_vae_on_a_gpu.ipynb"


def _pixels(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")


def _red_columns(png: bytes) -> np.ndarray:
    """Columns of the pixels drawn in the mark's red (214, 39, 40) in a screenshot."""
    rgb = np.round(_pixels(png)[..., :3] * 255)
    return np.flatnonzero(np.all(np.abs(rgb - [214, 39, 40]) <= 2, axis=-1).any(axis=0))


def test_learner_moves_a_traversal_slider_and_the_decoded_image_changes(browser_tools, jupyter_lab, tmp_path):
    chromium, sync_api = browser_tools
    base = jupyter_lab
    n_code = sum(c["cell_type"] == "code" for c in json.loads((REPO / "notebooks" / NOTEBOOK).read_text())["cells"])
    sync_api.expect.set_options(timeout=60_000)  # a busy machine loads JupyterLab slowly (the default is 5 s)
    with lab_page(sync_api, chromium, base, tmp_path / "chromium-profile") as (page, refused):
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={TOKEN}")
            wait_for_idle_kernel(sync_api, page)
            indicator = page.locator(".jp-Notebook-ExecutionIndicator")
            run_all_cells(sync_api, page)

            # the traversal: the first output with sliders, a "start at" choice and a reset button
            traversal = page.locator(".jp-Cell").filter(has=page.locator(".widget-slider")).filter(
                has=page.locator("button", has_text="reset")).first
            sync_api.expect(traversal).to_have_count(1, timeout=300_000)
            traversal.scroll_into_view_if_needed()
            sliders = traversal.locator(".widget-slider")
            sync_api.expect(sliders.first).to_be_visible(timeout=60_000)
            assert sliders.count() >= 2, "the traversal shows one slider per latent dimension"
            first = sliders.first
            readout = first.locator(".widget-readout")
            picture = traversal.locator("img.widget-image").first
            sync_api.expect(picture).to_be_visible(timeout=60_000)
            start_value = float(readout.inner_text())
            before_src, seen = _settled_src(picture, timeout=30.0)
            assert before_src is not None, "the traversal's picture never settled"
            before = picture.screenshot(path=str(tmp_path / "traversal-before.png"))
            traversal.screenshot(path=str(tmp_path / "traversal-widget-before.png"))

            # move the most active dimension by +2.00 (40 steps of 0.05) with the keyboard
            first.locator(".noUi-handle").focus()
            for _ in range(40):
                page.keyboard.press("ArrowRight")
            sync_api.expect(readout).not_to_have_text(f"{start_value:.2f}")
            moved_value = float(readout.inner_text())
            assert moved_value > start_value
            after_src, moving = _settled_src(picture, timeout=30.0, unlike=before_src)
            assert after_src is not None, "the picture did not change within 30 s of moving the slider"
            after = picture.screenshot(path=str(tmp_path / "traversal-after.png"))
            traversal.screenshot(path=str(tmp_path / "traversal-widget-after.png"))
            a, b = _pixels(before), _pixels(after)
            assert a.shape == b.shape
            changed = np.any(np.abs(a - b) > 0, axis=-1).mean()
            assert changed > 0.01, f"only {changed:.2%} of the decoded picture's pixels changed (see {tmp_path})"

            # the reset button puts the slider back at the start
            traversal.locator("button", has_text="reset").click()
            sync_api.expect(readout).to_have_text(f"{start_value:.2f}")

            # the 2-D latent space: moving z0 to the right moves the red mark right on both pictures
            space = page.locator(".jp-Cell").filter(has=page.locator("button", has_text="go to its mu_z")).first
            space.scroll_into_view_if_needed()
            stack = space.locator(".widget-gridbox").first
            sync_api.expect(stack.locator("img")).to_have_count(2)
            marks_before = _red_columns(stack.screenshot(path=str(tmp_path / "latent-space-before.png")))
            z0 = space.locator(".widget-slider").first
            z0.locator(".noUi-handle").focus()
            for _ in range(20):
                page.keyboard.press("ArrowRight")
            sync_api.expect(z0.locator(".widget-readout")).to_have_text("1.00")
            marks_after = None
            for _ in range(100):  # the kernel redraws the layer of marks: wait for it
                marks_after = _red_columns(stack.screenshot())
                if marks_after.size and marks_before.size and marks_after.mean() > marks_before.mean() + 5:
                    break
                page.wait_for_timeout(300)
            stack.screenshot(path=str(tmp_path / "latent-space-after.png"))
            assert marks_before.size > 0, "no red mark on the 2-D latent space's pictures"
            assert marks_after.mean() > marks_before.mean() + 5, "the mark did not move right with z0"

            # the whole notebook ran without an error: the last code cell shows [n] for n code cells
            last = page.locator(".jp-NotebookPanel .jp-CodeCell").last
            last.scroll_into_view_if_needed()
            sync_api.expect(last.locator(".jp-InputPrompt")).to_have_text(f"[{n_code}]:", timeout=300_000)
            sync_api.expect(indicator).to_have_attribute("data-status", "idle")
            sync_api.expect(page.locator(".jp-OutputArea-output", has_text="Traceback")).to_have_count(0)
            page.screenshot(path=str(tmp_path / "page.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            sync_api.expect.set_options(timeout=5_000)  # Playwright's default again, for the tests after this one
    assert refused == [], f"the page tried to reach other addresses: {refused}"

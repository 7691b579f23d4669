"""The course as a learner meets it: JupyterLab in a real (headless) browser.

Starts JupyterLab on 127.0.0.1 with a copy of the learner notebooks, opens notebook 01 in
Chromium driven by Playwright, runs all cells from the menu, moves the |W| slider of the p(x)
explorer with the keyboard and checks that the slider's readout and the drawn picture change.
The server, the browser and their isolation from the network come from ``browser_support``.

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright for Python
(``pip install playwright``; its own browser download is not used). Skipped when either is missing.
"""

from __future__ import annotations

import json

import pytest
from browser_support import (REPO, TOKEN, _is_blank, _png, _settled_src, browser_tools, jupyter_lab,  # noqa: F401
                             lab_page, run_all_cells, wait_for_idle_kernel)

pytestmark = pytest.mark.browser

NOTEBOOK = "01_linear_gaussian_models.ipynb"


def test_learner_moves_the_p_x_explorer_slider_and_the_picture_changes(browser_tools, jupyter_lab, tmp_path):
    chromium, sync_api = browser_tools
    base = jupyter_lab
    n_code = sum(c["cell_type"] == "code" for c in json.loads((REPO / "notebooks" / NOTEBOOK).read_text())["cells"])
    with lab_page(sync_api, chromium, base, tmp_path / "chromium-profile") as (page, refused):
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={TOKEN}")

            wait_for_idle_kernel(sync_api, page)
            indicator = page.locator(".jp-Notebook-ExecutionIndicator")
            run_all_cells(sync_api, page)

            # the explorer's sliders and its picture appear in the cell's output
            explorer = page.locator(".jp-Cell").filter(has=page.locator(".widget-slider")).first
            explorer.scroll_into_view_if_needed()
            sliders = explorer.locator(".widget-slider")
            sync_api.expect(sliders).to_have_count(3)
            length_slider = sliders.filter(has_text="|W|")
            readout = length_slider.locator(".widget-readout")
            picture = explorer.locator(".widget-output img")
            sync_api.expect(picture).to_have_count(1)
            sync_api.expect(readout).to_have_text("1.50")
            # the browser may adjust a slider's starting value to its step (one more redraw): wait for calm
            before, seen = _settled_src(picture, timeout=30.0)
            assert before is not None, "the explorer's picture never settled"
            explorer.screenshot(path=str(tmp_path / "explorer-before.png"))

            # move |W| from 1.50 to 2.00 with the keyboard (step 0.05)
            length_slider.locator(".noUi-handle").focus()
            for _ in range(10):
                page.keyboard.press("ArrowRight")
            sync_api.expect(readout).to_have_text("2.00")
            # the kernel redraws: the output's <img> is replaced by one with a new picture
            after, moving = _settled_src(picture, timeout=30.0, unlike=before)
            assert after is not None, "the picture did not change within 30 s of moving the |W| slider"
            seen += moving
            explorer.screenshot(path=str(tmp_path / "explorer-after.png"))

            # and back: |W| = 1.50 again draws exactly the settled first picture (the change came from |W|)
            for _ in range(10):
                page.keyboard.press("ArrowLeft")
            sync_api.expect(readout).to_have_text("1.50")
            back, moving = _settled_src(picture, timeout=30.0, unlike=after)
            assert back is not None, "the picture did not change within 30 s of moving |W| back"
            seen += moving
            for k, src in enumerate(seen):
                (tmp_path / f"picture-{k}.png").write_bytes(_png(src))
            assert back == before, f"moving |W| back to 1.50 did not give back the first picture (see {tmp_path})"
            blank = [k for k, src in enumerate(seen) if _is_blank(src)]
            assert not blank, f"blank pictures were shown while the slider moved: picture-{blank}.png in {tmp_path}"

            # the whole notebook ran without an error. Run All stops at the first error (the kernel
            # aborts what is queued after it), and a fresh kernel numbers executions 1, 2, ...: so
            # the last code cell shows [n] for n code cells, and shows no error itself.
            last = page.locator(".jp-NotebookPanel .jp-CodeCell").last
            last.scroll_into_view_if_needed()
            sync_api.expect(last.locator(".jp-InputPrompt")).to_have_text(f"[{n_code}]:", timeout=60_000)
            sync_api.expect(indicator).to_have_attribute("data-status", "idle")
            for cell in (explorer, last):
                sync_api.expect(cell.locator(".jp-OutputArea-output", has_text="Traceback")).to_have_count(0)
            explorer.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "page.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))  # what the learner would have seen
            raise
    assert refused == [], f"the page tried to reach other addresses: {refused}"

"""The course as a lecturer presents it: RISE slides in JupyterLab, and the offline HTML slides.

1. JupyterLab (with the ``jupyterlab-rise`` extension of requirements.txt) in headless Chromium:
   open notebook 04, run its set-up cell, render it as a slideshow from the View menu, advance
   the slides, run a code cell inside a slide, and check that its output appeared and the slide
   changed. Screenshots are saved in the test's tmp folder (``slides-*.png``).
2. The HTML slides of tools/build_slides.py opened from disk with every network request
   refused: reveal.js starts, the formulas are typeset by the local MathJax, the slide count is
   the notebook's.

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright; skipped when either is missing.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
from browser_support import (REPO, TOKEN, browser_tools, jupyter_lab, lab_page,  # noqa: F401
                             wait_for_idle_kernel)

pytestmark = pytest.mark.browser

NOTEBOOK = "04_the_elbo.ipynb"


@pytest.fixture
def patient_expect(browser_tools):
    """expect() waits up to 60 s (JupyterLab and a kernel start slowly on a busy 2-core machine)."""
    _, sync_api = browser_tools
    sync_api.expect.set_options(timeout=60_000)
    yield
    sync_api.expect.set_options(timeout=5_000)  # Playwright's default


def _present_text(frame) -> str:
    return frame.locator(".reveal .slides section.present").last.inner_text()


def test_lecturer_presents_a_notebook_as_rise_slides_and_runs_a_cell_in_a_slide(browser_tools, jupyter_lab, patient_expect,
                                                                                       tmp_path):
    chromium, sync_api = browser_tools
    base = jupyter_lab
    with lab_page(sync_api, chromium, base, tmp_path / "chromium-profile") as (page, refused):
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={TOKEN}")
            wait_for_idle_kernel(sync_api, page)

            # the set-up cell (imports; a 'skip' cell, so not on a slide) runs in the notebook
            setup = page.locator(".jp-NotebookPanel .jp-CodeCell").first
            setup.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            sync_api.expect(setup.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[1\]:"), timeout=120_000)

            # View > Render as Reveal Slideshow: the RISE view opens in a panel of its own
            page.get_by_role("menuitem", name="View", exact=True).click()
            page.get_by_role("menuitem", name=re.compile("Render as Reveal Slideshow")).click()
            iframe = page.locator("iframe[src*='rise/']")
            sync_api.expect(iframe).to_have_count(1, timeout=60_000)
            frame = iframe.content_frame
            present = frame.locator(".reveal .slides section.present")
            sync_api.expect(present.first).to_be_visible(timeout=60_000)
            title = _present_text(frame)
            assert "the elbo" in title.lower(), f"the slideshow does not open on the title slide: {title[:200]!r}"
            page.screenshot(path=str(tmp_path / "slides-title.png"))

            # advance until a slide shows a code cell (at most 10 steps)
            code_cell = None
            for _ in range(10):
                frame.locator(".reveal").press("Space")
                page.wait_for_timeout(500)
                cells = present.last.locator(".jp-CodeCell")
                if cells.count() and cells.first.is_visible():
                    code_cell = cells.first
                    break
            assert code_cell is not None, "no slide with a code cell within 10 steps"
            now = _present_text(frame)
            assert now != title, "the slide did not change"

            # run it inside the slide (Ctrl+Enter: run and stay): its output appears under it
            cell_index = frame.locator(".jp-CodeCell").evaluate_all(
                "(cells) => cells.findIndex((c) => c.closest('section.present') && c.offsetParent !== null)")
            assert cell_index >= 0
            code_cell = frame.locator(".jp-CodeCell").nth(cell_index)  # pinned: no longer 'the present slide's'
            output = code_cell.locator(".jp-OutputArea-output")
            assert output.count() == 0, "the learner copy should start without outputs"
            code_cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+Enter")
            sync_api.expect(code_cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=120_000)
            sync_api.expect(output.first).to_be_visible()
            text = code_cell.locator(".jp-OutputArea").inner_text()
            assert text.strip() and "Traceback" not in text and "Error" not in text, f"the cell's output: {text[:500]!r}"
            assert _present_text(frame) != title
            page.screenshot(path=str(tmp_path / "slides-cell-run.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
    assert refused == [], f"the page tried to reach other addresses: {refused}"


def test_offline_html_slides_show_formulas_with_every_request_refused(browser_tools, patient_expect, tmp_path):
    chromium, sync_api = browser_tools
    sys.path.insert(0, str(REPO / "tools"))
    import build_slides

    out = tmp_path / "slides"
    [html] = build_slides.build([REPO / "solutions" / NOTEBOOK], out, run=False)
    nb = json.loads((REPO / "solutions" / NOTEBOOK).read_text())
    kinds = [c["metadata"].get("slideshow", {}).get("slide_type") for c in nb["cells"]]
    expected = kinds.count("slide") + kinds.count("subslide")

    refused: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.route("**/*", only_files)
            page.goto(html.as_uri())
            page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=60_000)
            assert page.evaluate("Reveal.getTotalSlides()") == expected
            page.wait_for_function("document.querySelectorAll('.MathJax, .MathJax_Display').length > 0",
                                   timeout=60_000)
            first = page.evaluate("Reveal.getIndices()")
            page.keyboard.press("ArrowRight")
            page.wait_for_function(f"Reveal.getIndices().h !== {first['h']}", timeout=10_000)
            page.screenshot(path=str(tmp_path / "html-slides.png"))
        finally:
            browser.close()
    assert refused == [], f"the slides tried to load from the network: {refused}"

"""The course's website in a real browser: built in smoke mode from the learner notebooks as the
run's nbval executed them (tools/build_site.py --smoke --execute off), served on 127.0.0.1 and read
in headless Chromium that may reach nothing else.

Every page loads with no failed request and no console error; formulas are typeset by the site's own
MathJax; every image is loaded and not empty and has alternative text; searching "ELBO" finds notebook
04; no line of a solution block appears in any page; axe-core finds no critical accessibility
violation. Screenshots of the home page and notebook 04 are saved in the test's temporary folder
(printed).
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import nbformat
import pytest

from browser_support import browser_tools, lab_page  # noqa: F401 (fixture)
from tools import build_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / ".site-node" / "node_modules" / "axe-core" / "axe.min.js"
SKIPPED_FOLDERS = {"_static", "_sources", "_downloads", "_images", "jupyter_execute"}


@pytest.fixture(scope="module")
def built_site(tmp_path_factory, executed_notebook):
    """The site of the learner notebooks as this run executed them (nbval's smoke-mode run of
    notebooks/, shared by the ``executed_notebook`` fixture: conftest.py), built without executing
    anything again (``--execute off``)."""
    if not (build_site.MATHJAX / "tex-chtml.js").is_file() or not AXE.is_file():
        pytest.skip("MathJax and axe-core are not installed (bash tools/install_site_assets.sh; needs node and npm)")
    executed = tmp_path_factory.mktemp("executed-notebooks")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nbformat.write(executed_notebook(path), str(executed / path.name))
    args = build_site.parse_args(["--smoke", "--execute", "off", "--notebooks", str(executed),
                                  "--out", str(tmp_path_factory.mktemp("site") / "html")])
    return build_site.build(args)


@pytest.fixture(scope="module")
def served(built_site):
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", built_site
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _pages(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.html")
                  if not SKIPPED_FOLDERS & set(p.relative_to(out).parts))


TYPESET = """async () => {
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return -1;
    await MathJax.startup.promise;
    return document.querySelectorAll('mjx-container').length;
}"""

IMAGES = """() => Array.from(document.images).map(img => ({
    src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth,
    alt: img.getAttribute('alt') || ''}))"""


def test_every_page_in_a_browser(browser_tools, served, tmp_path):  # noqa: F811
    chromium, sync_api = browser_tools
    base, out = served
    pages = _pages(out)
    assert {"index.html", "search.html", "reference.html", "errata.html", "guides/instructors.html",
            "notebooks/04_the_elbo.html"} <= set(pages)
    solution_lines = build_site.solution_lines()
    problems: list[str] = []
    with lab_page(sync_api, chromium, base, tmp_path / "profile") as (page, refused):
        events: list[str] = []
        page.on("console", lambda m: events.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: events.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: events.append(f"failed request: {r.url} ({r.failure})"))
        page.on("response", lambda r: events.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        t0 = time.monotonic()
        for name in pages:
            events.clear()
            page.goto(f"{base}/{name}", wait_until="load")
            has_math = page.locator("span.math, div.math").count()
            typeset = page.evaluate(TYPESET)
            if has_math and typeset <= 0:
                problems.append(f"{name}: {has_math} formulas, none typeset by MathJax ({typeset})")
            for img in page.evaluate(IMAGES):
                if not img["complete"] or img["width"] == 0:
                    problems.append(f"{name}: image {img['src']} not loaded or empty")
                if not img["alt"].strip() or img["alt"] == img["src"]:
                    problems.append(f"{name}: image {img['src']} has no alternative text")
            text = page.inner_text("body")
            if name.startswith("notebooks/0") and "not done yet" not in text:
                problems.append(f"{name}: no exercise check says 'not done yet' (rendered from notebooks/?)")
            problems += [f"{name}: solution text {line!r}" for line in solution_lines if line in text]
            page.wait_for_timeout(100)  # late console messages
            problems += [f"{name}: {e}" for e in events]
        t1 = time.monotonic()
        # search, as a reader types it in the search box
        page.goto(f"{base}/index.html")
        page.goto(f"{base}/search.html?q=ELBO")
        results = page.locator("#search-results li a, ul.search li a")
        sync_api.expect(results.first).to_be_visible(timeout=30_000)
        hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
        assert any("notebooks/04_the_elbo" in (h or "") for h in hrefs), hrefs
        # screenshots
        shots = tmp_path / "screenshots"
        shots.mkdir()
        for name, url in (("home", "index.html"), ("notebook_04", "notebooks/04_the_elbo.html")):
            page.goto(f"{base}/{url}")
            page.evaluate(TYPESET)
            page.screenshot(path=str(shots / f"{name}.png"), full_page=False)
            assert (shots / f"{name}.png").stat().st_size > 10_000
        print(f"\nscreenshots of the site: {shots}")
        t2 = time.monotonic()
        # accessibility: axe-core on one page of each kind (home, notebook, guide, reference, result);
        # colour contrast (never 'critical' in axe, and its slowest rule) is left out
        axe = AXE.read_text(encoding="utf-8")
        for name in ("index.html", "notebooks/04_the_elbo.html", "guides/instructors.html", "reference.html",
                     "results/vae_digits.html"):
            page.goto(f"{base}/{name}")
            page.evaluate(TYPESET)
            page.add_script_tag(content=axe)
            violations = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations'],
                rules: {'color-contrast': {enabled: false}}}))
                .violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length}))""")
            problems += [f"{name}: axe {v['impact']} {v['id']}: {v['help']} ({v['nodes']} elements)"
                         for v in violations if v["impact"] == "critical"]
        print(f"pages {t1 - t0:.0f} s, search and screenshots {t2 - t1:.0f} s, axe {time.monotonic() - t2:.0f} s")
        assert refused == [], f"the pages tried to reach other addresses: {refused[:10]}"
    assert problems == [], "\n".join(problems[:40])

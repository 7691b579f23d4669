"""The course as a learner meets it: JupyterLab in a real (headless) browser.

Starts JupyterLab on 127.0.0.1 with a copy of the learner notebooks, opens notebook 01 in
Chromium driven by Playwright, runs all cells from the menu, moves the |W| slider of the p(x)
explorer with the keyboard and checks that the slider's readout and the drawn picture change.
Everything stays on this machine: the server listens on 127.0.0.1 only, JupyterLab's news and
update checks are off, and the browser refuses every address other than the server's.

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright for Python
(``pip install playwright``; its own browser download is not used). Skipped when either is missing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "01_linear_gaussian_models.ipynb"
TOKEN = "lvmlib-course-browser-test"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    # no calls out: no background services, no component/extension updates, no metrics, no DNS but local
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--disable-breakpad", "--metrics-recording-only",
    "--no-first-run", "--no-default-browser-check", "--no-pings", "--no-proxy-server",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,DialMediaRouteProvider,InterestFeedContentSuggestions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def _chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Ids of the processes whose parent is pid (the server's kernels), read from /proc."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and every process it started (kernels), by id; SIGKILL what lingers."""
    started = _children(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid in started:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _get(url: str, timeout: float = 2.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (127.0.0.1 only)
        return r.status


def _settled_src(img, timeout: float, quiet: float = 1.5, unlike: str | None = None) -> tuple[str | None, list[str]]:
    """The img's src once it has stayed the same for `quiet` seconds (and differs from `unlike`),
    with every src seen on the way; (None, seen) after timeout. Short messages, not base64 dumps."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    since = time.monotonic()
    while time.monotonic() < deadline:
        src = img.get_attribute("src") if img.count() == 1 else None
        if src and (not seen or src != seen[-1]):
            seen.append(src)
            since = time.monotonic()
        if seen and seen[-1] != unlike and time.monotonic() - since >= quiet:
            return seen[-1], seen
        time.sleep(0.1)
    return None, seen


def _png(src: str) -> bytes:
    return base64.b64decode(src.split(",", 1)[1])


def _is_blank(src: str) -> bool:
    """True for a PNG with nothing drawn (every pixel the same)."""
    import io

    from matplotlib.image import imread

    a = imread(io.BytesIO(_png(src)), format="png")
    return bool((a == a[0, 0]).all())


@pytest.fixture
def browser_tools():
    """Chromium's path and playwright.sync_api, or a skip saying what to install."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    return chromium, sync_api


@pytest.fixture
def jupyter_lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of notebooks/; yields its base URL."""
    root = tmp_path / "course"
    shutil.copytree(REPO / "notebooks", root)
    config = tmp_path / "jupyter-config"
    config.mkdir()
    # JupyterLab's own calls out: the news feed, the update check, the PyPI extension manager.
    (config / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {
        "news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly"}}))
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("MPLBACKEND", None)  # the test suite's Agg would keep the kernel from showing figures
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        LVMLIB_SMOKE="1",
    )
    port = _free_port()
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI containers often run as root
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({proc.returncode}):\n{(tmp_path / 'jupyterlab.log').read_text()}")
            try:
                if _get(f"{base}/api/status?token={TOKEN}") == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 60 s:\n{(tmp_path / 'jupyterlab.log').read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        _stop(proc)
        log.close()


def test_learner_moves_the_p_x_explorer_slider_and_the_picture_changes(browser_tools, jupyter_lab, tmp_path):
    chromium, sync_api = browser_tools
    base = jupyter_lab
    n_code = sum(c["cell_type"] == "code" for c in json.loads((REPO / "notebooks" / NOTEBOOK).read_text())["cells"])
    refused = []

    def only_the_server(route):
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000}, service_workers="block",
            env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()})
        try:
            context.set_default_timeout(60_000)
            context.route("**/*", only_the_server)
            page = context.pages[0] if context.pages else context.new_page()
        except Exception:
            context.close()
            raise
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={TOKEN}")

            # the notebook is open and its kernel is connected and idle (the status bar says so)
            cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
            sync_api.expect(cells.first).to_be_visible()
            sync_api.expect(page.locator(".jp-StatusBar-Widget", has_text="| Idle")).to_have_count(1)
            indicator = page.locator(".jp-Notebook-ExecutionIndicator")
            sync_api.expect(indicator).to_have_attribute("data-status", "idle")

            # click into the notebook, then Run > Run All Cells from the menu bar
            cells.first.click()
            first_code = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").first
            for attempt in (1, 2):
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
                try:  # a queued cell shows [*] at once; a click that came before the kernel was wired shows nothing
                    sync_api.expect(first_code).to_have_text(re.compile(r"\[(\*|\d+)\]:"), timeout=10_000)
                    break
                except AssertionError:
                    if attempt == 2:
                        raise

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
        finally:
            context.close()
    assert refused == [], f"the page tried to reach other addresses: {refused}"

"""What the browser tests share: Chromium and Playwright found or skipped, a JupyterLab server on
127.0.0.1 serving a copy of a notebook folder, and helpers that read what the page shows.

Everything stays on this machine: the server listens on 127.0.0.1 only, JupyterLab's news and
update checks are off, and the browser refuses every address other than the server's.
"""

from __future__ import annotations

import base64
import contextlib
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

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def jupyter_lab_server(tmp_path_factory):
    """One JupyterLab server for the browser tests (they run on one worker: conftest.py's BROWSER_UNIT);
    yields (base URL, its workspaces folder)."""
    tmp_path = tmp_path_factory.mktemp("jupyterlab")
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
        yield base, tmp_path / "lab-workspaces"
    finally:
        _stop(proc)
        log.close()


def _api(base: str, path: str, method: str = "GET"):
    request = urllib.request.Request(f"{base}{path}?token={TOKEN}", method=method)
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 (127.0.0.1 only)
        body = r.read()
    return json.loads(body) if body else None


@pytest.fixture
def jupyter_lab(browser_tools, jupyter_lab_server):
    """The shared JupyterLab as a new learner finds it: no saved workspace (no tab left open by an earlier
    test) and no kernel running; the test's kernels are shut down after it. Yields the base URL."""
    base, workspaces = jupyter_lab_server

    def clean():
        for session in _api(base, "/api/sessions"):
            _api(base, f"/api/sessions/{session['id']}", "DELETE")
        for kernel in _api(base, "/api/kernels"):
            _api(base, f"/api/kernels/{kernel['id']}", "DELETE")
        if workspaces.exists():
            shutil.rmtree(workspaces)

    clean()
    yield base
    clean()


@contextlib.contextmanager
def lab_page(sync_api, chromium: str, base: str, profile: Path):
    """A Chromium page (Playwright) that may reach the server at base and nothing else.

    Yields (page, refused): refused lists the addresses the page tried to reach besides the server.
    """
    refused: list[str] = []

    def only_the_server(route):
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000}, service_workers="block",
            env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()})
        try:
            context.set_default_timeout(60_000)
            sync_api.expect.set_options(timeout=60_000)  # a loaded 2-core machine renders slowly
            context.route("**/*", only_the_server)
            page = context.pages[0] if context.pages else context.new_page()
            yield page, refused
        finally:
            context.close()


def run_all_cells(sync_api, page) -> None:
    """Open the notebook's Run menu and run all cells, once more if the first click came too early."""
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.click()
    first_code = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").first
    for attempt in (1, 2):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:  # a queued cell shows [*] at once; a click that came before the kernel was wired shows nothing
            sync_api.expect(first_code).to_have_text(re.compile(r"\[(\*|\d+)\]:"), timeout=10_000)
            return
        except AssertionError:
            if attempt == 2:
                raise


def wait_for_idle_kernel(sync_api, page) -> None:
    """The notebook is open and its kernel is connected and idle (the status bar says so)."""
    sync_api.expect(page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first).to_be_visible()
    sync_api.expect(page.locator(".jp-StatusBar-Widget", has_text="| Idle")).to_have_count(1)
    sync_api.expect(page.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute("data-status", "idle")

"""A class on JupyterHub: the hub of hub/jupyterhub_config.py, its proxy, nbgrader's exchange.

The test starts the hub on 127.0.0.1 (free ports, a temporary state folder and exchange), logs
in an instructor and two students through the hub's login page and REST API, starts their
servers, and then, each through their own server behind the hub's proxy: the instructor
generates and releases an assignment (nbgrader's formgrader API), each student lists, fetches,
edits (Jupyter's contents API) and submits it (nbgrader's assignment API), the instructor
collects and autogrades. It stops what it started: the users' servers, the hub, and the proxy.

Skipped with a reason when the proxy (configurable-http-proxy, from npm) is not installed:
``bash tools/install_hub_proxy.sh``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.course_grading import exercise_plan, strip_markers  # noqa: E402
from tools.make_class_course import build_course  # noqa: E402

PROXY = ROOT / ".hub-node" / "node_modules" / ".bin" / "configurable-http-proxy"
INSTRUCTOR, STUDENTS = "teacher", ("ada", "ben")
COURSE = "lvm"

pytestmark = pytest.mark.slow


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def descendants(pid: int) -> set[int]:
    """The processes started, directly or not, by ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pick_assignment() -> str:
    # any assignment shows the plumbing; 04 is the quickest to grade in smoke mode
    names = [p.stem for p in sorted((ROOT / "solutions").glob("*.ipynb"))]
    wanted = os.environ.get("LVM_HUB_TEST_ASSIGNMENT", "04_the_elbo")
    return wanted if wanted in names else names[0]


def wait_for(predicate, what: str, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; hub log:\n{log.read_text()[-6000:]}")


def test_a_class_on_jupyterhub(tmp_path):
    requests = pytest.importorskip("requests")
    pytest.importorskip("jupyterhub")
    if not PROXY.exists():
        pytest.skip("JupyterHub's proxy is not installed: run bash tools/install_hub_proxy.sh")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the proxy (configurable-http-proxy) runs on node")

    state, exchange = tmp_path / "hub", tmp_path / "exchange"
    exchange.mkdir()
    port, api_port, proxy_api_port = free_ports(3)
    password = secrets.token_hex(12)
    env = dict(os.environ)
    env.update(
        # no virtual environment on PATH: the hub's config puts this Python's bin/ first for the servers
        PATH=os.pathsep.join(dict.fromkeys([os.path.dirname(node), "/usr/bin", "/bin"])),
        LVM_HUB_STATE=str(state), LVM_HUB_EXCHANGE=str(exchange), LVM_HUB_PASSWORD=password,
        LVM_HUB_INSTRUCTORS=INSTRUCTOR, LVM_HUB_STUDENTS=",".join(STUDENTS),
        LVM_HUB_PORT=str(port), LVM_HUB_API_PORT=str(api_port), LVM_HUB_PROXY_API_PORT=str(proxy_api_port),
    )
    # the instructor's course folder, in their home on the hub
    assignment = pick_assignment()
    course = state / "home" / INSTRUCTOR / "lvm-course"
    build_course(course, generate=False, exercise_timeout=60)
    source = nbformat.read(str(course / "source" / assignment / f"{assignment}.ipynb"), as_version=4)
    solutions = {c.metadata["nbgrader"]["grade_id"]: strip_markers(c.source) for c in source.cells
                 if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    plan = exercise_plan(source)

    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "hub.log"
    with open(log, "w") as log_file:
        hub = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "hub" / "jupyterhub_config.py")],
                               cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                               start_new_session=True)
    started: set[int] = set()
    tokens: dict[str, str] = {}

    def call(user, method, path, **kw):
        r = requests.request(method, base + path, headers={"Authorization": f"token {tokens[user]}"},
                             timeout=900, **kw)
        assert r.status_code < 400, f"{method} {path} as {user}: {r.status_code} {r.text[:2000]}"
        return r

    try:
        def hub_up():
            if hub.poll() is not None:
                pytest.fail(f"the hub exited:\n{log.read_text()[-6000:]}")
            started.update(descendants(hub.pid))
            try:
                return requests.get(base + "/hub/api/", timeout=5).status_code == 200
            except requests.RequestException:
                return False
        wait_for(hub_up, "the hub", 180, log)
        started.update(descendants(hub.pid))

        # log in through the hub's login page, then ask the REST API for a token
        for user in (INSTRUCTOR, *STUDENTS):
            session = requests.Session()
            session.get(base + "/hub/login", timeout=30)
            xsrf = session.cookies.get("_xsrf")
            r = session.post(base + "/hub/login?next=", data={"username": user, "password": password, "_xsrf": xsrf},
                             allow_redirects=False, timeout=60)
            assert r.status_code == 302, f"login of {user}: {r.status_code} {r.text[:500]}"
            bad = requests.Session()
            bad.get(base + "/hub/login", timeout=30)
            r_bad = bad.post(base + "/hub/login?next=", allow_redirects=False, timeout=60,
                             data={"username": user, "password": "wrong-" + password, "_xsrf": bad.cookies.get("_xsrf")})
            assert r_bad.status_code != 302, "a wrong password must not log in"
            home = session.get(base + "/hub/home", headers={"Sec-Fetch-Mode": "navigate"}, timeout=60)
            xsrf = re.search(r'xsrf_token: "([^"]+)"', home.text).group(1)
            r = session.post(f"{base}/hub/api/users/{user}/tokens", json={"note": "class test", "expires_in": 3600},
                             headers={"X-XSRFToken": xsrf}, timeout=60)
            assert r.status_code == 201, f"token of {user}: {r.status_code} {r.text[:500]}"
            tokens[user] = r.json()["token"]
            call(user, "POST", f"/hub/api/users/{user}/server")

        for user in (INSTRUCTOR, *STUDENTS):
            wait_for(lambda: call(user, "GET", f"/hub/api/users/{user}").json()["servers"].get("", {}).get("ready"),
                     f"the server of {user}", 300, log)
        started.update(descendants(hub.pid))
        assert call(INSTRUCTOR, "GET", f"/hub/api/users/{INSTRUCTOR}").json()["admin"] is True

        # the instructor generates and releases the assignment (nbgrader's formgrader, in their server)
        fg = f"/user/{INSTRUCTOR}/formgrader/api"
        for step in ("assign", "release"):
            r = call(INSTRUCTOR, "POST", f"{fg}/assignment/{assignment}/{step}").json()
            assert r.get("success"), f"{step}: {r}"
        assert (exchange / COURSE / "outbound" / assignment / f"{assignment}.ipynb").exists()

        # each student: list, fetch, work (ada solves every exercise, ben nothing), submit
        for student in STUDENTS:
            listed = call(student, "GET", f"/user/{student}/assignments", params={"course_id": COURSE}).json()
            assert any(a["assignment_id"] == assignment and a["status"] == "released" for a in listed["value"]), listed
            call(student, "POST", f"/user/{student}/assignments/fetch",
                 data={"course_id": COURSE, "assignment_id": assignment})
            url = f"/user/{student}/api/contents/{assignment}/{assignment}.ipynb"
            model = call(student, "GET", url).json()
            nb = nbformat.from_dict(model["content"])
            if student == "ada":
                for cell in nb.cells:
                    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                    if gid in solutions:
                        cell.source = solutions[gid]
            call(student, "PUT", url, data=json.dumps({"type": "notebook", "format": "json", "content": nb}))
            r = call(student, "POST", f"/user/{student}/assignments/submit",
                     data={"course_id": COURSE, "assignment_id": assignment}).json()
            assert r.get("success", True) is not False, r
        inbound = sorted(p.name.split("+")[0] for p in (exchange / COURSE / "inbound").iterdir())
        assert inbound == sorted(STUDENTS)

        # the instructor collects and autogrades
        r = call(INSTRUCTOR, "POST", f"{fg}/assignment/{assignment}/collect").json()
        assert r.get("success"), r
        for student in STUDENTS:
            r = call(INSTRUCTOR, "POST", f"{fg}/submission/{assignment}/{student}/autograde").json()
            assert r.get("success"), r
        submissions = {s["student"]: s for s in call(INSTRUCTOR, "GET", f"{fg}/submissions/{assignment}").json()}
        points = sum(float(c.metadata["nbgrader"]["points"]) for c in source.cells
                     if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
        assert plan and submissions["ada"]["max_score"] == points > 0
        assert submissions["ada"]["score"] == points
        assert submissions["ben"]["score"] == 0
    finally:
        for user in tokens:
            try:
                call(user, "DELETE", f"/hub/api/users/{user}/server")
            except Exception:
                pass
        started.update(descendants(hub.pid))
        proxy_pid = state / "proxy.pid"
        if proxy_pid.exists():
            started.add(int(proxy_pid.read_text().strip()))
        if hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(timeout=60)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(p) for p in started):
            time.sleep(0.5)
        left = [p for p in started if alive(p)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes still running after the hub stopped: {left}"

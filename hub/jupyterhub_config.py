"""JupyterHub for a class taking the course: students fetch and submit with nbgrader's exchange.

Start it from the repository root, with the course's Python (no activated environment needed):

    bash tools/install_hub_proxy.sh                     # the proxy, into .hub-node/
    LVM_HUB_PASSWORD=... .venv/bin/python -m jupyterhub -f hub/jupyterhub_config.py

Every setting below comes from an environment variable with a default, so that the same file
serves the tests (a temporary folder, free ports) and a class on one machine:

    LVM_HUB_STATE        folder for the hub's database, cookie secret and the users' homes (hub-state/)
    LVM_HUB_EXCHANGE     nbgrader's exchange, shared by everyone (/srv/nbgrader/exchange)
    LVM_HUB_INSTRUCTORS  comma-separated instructor accounts (instructor); they are the hub's admins
    LVM_HUB_STUDENTS     comma-separated student accounts
    LVM_HUB_PASSWORD     the shared password of the test authenticator (required)
    LVM_HUB_IP, LVM_HUB_PORT, LVM_HUB_API_PORT, LVM_HUB_PROXY_API_PORT
                         where the hub listens (127.0.0.1, 8000, 8081, 8001)

Accounts and spawner: the single-user servers run as the user that runs the hub, each with a home
folder of its own under LVM_HUB_STATE/home (JupyterHub's SimpleLocalProcessSpawner). That works as
root in a container and needs no system accounts, but gives the users no isolation from each
other: for a real class use a spawner that does (system users with LocalProcessSpawner, or one
container per user with KubeSpawner, see README.md) and a real authenticator.
"""

import os
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STATE = Path(os.environ.get("LVM_HUB_STATE", REPO / "hub-state")).resolve()
EXCHANGE = os.environ.get("LVM_HUB_EXCHANGE", "/srv/nbgrader/exchange")
INSTRUCTORS = {u for u in os.environ.get("LVM_HUB_INSTRUCTORS", "instructor").split(",") if u}
STUDENTS = {u for u in os.environ.get("LVM_HUB_STUDENTS", "").split(",") if u}
PASSWORD = os.environ.get("LVM_HUB_PASSWORD") or ""
if len(PASSWORD) < 8:
    raise SystemExit("set LVM_HUB_PASSWORD (8 characters or more) for the hub's test authenticator")
PROXY = REPO / ".hub-node" / "node_modules" / ".bin" / "configurable-http-proxy"
BIN = os.path.dirname(sys.executable)
(STATE / "home").mkdir(parents=True, exist_ok=True)

c = get_config()  # noqa: F821

# the hub and its proxy, on one interface
c.JupyterHub.ip = os.environ.get("LVM_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("LVM_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("LVM_HUB_API_PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True     # stopping the hub stops the users' servers
c.JupyterHub.cleanup_proxy = True       # ... and the proxy it started
c.ConfigurableHTTPProxy.command = [str(PROXY)]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ.get('LVM_HUB_PROXY_API_PORT', '8001'))}"
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
c.ConfigurableHTTPProxy.auth_token = secrets.token_hex(32)

# accounts: a shared-password test authenticator; instructors are admins
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = PASSWORD
c.Authenticator.allowed_users = INSTRUCTORS | STUDENTS
c.Authenticator.admin_users = INSTRUCTORS

# single-user servers: this Python's JupyterLab with nbgrader's extensions, one home per user
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(STATE / "home" / "{username}")
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--ServerApp.allow_root=True"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.env_keep = ["PYTHONPATH", "LANG", "LC_ALL", "LVMLIB_SMOKE", "LVMLIB_MNIST_DIR", "MPLBACKEND",
                      "JUPYTERHUB_SINGLEUSER_APP"]
c.Spawner.environment = {
    # this Python's bin/ first: nbgrader runs `alembic` by name, kernels start from it
    "PATH": BIN + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
    # the class-wide nbgrader configuration (exchange, course, who is a student): hub/jupyter/
    "JUPYTER_CONFIG_PATH": str(HERE / "jupyter"),
    "LVM_HUB_EXCHANGE": EXCHANGE,
    "LVM_HUB_INSTRUCTORS": ",".join(sorted(INSTRUCTORS)),
}

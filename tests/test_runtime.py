"""lvmlib.runtime: seeding reproducibility, device choice, smoke mode."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import lvmlib
from lvmlib import runtime


def draw():
    return random.random(), np.random.rand(3).tolist(), torch.randn(3).tolist()


def test_seed_everything_reproduces_all_generators():
    lvmlib.seed_everything(123)
    first = draw()
    lvmlib.seed_everything(123)
    assert draw() == first
    lvmlib.seed_everything(124)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_seed_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="seed"):
        lvmlib.seed_everything(bad)


def test_device_choice():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert lvmlib.get_device("auto").type == expected
    assert lvmlib.get_device("cpu") == torch.device("cpu")
    assert lvmlib.get_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        lvmlib.get_device("gpu")
    with pytest.raises(TypeError, match="device must be"):
        lvmlib.get_device(0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            lvmlib.get_device("cuda")


def test_smoke_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv(runtime.SMOKE_ENV, "1")
    assert lvmlib.smoke_mode() and lvmlib.smoke(100, 2) == 2
    monkeypatch.setenv(runtime.SMOKE_ENV, "0")
    assert not lvmlib.smoke_mode() and lvmlib.smoke(100, 2) == 100
    monkeypatch.delenv(runtime.SMOKE_ENV)
    assert not lvmlib.smoke_mode()
    monkeypatch.setenv(runtime.SMOKE_ENV, "maybe")
    with pytest.raises(ValueError, match="LVMLIB_SMOKE"):
        lvmlib.smoke_mode()


def test_describe_environment_names_versions_and_device():
    text = runtime.describe_environment("cpu")
    assert torch.__version__ in text and "device       cpu" in text
    import matplotlib
    import sklearn

    assert f"scikit-learn {sklearn.__version__}\n" in text and f"matplotlib   {matplotlib.__version__}\n" in text


def test_subprocess_env_puts_this_interpreters_folder_first():
    import os
    import sys

    here = os.path.dirname(sys.executable)
    env = runtime.subprocess_env({"PATH": os.pathsep.join(["/usr/bin", here, "/bin"]), "X": "1"})
    assert env["PATH"].split(os.pathsep) == [here, "/usr/bin", "/bin"]  # first, and only once
    assert env["X"] == "1"
    assert runtime.subprocess_env({})["PATH"] == here


def test_subprocess_env_finds_the_programs_beside_the_interpreter_without_activation(tmp_path):
    """What nbgrader does (it runs `alembic` by name) works with PATH stripped to the base system."""
    import subprocess
    import sys

    if not (Path(sys.executable).parent / "alembic").exists():
        pytest.skip("alembic is not installed beside this interpreter (it comes with nbgrader)")
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = "import shutil, sys; sys.exit(0 if shutil.which('alembic') else 1)"
    out = subprocess.run([sys.executable, "-c", code], env=runtime.subprocess_env(bare))
    assert out.returncode == 0


def test_progress_bar_in_a_terminal_counts_and_can_be_off(capsys):
    bar = runtime.progress_bar(range(5), desc="count", unit="step")
    assert list(bar) == [0, 1, 2, 3, 4]
    assert bar.n == 5
    quiet = runtime.progress_bar(total=3, enabled=False)
    quiet.update(3)
    quiet.close()
    with pytest.raises(TypeError, match="enabled must be True or False"):
        runtime.progress_bar(total=3, enabled="yes")


def test_progress_bar_leaves_its_final_state_in_a_saved_notebook(tmp_path):
    """Executed in a real kernel, the saved output's text form says 4/4, not the 0% it started with."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from lvmlib.runtime import progress_bar\n"
        "bar = progress_bar(total=4, desc='training', unit='epoch')\n"
        "for _ in range(4):\n"
        "    bar.update()\n"
        "bar.close()")]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    texts = [o["data"]["text/plain"] for o in nb.cells[0].outputs if "data" in o and "text/plain" in o["data"]]
    assert texts, nb.cells[0].outputs
    assert any("4/4" in t and "100%" in t for t in texts), texts
    assert not any("0/4" in t for t in texts), texts

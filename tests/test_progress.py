"""``python -m lvmlib.checks.progress``: every exercise as done, not done or wrong, from the learner's copies.

One tiny notebook in the learner's form (nbgrader metadata, one exercise solved, one wrong,
one untouched) is run once by the command; a notebook with nothing answered is not run at all.
"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lvmlib.checks import progress
from tools.nbauthor import _nbgrader

ROOT = Path(__file__).resolve().parent.parent


def _answer(gid, body):
    return nbformat.v4.new_code_cell(body, metadata=_nbgrader(gid, solution=True, grade=False, locked=False))


def _check(gid, body):
    return nbformat.v4.new_code_cell(body, metadata=_nbgrader(gid, solution=False, grade=True, locked=True, points=1))


def _learner_notebook(solve_M=True, wrong_C=True):
    cells = [nbformat.v4.new_code_cell("import torch\nfrom lvmlib import checks")]
    M_body = ("def M_matrix(W, sigma2):\n    return W.T @ W + sigma2 * torch.eye(W.shape[1], dtype=W.dtype)"
              if solve_M else "def M_matrix(W, sigma2):\n    raise NotImplementedError()")
    C_body = ("def C_inverse(W, sigma2):\n    D = W.shape[0]\n"   # the lecture's erratum: sigma^-1 I - ...
              "    return torch.eye(D, dtype=W.dtype) / sigma2**0.5 - W @ torch.linalg.solve(M_matrix(W, sigma2), W.T) / sigma2"
              if wrong_C else "def C_inverse(W, sigma2):\n    raise NotImplementedError()")
    cells += [_answer("M_matrix", M_body), _check("M_matrix_check", "M_matrix = checks.ppca.check_M_matrix(M_matrix)"),
              _answer("C_inverse", C_body), _check("C_inverse_check", "C_inverse = checks.ppca.check_C_inverse(C_inverse)"),
              _answer("posterior", "def posterior(X, W, mu, sigma2):\n    raise NotImplementedError()"),
              _check("posterior_check", "posterior = checks.ppca.check_posterior(posterior)")]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                          "language": "python"}})
    return nb


def test_progress_lists_done_not_done_and_wrong(tmp_path, monkeypatch):
    nbformat.write(_learner_notebook(), str(tmp_path / "02_mine.ipynb"))
    nbformat.write(_learner_notebook(solve_M=False, wrong_C=False), str(tmp_path / "03_untouched.ipynb"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this lvmlib
    statuses = progress.course_status(tmp_path, timeout=120)
    got = {(s.notebook, s.exercise): (s.status, s.detail) for s in statuses}
    assert got[("02_mine.ipynb", "M_matrix")] == ("done", "")
    status, detail = got[("02_mine.ipynb", "C_inverse")]
    assert status == "wrong" and detail.startswith("C_inverse: not right yet"), detail
    assert "This is a known mistake:" in detail and "sigma^-2" in detail, detail  # the lecture's erratum, named
    assert got[("02_mine.ipynb", "posterior")] == ("not done", "")
    assert {v for k, v in got.items() if k[0] == "03_untouched.ipynb"} == {("not done", "")}
    text = progress.format_status(statuses)
    assert "1 done, 4 not done, 1 wrong of 6 exercises" in text and "✗ C_inverse" in text
    # nothing is written to the learner's files
    assert not nbformat.read(str(tmp_path / "02_mine.ipynb"), as_version=4).cells[2].get("outputs")


def test_progress_command_without_running_and_on_bad_input(tmp_path):
    nbformat.write(_learner_notebook(), str(tmp_path / "02_mine.ipynb"))
    cmd = [sys.executable, "-m", "lvmlib.checks.progress"]
    out = subprocess.run(cmd + [str(tmp_path), "--no-run"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "answered" in out.stdout and "not done" in out.stdout, out.stdout + out.stderr

def test_progress_refuses_what_is_not_a_notebook_folder(tmp_path, capsys):
    assert progress.main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        progress.course_status(tmp_path / "empty")
    assert [e.check for e in progress.exercises(_learner_notebook())] == [2, 4, 6]

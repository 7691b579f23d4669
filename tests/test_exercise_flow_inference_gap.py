"""Notebook 08 in a learner's hands: a typical wrong answer stops the notebook at its check, named."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NB08 = ROOT / "notebooks" / "08_when_q_is_not_the_posterior.ipynb"


def _first_cells(nb, grade_id):
    """The notebook up to the check of exercise ``grade_id`` (the later cells are not needed)."""
    for i, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == f"{grade_id}_check":
            nb.cells = nb.cells[: i + 1]
            return nb
    raise AssertionError(f"no check cell for {grade_id!r}")


def _set(nb, grade_id, source):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    assert "raise NotImplementedError()" in cell.source
    cell.source = source


def _error_of(nb, tmp_path, monkeypatch):
    monkeypatch.setenv("LVMLIB_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("LVMLIB_RUN_CACHE", raising=False)
    with pytest.raises(CellExecutionError) as info:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return str(info.value)


def test_a_grid_without_its_cell_area_stops_at_its_check(tmp_path, monkeypatch):
    nb = _first_cells(nbformat.read(str(NB08), as_version=4), "grid_posterior")
    _set(nb, "grid_posterior",
         "def grid_posterior(log_joint, h1, h2):\n"
         "    log_px = torch.logsumexp(log_joint.flatten(-2), dim=-1)\n"
         "    return log_px, log_joint - log_px[:, None, None]")
    message = _error_of(nb, tmp_path, monkeypatch)
    assert "ExerciseError" in message and "without its cell area" in message

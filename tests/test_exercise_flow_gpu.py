"""In the learner's notebook 06, a wrong answer stops at its check with a message that names the mistake.
(The unfinished notebook running to the end on lvmlib's references is shown by nbval over notebooks/.)"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NB06 = ROOT / "notebooks" / "06_the_vae_on_a_gpu.ipynb"


def _set_cell(nb, grade_id, source):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            assert "raise NotImplementedError()" in cell.source
            cell.source = source
            return nb
    raise AssertionError(f"no cell {grade_id!r}")


def test_static_binarization_stops_at_the_binarize_check(tmp_path):
    nb = nbformat.read(str(NB06), as_version=4)
    _set_cell(nb, "binarize", "def binarize(x, generator=None):\n    return (x > 0.5).float()")
    with pytest.raises(CellExecutionError) as info:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    executed = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert "check_binarize" in executed[-1].source, "execution should stop at the check cell"
    message = str(info.value)
    assert "ExerciseError" in message and "static binarization" in message


@pytest.mark.slow
def test_a_read_per_batch_stops_at_the_train_epoch_check(tmp_path):
    """The core exercise: right values, but loss.item() in the loop; the check names the host reads."""
    nb = nbformat.read(str(NB06), as_version=4)
    _set_cell(nb, "binarize", "def binarize(x, generator=None):\n    return torch.bernoulli(x, generator=generator)")
    _set_cell(nb, "train_epoch", "\n".join([
        "def train_epoch(model, optimizer, x, batch_size, generator=None):",
        "    perm = torch.randperm(x.shape[0], generator=generator, device=x.device)",
        "    total = 0.0",
        "    for start in range(0, x.shape[0], batch_size):",
        "        xb = torch.bernoulli(x[perm[start:start + batch_size]], generator=generator)",
        "        loss = model(xb, generator=generator, check=False)['loss']",
        "        optimizer.zero_grad()",
        "        loss.backward()",
        "        optimizer.step()",
        "        total += loss.item() * xb.shape[0]",
        "    return total / x.shape[0]"]))
    with pytest.raises(CellExecutionError) as info:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    executed = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert "check_train_epoch" in executed[-1].source, "execution should stop at the check cell"
    message = str(info.value)
    assert "wrong: host reads in the loop" in message and "loss.item()" in message

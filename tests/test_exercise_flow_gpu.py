"""In the learner's notebook 06, a wrong answer stops at its check with a message that names the mistake.
(The unfinished notebook running to the end on lvmlib's references is shown by nbval over notebooks/.)"""

from pathlib import Path

import pytest
from notebook_runs import Attempts

ROOT = Path(__file__).resolve().parent.parent
NB06 = ROOT / "notebooks" / "06_the_vae_on_a_gpu.ipynb"


BINARIZE_RIGHT = "def binarize(x, generator=None):\n    return torch.bernoulli(x, generator=generator)"
TRAIN_EPOCH_READS_PER_BATCH = "\n".join([
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
    "    return total / x.shape[0]"])


@pytest.fixture(scope="module")
def attempts(tmp_path_factory):
    """Notebook 06: a static binarize; then, as the learner who fixed it, a train_epoch that reads the
    loss on the host every batch. One kernel (tests/notebook_runs.py)."""
    with Attempts(NB06, {
        "static binarize": {"binarize": "def binarize(x, generator=None):\n    return (x > 0.5).float()"},
        "read per batch": {"binarize": BINARIZE_RIGHT, "train_epoch": TRAIN_EPOCH_READS_PER_BATCH},
    }, tmp_path_factory.mktemp("nb06")) as runs:
        yield runs


def test_static_binarization_stops_at_the_binarize_check(attempts):
    error = attempts.error_at("static binarize", "check_binarize")
    assert "ExerciseError" in error and "static binarization" in error


@pytest.mark.slow
def test_a_read_per_batch_stops_at_the_train_epoch_check(attempts):
    """The core exercise: right values, but loss.item() in the loop; the check names the host reads."""
    error = attempts.error_at("read per batch", "check_train_epoch")
    assert "wrong: host reads in the loop" in error and "loss.item()" in error

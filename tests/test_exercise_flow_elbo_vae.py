"""In the learner's notebooks 04 and 05, a wrong answer stops at its check with a message that
names the mistake (the slide code's errata among them). The unfinished notebooks running to the
end on lvmlib's references is shown by nbval over notebooks/."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from notebook_runs import Attempts

ROOT = Path(__file__).resolve().parent.parent

SLIDE_AS_WRITTEN = '''
class LectureVAE(nn.Module):
    def __init__(self, D, M, H=300):
        super().__init__()
        self.D, self.M = D, M
        self.enc1 = nn.Linear(in_features=D, out_features=H)
        self.enc2 = nn.Linear(in_features=H, out_features=2 * M)
        self.dec1 = nn.Linear(in_features=M, out_features=H)
        self.dec2 = nn.Linear(in_features=H, out_features=D)

    def reparameterize(self, mu_z, log_var):
        std = torch.exp(0.5 * log_var)
        return mu_z + torch.randn_like(std) * std

    def forward(self, x):
        x = F.relu(self.enc1(x))
        x = self.enc2(x).view(-1, 2, self.M)
        mu_z, log_var = x[:, 0, :], x[:, 1, :]
        z = self.reparameterize(mu_z, log_var)
        x_hat = F.relu(self.dec1(z))
        x_hat = self.dec2(x)
        return x_hat, z, mu_z, log_var

    def neg_elbo(self, x, x_hat, z, mu_z, log_var):
        RE = ((x - x_hat) ** 2).sum(-1)
        KL = log_normal_diag(z, mu_z, log_var) - log_normal_standard(z)
        return -(RE - KL)
'''


def _set_cell(nb, grade_id, source):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            assert "raise NotImplementedError()" in cell.source
            cell.source = source
            return nb
    raise AssertionError(f"no cell {grade_id!r}")


def _run_expecting_error(nb, tmp_path, check_name):
    with pytest.raises(CellExecutionError) as info:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    executed = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert check_name in executed[-1].source, "execution should stop at the check cell"
    return str(info.value)


SLIDE_ANSWERS = {
    "as written": SLIDE_AS_WRITTEN,
    "decoding fixed": SLIDE_AS_WRITTEN.replace("x_hat = self.dec2(x)", "x_hat = self.dec2(x_hat)"),
}


@pytest.fixture(scope="module")
def slide_code_attempts(tmp_path_factory):
    """Each of SLIDE_ANSWERS put in notebook 05's LectureVAE cell, in order, in one kernel: the cells
    above it once, then for each answer its cell and those after it up to the first error
    (tests/notebook_runs.py)."""
    with Attempts(ROOT / "notebooks" / "05_the_vae.ipynb",
                  {answer: {"lecture_vae": source} for answer, source in SLIDE_ANSWERS.items()},
                  tmp_path_factory.mktemp("nb05")) as attempts:
        yield attempts


def test_slide_code_decoding_x_stops_at_its_check(slide_code_attempts):
    error = slide_code_attempts.error_at("as written", "check_lecture_vae")
    assert "ExerciseError" in error and "self.dec2(x)" in error


def test_slide_code_sign_error_stops_at_its_check(slide_code_attempts):
    error = slide_code_attempts.error_at("decoding fixed", "check_lecture_vae")
    assert "known mistake: the slide's sign error" in error


def test_kl_without_its_half_stops_at_its_check(tmp_path):
    nb = nbformat.read(str(ROOT / "notebooks" / "04_the_elbo.ipynb"), as_version=4)
    _set_cell(nb, "kl_standard_normal",
              "def kl_standard_normal(mu_z, log_var):\n"
              "    return (mu_z**2 + torch.exp(log_var) - log_var - 1.0).sum(dim=-1)")
    message = _run_expecting_error(nb, tmp_path, "check_kl_standard_normal")
    assert "kl_standard_normal: not right yet" in message and "the factor 1/2 is missing" in message

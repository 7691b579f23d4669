"""notebooks/ is generated from solutions/: in sync, solutions removed, hidden tests removed, no outputs."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_generated_notebooks_are_in_sync():
    result = subprocess.run([sys.executable, "tools/make_learner_notebooks.py", "--check"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_mode_catches_a_stale_notebook(tmp_path):
    sols, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    sols.mkdir()
    (sols / SOLUTIONS[0].name).write_text(SOLUTIONS[0].read_text())
    tool = [sys.executable, "tools/make_learner_notebooks.py", "--solutions", str(sols), "--notebooks", str(nbs)]
    assert subprocess.run(tool + ["--check"], cwd=ROOT, capture_output=True).returncode == 1
    assert subprocess.run(tool, cwd=ROOT, capture_output=True).returncode == 0
    assert subprocess.run(tool + ["--check"], cwd=ROOT, capture_output=True).returncode == 0
    nb = nbformat.read(str(sols / SOLUTIONS[0].name), as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("an edit"))
    nbformat.write(nb, str(sols / SOLUTIONS[0].name))
    stale = subprocess.run(tool + ["--check"], cwd=ROOT, capture_output=True, text=True)
    assert stale.returncode == 1 and "out of date" in stale.stderr


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_learner_copy_has_no_solutions_hidden_tests_or_outputs(path):
    solution = nbformat.read(str(path), as_version=4)
    learner = nbformat.read(str(ROOT / "notebooks" / path.name), as_version=4)
    n_exercises = 0
    for cell in learner.cells:
        assert "### BEGIN SOLUTION" not in cell.source and "### BEGIN HIDDEN TESTS" not in cell.source
        if cell.cell_type == "code":
            assert not cell.outputs
            n_exercises += "raise NotImplementedError()" in cell.source
    n_solutions = sum("### BEGIN SOLUTION" in c.source for c in solution.cells)
    assert n_exercises == n_solutions >= 1, f"{path.name} should have exercises, each cleared in the learner copy"
    assert all(not c.get("outputs") for c in solution.cells if c.cell_type == "code"), \
        f"solutions/{path.name} is committed with outputs: clear them"


@pytest.mark.parametrize("path", [p for p in SOLUTIONS if p.name[:2] in {"02", "03", "04", "05", "06", "07", "08"}], ids=lambda p: p.name)
def test_challenge_questions_end_the_notebook_and_their_discussion_stays_in_solutions(path):
    solution = nbformat.read(str(path), as_version=4)
    learner = nbformat.read(str(ROOT / "notebooks" / path.name), as_version=4)
    discussion = [c for c in solution.cells if "discussion" in c.get("metadata", {}).get("tags", [])]
    assert len(discussion) == 1 and discussion[0] is solution.cells[-1]
    assert "Challenge questions" in solution.cells[-2].source
    assert "Challenge questions" in learner.cells[-1].source
    assert not any("discussion" in c.get("metadata", {}).get("tags", []) or "Discussion (solutions only)" in c.source
                   for c in learner.cells)
    # the core exercise: an answer cell, its check worth 1 point, and its hints
    core = {"02": "fit_and_score", "03": "em_until_converged", "04": "k_sample_bounds", "05": "vae_step",
            "06": "train_epoch", "07": "rate_terms", "08": None}[path.name[:2]]
    if core is None:  # notebook 08 has no core exercise of its own
        return
    ids = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in solution.cells]
    check = solution.cells[ids.index(f"{core}_check")]
    assert ids.index(f"{core}_check") == ids.index(core) + 1 and check.metadata["nbgrader"]["points"] == 1
    assert any(f'checks.hint("{core}")' in c.source for c in learner.cells)
    from tools.make_class_course import grading_notebook  # the class course's source: no discussion either
    assert not any("Discussion (solutions only)" in c.source for c in grading_notebook(solution).cells)


def test_the_binarize_statement_does_not_print_its_answer():
    nb = nbformat.read(str(ROOT / "notebooks" / "06_the_vae_on_a_gpu.ipynb"), as_version=4)
    statement = next(c.source for c in nb.cells if c.cell_type == "markdown" and "`binarize`" in c.source
                     and c.source.startswith("### Exercise"))
    assert "generator=" in statement  # it asks for the generator ...
    assert "torch.bernoulli" not in statement and "torch.rand(" not in statement  # ... without naming the call

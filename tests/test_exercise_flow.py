"""How an exercise behaves for a learner and for an instructor's autograder.

- a learner's notebook with a wrong answer stops at the check, with a message that helps
  (the unfinished notebook running to the end is shown by nbval over notebooks/);
- nbgrader, run on the course as it is, generates the assignment and autogrades it:
  an unfinished submission scores 0, a correct one full marks.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from notebook_runs import Attempts

from lvmlib.runtime import subprocess_env

ROOT = Path(__file__).resolve().parent.parent
NB00 = "00_why_generative_models.ipynb"


def answered(grade_id, body):
    """The learner's exercise cell of notebook 00 with ``body`` in place of its stub."""
    nb = nbformat.read(str(ROOT / "notebooks" / NB00), as_version=4)
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert "raise NotImplementedError()" in cell.source
    return cell.source.replace("# YOUR CODE HERE\n", "").replace("raise NotImplementedError()", body)


def outputs_text(nb):
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_unfinished_notebook_runs_to_the_end_on_the_reference(executed_notebook):
    """The learner's notebook as this run executed it, in smoke mode (nbval's run, shared: conftest.py)."""
    nb = executed_notebook(ROOT / "notebooks" / NB00)
    text = outputs_text(nb)
    assert "log_joint: not done yet" in text and "unfamiliar: not done yet" in text
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def log_joint_attempts(tmp_path_factory):
    """Notebook 00 with a wrong log_joint, then the right one, in one kernel (tests/notebook_runs.py)."""
    with Attempts(ROOT / "notebooks" / NB00, {
        "wrong": {"log_joint": answered("log_joint", "return log_p_y_given_x * log_p_x[:, None]")},
        "right": {"log_joint": answered("log_joint", "return log_p_y_given_x + log_p_x.reshape(-1, 1)")},
    }, tmp_path_factory.mktemp("nb00")) as attempts:
        yield attempts


def test_wrong_answer_stops_at_the_check_with_a_helpful_message(log_joint_attempts):
    error = log_joint_attempts.error_at("wrong", "check_log_joint")
    assert "ExerciseError" in error and "log_joint: not right yet" in error
    assert "known mistake: multiplying the log-probabilities" in error


def test_right_answer_is_confirmed(log_joint_attempts):
    """After the wrong answer, as a learner who fixes it and runs the cells again: the rest runs to the end."""
    right = log_joint_attempts["right"]
    assert right.error is None, right.error
    assert "✓ log_joint: correct" in right.printed and "unfamiliar: not done yet" in right.printed


def solved_copy(release_nb, source_nb):
    """A student's submission: the released notebook with each answer cell taken from the solutions."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source_nb.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release_nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = "\n".join(line for line in answers[grade_id].splitlines()
                                    if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
    return release_nb


@pytest.mark.slow
def test_nbgrader_generates_and_autogrades_the_course(tmp_path):
    nbgrader = [sys.executable, "-m", "nbgrader"]
    (tmp_path / "source" / "ex00").mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / NB00, tmp_path / "source" / "ex00" / NB00)
    (tmp_path / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "lvm"\n')

    def call(*args):
        # subprocess_env: nbgrader runs `alembic` by name, found beside this interpreter without activation
        result = subprocess.run(nbgrader + list(args), cwd=tmp_path, capture_output=True, text=True,
                                env=subprocess_env())
        assert result.returncode == 0, result.stdout + result.stderr

    call("generate_assignment", "ex00", "--force")
    released = tmp_path / "release" / "ex00" / NB00
    release_nb = nbformat.read(str(released), as_version=4)
    assert not any("BEGIN HIDDEN TESTS" in c.source or "BEGIN SOLUTION" in c.source for c in release_nb.cells)

    for student in ("unfinished", "solved"):
        (tmp_path / "submitted" / student / "ex00").mkdir(parents=True)
    shutil.copy(released, tmp_path / "submitted" / "unfinished" / "ex00" / NB00)
    source_nb = nbformat.read(str(tmp_path / "source" / "ex00" / NB00), as_version=4)
    nbformat.write(solved_copy(release_nb, source_nb), str(tmp_path / "submitted" / "solved" / "ex00" / NB00))

    call("autograde", "ex00")
    call("export", "--to", str(tmp_path / "grades.csv"))
    rows = (tmp_path / "grades.csv").read_text().splitlines()
    header = rows[0].split(",")
    scores = {r.split(",")[header.index("student_id")]: r.split(",") for r in rows[1:]}
    score = {s: float(v[header.index("score")]) for s, v in scores.items()}
    max_score = float(scores["solved"][header.index("max_score")])
    assert max_score >= 2
    assert score["solved"] == max_score
    assert score["unfinished"] == 0.0

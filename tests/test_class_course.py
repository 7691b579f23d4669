"""Grading a class with nbgrader: the course built from solutions/, and an instructor's round trip.

The course, its assignments, exercises, points and hidden tests are all read from solutions/
when the tests run; nothing here lists the exercises. Every nbgrader command runs as
``python -m nbgrader`` with PATH stripped to /usr/bin:/bin, as from a virtual environment
that was never activated (nbgrader's gradebook runs the program ``alembic`` by name: the
course's nbgrader_config.py must find it).
"""

from __future__ import annotations

import copy
import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.course_grading import defined_names, exercise_plan, strip_markers  # noqa: E402
from tools.make_class_course import (  # noqa: E402
    CONFIG_ERROR, HIDDEN_WEIGHT, VISIBLE_WEIGHT, build_course, format_points_table, grading_notebook, points_table,
    read_notebook, split_hidden, strict_calls)

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
BARE_PATH = "/usr/bin:/bin"
EXERCISE_TIMEOUT = 20      # seconds for an answer or test cell: the checks take ~2 s on a busy machine
# The assignment that holds the unlucky student's loop is graded with a shorter limit: its checks take
# under 1.1 s on a loaded 2-core machine, and the loop costs the limit once (its hidden tests are not run).
LOOP_TIMEOUT = 8
CELL_TIMEOUT = 600         # seconds for any other cell: a smoke-mode cell takes well under a minute


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m nbgrader`` with a PATH that holds no virtual environment."""
    env = dict(os.environ, PATH=BARE_PATH)
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0 and CONFIG_ERROR not in result.stderr, (
        f"nbgrader {args}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def test_the_visible_check_is_rewritten_strict_and_the_hidden_tests_split_off():
    source = ("f = checks.ppca.check_f(f)\nprint('done')\n"
              "### BEGIN HIDDEN TESTS\nchecks.ppca.check_f(f, strict=True, seed=1)\n### END HIDDEN TESTS")
    visible, hidden = split_hidden(source)
    assert visible == ["f = checks.ppca.check_f(f)", "print('done')"]
    assert hidden == ["checks.ppca.check_f(f, strict=True, seed=1)"]
    assert strict_calls("\n".join(visible)) == ["checks.ppca.check_f(f, strict=True)"]
    assert strict_calls("g = checks.x.check_g(g, strict=True)") == []     # already strict: left alone
    assert defined_names("import math as m\nclass A: pass\ndef f(x):\n    y = 1\nZ, W = 1, 2") == ["m", "A", "f", "Z", "W"]


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    """The class course built from solutions/ with every assignment generated: once per run, shared by
    the workers of a parallel run (the run's base temporary folder), and only read by the tests; a test
    that grades works on its own copy (:func:`course_copy`)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, done = shared / "class-course" / "course", shared / "class-course" / "generated"
    with FileLock(str(shared / "class-course.lock")):
        if not done.exists():
            if out.exists():
                shutil.rmtree(out)          # a build that failed half-way
            build_course(out, exercise_timeout=EXERCISE_TIMEOUT, cell_timeout=CELL_TIMEOUT, generate=False)
            nbgrader(out, "generate_assignment", "*", "--force")     # every assignment, in one nbgrader process
            done.write_text("ok")
    return out


def course_copy(course: Path, where: Path) -> Path:
    """A copy of the generated course that a test may grade in (submissions, gradebook, feedback)."""
    return Path(shutil.copytree(course, where / "course"))


def grade_cells(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")}


def test_the_course_is_built_from_solutions(course):
    """One assignment per notebook; every exercise has a visible check and heavier hidden tests."""
    assert sorted(p.name for p in (course / "release").iterdir()) == [p.stem for p in SOLUTIONS]
    for solution_path in SOLUTIONS:
        solution = nbformat.read(str(solution_path), as_version=4)
        source = nbformat.read(str(course / "source" / solution_path.stem / solution_path.name), as_version=4)
        released = nbformat.read(str(course / "release" / solution_path.stem / solution_path.name), as_version=4)
        authored = {gid: c for gid, c in grade_cells(solution).items()}
        graded = grade_cells(source)
        assert authored, f"{solution_path.name} has no graded cell"
        for gid, cell in authored.items():
            points = float(cell.metadata["nbgrader"].get("points", 1))
            visible, hidden = graded[gid], graded[f"{gid}_hidden"]
            assert visible.metadata["nbgrader"]["points"] == points * VISIBLE_WEIGHT
            assert hidden.metadata["nbgrader"]["points"] == points * HIDDEN_WEIGHT > points * VISIBLE_WEIGHT
            # the hidden tests are the solution's, strict and on other seeds
            hidden_lines = [line for line in strip_markers(hidden.source).splitlines() if not line.startswith("#")]
            assert hidden_lines and all("strict=True" in line and "seed=" in line for line in hidden_lines)
            assert all(line in cell.source for line in hidden_lines)
            # the visible check also runs strictly when grading (an unfinished exercise scores 0)
            assert "strict=True" in visible.source and "seed=" not in strip_markers(visible.source)
        # the learner's copy of the class: no solution, no hidden test
        for cell in released.cells:
            assert "BEGIN SOLUTION" not in cell.source and "BEGIN HIDDEN TESTS" not in cell.source
            assert "strict=True" not in cell.source
        assert set(grade_cells(released)) == set(graded)
    # every exercise of solutions/ is an exercise of the course
    for solution_path in SOLUTIONS:
        plan = exercise_plan(nbformat.read(str(course / "source" / solution_path.stem / solution_path.name), 4))
        answers = [c.metadata["nbgrader"]["grade_id"] for c in nbformat.read(str(solution_path), 4).cells
                   if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
        assert [ex.answer_id for ex in plan] == answers


def test_instructors_guide_states_the_points_of_the_course():
    """The points table lives on the website's instructors' guide (site/guides/instructors.md)."""
    table = format_points_table(points_table())
    assert table in (ROOT / "site" / "guides" / "instructors.md").read_text(encoding="utf-8"), (
        "the points table of site/guides/instructors.md is out of date; "
        "print it with: python tools/make_class_course.py --points")


@pytest.mark.slow
def test_grading_keeps_exercises_apart(tmp_path):
    """A tiny course: a deleted test cell, a loop, a rebound global, and the exercises after them."""
    from nbgrader.api import Gradebook

    from tools.nbauthor import Notebook

    nb = Notebook("Four small exercises")
    nb.code("import torch\nfrom lvmlib import checks")
    for name, formula in (("double", "2 * x"), ("square", "x * x"), ("half", "x / 2"), ("triple", "3 * x")):
        nb.solution(name, f"def {name}(x):\n    ### BEGIN SOLUTION\n    return {formula}\n    ### END SOLUTION")
        check = f"checks.check_function({name}, lambda x: {formula}, [checks.Case((torch.arange(3.0),))], name={name!r}"
        hidden = check.replace("arange(3.0)", "linspace(-1, 1, 5)")
        nb.check(f"{name}_check", f"{name} = {check})\n### BEGIN HIDDEN TESTS\n{hidden}, strict=True)\n"
                                  "### END HIDDEN TESTS", points=1)
    nb.write(tmp_path / "solutions" / "tiny.ipynb")
    course = tmp_path / "course"
    build_course(course, tmp_path / "solutions", exercise_timeout=3, generate=False)   # the checks take milliseconds
    nbgrader(course, "generate_assignment", "tiny", "--force")

    released = nbformat.read(str(course / "release" / "tiny" / "tiny.ipynb"), as_version=4)
    answers = {"double": "def double(x):\n    return 2 * x",
               "square": "def square(x):\n    while True:\n        pass",
               "half": "def half(x):\n    return x / 2\nchecks = None",
               "triple": "def triple(x):\n    return 3 * x"}
    cells = []
    for cell in released.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid == "double_check":
            continue                      # the student deleted a locked test cell
        if gid in answers:
            cell.source = answers[gid]
        cells.append(cell)
    released.cells = cells
    (course / "submitted" / "kim" / "tiny").mkdir(parents=True)
    nbformat.write(released, str(course / "submitted" / "kim" / "tiny" / "tiny.ipynb"))
    nbgrader(course, "autograde", "tiny")

    deserved = {"double": True, "square": False, "half": False, "triple": True}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="lvm") as gb:
        for name, ok in deserved.items():
            for gid, points in ((f"{name}_check", 1.0), (f"{name}_check_hidden", 2.0)):
                assert gb.find_grade(gid, "tiny", "tiny", "kim").score == (points if ok else 0.0), (name, gid)
    # the loop cost the time limit once: its check was interrupted, its hidden test not run
    graded = grade_cells(nbformat.read(str(course / "autograded" / "kim" / "tiny" / "tiny.ipynb"), as_version=4))
    errors = {gid: [o.get("ename") for o in c.get("outputs", []) if o.get("output_type") == "error"]
              for gid, c in graded.items()}
    assert errors["square_check"] and "NotRun" not in errors["square_check"]
    assert errors["square_check_hidden"] == ["NotRun"]
    assert "ran past 3 s" in graded["square_check_hidden"].outputs[0]["evalue"]
    assert errors["triple_check_hidden"] == [] and errors["half_check_hidden"] != ["NotRun"]


# --- the class ------------------------------------------------------------------------------------------

# Typical wrong answers, the lecture's errata among them, keyed by the answer cell's grade_id:
# (the code submitted, a phrase the check's message must contain). Other exercises: solved.
MISTAKES = {
    "log_joint": ("def log_joint(log_p_y_given_x, log_p_x):\n    return log_p_y_given_x * log_p_x[:, None]",
                  "known mistake: multiplying the log-probabilities"),
    "C_inverse": ("def C_inverse(W, sigma2):\n"
                  "    D = W.shape[0]\n"
                  "    Minv_Wt = torch.linalg.solve(M_matrix(W, sigma2), W.T)\n"
                  "    return torch.eye(D, dtype=W.dtype) / sigma2**0.5 - W @ Minv_Wt / sigma2",
                  "misprint sigma^-1 I"),
    "posterior": ("def posterior(X, W, mu, sigma2):\n"
                  "    M = M_matrix(W, sigma2)\n"
                  "    return (X - mu) @ W @ torch.linalg.inv(M), M / sigma2",
                  "that is the posterior PRECISION"),
    "reparameterize": ("def reparameterize(mu_z, log_var):\n"
                       "    return mu_z + torch.exp(log_var) * torch.randn_like(mu_z)",
                       "exp(log_var) is the VARIANCE"),
}

# The unlucky student's answers, by position in the course: one loop, then the rest in turn.
FIRST, CYCLE = "loops", ["deleted", "solved", "raises", "clobbers", "floods"]
DESERVES_POINTS = {"solved", "floods"}       # a right answer that prints megabytes keeps its points
FLOOD_CHARS = 1_000_000


def solution_regions(source: str, replace) -> str:
    """``source`` with each ``### BEGIN/END SOLUTION`` region's lines replaced by ``replace(indent, lines)``."""
    out, region, indent = [], None, ""
    for line in source.splitlines():
        if line.strip() == "### BEGIN SOLUTION":
            region, indent = [], line[: len(line) - len(line.lstrip())]
        elif line.strip() == "### END SOLUTION":
            out.extend(replace(indent, region))
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    return "\n".join(out)


def unlucky_answer(behaviour: str, solution_source: str) -> str | None:
    """What the unlucky student submits for an exercise (None: the answer cell is deleted)."""
    if behaviour == "loops":
        return solution_regions(solution_source, lambda i, _: [i + "while True:", i + "    pass"])
    if behaviour == "raises":
        return solution_regions(solution_source, lambda i, _: [i + "raise ValueError('an answer that crashes')"])
    if behaviour == "floods":
        return solution_regions(solution_source, lambda i, body: [i + f"print('x' * {FLOOD_CHARS})", *body])
    if behaviour == "clobbers":
        return strip_markers(solution_source) + "\nchecks = None  # rebinds a global that the next cells rely on"
    if behaviour == "deleted":
        return None
    return strip_markers(solution_source)


def course_exercises() -> list[tuple[str, object]]:
    """(assignment, exercise) for every exercise of the course, in order, as the course's source has
    them (test_the_course_is_built_from_solutions checks them against the built course)."""
    return [(path.stem, ex) for path in SOLUTIONS for ex in exercise_plan(grading_notebook(read_notebook(path)))]


def unlucky_behaviours(exercises) -> dict:
    """(assignment, answer id) -> what the unlucky student does: loops first, then the cycle in turn."""
    behaviours = [FIRST] + [CYCLE[i % len(CYCLE)] for i in range(len(exercises) - 1)]
    return {(a, ex.answer_id): b for (a, ex), b in zip(exercises, behaviours)}


STUDENTS = ("unlucky", "unfinished", "mistakes", "solved")


def make_class(course: Path) -> dict:
    """What each student answers to every exercise of the course, and what each answer deserves."""
    exercises = course_exercises()
    unlucky = unlucky_behaviours(exercises)
    deserved = {}   # (student, assignment, answer_id) -> bool
    answers = {}    # (student, assignment, answer_id) -> the answer cell's code (None: the cell is deleted)
    for path in SOLUTIONS:
        assignment = path.stem
        source = nbformat.read(str(course / "source" / assignment / path.name), as_version=4)
        released = nbformat.read(str(course / "release" / assignment / path.name), as_version=4)
        stubs = {c.metadata["nbgrader"]["grade_id"]: c.source for c in released.cells
                 if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
        solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                     if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
        for gid, solution in solutions.items():
            for student in STUDENTS:
                if student == "solved":
                    answer, ok = strip_markers(solution), True
                elif student == "unfinished":
                    answer, ok = stubs[gid], False
                elif student == "mistakes":
                    answer, ok = (MISTAKES[gid][0], False) if gid in MISTAKES else (strip_markers(solution), True)
                else:
                    behaviour = unlucky[(assignment, gid)]
                    answer, ok = unlucky_answer(behaviour, solution), behaviour in DESERVES_POINTS
                answers[(student, assignment, gid)] = answer
                deserved[(student, assignment, gid)] = ok
    return {"deserved": deserved, "answers": answers, "unlucky": unlucky, "exercises": exercises}


def in_full(exercises, unlucky) -> list[str]:
    """The assignments whose four submissions go through nbgrader's whole round trip.

    The first assignment (the unlucky student's loop), then the assignments that hold an
    exercise of MISTAKES (the feedback of those is read), in order, until every behaviour of the
    unlucky student is among them. The other assignments are graded by :func:`grade_side_by_side`.
    """
    chosen = [SOLUTIONS[0].stem]
    with_mistakes = [p.stem for p in SOLUTIONS
                     if any(a == p.stem and ex.answer_id in MISTAKES for a, ex in exercises)]
    for assignment in with_mistakes + [p.stem for p in SOLUTIONS]:
        covered = {b for (a, _), b in unlucky.items() if a in chosen}
        if {FIRST, *CYCLE} <= covered and set(chosen) & set(with_mistakes):
            break
        if assignment not in chosen:
            chosen.append(assignment)
    return [p.stem for p in SOLUTIONS if p.stem in chosen]


def submit(course: Path, klass: dict, assignment: str, students=STUDENTS) -> None:
    """Write the students' submissions of ``assignment`` into the course's submitted/."""
    name = f"{assignment}.ipynb"
    for student in students:
        nb = nbformat.read(str(course / "release" / assignment / name), as_version=4)
        cells = []
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if (student, assignment, gid) in klass["answers"]:
                answer = klass["answers"][(student, assignment, gid)]
                if answer is None:
                    continue                     # the answer cell is deleted
                cell.source = answer
            cells.append(cell)
        nb.cells = cells
        dest = course / "submitted" / student / assignment
        dest.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(dest / name))
        (dest / "timestamp.txt").write_text("2026-12-01 09:00:00.000000 UTC")


def grade_side_by_side(course: Path, klass: dict, assignment: str, workdir: Path, students=STUDENTS):
    """Grade the students' answers to every exercise of ``assignment`` in one run of it.

    One notebook, graded as nbgrader's autograde grades a submission: the released notebook, its
    test cells as the course's source has them (hidden tests included), each exercise repeated
    for the four students in turn (the answer cell, or none where it is deleted, then the
    exercise's cells down to its last test cell, each grade id suffixed with the student's name),
    run by the course's ``ExerciseExecute`` (course_grading.py: per-cell timeouts, output cut,
    globals restored and the solution bound after a failed exercise, which is what keeps the
    students apart here too) and scored with nbgrader's ``determine_grade``.
    Returns the graded notebook and {(student, test_id): (score, max_score)}.
    """
    from nbgrader.utils import determine_grade

    sys.path.insert(0, str(course))
    from course_grading import ExerciseExecute  # the course's copy, as nbgrader imports it

    name = f"{assignment}.ipynb"
    source = nbformat.read(str(course / "source" / assignment / name), as_version=4)
    released = nbformat.read(str(course / "release" / assignment / name), as_version=4)
    tests = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
             if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    plan = {ex.answer_id: ex for ex in exercise_plan(source)}
    last_test = {ex.test_ids[-1]: ex for ex in plan.values()}

    def gid_of(cell):
        return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")

    def renamed(cell, student, text=None):
        cell = nbformat.from_dict(copy.deepcopy(dict(cell)))
        if text is not None:
            cell.source = text
        gid = gid_of(cell)
        if gid is not None:
            cell.metadata["nbgrader"]["grade_id"] = f"{gid}@{student}"
        cell.id = f"{cell.get('id', 'cell')}-{student}"[:64]
        return cell

    graded_cells, plan_cells, block = [], [], None
    for cell in released.cells:
        gid = gid_of(cell)
        if gid in tests:
            cell = nbformat.from_dict(copy.deepcopy(dict(tests[gid])))   # as autograde overwrites a test cell
        if block is None and gid in plan:
            block = [cell]
        elif block is not None:
            block.append(cell)
        else:
            graded_cells.append(cell)
            plan_cells.append(cell)
        if block is not None and gid in last_test:
            answer_id = gid_of(block[0])
            for student in students:
                answer = klass["answers"][(student, assignment, answer_id)]
                plan_cells.append(renamed(block[0], student, plan[answer_id].solution))
                if answer is not None:
                    graded_cells.append(renamed(block[0], student, answer))
                for other in block[1:]:
                    plan_cells.append(renamed(other, student))
                    graded_cells.append(renamed(other, student))
            block = None
    graded = nbformat.from_dict(copy.deepcopy(dict(released)))
    graded.cells = graded_cells
    plan_nb = nbformat.from_dict(copy.deepcopy(dict(released)))
    plan_nb.cells = plan_cells
    (workdir / "source" / assignment).mkdir(parents=True)
    nbformat.write(plan_nb, str(workdir / "source" / assignment / name))
    executor = ExerciseExecute(exercise_timeout=EXERCISE_TIMEOUT, timeout=CELL_TIMEOUT,
                               source_root=str(workdir / "source"))
    resources = {"nbgrader": {"assignment": assignment, "notebook": assignment},
                 "metadata": {"path": str(workdir)}}
    graded, _ = executor.preprocess(graded, resources)
    scores = {}
    for cell in graded.cells:
        gid = gid_of(cell)
        if gid and cell.metadata["nbgrader"].get("grade") and "@" in gid:
            test_id, student = gid.rsplit("@", 1)
            scores[(student, test_id)] = determine_grade(cell)
    return graded, scores


EXERCISES = course_exercises()
UNLUCKY = unlucky_behaviours(EXERCISES)
FULL = in_full(EXERCISES, UNLUCKY)


def test_the_class_grades_every_assignment_and_every_behaviour_in_full():
    """Every assignment is graded, in full or side by side; every behaviour of the unlucky student and
    a known mistake go through nbgrader's whole round trip."""
    assert 0 < len(FULL) < len(SOLUTIONS), FULL
    assert set(STUDENTS) - set(IN_FULL_STUDENTS) == {"solved", "unfinished"}
    behaviours = set(UNLUCKY.values())
    assert {"loops", "deleted", "raises", "clobbers", "floods", "solved"} <= behaviours
    assert behaviours <= {b for (a, _), b in UNLUCKY.items() if a in FULL}, "a behaviour is not graded in full"
    assert any(ex.answer_id in MISTAKES for a, ex in EXERCISES if a in FULL)
    assert set(MISTAKES) <= {ex.answer_id for _, ex in EXERCISES}, "a mistake of MISTAKES is no exercise"


def check_scores(klass: dict, assignment: str, scores: dict, students) -> dict:
    """Each score of ``assignment`` is what the answer deserves; returns each student's expected total."""
    totals, maximum = {}, 0.0
    for a, exercise in klass["exercises"]:
        if a != assignment:
            continue
        for student in students:
            ok = klass["deserved"][(student, assignment, exercise.answer_id)]
            for test_id in exercise.test_ids:
                score, max_score = scores[(student, test_id)]
                want = max_score if ok else 0.0
                assert score == want, (
                    f"{student}, {assignment}, {test_id} "
                    f"({klass['unlucky'][(assignment, exercise.answer_id)] if student == 'unlucky' else ''}): "
                    f"scored {score}, deserves {want}")
                totals[student] = totals.get(student, 0.0) + want
                if student == students[0]:
                    maximum += max_score
    assert set(totals) == set(students), f"{assignment} was not graded"
    assert maximum > 0
    if "solved" in students:
        assert totals["solved"] == maximum
    if "unfinished" in students:
        assert totals["unfinished"] == 0.0
    return totals, maximum


def check_no_flood(graded: nbformat.NotebookNode, what) -> None:
    """The unlucky student's megabytes of output were cut."""
    for cell in graded.cells:
        text = "".join(o.get("text", "") for o in cell.get("outputs", []))
        assert len(text) < 120_000, what


# The students whose submissions of FULL go through nbgrader's whole round trip here: the unlucky one
# (a loop, a deleted cell, a crash, a clobbered global, a flood) and the one with known mistakes (the
# feedback). A solved and an unfinished submission go through it in test_class_hub.py (the hub's
# formgrader: collect, autograde); here they are graded side by side, by the same grading step.
IN_FULL_STUDENTS = ("unlucky", "mistakes")


def check_feedback(text_of, klass: dict, assignment: str) -> None:
    """The feedback of each wrong exercise of MISTAKES carries its check's message."""
    for a, ex in klass["exercises"]:
        if a == assignment and ex.answer_id in MISTAKES:
            text = text_of(ex)
            assert MISTAKES[ex.answer_id][1] in text, f"{assignment}: the feedback lacks the message of {ex.answer_id}"
            assert "not right yet" in text


@pytest.mark.slow
@pytest.mark.parametrize("assignment", FULL)
def test_a_class_of_four_graded_in_full(course, tmp_path, assignment):
    """Submissions of ``assignment`` through nbgrader's round trip: autograde, feedback, CSV export.

    Each score is what the answer deserves; the feedback of a known mistake carries the check's
    message; the unlucky student's loop is interrupted and its flood of output cut. The other two
    students' submissions of it are graded side by side (test_a_class_of_four_graded_side_by_side).
    """
    from nbgrader.api import Gradebook

    course = course_copy(course, tmp_path)
    klass = make_class(course)
    submit(course, klass, assignment, IN_FULL_STUDENTS)
    loops = "loops" in {b for (a, _), b in klass["unlucky"].items() if a == assignment}
    nbgrader(course, "autograde", assignment, *([f"--ExerciseExecute.exercise_timeout={LOOP_TIMEOUT}"] if loops else []))
    nbgrader(course, "generate_feedback", assignment)
    nbgrader(course, "export", "--to", str(course / "grades.csv"))

    scores = {}         # (student, test_id) -> (score, max_score)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="lvm") as gb:
        for a, exercise in klass["exercises"]:
            if a == assignment:
                for student in IN_FULL_STUDENTS:
                    for test_id in exercise.test_ids:
                        grade = gb.find_grade(test_id, assignment, assignment, student)
                        scores[(student, test_id)] = (grade.score, grade.max_score)
    totals, maximum = check_scores(klass, assignment, scores, IN_FULL_STUDENTS)

    # the CSV export: each total is what the answers deserve
    with open(course / "grades.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["assignment"] == assignment and r["student_id"] in totals]
    assert {r["student_id"]: float(r["score"]) for r in rows} == pytest.approx(totals)
    assert [float(r["max_score"]) for r in rows] == pytest.approx([maximum] * len(IN_FULL_STUDENTS))

    feedback = (course / "feedback" / "mistakes" / assignment / f"{assignment}.html")
    check_feedback(lambda ex: feedback.read_text(encoding="utf-8"), klass, assignment)
    for student in IN_FULL_STUDENTS:
        path = course / "autograded" / student / assignment / f"{assignment}.ipynb"
        check_no_flood(nbformat.read(str(path), as_version=4), (student, assignment))
    if loops:
        graded = (course / "autograded" / "unlucky" / assignment / f"{assignment}.ipynb").read_text()
        assert re.search(r"CellTimeoutError|KeyboardInterrupt", graded), "the loop was not interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", [p.stem for p in SOLUTIONS])
def test_a_class_of_four_graded_side_by_side(course, tmp_path, assignment):
    """The students' answers to every exercise of ``assignment``, graded in one run of it
    (:func:`grade_side_by_side`: the same grading step and scoring as nbgrader's autograde): all four
    students, or for an assignment of FULL the two whose submissions are not graded in full."""
    students = tuple(s for s in STUDENTS if s not in IN_FULL_STUDENTS) if assignment in FULL else STUDENTS
    klass = make_class(course)
    graded, scores = grade_side_by_side(course, klass, assignment, tmp_path / assignment, students)
    check_scores(klass, assignment, scores, students)

    def test_cell_output(ex):
        return "".join(o.get("text", "") + o.get("evalue", "") for c in graded.cells
                       if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == f"{ex.test_ids[0]}@mistakes"
                       for o in c.get("outputs", []))

    if "mistakes" in students:
        check_feedback(test_cell_output, klass, assignment)
    check_no_flood(graded, ("side by side", assignment))

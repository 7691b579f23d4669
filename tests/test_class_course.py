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
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.course_grading import defined_names, exercise_plan, strip_markers  # noqa: E402
from tools.make_class_course import (  # noqa: E402
    CONFIG_ERROR, HIDDEN_WEIGHT, VISIBLE_WEIGHT, build_course, format_points_table, points_table, split_hidden,
    strict_calls)

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
BARE_PATH = "/usr/bin:/bin"
EXERCISE_TIMEOUT = 20      # seconds for an answer or test cell: the checks take ~2 s on a busy machine
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


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    out = tmp_path_factory.mktemp("class") / "course"
    build_course(out, exercise_timeout=EXERCISE_TIMEOUT, cell_timeout=CELL_TIMEOUT, generate=False)
    nbgrader(out, "generate_assignment", "*", "--force")     # every assignment, in one nbgrader process
    return out


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
    build_course(course, tmp_path / "solutions", exercise_timeout=5, generate=False)
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


def course_exercises(course: Path) -> list[tuple[str, object]]:
    """(assignment, exercise) for every exercise of the course, in order."""
    out = []
    for path in SOLUTIONS:
        source = nbformat.read(str(course / "source" / path.stem / path.name), as_version=4)
        out.extend((path.stem, ex) for ex in exercise_plan(source))
    return out


STUDENTS = ("unlucky", "unfinished", "mistakes", "solved")


def make_class(course: Path) -> dict:
    """What each student answers to every exercise of the course, and what each answer deserves."""
    exercises = course_exercises(course)
    behaviours = [FIRST] + [CYCLE[i % len(CYCLE)] for i in range(len(exercises) - 1)]
    unlucky = {(a, ex.answer_id): b for (a, ex), b in zip(exercises, behaviours)}
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


def in_full(klass) -> list[str]:
    """The assignments whose four submissions go through nbgrader's whole round trip.

    The first assignment (the unlucky student's loop), then the assignments that hold an
    exercise of MISTAKES (the feedback of those is read), in order, until every behaviour of the
    unlucky student is among them. The other assignments are graded by :func:`grade_side_by_side`.
    """
    chosen = [SOLUTIONS[0].stem]
    with_mistakes = [p.stem for p in SOLUTIONS
                     if any(a == p.stem and ex.answer_id in MISTAKES for a, ex in klass["exercises"])]
    for assignment in with_mistakes + [p.stem for p in SOLUTIONS]:
        covered = {b for (a, _), b in klass["unlucky"].items() if a in chosen}
        if {FIRST, *CYCLE} <= covered and set(chosen) & set(with_mistakes):
            break
        if assignment not in chosen:
            chosen.append(assignment)
    return [p.stem for p in SOLUTIONS if p.stem in chosen]


def submit(course: Path, klass: dict, assignment: str) -> None:
    """Write the four students' submissions of ``assignment`` into the course's submitted/."""
    name = f"{assignment}.ipynb"
    for student in STUDENTS:
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


def grade_side_by_side(course: Path, klass: dict, assignment: str, workdir: Path):
    """Grade the four students' answers to every exercise of ``assignment`` in one run of it.

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
            for student in STUDENTS:
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


@pytest.mark.slow
def test_a_class_of_four_is_graded_exercise_by_exercise(course, tmp_path):
    """Each score is what the answer deserves, for every exercise of the course and every student.

    The assignments of :func:`in_full` go through nbgrader's round trip (submissions, autograde,
    feedback, CSV export); the others are graded side by side (:func:`grade_side_by_side`), by the
    same grading step and scoring, in one run of the notebook instead of four.
    """
    from nbgrader.api import Gradebook

    klass = make_class(course)
    full = in_full(klass)
    assert 0 < len(full) < len(SOLUTIONS), full
    behaviours = set(klass["unlucky"].values())
    assert {"loops", "deleted", "raises", "clobbers", "floods", "solved"} <= behaviours
    assert behaviours <= {b for (a, _), b in klass["unlucky"].items() if a in full}, "a behaviour is not graded in full"
    for assignment in full:
        submit(course, klass, assignment)
    nbgrader(course, "autograde", "*")               # every submitted assignment, in one nbgrader process
    nbgrader(course, "generate_feedback", "*")
    nbgrader(course, "export", "--to", str(course / "grades.csv"))

    scores = {}         # (student, assignment, test_id) -> (score, max_score)
    graded_notebooks = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="lvm") as gb:
        for assignment, exercise in klass["exercises"]:
            if assignment not in full:
                continue
            for student in STUDENTS:
                for test_id in exercise.test_ids:
                    grade = gb.find_grade(test_id, assignment, assignment, student)
                    scores[(student, assignment, test_id)] = (grade.score, grade.max_score)
        for assignment in full:
            for student in STUDENTS:
                path = course / "autograded" / student / assignment / f"{assignment}.ipynb"
                graded_notebooks[(student, assignment)] = nbformat.read(str(path), as_version=4)
    for path in SOLUTIONS:
        if path.stem not in full:
            graded, side = grade_side_by_side(course, klass, path.stem, tmp_path / path.stem)
            scores.update({(student, path.stem, test_id): s for (student, test_id), s in side.items()})
            graded_notebooks[("side by side", path.stem)] = graded

    expected_totals, maximum = {}, {}
    for assignment, exercise in klass["exercises"]:
        for student in STUDENTS:
            ok = klass["deserved"][(student, assignment, exercise.answer_id)]
            for test_id in exercise.test_ids:
                score, max_score = scores[(student, assignment, test_id)]
                want = max_score if ok else 0.0
                assert score == want, (
                    f"{student}, {assignment}, {test_id} "
                    f"({klass['unlucky'][(assignment, exercise.answer_id)] if student == 'unlucky' else ''}): "
                    f"scored {score}, deserves {want}")
                key = (student, assignment)
                expected_totals[key] = expected_totals.get(key, 0.0) + want
                if student == "solved":
                    maximum[assignment] = maximum.get(assignment, 0.0) + max_score
    assert set(expected_totals) == {(s, p.stem) for s in STUDENTS for p in SOLUTIONS}, "an assignment was not graded"
    assert all(expected_totals[("solved", p.stem)] == maximum[p.stem] > 0 for p in SOLUTIONS)
    assert all(expected_totals[("unfinished", p.stem)] == 0.0 for p in SOLUTIONS)

    # the CSV export of the assignments graded in full: each total is what the answers deserve
    with open(course / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    exported = {(r["student_id"], r["assignment"]): float(r["score"]) for r in rows if r["assignment"] in full}
    assert exported == pytest.approx({k: v for k, v in expected_totals.items() if k[1] in full})
    assert {r["assignment"]: float(r["max_score"]) for r in rows if r["assignment"] in full} == pytest.approx(
        {a: maximum[a] for a in full})

    # the feedback of a wrong exercise carries the check's message (graded side by side: its test cell's output)
    for assignment, ex in klass["exercises"]:
        if ex.answer_id not in MISTAKES:
            continue
        if assignment in full:
            text = (course / "feedback" / "mistakes" / assignment / f"{assignment}.html").read_text(encoding="utf-8")
        else:
            cells = graded_notebooks[("side by side", assignment)].cells
            text = "".join(o.get("text", "") + o.get("evalue", "") for c in cells
                           if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == f"{ex.test_ids[0]}@mistakes"
                           for o in c.get("outputs", []))
        assert MISTAKES[ex.answer_id][1] in text, f"{assignment}: the feedback lacks the message of {ex.answer_id}"
        assert "not right yet" in text
    assert any(ex.answer_id in MISTAKES for a, ex in klass["exercises"] if a in full)

    # the unlucky student's megabytes were cut, the loop was interrupted
    for (student, assignment), graded in graded_notebooks.items():
        for cell in graded.cells:
            text = "".join(o.get("text", "") for o in cell.get("outputs", []))
            assert len(text) < 120_000, (student, assignment)
    loop_assignment = next(a for (a, _), b in klass["unlucky"].items() if b == "loops")
    graded = (course / "autograded" / "unlucky" / loop_assignment / f"{loop_assignment}.ipynb").read_text()
    assert re.search(r"CellTimeoutError|KeyboardInterrupt", graded)

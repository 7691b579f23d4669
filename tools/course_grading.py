"""How the class course is graded: each exercise on its own, whatever a submission does.

nbgrader runs a submitted notebook top to bottom in one kernel, and a test cell scores its
points when it runs without an error. On its own that lets one exercise spoil the next:
a deleted answer cell leaves a name undefined for every later exercise that calls it, an
answer that rebinds a global (``checks = None``, ``torch = ...``) breaks every check after it,
a loop that never ends stops the notebook. :class:`ExerciseExecute` replaces nbgrader's
``Execute`` step of ``nbgrader autograde`` and keeps the exercises apart:

- answer cells, test cells and every code cell that is not the course's own (a cell the
  learner added or changed) run under ``exercise_timeout`` seconds; only the notebook's own
  unchanged cells (its fits and figures) get ``timeout``; a cell past its time is interrupted
  (an exercise's cell then scores 0), and the exercise's test cells after it are not run: they
  score 0 with a note that says why, so an answer that loops costs the time limit once, not once
  per test cell;
- a cell's printed output is cut after ``max_output_chars`` characters;
- before an answer cell runs, the kernel's global names are noted; after the exercise's last
  test cell, every global that the answer rebound or deleted, other than the exercise's own
  names, gets its value back; and when the exercise lost any point, its names are bound to
  the solution's code, so that later exercises that call it are graded on their own merit.

The exercise plan (answer cell, its test cells, the names it defines, the solution code)
is read from the course's ``source/`` notebook, never from the submission.

This file is copied next to the course's ``nbgrader_config.py`` by
``tools/make_class_course.py``; nbgrader imports it from there.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field

import nbformat
from nbclient.util import ensure_async, run_sync
from nbgrader.preprocessors import Execute
from nbgrader.utils import determine_grade, is_grade, is_solution
from traitlets import Integer, Unicode

_MARKERS = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")
_KERNEL_MODULE = "_course_grading"

# Runs once in each grading kernel, inside a private module (nothing lands in the notebook's names).
_KERNEL_HELPER = r'''
_snapshots = {}
_IGNORED = {"In", "Out", "get_ipython", "exit", "quit"}


def _tracked(name):
    return not name.startswith("_") and name not in _IGNORED


def snapshot(ns, key):
    """Note the notebook's global names before the answer cell of exercise ``key`` runs."""
    _snapshots[key] = {name: value for name, value in ns.items() if _tracked(name)}


def restore(ns, key, own, failed, solution):
    """After exercise ``key``: give rebound or deleted globals back; on failure, bind the solution."""
    before = _snapshots.pop(key, None) or {}
    for name, value in before.items():
        if name not in own and (name not in ns or ns[name] is not value):
            ns[name] = value
    if failed and solution:
        try:
            exec(compile(solution, "<solution of %s>" % key, "exec"), ns)
        except Exception:
            pass
'''


def strip_markers(source: str) -> str:
    """A solution cell's code without nbgrader's ``### BEGIN/END SOLUTION`` marker lines."""
    return "\n".join(line for line in source.splitlines() if not _MARKERS.match(line))


def defined_names(source: str) -> list[str]:
    """The top-level names a cell defines (functions, classes, assignment targets, imports)."""
    try:
        tree = ast.parse(strip_markers(source))
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.extend(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.extend((a.asname or a.name).split(".")[0] for a in node.names)
    return list(dict.fromkeys(names))


def read_source_notebook(path: str) -> nbformat.NotebookNode:
    """``nbformat.read`` of the course's source notebook, with errors that name it."""
    try:
        return nbformat.read(path, as_version=4)
    except (nbformat.reader.NotJSONError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"the source notebook {path} is not a notebook (not valid JSON: {str(err)[:200]}); "
                         "build the course again with tools/make_class_course.py") from None


def _normalised(source) -> str:
    text = "".join(source) if isinstance(source, list) else str(source)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def course_code(nb: nbformat.NotebookNode) -> set[str]:
    """The sources of the notebook's own code cells (answer cells aside), normalised for comparison."""
    return {_normalised(c.source) for c in nb.cells if c.cell_type == "code"}


@dataclass
class Exercise:
    """An answer cell of the source notebook and the graded test cells that follow it."""

    answer_id: str
    solution: str
    names: list[str]
    test_ids: list[str] = field(default_factory=list)


def exercise_plan(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The exercises of a notebook, in order: each autograded answer cell with its test cells.

    A test cell (``grade`` and not ``solution``) belongs to the nearest answer cell
    (``solution`` and not ``grade``) above it; test cells above the first answer cell belong
    to no exercise and are graded as they are.
    """
    plan: list[Exercise] = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or "grade_id" not in meta:
            continue
        if is_solution(cell) and not is_grade(cell):
            plan.append(Exercise(meta["grade_id"], strip_markers(cell.source), defined_names(cell.source)))
        elif is_grade(cell) and plan:
            plan[-1].test_ids.append(meta["grade_id"])
    return [ex for ex in plan if ex.test_ids]


class ExerciseExecute(Execute):
    """nbgrader's Execute, with exercises kept apart (see the module's docstring)."""

    exercise_timeout = Integer(
        120, help="seconds an answer cell or a test cell may run before it is interrupted (scores 0)"
    ).tag(config=True)
    max_output_chars = Integer(
        100_000, help="characters of printed output kept per cell; the rest is cut"
    ).tag(config=True)
    source_root = Unicode(
        "", help="the course's source/ folder (default: source/ in the current directory)"
    ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        info = (resources or {}).get("nbgrader", {})
        root = self.source_root or os.path.join(os.getcwd(), "source")
        path = os.path.join(root, info.get("assignment", ""), f"{info.get('notebook', '')}.ipynb")
        source = read_source_notebook(path) if os.path.exists(path) else None
        plan = exercise_plan(source) if source is not None else []
        if not plan:
            self.log.warning("no exercise plan found at %s: exercises are not isolated", path)
        # the course's own code, by content: any other code cell is the learner's and gets exercise_timeout
        self._course_code = course_code(source) if source is not None else None
        self._answers = {ex.answer_id: ex for ex in plan}
        self._tests = {tid: ex for ex in plan for tid in ex.test_ids}
        self._failed: dict[str, bool] = {}
        self._timed_out: set[str] = set()     # exercises one of whose cells ran past its time
        self._cell_timed_out = False
        self._chars: dict[int, int] = {}
        self._helper_ready = False
        self._notebook_timeout = self.timeout
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self.timeout = self._notebook_timeout

    async def _async_run_silently(self, code: str) -> None:
        msg_id = await ensure_async(self.kc.execute(code, silent=True, store_history=False, stop_on_error=False))
        reply = await self.async_wait_for_reply(msg_id)
        if reply is not None and reply["content"].get("status") == "error":
            self.log.warning("grading step failed in the kernel: %s", reply["content"].get("evalue"))

    _run_silently = run_sync(_async_run_silently)

    async def _async_handle_timeout(self, timeout, cell=None):
        self._cell_timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

    def _not_run(self, cell, exercise: Exercise):
        """A test cell of an exercise that already ran past its time: not run, and it scores 0."""
        why = (f"not run: a cell of the exercise {exercise.answer_id!r} above ran past "
               f"{self.exercise_timeout} s and was interrupted")
        cell.outputs = [nbformat.v4.new_output("error", ename="NotRun", evalue=why, traceback=[f"NotRun: {why}"])]
        cell.execution_count = None
        return cell

    def _kernel_call(self, call: str) -> None:
        self._run_silently(f"__import__('sys').modules[{_KERNEL_MODULE!r}].{call}")

    def timeout_for(self, cell) -> int:
        """``exercise_timeout`` for an answer or test cell and for code the course did not write
        (a cell the learner added or edited); the notebook's ``timeout`` for its own unchanged cells."""
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in self._answers or grade_id in self._tests:
            return self.exercise_timeout
        own = self._course_code
        if cell.get("cell_type") == "code" and own is not None and _normalised(cell.get("source", "")) not in own:
            return min(self.exercise_timeout, self._notebook_timeout)
        return self._notebook_timeout

    def preprocess_cell(self, cell, resources, index):
        if not self._helper_ready:
            self._run_silently(
                f"exec({_KERNEL_HELPER!r}, __import__('sys').modules.setdefault({_KERNEL_MODULE!r}, "
                f"__import__('types').ModuleType({_KERNEL_MODULE!r})).__dict__)"
            )
            self._helper_ready = True
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in self._answers:
            self._kernel_call(f"snapshot(globals(), {grade_id!r})")
        exercise = self._tests.get(grade_id)                      # the exercise this test cell grades
        if exercise is not None and exercise.answer_id in self._timed_out:
            cell = self._not_run(cell, exercise)
        else:
            self.timeout = self.timeout_for(cell)
            self._cell_timed_out = False
            try:
                cell, resources = super().preprocess_cell(cell, resources, index)
            finally:
                self.timeout = self._notebook_timeout
            owner = exercise or self._answers.get(grade_id)
            if owner is not None and self._cell_timed_out:
                self._timed_out.add(owner.answer_id)
        if exercise is not None and cell.cell_type == "code":
            score, max_score = determine_grade(cell)
            lost = score is None or score < max_score
            self._failed[exercise.answer_id] = self._failed.get(exercise.answer_id, False) or lost
            if grade_id == exercise.test_ids[-1]:
                self._kernel_call(
                    f"restore(globals(), {exercise.answer_id!r}, {exercise.names!r}, "
                    f"{self._failed[exercise.answer_id]!r}, {exercise.solution!r})"
                )
        return cell, resources

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "stream":
            used = self._chars.get(cell_index, 0)
            text = msg["content"].get("text", "")
            room = self.max_output_chars - used
            if room <= 0:
                return None
            if len(text) > room:
                msg["content"]["text"] = (
                    text[:room] + f"\n[... output cut by the grader after {self.max_output_chars} characters ...]\n"
                )
            self._chars[cell_index] = used + len(text)
        return super().output(outs, msg, display_id, cell_index)

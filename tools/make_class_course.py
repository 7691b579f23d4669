"""Build the nbgrader course of a class from ``solutions/``: one assignment per notebook.

    python tools/make_class_course.py                    # writes class-course/ (git ignores it)
    python tools/make_class_course.py --out /srv/course  # anywhere else
    python tools/make_class_course.py --points           # print the points table, build nothing

The course folder holds ``nbgrader_config.py``, ``course_grading.py`` (how exercises are kept
apart while grading, see tools/course_grading.py), ``source/<assignment>/<notebook>.ipynb``
for each notebook of ``solutions/`` and, after ``nbgrader generate_assignment`` (run here for
every assignment), ``release/`` and ``gradebook.db``. Everything in it is generated: edit
``solutions/`` and build again. The tool records what it wrote in ``.class-course.json`` and
refuses a non-empty folder without that record; a rebuild replaces only the files it wrote.

Each test cell of a solution notebook (an nbgrader "autograded tests" cell worth ``points``)
becomes two graded cells in the course:

- the visible check, worth ``points`` x VISIBLE_WEIGHT: the check the learner sees, and the
  same check again with ``strict=True`` as a hidden line, so that an unfinished exercise
  (which the learner's check lets pass on the reference) scores 0;
- ``<grade_id>_hidden``, worth ``points`` x HIDDEN_WEIGHT: the hidden tests of the cell
  (strict checks on inputs drawn with other seeds).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools.make_learner_notebooks import ROOT, render  # noqa: E402

VISIBLE_WEIGHT = 1
HIDDEN_WEIGHT = 2
COURSE_ID = "lvm"
DEFAULT_OUT = ROOT / "class-course"
GRADING_MODULE = Path(__file__).resolve().parent / "course_grading.py"

# nbgrader logs a broken nbgrader_config.py and carries on without it: treat that as a failure
CONFIG_ERROR = "Exception while loading config file"
_BEGIN_HIDDEN, _END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def nbgrader_env(env: dict | None = None) -> dict:
    """The environment for a subprocess running nbgrader: this Python's bin/ first on PATH.

    nbgrader's gradebook runs the program ``alembic`` by name; from an unactivated virtual
    environment it is found only this way.
    """
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def run_nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` in the course folder, with this Python."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=nbgrader_env(),
                            capture_output=True, text=True)
    if check and (result.returncode != 0 or CONFIG_ERROR in result.stderr):
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def split_hidden(source: str) -> tuple[list[str], list[str]]:
    """The lines of a test cell outside and inside its ``### BEGIN/END HIDDEN TESTS`` regions."""
    visible, hidden, inside = [], [], False
    for line in source.splitlines():
        if line.strip() == _BEGIN_HIDDEN:
            inside = True
        elif line.strip() == _END_HIDDEN:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return visible, hidden


def strict_calls(visible_source: str) -> list[str]:
    """The visible check calls of a test cell, rewritten with ``strict=True``.

    ``f = checks.ppca.check_f(f)`` gives ``checks.ppca.check_f(f, strict=True)``: the same check
    on the same inputs, under which an exercise that is still not done fails.
    """
    try:
        tree = ast.parse(visible_source)
    except SyntaxError:
        return []
    calls = []
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.Expr)) else None
        if not isinstance(value, ast.Call) or any(k.arg == "strict" for k in value.keywords):
            continue
        name = ast.unparse(value.func)
        if "check" not in name.rsplit(".", 1)[-1]:
            continue
        strict = ast.Call(func=value.func, args=value.args,
                          keywords=[*value.keywords, ast.keyword(arg="strict", value=ast.Constant(True))])
        calls.append(ast.unparse(strict))
    return calls


def _cell_id(grade_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", grade_id)[:64]


def _grade_meta(grade_id: str, points: float) -> dict:
    return {"nbgrader": {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
                         "schema_version": 3, "solution": False, "task": False}}


def grading_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The course's source notebook: each test cell split into its visible and hidden parts, the
    challenge questions' discussions (cells tagged ``discussion``) left out."""
    nb = nbformat.from_dict(solution)
    cells = []
    for cell in nb.cells:
        if "discussion" in cell.get("metadata", {}).get("tags", []):
            continue  # the worked discussion of the challenge questions stays in solutions/ (a release would show it)
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            cells.append(cell)
            continue
        grade_id, points = meta["grade_id"], float(meta.get("points", 1))
        visible, hidden = split_hidden(cell.source)
        strict = strict_calls("\n".join(visible))
        source = "\n".join(visible)
        if strict:
            source += "\n" + "\n".join([_BEGIN_HIDDEN, *strict, _END_HIDDEN])
        cell.source = source
        cell.metadata["nbgrader"]["points"] = points * VISIBLE_WEIGHT
        cells.append(cell)
        if any(line.strip() for line in hidden):
            hidden_id = f"{grade_id}_hidden"
            hidden_points = points * HIDDEN_WEIGHT
            text = "\n".join([f"# Hidden tests of the check above ({hidden_points:g} points): run when the notebook "
                              "is graded,", "# strict checks on other random inputs.", _BEGIN_HIDDEN, *hidden,
                              _END_HIDDEN])
            hidden_cell = new_code_cell(text, metadata=_grade_meta(hidden_id, hidden_points))
            hidden_cell.id = _cell_id(hidden_id)
            cells.append(hidden_cell)
    nb.cells = cells
    ids = [c.metadata["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c.get("metadata", {})]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"grade_id used twice after splitting the test cells: {duplicates}")
    nbformat.validate(nb)
    return nb


@dataclass(frozen=True)
class ExercisePoints:
    notebook: str
    grade_id: str        # the test cell's id in solutions/
    visible: float
    hidden: float

    @property
    def total(self) -> float:
        return self.visible + self.hidden


def points_table(solutions: Path = ROOT / "solutions") -> list[ExercisePoints]:
    """The points of every graded cell of the course, read from ``solutions/``."""
    rows = []
    for path in sorted(solutions.glob("*.ipynb")):
        nb = grading_notebook(read_notebook(path))
        grades = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
                  for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
        for grade_id, points in grades.items():
            if not grade_id.endswith("_hidden"):
                rows.append(ExercisePoints(path.stem, grade_id, points, grades.get(f"{grade_id}_hidden", 0.0)))
    return rows


def format_points_table(rows: list[ExercisePoints]) -> str:
    """A Markdown table: exercises and points per notebook, and the course's total."""
    lines = ["| notebook | exercises | visible checks | hidden tests | points |", "|---|---:|---:|---:|---:|"]
    for notebook in sorted({r.notebook for r in rows}):
        mine = [r for r in rows if r.notebook == notebook]
        lines.append(f"| `{notebook}` | {len(mine)} | {sum(r.visible for r in mine):g} | "
                     f"{sum(r.hidden for r in mine):g} | {sum(r.total for r in mine):g} |")
    lines.append(f"| **course** | {len(rows)} | {sum(r.visible for r in rows):g} | "
                 f"{sum(r.hidden for r in rows):g} | {sum(r.total for r in rows):g} |")
    return "\n".join(lines)


def config_text(course_id: str, exercise_timeout: int, cell_timeout: int, exchange: str | None) -> str:
    exchange_line = (f"c.Exchange.root = {exchange!r}\n" if exchange else
                     "# c.Exchange.root = '/srv/nbgrader/exchange'   # set by the class server's own nbgrader config\n")
    return f'''"""nbgrader configuration of the class course (generated by tools/make_class_course.py)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# nbgrader's gradebook runs the program `alembic` by name: find this Python's first, also
# from a virtual environment that was never activated.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
sys.path.insert(0, HERE)

from nbgrader.converters.autograde import Autograde  # noqa: E402
from nbgrader.preprocessors import Execute  # noqa: E402

from course_grading import ExerciseExecute  # noqa: E402

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = HERE
{exchange_line}
# Grading keeps exercises apart: per-cell timeouts, output cut, globals restored (course_grading.py).
c.Autograde.autograde_preprocessors = [
    ExerciseExecute if p is Execute else p for p in Autograde.class_traits()["autograde_preprocessors"].default()
]
c.ExerciseExecute.exercise_timeout = {exercise_timeout}   # seconds for an answer or test cell
c.ExerciseExecute.timeout = {cell_timeout}            # seconds for any other cell (fits, figures)
c.ExerciseExecute.max_output_chars = 100_000
c.ExerciseExecute.source_root = os.path.join(HERE, "source")
# A deleted test cell is put back (and run) rather than silently missing.
c.OverwriteCells.add_missing_cells = True
'''


MARKER = ".class-course.json"  # written into every course folder this tool builds: the files it wrote


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """``nbformat.read``, with errors that name the notebook."""
    try:
        return nbformat.read(str(path), as_version=4)
    except (nbformat.reader.NotJSONError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a notebook (not valid JSON: {str(err)[:200]}); restore it from git") from None
    except (nbformat.ValidationError, KeyError, AttributeError, TypeError) as err:
        raise ValueError(f"{path} is not a valid notebook ({type(err).__name__}: {str(err)[:200]}); restore it "
                         "from git") from None


def _claim_course_folder(out: Path) -> list[str]:
    """The files the previous build wrote into ``out`` (none for a new or empty folder).

    Refuses a file, and a folder that holds anything but was not built by this tool (no
    marker): nothing of it is deleted or overwritten."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must name a folder for the course, but {str(out)!r} is a file")
    if not out.exists() or not any(out.iterdir()):
        return []
    marker = out / MARKER
    if not marker.is_file():
        raise FileExistsError(
            f"--out {str(out)!r} is a folder that this tool did not build (it has no {MARKER}) and is not empty: "
            "nothing in it was changed. Name a new or empty folder, or one built by tools/make_class_course.py"
        )
    try:
        files = json.loads(marker.read_text()).get("files")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        files = None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError(f"{marker} is damaged (it must list the files the last build wrote): nothing was changed; "
                         "fix or delete it and name a new folder")
    for rel in files:  # never outside the course folder
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"{marker} lists {rel!r}, outside the course folder: nothing was changed")
    return files


def build_course(out: Path = DEFAULT_OUT, solutions: Path = ROOT / "solutions", *, course_id: str = COURSE_ID,
                 exercise_timeout: int = 120, cell_timeout: int = 1800, exchange: str | None = None,
                 generate: bool = True) -> list[str]:
    """Write the course folder ``out`` and generate every assignment. Returns the assignment ids."""
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no notebooks in {solutions}")
    out = Path(out)
    notebooks = [(path, grading_notebook(read_notebook(path))) for path in sources]  # all readable before any write
    written = _claim_course_folder(out)
    for rel in written:  # what the previous build wrote, and nothing else
        target = out / rel
        if target.is_file() or target.is_symlink():
            target.unlink()
    for rel in sorted({str(Path(r).parent) for r in written if str(r).startswith("source/")}, reverse=True):
        try:
            (out / rel).rmdir()  # only once empty: a file someone else put there stays
        except OSError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    files = ["nbgrader_config.py", "course_grading.py"]
    (out / "nbgrader_config.py").write_text(config_text(course_id, exercise_timeout, cell_timeout, exchange))
    shutil.copy(GRADING_MODULE, out / "course_grading.py")
    assignments = []
    for path, nb in notebooks:
        dest = out / "source" / path.stem / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render(nb), encoding="utf-8")
        files.append(dest.relative_to(out).as_posix())
        assignments.append(path.stem)
    (out / MARKER).write_text(json.dumps({"built_by": "tools/make_class_course.py", "files": files}, indent=1))
    if generate:
        for assignment in assignments:
            run_nbgrader(out, "generate_assignment", assignment, "--force")
    return assignments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the course folder (default: class-course/)")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--course-id", default=COURSE_ID)
    parser.add_argument("--exchange", help="nbgrader's exchange folder (default: left to the server's config)")
    parser.add_argument("--exercise-timeout", type=int, default=120,
                        help="seconds an answer or test cell may run when grading (default 120)")
    parser.add_argument("--cell-timeout", type=int, default=1800,
                        help="seconds any other cell may run when grading (default 1800)")
    parser.add_argument("--no-generate", action="store_true", help="write source/ only")
    parser.add_argument("--points", action="store_true", help="print the points table and exit")
    args = parser.parse_args(argv)
    if args.points:
        print(format_points_table(points_table(args.solutions)))
        return 0
    for name in ("exercise_timeout", "cell_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive number of seconds, got {getattr(args, name)}")
    try:
        assignments = build_course(args.out, args.solutions, course_id=args.course_id,
                                   exercise_timeout=args.exercise_timeout, cell_timeout=args.cell_timeout,
                                   exchange=args.exchange, generate=not args.no_generate)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"course {args.course_id!r} in {args.out}: {len(assignments)} assignments: {', '.join(assignments)}")
    print(format_points_table(points_table(args.solutions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

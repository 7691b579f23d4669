"""Where a self-study learner stands: every exercise of every notebook as done, not done or wrong.

    python -m lvmlib.checks.progress notebooks/            # the learner's own copies
    python -m lvmlib.checks.progress notebooks/04_the_elbo.ipynb --timeout 60

An exercise is an answer cell (nbgrader's metadata, kept in the learner's copies) and the
check cell after it. An answer cell that still raises ``NotImplementedError()`` is **not
done**, read from the file without running anything. A notebook with at least one answered
exercise is run headlessly (nbclient, a fresh kernel, in the notebook's folder, with
``LVMLIB_SMOKE=1`` so that training is cut short; every cell runs even after an error) and
each check's output decides: ``✓`` is **done**, "not done yet" is **not done**, an error is
**wrong** with the first line of its message (and the known mistake it names, if any).

Cost: one smoke run of each notebook that has an answered exercise (seconds to a minute or
two each on a laptop CPU); each cell is stopped after ``--timeout`` seconds (default 300),
and its exercise then reads as wrong ("timed out"). Nothing is written to the notebooks.
Needs nbclient (installed with JupyterLab), not nbgrader.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

NOT_DONE_MARK = "raise NotImplementedError()"
DONE, NOT_DONE, WRONG = "done", "not done", "wrong"


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: its name, the indices of its answer and check cells."""

    name: str
    answer: int
    check: int | None


@dataclass(frozen=True)
class Status:
    notebook: str
    exercise: str
    status: str  # DONE, NOT_DONE or WRONG
    detail: str = ""  # for WRONG: the first line of the error


def exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The exercises of a notebook: each answer cell with the first graded cell after it."""
    found = []
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        check = next((j for j in range(i + 1, len(nb.cells))
                      if nb.cells[j].get("metadata", {}).get("nbgrader", {}).get("grade")
                      and not nb.cells[j].get("metadata", {}).get("nbgrader", {}).get("solution")), None)
        found.append(Exercise(meta.get("grade_id", f"cell {i}"), i, check))
    return found


def _attempted(nb, exs: list[Exercise]) -> bool:
    return any(NOT_DONE_MARK not in nb.cells[e.answer].source for e in exs)


def _error_line(output) -> str:
    """The first line of an error; for a check's message, also the known mistake it names, if any."""
    value = str(output.get("evalue", "")).strip().splitlines()
    first = value[0] if value else ""
    if output.get("ename") not in ("ExerciseError", "ExerciseNotDone"):
        return f"{output.get('ename')}: {first}"
    known = [line.strip() for line in value[1:] if line.strip().startswith("This is a known mistake:")]
    return first + (f" ({known[0]})" if known else "")


def _from_outputs(cell) -> tuple[str, str] | None:
    """(status, detail) from an executed cell's outputs; None when they say nothing."""
    text = ""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return WRONG, _error_line(out)
        if out.get("output_type") == "stream":
            text += out.get("text", "")
    if "✓" in text:
        return DONE, ""
    if "not done yet" in text:
        return NOT_DONE, ""
    return None


def run_notebook(nb: nbformat.NotebookNode, folder: Path, timeout: int) -> nbformat.NotebookNode:
    """Execute a copy of ``nb`` in ``folder`` (smoke mode, errors kept in the outputs)."""
    try:
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError
    except ImportError as err:  # pragma: no cover - nbclient comes with JupyterLab
        raise RuntimeError("lvmlib.checks.progress needs nbclient (installed with JupyterLab)") from err
    nb = nbformat.from_dict(nb)
    old = os.environ.get("LVMLIB_SMOKE")
    os.environ["LVMLIB_SMOKE"] = "1"
    try:
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": str(folder)}})
        try:
            client.execute()
        except CellTimeoutError as err:  # the cells after it did not run: say so where it happened
            for cell in nb.cells:
                if cell.cell_type == "code" and cell.get("execution_count") is None and not cell.get("outputs"):
                    cell["outputs"] = [nbformat.v4.new_output("error", ename="CellTimeoutError",
                                                              evalue=f"timed out (or not reached): {err}".splitlines()[0],
                                                              traceback=[])]
    finally:
        if old is None:
            os.environ.pop("LVMLIB_SMOKE", None)
        else:
            os.environ["LVMLIB_SMOKE"] = old
    return nb


def notebook_status(path: Path, *, run: bool = True, timeout: int = 300) -> list[Status]:
    """The status of each exercise of the notebook at ``path`` (run only when an exercise is answered)."""
    nb = nbformat.read(str(path), as_version=4)
    exs = exercises(nb)
    if run and _attempted(nb, exs):
        nb = run_notebook(nb, path.parent, timeout)
    statuses = []
    for e in exs:
        if NOT_DONE_MARK in nb.cells[e.answer].source:
            statuses.append(Status(path.name, e.name, NOT_DONE))
            continue
        if not run:
            statuses.append(Status(path.name, e.name, "answered", "not checked (--no-run)"))
            continue
        answer = _from_outputs(nb.cells[e.answer])
        if answer is not None and answer[0] == WRONG:  # the answer cell itself raised
            statuses.append(Status(path.name, e.name, WRONG, answer[1]))
            continue
        verdict = _from_outputs(nb.cells[e.check]) if e.check is not None else None
        if verdict is None:
            verdict = (WRONG, "its check cell printed no verdict (was it changed or deleted?)")
        statuses.append(Status(path.name, e.name, *verdict))
    return statuses


def course_status(target: Path, *, run: bool = True, timeout: int = 300) -> list[Status]:
    """Every exercise of every notebook in ``target`` (a folder, or one notebook)."""
    target = Path(target)
    if not target.exists():
        raise FileNotFoundError(f"{target} does not exist: give the folder of your notebooks (or one notebook)")
    paths = [target] if target.is_file() else sorted(p for p in target.glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {target}")
    out = []
    for path in paths:
        out += notebook_status(path, run=run, timeout=timeout)
    return out


def format_status(statuses: list[Status]) -> str:
    lines, current = [], None
    marks = {DONE: "✓", NOT_DONE: "·", WRONG: "✗"}
    for s in statuses:
        if s.notebook != current:
            current = s.notebook
            lines.append(current)
        detail = f" — {s.detail}" if s.detail else ""
        lines.append(f"  {marks.get(s.status, '?')} {s.exercise:<24} {s.status}{detail}")
    counts = {k: sum(s.status == k for s in statuses) for k in (DONE, NOT_DONE, WRONG)}
    lines.append(f"{counts[DONE]} done, {counts[NOT_DONE]} not done, {counts[WRONG]} wrong "
                 f"of {len(statuses)} exercises")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lvmlib.checks.progress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path, nargs="?", default=Path("notebooks"),
                        help="the folder of your notebooks, or one notebook (default: notebooks)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell (default 300)")
    parser.add_argument("--no-run", action="store_true",
                        help="do not run anything: answered exercises are listed as 'answered'")
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
    try:
        statuses = course_status(args.target, run=not args.no_run, timeout=args.timeout)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    print(format_status(statuses))
    return 0


if __name__ == "__main__":
    sys.exit(main())

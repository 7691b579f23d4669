"""Generate the learner's and the lecturer's notebooks from ``solutions/``, the single source.

Learner view (``notebooks/``, committed): each solution notebook goes through nbgrader's
preprocessors: the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
``raise NotImplementedError()``, the hidden tests are removed, all outputs are cleared; the
``### BEGIN LIVE`` / ``### END LIVE`` marker lines, the speaker notes and the worked discussions of
the challenge questions (markdown cells tagged ``discussion``) are dropped.

Lecture view (``build/lecture/notebooks/``, generated on demand, git-ignored): the solution
notebook with its slide structure and speaker notes, hidden tests removed, outputs cleared, and
in each live-coding cell (tag ``live``) the lines between ``### BEGIN LIVE`` and ``### END LIVE``
reduced to a scaffold: their comment lines, then ``raise NotImplementedError()`` when the region
is a function's body (so an exercise's check carries on with lvmlib's reference, as in the
learner's copy); a region at the top level keeps its comments only. Everything else is the
solution, with nbgrader's solution marker lines removed.

    python tools/make_learner_notebooks.py            # write notebooks/
    python tools/make_learner_notebooks.py --lecture  # also write the lecture copies
    python tools/make_learner_notebooks.py --check    # exit 1 when notebooks/ is stale or a lecture copy
                                                      # fails its checks (with --lecture: or is stale)
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions

ROOT = Path(__file__).resolve().parent.parent
LECTURE_DIR = ROOT / "build" / "lecture" / "notebooks"
LIVE_TAG = "live"
DISCUSSION_TAG = "discussion"  # the worked discussion of a notebook's challenge questions: solutions/ only
LIVE_BEGIN, LIVE_END = "### BEGIN LIVE", "### END LIVE"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
MIN_LIVE_CELLS = 3
SCAFFOLD_RAISE = "raise NotImplementedError()"


class LiveMarkerError(ValueError):
    """A live-coding cell whose markers or tag are inconsistent."""


def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def is_live(cell) -> bool:
    return cell.get("cell_type") == "code" and LIVE_TAG in _tags(cell)


def is_discussion(cell) -> bool:
    return DISCUSSION_TAG in _tags(cell)


def is_speaker_notes(cell) -> bool:
    return cell.get("metadata", {}).get("slideshow", {}).get("slide_type") == "notes" and cell.cell_type == "markdown"


def live_regions(source: str, where: str = "a cell") -> list[tuple[int, int]]:
    """(begin, end) line numbers of each ``### BEGIN LIVE`` / ``### END LIVE`` pair, markers included."""
    regions, begin = [], None
    for number, line in enumerate(source.split("\n")):
        text = line.strip()
        if text == LIVE_BEGIN:
            if begin is not None:
                raise LiveMarkerError(f"{where}: '{LIVE_BEGIN}' at line {number + 1} inside another live region")
            begin = number
        elif text == LIVE_END:
            if begin is None:
                raise LiveMarkerError(f"{where}: '{LIVE_END}' at line {number + 1} without '{LIVE_BEGIN}'")
            regions.append((begin, number))
            begin = None
    if begin is not None:
        raise LiveMarkerError(f"{where}: '{LIVE_BEGIN}' at line {begin + 1} is never closed")
    return regions


def _is_comment(line: str) -> bool:
    return line.strip().startswith("#")


def live_code_lines(source: str, where: str = "a cell") -> list[str]:
    """The code lines (not comments, not blank) inside the live regions of a cell: what the lecturer types."""
    lines = source.split("\n")
    code = []
    for begin, end in live_regions(source, where):
        code += [ln.strip() for ln in lines[begin + 1:end]
                 if ln.strip() and not _is_comment(ln) and ln.strip() not in SOLUTION_MARKERS]
    return code


def scaffold(region: list[str]) -> list[str]:
    """The scaffold of a live region's lines: its comments; ``raise NotImplementedError()`` in a body."""
    body = [ln for ln in region if ln.strip()]
    if not body:
        return []
    indent = min(len(ln) - len(ln.lstrip()) for ln in body)
    kept = [ln for ln in region if _is_comment(ln) and ln.strip() not in SOLUTION_MARKERS]
    if indent > 0:
        kept.append(" " * indent + SCAFFOLD_RAISE)
    return kept


def _check_markers(cell, where: str) -> list[tuple[int, int]]:
    regions = live_regions(cell.source, where)
    if regions and not is_live(cell):
        raise LiveMarkerError(f"{where}: has '{LIVE_BEGIN}' markers but not the tag '{LIVE_TAG}'")
    if is_live(cell) and not regions:
        raise LiveMarkerError(f"{where}: is tagged '{LIVE_TAG}' but has no '{LIVE_BEGIN}' / '{LIVE_END}' region")
    return regions


def _drop_lines(source: str, markers) -> str:
    return "\n".join(ln for ln in source.split("\n") if ln.strip() not in markers)


def learner_version(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The learner's copy of a solution notebook: solutions, hidden tests, live markers, speaker
    notes and discussions removed, outputs cleared."""
    nb = copy.deepcopy(solution)
    nb.cells = [c for c in nb.cells if not is_speaker_notes(c) and not is_discussion(c)]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            _check_markers(cell, f"cell {index} ({cell.get('id')})")
            cell.source = _drop_lines(cell.source, (LIVE_BEGIN, LIVE_END))
    resources: dict = {}
    for pre in (ClearSolutions(), ClearHiddenTests(), ClearOutput()):
        nb, resources = pre.preprocess(nb, resources)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = None
    return nb


def lecture_version(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The lecturer's copy: the solution with live regions reduced to scaffolds, hidden tests
    removed, nbgrader's solution marker lines dropped, outputs cleared; slides and notes kept."""
    nb = copy.deepcopy(solution)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        regions = _check_markers(cell, f"cell {index} ({cell.get('id')})")
        lines = cell.source.split("\n")
        for begin, end in reversed(regions):
            lines[begin:end + 1] = scaffold(lines[begin + 1:end])
        cell.source = _drop_lines("\n".join(lines), SOLUTION_MARKERS)
    resources: dict = {}
    for pre in (ClearHiddenTests(), ClearOutput()):
        nb, resources = pre.preprocess(nb, resources)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = None
    return nb


def lecture_problems(solution: nbformat.NotebookNode, lecture: nbformat.NotebookNode) -> list[str]:
    """What is wrong with a lecture copy: too few live cells, solution code left in a live cell,
    outputs, hidden tests (empty when nothing is)."""
    problems = []
    live = [c for c in solution.cells if is_live(c)]
    if len(live) < MIN_LIVE_CELLS:
        problems.append(f"{len(live)} live-coding cells, at least {MIN_LIVE_CELLS} expected")
    by_id = {c.get("id"): c for c in lecture.cells}
    for cell in live:
        copy_cell = by_id.get(cell.get("id"))
        if copy_cell is None:
            problems.append(f"live cell {cell.get('id')} is missing from the lecture copy")
            continue
        kept = {ln.strip() for ln in copy_cell.source.split("\n")}
        leaked = [ln for ln in live_code_lines(cell.source) if ln in kept and ln != SCAFFOLD_RAISE]
        if leaked:
            problems.append(f"live cell {cell.get('id')} keeps solution code: {leaked[0]!r}")
        if LIVE_BEGIN in copy_cell.source or LIVE_END in copy_cell.source:
            problems.append(f"live cell {cell.get('id')} keeps its live markers")
    for cell in lecture.cells:
        if cell.cell_type == "code" and (cell.outputs or "### BEGIN HIDDEN TESTS" in cell.source):
            problems.append(f"cell {cell.get('id')} has outputs or hidden tests")
    return problems


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def _sync(sources, dest_dir: Path, make, check: bool, label: str) -> tuple[list[str], list[str]]:
    stale = []
    for src, nb in sources:
        text = render(make(nb))
        dest = dest_dir / src.name
        if check:
            if not dest.exists() or dest.read_text(encoding="utf-8") != text:
                stale.append(f"{label}/{dest.name} is out of date with solutions/{src.name}")
        else:
            dest_dir.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
            print(f"wrote {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
    names = {src.name for src, _ in sources}
    extra = sorted({p.name for p in dest_dir.glob("*.ipynb")} - names) if dest_dir.exists() else []
    return stale, [f"{label}/{name} has no source in solutions/" for name in extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when notebooks/ is out of date or a lecture copy fails its checks")
    parser.add_argument("--lecture", action="store_true",
                        help="also write (with --check: also compare) the lecture copies in --lecture-dir")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--lecture-dir", type=Path, default=LECTURE_DIR)
    args = parser.parse_args(argv)

    paths = sorted(args.solutions.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks found in {args.solutions}", file=sys.stderr)
        return 1
    sources = [(p, nbformat.read(str(p), as_version=4)) for p in paths]
    errors = []
    try:
        stale, extra = _sync(sources, args.notebooks, learner_version, args.check, "notebooks")
        for src, nb in sources:
            errors += [f"lecture copy of {src.name}: {p}" for p in lecture_problems(nb, lecture_version(nb))]
        if args.lecture:
            more_stale, more_extra = _sync(sources, args.lecture_dir, lecture_version, args.check, "lecture")
            stale, extra = stale + more_stale, extra + more_extra
    except LiveMarkerError as err:
        print(f"live-coding markers: {err}", file=sys.stderr)
        return 1
    if args.check:
        if stale or extra or errors:
            for line in stale + extra + errors:
                print(line, file=sys.stderr)
            if stale or extra:
                print("run: python tools/make_learner_notebooks.py" + (" --lecture" if args.lecture else ""),
                      file=sys.stderr)
            return 1
        print(f"notebooks/ is in sync with solutions/ ({len(sources)} notebooks); the lecture copies pass their checks")
    else:
        for line in extra:
            print(f"warning: {line}", file=sys.stderr)
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
        if errors:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Give the notebooks of ``solutions/`` their slide structure (RISE in JupyterLab, reveal.js HTML).

Each cell gets ``metadata.slideshow.slide_type`` from a default rule set, unless the plan
(``tools/slide_plan.json``) names the cell by its id; the plan also holds the speaker notes,
written into markdown cells of type ``notes`` (id ``notes-<id of the cell they follow>``).

Default rules, in order:

- the first cell is the title slide (``slide``);
- a markdown cell that starts with ``#`` or ``##`` opens a ``slide``, with ``###`` a ``subslide``;
- any other markdown cell longer than 8 lines gets a ``subslide`` (one idea per slide),
  a shorter one is a ``fragment`` (the next step of the same slide);
- the set-up code (the first code cell: imports, seeds, device) is ``skip``;
- an exercise (nbgrader answer cell) and a live-coding cell (tag ``live``) get a ``subslide``;
- code longer than 20 lines gets a ``subslide`` and the tag ``slides-hide-input``: in the HTML
  slides only its output (the figure, the table) is shown; in JupyterLab the code stays;
- any other code cell stays on the slide before it (``-``).

Running the tool again gives the same notebook, so it can be re-applied after an edit or a
merge, and gives a new notebook its structure in one command:

    python tools/slides.py                               # every notebook of solutions/
    python tools/slides.py solutions/06_new.ipynb        # some notebooks
    python tools/slides.py --check                       # exit 1 when a notebook lacks its structure
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell

ROOT = Path(__file__).resolve().parent.parent
PLAN = Path(__file__).resolve().parent / "slide_plan.json"
SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")
HIDE_INPUT_TAG = "slides-hide-input"
NOTES_PREFIX = "notes-"
LONG_MARKDOWN_LINES = 8
LONG_CODE_LINES = 20
# RISE settings stored in the notebook: tall slides scroll, no animation to wait for, and a theme
# whose fonts ship with the extension (the default theme fetches web fonts).
RISE_SETTINGS = {"scroll": True, "transition": "none", "start_slideshow_at": "beginning", "theme": "white"}


def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_exercise(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def default_slide_type(nb: nbformat.NotebookNode, index: int) -> str:
    """The slide type the default rules give cell ``index`` of ``nb`` (see the module's docstring)."""
    cell = nb.cells[index]
    if index == 0:
        return "slide"
    lines = cell.source.strip().splitlines()
    if cell.cell_type == "markdown":
        first = lines[0] if lines else ""
        if first.startswith("### "):
            return "subslide"
        if first.startswith("# ") or first.startswith("## "):
            return "slide"
        return "subslide" if len(lines) > LONG_MARKDOWN_LINES else "fragment"
    if cell.cell_type != "code":
        return "-"
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    if index == first_code:
        return "skip"
    if _is_exercise(cell) or "live" in _tags(cell):
        return "subslide"
    if len(lines) > LONG_CODE_LINES:
        return "subslide"
    return "-"


def load_plan(path: Path = PLAN) -> dict:
    plan = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for name, entry in plan.items():
        for cell_id, kind in entry.get("slide_types", {}).items():
            if kind not in SLIDE_TYPES:
                raise ValueError(f"{path.name}: {name} cell {cell_id}: slide type must be one of {SLIDE_TYPES}, "
                                 f"got {kind!r}")
    return plan


def apply_slides(nb: nbformat.NotebookNode, plan_entry: dict | None = None) -> nbformat.NotebookNode:
    """A copy of ``nb`` with its speaker notes in place and every cell's slide type set."""
    nb = copy.deepcopy(nb)
    plan_entry = plan_entry or {}
    ids = [c.get("id") for c in nb.cells]
    for anchor, text in plan_entry.get("notes", {}).items():
        if anchor not in ids:
            raise ValueError(f"speaker notes follow cell {anchor!r}, which the notebook does not have")
    # speaker notes: one markdown cell right after the cell they belong to
    cells = [c for c in nb.cells if not str(c.get("id", "")).startswith(NOTES_PREFIX)]
    notes = plan_entry.get("notes", {})
    with_notes = []
    for cell in cells:
        with_notes.append(cell)
        if cell.get("id") in notes:
            text = notes[cell.get("id")]
            note = new_markdown_cell("**Speaker notes.** " + text.strip())
            note["id"] = NOTES_PREFIX + cell.get("id")
            note.metadata["slideshow"] = {"slide_type": "notes"}
            with_notes.append(note)
    nb.cells = with_notes
    overrides = plan_entry.get("slide_types", {})
    for index, cell in enumerate(nb.cells):
        if str(cell.get("id", "")).startswith(NOTES_PREFIX):
            continue
        kind = overrides.get(cell.get("id"), default_slide_type(nb, index))
        cell.metadata["slideshow"] = {"slide_type": kind}
        tags = [t for t in _tags(cell) if t != HIDE_INPUT_TAG]
        long_code = (cell.cell_type == "code" and len(cell.source.strip().splitlines()) > LONG_CODE_LINES
                     and "live" not in tags)
        if long_code:
            tags.append(HIDE_INPUT_TAG)
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    nb.metadata["rise"] = dict(RISE_SETTINGS)
    return nb


def slide_count(nb: nbformat.NotebookNode) -> tuple[int, int]:
    """(slides, sub-slides) of a notebook with slide structure."""
    kinds = [c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in nb.cells]
    return kinds.count("slide"), kinds.count("subslide")


def structure_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What keeps ``nb`` from presenting as slides (empty when nothing does)."""
    problems = []
    if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.startswith("# "):
        problems.append("the first cell is not a markdown title ('# ...')")
    kinds = [c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in nb.cells]
    missing = [i for i, k in enumerate(kinds) if k is None]
    if missing:
        problems.append(f"cells {missing} have no slide type")
    if kinds and kinds[0] != "slide":
        problems.append("the first cell is not a slide (the title slide)")
    if kinds.count("slide") < 2:
        problems.append("fewer than two slides")
    return problems


def _render(nb) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook of solutions/")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when a notebook lacks its structure")
    parser.add_argument("--plan", type=Path, default=PLAN)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "solutions").glob("*.ipynb"))
    plan = load_plan(args.plan)
    failed = []
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        new = apply_slides(nb, plan.get(path.name))
        nbformat.validate(new)
        text = _render(new)
        if args.check:
            problems = structure_problems(nb)
            if path.read_text(encoding="utf-8") != text:
                problems.append("its slide structure differs from what the rules and the plan give")
            if problems:
                failed.append(path.name)
                for p in problems:
                    print(f"{path.name}: {p}", file=sys.stderr)
        else:
            if path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            slides, subslides = slide_count(new)
            print(f"{path.name}: {slides} slides, {subslides} sub-slides")
    if failed:
        print("run: python tools/slides.py, then python tools/make_learner_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

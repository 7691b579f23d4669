"""Generate the learner's notebooks in ``notebooks/`` from ``solutions/``.

Each solution notebook goes through nbgrader's preprocessors: the code between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes ``raise NotImplementedError()``,
the hidden tests are removed, and all outputs are cleared.

    python tools/make_learner_notebooks.py          # write notebooks/
    python tools/make_learner_notebooks.py --check  # exit 1 when notebooks/ is stale
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions

ROOT = Path(__file__).resolve().parent.parent


def learner_version(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The learner's copy of a solution notebook: solutions and hidden tests removed, outputs cleared."""
    nb = copy.deepcopy(solution)
    resources: dict = {}
    for pre in (ClearSolutions(), ClearHiddenTests(), ClearOutput()):
        nb, resources = pre.preprocess(nb, resources)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = None
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when notebooks/ is out of date")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    args = parser.parse_args(argv)

    sources = sorted(args.solutions.glob("*.ipynb"))
    if not sources:
        print(f"no notebooks found in {args.solutions}", file=sys.stderr)
        return 1
    stale = []
    for src in sources:
        text = render(learner_version(nbformat.read(str(src), as_version=4)))
        dest = args.notebooks / src.name
        if args.check:
            if not dest.exists() or dest.read_text(encoding="utf-8") != text:
                stale.append(dest.name)
        else:
            args.notebooks.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
            print(f"wrote {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
    extra = sorted({p.name for p in args.notebooks.glob("*.ipynb")} - {p.name for p in sources})
    if args.check:
        if stale or extra:
            for name in stale:
                print(f"notebooks/{name} is out of date with solutions/{name}", file=sys.stderr)
            for name in extra:
                print(f"notebooks/{name} has no source in solutions/", file=sys.stderr)
            print("run: python tools/make_learner_notebooks.py", file=sys.stderr)
            return 1
        print(f"notebooks/ is in sync with solutions/ ({len(sources)} notebooks)")
    elif extra:
        print(f"warning: notebooks/ has files without a source in solutions/: {extra}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

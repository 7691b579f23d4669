"""Build the course's website: every learner notebook rendered with its outputs, the guides, the
library reference, the measured results; offline (no CDN) and searchable.

    .venv-dev/bin/python tools/build_site.py                  # -> build/site/ (open build/site/index.html)
    .venv-dev/bin/python tools/build_site.py --execute force  # run every notebook again
    .venv-dev/bin/python tools/build_site.py --smoke          # quick: notebooks in smoke mode -> build/site-cache/smoke/html/

The notebooks are executed from ``notebooks/``, the learner's copies, where each exercise falls back
to lvmlib's reference and prints "not done yet": no solution appears on the site. The tool refuses a
notebook folder that holds solutions (``solutions/``, or any notebook with nbgrader's solution or
hidden-test markers or a worked discussion), and after the build it checks that no line of a solution
block of ``solutions/`` appears in any page.

Execution is cached (MyST-NB's cache mode, keyed on each notebook's code): an unchanged notebook is
not run again. The training cells also use the run cache (``LVMLIB_RUN_CACHE``, by default
``build/site-cache/runs``). Smoke and real runs keep separate caches under ``build/site-cache/``.
The build stops on any warning: a broken internal link, a missing figure, a notebook that errors.

MathJax comes from ``.site-node/`` (``bash tools/install_site_assets.sh``, from the npm registry) and is
copied into the site.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE_SOURCE = ROOT / "site"
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = ROOT / "solutions"
RESULTS = ROOT / "benchmarks" / "results"
MATHJAX = ROOT / ".site-node" / "node_modules" / "mathjax" / "es5"
CACHE = ROOT / "build" / "site-cache"
EXECUTE_MODES = ("cache", "force", "off")
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")
DISCUSSION_TAG = "discussion"
# Lines of a solution block shorter than this are too common to name a solution ("return x").
MIN_SOLUTION_LINE = 25


class SiteError(Exception):
    """A build that cannot go on; the message says why and what to do."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", choices=EXECUTE_MODES, default="cache",
                        help="cache: run only notebooks whose code changed (default); force: run every "
                             "notebook; off: render the notebooks without running them (no outputs)")
    parser.add_argument("--smoke", action="store_true",
                        help="run the notebooks in smoke mode (LVMLIB_SMOKE=1: small data, short training)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS,
                        help="folder of learner notebooks to render (default notebooks/; solutions are refused)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default build/site/, with --smoke build/site-cache/smoke/html/)")
    args = parser.parse_args(argv)
    if args.out is None:
        # MyST-NB keeps the executed notebooks beside the output folder (its parent's jupyter_execute/):
        # the smoke site lives under the smoke cache, so that the two modes never share them
        args.out = CACHE / "smoke" / "html" if args.smoke else ROOT / "build" / "site"
    return args


# --- what the site may not show -----------------------------------------------------------------

def _cells(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError) as err:
        raise SiteError(f"{path}: not a readable notebook ({err})") from err


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def solution_problems(path: Path) -> list[str]:
    """Why the notebook at path may not go on the site: solution or hidden-test blocks, discussions."""
    problems = []
    for i, cell in enumerate(_cells(path)):
        text = _source(cell)
        for marker in SOLUTION_MARKERS:
            if marker in text:
                problems.append(f"{path.name} cell {i}: contains '{marker}'")
        if DISCUSSION_TAG in cell.get("metadata", {}).get("tags", []):
            problems.append(f"{path.name} cell {i}: a worked discussion (tag '{DISCUSSION_TAG}')")
    return problems


def check_learner_folder(folder: Path) -> list[Path]:
    """The notebooks of folder, after refusing solutions/ and any notebook that holds a solution."""
    folder = folder.resolve()
    if folder == SOLUTIONS.resolve() or SOLUTIONS.resolve() in folder.parents:
        raise SiteError(f"--notebooks {folder}: the site renders the learner notebooks (notebooks/), "
                        "never solutions/")
    if not folder.is_dir():
        raise SiteError(f"--notebooks {folder}: expected a folder of .ipynb files, found no such folder")
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        raise SiteError(f"--notebooks {folder}: expected a folder of .ipynb files, found none")
    problems = [p for nb in notebooks for p in solution_problems(nb)]
    if problems:
        raise SiteError("refusing to put solutions on the site (use the learner notebooks, notebooks/):\n  "
                        + "\n  ".join(problems))
    return notebooks


def solution_lines(solutions: Path = SOLUTIONS, learner: Path = NOTEBOOKS) -> set[str]:
    """Distinctive lines of the solution blocks, hidden tests and discussions of solutions/: each one
    at least MIN_SOLUTION_LINE characters long and found nowhere in the learner notebooks."""
    learner_text = "\n".join(_source(c) for nb in sorted(learner.glob("*.ipynb")) for c in _cells(nb))
    learner_lines = {line.strip() for line in learner_text.splitlines()}
    lines: set[str] = set()
    for nb in sorted(solutions.glob("*.ipynb")):
        for cell in _cells(nb):
            text = _source(cell)
            if DISCUSSION_TAG in cell.get("metadata", {}).get("tags", []):
                block = text.splitlines()
            else:
                block = []
                for begin, end in (("### BEGIN SOLUTION", "### END SOLUTION"),
                                   ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")):
                    block += [m for part in re.findall(re.escape(begin) + r"(.*?)" + re.escape(end), text, re.S)
                              for m in part.splitlines()]
            lines |= {line.strip() for line in block
                      if len(line.strip()) >= MIN_SOLUTION_LINE and line.strip() not in learner_lines}
    return lines


def _page_text(html: str) -> str:
    """The text of an HTML page, tags dropped and entities decoded, one line per line of code."""
    import html as html_lib

    text = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", "", text)
    return html_lib.unescape(text)


def solutions_on_site(out: Path, lines: set[str]) -> list[str]:
    """'page: line' for each solution line that appears in a built page."""
    found = []
    for page in sorted(out.rglob("*.html")):
        text = _page_text(page.read_text(encoding="utf-8", errors="replace"))
        found += [f"{page.relative_to(out)}: {line}" for line in sorted(lines) if line in text]
    for source in sorted(out.rglob("*.ipynb")):  # the download links
        text = source.read_text(encoding="utf-8", errors="replace")
        found += [f"{source.relative_to(out)}: {line}" for line in sorted(lines) if json.dumps(line)[1:-1] in text]
    return found


# --- the source folder Sphinx reads ----------------------------------------------------------------

def _notebook_title(path: Path) -> str:
    for cell in _cells(path):
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def _result_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def _index_page(body: str, pages: list[Path]) -> str:
    """A page of generated text followed by the hidden table of contents of ``pages``."""
    toc = "\n".join(p.stem for p in pages)
    return f"""{body}
```{{toctree}}
:hidden:
:maxdepth: 1

{toc}
```
"""


def notebooks_index(notebooks: list[Path]) -> str:
    rows = "\n".join(f"| [{_notebook_title(nb)}]({nb.stem}.ipynb) | {{download}}`{nb.name} <{nb.name}>` |"
                     for nb in notebooks)
    return _index_page(f"""# The notebooks

Work through them in order. Each page shows the learner's notebook as it runs on a CPU: the
exercises are not done, so each check prints "not done yet" and the notebook carries on with the
library's reference. Download a notebook to work on it in JupyterLab (the two commands on the
[home page](../index.md)).

| notebook | download |
|---|---|
{rows}
""", notebooks)


def results_index(results: list[Path]) -> str:
    rows = "\n".join(f"- [{_result_title(r)}]({r.stem}.md) (`benchmarks/results/{r.name}`)" for r in results)
    return _index_page(f"""# Measured results

The course's benchmarks (`benchmarks/`) compare lvmlib with a baseline, side by side in one run, and
record their numbers with the machine they ran on. How a comparison is made (the same schedule and
budget for every contender, choices on validation, paired seeds with a 95% interval) is written in
`benchmarks/README.md`. Each page below is one recorded result, as the benchmark wrote it.

{rows}
""", results)


def _sync_file(src: Path | None, dest: Path, text: str | None = None) -> None:
    """Write dest from src (or text) only when its content differs, so Sphinx sees it unchanged."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if text is not None:
        if not dest.exists() or dest.read_text(encoding="utf-8") != text:
            dest.write_text(text, encoding="utf-8")
    elif not dest.exists() or not filecmp.cmp(src, dest, shallow=False):
        shutil.copy2(src, dest)


def assemble(src: Path, notebooks: list[Path]) -> list[str]:
    """Fill src with the pages, the notebooks and the results; return the page names (docnames)."""
    wanted: dict[Path, tuple[Path | None, str | None]] = {}
    for path in SITE_SOURCE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            wanted[src / path.relative_to(SITE_SOURCE)] = (path, None)
    for nb in notebooks:
        wanted[src / "notebooks" / nb.name] = (nb, None)
    wanted[src / "notebooks" / "index.md"] = (None, notebooks_index(notebooks))
    results = sorted(RESULTS.glob("*.md"))
    for r in results:
        wanted[src / "results" / r.name] = (r, None)
    wanted[src / "results" / "index.md"] = (None, results_index(results))
    if not (MATHJAX / "tex-chtml.js").is_file():
        raise SiteError(f"MathJax is not installed in {MATHJAX.parent.relative_to(ROOT)}: "
                        "run `bash tools/install_site_assets.sh` (needs node and npm)")
    for path in MATHJAX.rglob("*"):
        if path.is_file():
            wanted[src / "_static" / "mathjax" / path.relative_to(MATHJAX)] = (path, None)
    for dest, (path, text) in wanted.items():
        _sync_file(path, dest, text)
    for path in sorted(src.rglob("*"), reverse=True):  # what is no longer wanted goes
        if path.is_file() and path not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return sorted(str(d.relative_to(src).with_suffix("")) for d in wanted
                  if d.suffix in (".md", ".ipynb") and "_static" not in d.parts)


def build(args: argparse.Namespace) -> Path:
    notebooks = check_learner_folder(args.notebooks)
    mode = "smoke" if args.smoke else "real"
    src, doctrees = CACHE / mode / "src", CACHE / mode / "doctrees"
    docnames = assemble(src, notebooks)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernels draw inline figures
    env.update(
        LVMLIB_SMOKE="1" if args.smoke else "0",
        LVMLIB_SITE_EXECUTE=args.execute,
        LVMLIB_SITE_JUPYTER_CACHE=str(CACHE / mode / "jupyter"),
        LVMLIB_SITE_REPO=str(ROOT),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env.setdefault("LVMLIB_RUN_CACHE", str(CACHE / "runs"))
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d", str(doctrees),
               "-c", str(src), str(src), str(args.out)]
    print(f"building the site from {len(docnames)} pages ({len(notebooks)} notebooks, execute={args.execute}, "
          f"{mode} mode) -> {args.out}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT)
    if done.returncode != 0:
        # Sphinx saved its environment before failing: a next run would read no page again and pass
        # without the warnings. Forget it, so the next build reads (not executes) every page again.
        shutil.rmtree(doctrees, ignore_errors=True)
        raise SiteError(f"the site's build failed (sphinx-build exited {done.returncode}; its messages are above)")
    found = solutions_on_site(args.out, solution_lines(SOLUTIONS, args.notebooks))
    if found:
        raise SiteError("solution text on the site:\n  " + "\n  ".join(found[:20]))
    print(f"built {args.out / 'index.html'} in {time.monotonic() - started:.0f} s", flush=True)
    return args.out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        build(args)
    except SiteError as err:
        print(f"build_site: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

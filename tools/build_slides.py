"""Render every notebook of ``solutions/`` to reveal.js HTML slides that work without a network.

Each notebook is executed top to bottom (the real run unless ``LVMLIB_SMOKE=1``), then
rendered with nbconvert's slides exporter through a template (``tools/slides_template``) that
loads nothing from the internet: reveal.js comes from the ``sphinx-revealjs`` package and
MathJax from the ``jupyter-server-mathjax`` package (both pinned in requirements-dev.txt); they
are copied next to the slides, and figures are embedded in the HTML. The input of a code cell
tagged ``slides-hide-input`` (long plotting code) is left out; its output stays.

    python tools/build_slides.py                      # every notebook -> build/lecture/slides/
    python tools/build_slides.py 04_the_elbo.ipynb    # some notebooks
    python tools/build_slides.py --no-execute         # the notebooks as they are (no outputs)

Open ``build/lecture/slides/<notebook>.slides.html`` in a browser; ``s`` opens the speaker view.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "lecture" / "slides"
TEMPLATES = Path(__file__).resolve().parent / "slides_template"
HIDE_INPUT_TAG = "slides-hide-input"
REVEAL_THEME = "white"  # its fonts ship with reveal.js (other themes import web fonts)
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# a script or style sheet loaded from another host: what the slides must not contain
REMOTE_REFERENCE = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
REMOTE_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//""", re.I)


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{pip_name} is not installed: pip install -r requirements-dev.txt "
                         f"(it ships the files the offline slides need)")
    return Path(list(spec.submodule_search_locations)[0])


def reveal_source() -> Path:
    """The folder of reveal.js (dist/, plugin/) shipped by the sphinx-revealjs package."""
    folder = _package_dir("sphinx_revealjs", "sphinx-revealjs") / "_static" / "revealjs"
    if not (folder / "dist" / "reveal.js").exists():
        raise SystemExit(f"reveal.js not found under {folder}: reinstall sphinx-revealjs from requirements-dev.txt")
    return folder


def mathjax_source() -> Path:
    """The folder of MathJax 2 (MathJax.js, config/, jax/, fonts/) shipped by jupyter-server-mathjax."""
    folder = _package_dir("jupyter_server_mathjax", "jupyter-server-mathjax") / "static"
    if not (folder / "MathJax.js").exists():
        raise SystemExit(f"MathJax not found under {folder}: reinstall jupyter-server-mathjax")
    return folder


def copy_assets(out: Path) -> tuple[Path, Path]:
    """Copy reveal.js (what the slides use) and MathJax into out/_static; return their folders."""
    reveal, mathjax = out / "_static" / "reveal.js", out / "_static" / "mathjax"
    src = reveal_source()
    wanted = [Path("dist/reveal.js"), Path("dist/reveal.css"), Path("dist/reset.css"),
              Path(f"dist/theme/{REVEAL_THEME}.css"), Path("dist/theme/fonts"), Path("plugin/notes"),
              Path("LICENSE")]
    for rel in wanted:
        if not (src / rel).exists():
            continue
        dest = reveal / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if (src / rel).is_dir():
            shutil.copytree(src / rel, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src / rel, dest)
    if not (mathjax / "MathJax.js").exists():
        shutil.copytree(mathjax_source(), mathjax, dirs_exist_ok=True)
    return reveal, mathjax


def remote_references(html: str) -> list[str]:
    """Every script or style sheet the page would fetch from another host."""
    found = [m.group(0) for m in REMOTE_REFERENCE.finditer(html)]
    return found + [m.group(0) for m in REMOTE_IMPORT.finditer(html)]


def _without_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Live widgets need a kernel: keep each widget output's text, drop the widget state."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
    return nb


def execute(nb: nbformat.NotebookNode, path: Path, timeout: int) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    env_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if env_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_backend
    return nb


def render(nb: nbformat.NotebookNode, out: Path) -> str:
    """The reveal.js HTML of an executed notebook, referring to the assets under out/_static."""
    from nbconvert import SlidesExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = SlidesExporter(
        extra_template_basedirs=[str(TEMPLATES)], template_name="offline_reveal",
        reveal_url_prefix="_static/reveal.js", reveal_theme=REVEAL_THEME, reveal_transition="none",
        reveal_number="c/t", mathjax_url=f"_static/mathjax/MathJax.js?config={MATHJAX_CONFIG}",
    )
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={HIDE_INPUT_TAG}), enabled=True)
    html, _ = exporter.from_notebook_node(_without_widgets(nb))
    remote = remote_references(html)
    if remote:
        raise RuntimeError(f"the slides would load from the network: {remote[:3]}")
    return html


def build(paths: list[Path], out: Path = OUT, run: bool = True, timeout: int = 1800,
          executed=None) -> list[Path]:
    """Write the slides of each notebook in ``paths`` to ``out``; return the HTML files.

    ``executed``, if given, returns a notebook already executed (``executed(path)``): it is used
    instead of running the notebook here (the tests share one run of each notebook this way).
    """
    copy_assets(out)
    written = []
    for path in paths:
        t0 = time.perf_counter()
        if executed is not None:
            nb = executed(path)
        else:
            nb = nbformat.read(str(path), as_version=4)
            if run:
                nb = execute(nb, path, timeout)
        dest = out / (path.stem + ".slides.html")
        dest.write_text(render(nb, out), encoding="utf-8")
        written.append(dest)
        print(f"wrote {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="file names in --solutions (default: all)")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="render the notebooks as they are, without running them")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed for one cell")
    args = parser.parse_args(argv)
    paths = [args.solutions / n for n in args.notebooks] or sorted(args.solutions.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 1
    build(paths, args.out, run=args.execute, timeout=args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

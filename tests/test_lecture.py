"""Lecture mode: slide structure in every notebook, the live-coding copies, the offline HTML slides."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import build_slides  # noqa: E402
import make_learner_notebooks as gen  # noqa: E402
import slides  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
IDS = [p.name for p in SOLUTIONS]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def _strip_slides(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.cells = [c for c in nb.cells if not str(c.get("id", "")).startswith(slides.NOTES_PREFIX)]
    for cell in nb.cells:
        cell.metadata.pop("slideshow", None)
    nb.metadata.pop("rise", None)
    return nb


# --------------------------------------------------------------------------- slide structure


@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_every_notebook_has_a_title_slide_and_slide_structure(path):
    nb = _read(path)
    assert slides.structure_problems(nb) == []
    n_slides, n_sub = slides.slide_count(nb)
    assert n_slides >= 3 and n_slides + n_sub >= 8, f"{path.name}: {n_slides} slides, {n_sub} sub-slides"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.metadata["slideshow"]["slide_type"] == "skip", "the set-up code stays off the slides"


def test_the_slides_tool_check_passes_on_solutions():
    result = subprocess.run([sys.executable, "tools/slides.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def run_main(tool, args: list[str], capsys) -> tuple[int, str]:
    """A tool's main, run in this process (each tool's command line is run as a program in one test of
    this file): its exit code and what it wrote to stderr."""
    capsys.readouterr()
    code = tool.main(args)
    return code, capsys.readouterr().err


def test_the_default_rules_give_a_new_notebook_its_structure_in_one_command(tmp_path, capsys):
    nb = _strip_slides(_read(SOLUTIONS[-1]))
    path = tmp_path / "99_new_notebook.ipynb"   # not in the plan: the default rules alone
    nbformat.write(nb, str(path))
    plan = ["--plan", str(tmp_path / "no-plan.json")]
    code, err = run_main(slides, plan + ["--check", str(path)], capsys)
    assert code == 1 and "no slide type" in err
    assert run_main(slides, plan + [str(path)], capsys)[0] == 0
    done = _read(path)
    assert slides.structure_problems(done) == []
    kinds = [c.metadata["slideshow"]["slide_type"] for c in done.cells]
    assert kinds[0] == "slide"
    for cell, kind in zip(done.cells, kinds):
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            assert kind == "slide"
        if cell.metadata.get("nbgrader", {}).get("solution"):
            assert kind == "subslide"
    text = path.read_text()
    assert run_main(slides, plan + [str(path)], capsys)[0] == 0
    assert path.read_text() == text, "applying the rules twice changes the notebook"
    assert run_main(slides, plan + ["--check", str(path)], capsys)[0] == 0


def test_speaker_notes_come_from_the_plan_and_follow_their_cell():
    plan = slides.load_plan()
    for path in SOLUTIONS:
        nb = _read(path)
        ids = [c.get("id") for c in nb.cells]
        for anchor in plan.get(path.name, {}).get("notes", {}):
            note = ids.index(slides.NOTES_PREFIX + anchor)
            assert ids[note - 1] == anchor
            assert nb.cells[note].metadata["slideshow"]["slide_type"] == "notes"


def test_a_plan_with_an_unknown_slide_type_is_refused(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"x.ipynb": {"slide_types": {"abc": "page"}}}')
    with pytest.raises(ValueError, match="slide type must be one of"):
        slides.load_plan(bad)


# --------------------------------------------------------------------------- live-coding copies


def test_a_live_region_in_a_function_becomes_its_comments_and_a_raise():
    region = ["    # sigma from the log-variance", "    sigma = torch.exp(0.5 * log_var)",
              "    # z = mu + sigma * eps", "    return mu + sigma * torch.randn_like(sigma)"]
    assert gen.scaffold(region) == ["    # sigma from the log-variance", "    # z = mu + sigma * eps",
                                    "    raise NotImplementedError()"]
    assert gen.scaffold(["# a table", "for k in range(3):", "    print(k)"]) == ["# a table"]


def test_live_markers_that_do_not_pair_up_or_lack_the_tag_are_errors():
    cell = nbformat.v4.new_code_cell("def f():\n    ### BEGIN LIVE\n    return 1\n", metadata={"tags": ["live"]})
    nb = nbformat.v4.new_notebook(cells=[cell])
    with pytest.raises(gen.LiveMarkerError, match="never closed"):
        gen.lecture_version(nb)
    cell.source = "def f():\n    ### BEGIN LIVE\n    return 1\n    ### END LIVE"
    cell.metadata = {}
    with pytest.raises(gen.LiveMarkerError, match="not the tag"):
        gen.learner_version(nb)
    cell.metadata = {"tags": ["live"]}
    cell.source = "def f():\n    return 1"
    with pytest.raises(gen.LiveMarkerError, match="no '### BEGIN LIVE'"):
        gen.lecture_version(nb)


@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_lecture_copy_keeps_no_solution_code_in_live_cells(path):
    solution = _read(path)
    lecture = gen.lecture_version(solution)
    assert gen.lecture_problems(solution, lecture) == []
    live = [c for c in solution.cells if gen.is_live(c)]
    assert len(live) >= 3
    by_id = {c.get("id"): c for c in lecture.cells}
    for cell in live:
        copy = by_id[cell.get("id")].source
        typed = gen.live_code_lines(cell.source)
        assert typed, f"live cell {cell.get('id')} has nothing to type"
        assert not set(typed) & {ln.strip() for ln in copy.splitlines()}
        assert "### BEGIN SOLUTION" not in copy and "### BEGIN LIVE" not in copy
    # everything else is the solution: the non-live code cells keep their code (hidden tests aside)
    for cell in solution.cells:
        if cell.cell_type == "code" and not gen.is_live(cell) and "### BEGIN HIDDEN TESTS" not in cell.source:
            assert by_id[cell.get("id")].source == gen._drop_lines(cell.source, gen.SOLUTION_MARKERS)


def test_the_lecture_check_catches_solution_code_left_in_a_live_cell():
    solution = _read(SOLUTIONS[0])
    lecture = gen.lecture_version(solution)
    live = next(c for c in solution.cells if gen.is_live(c))
    leaky = next(c for c in lecture.cells if c.get("id") == live.get("id"))
    leaky.source = gen._drop_lines(live.source, gen.SOLUTION_MARKERS + (gen.LIVE_BEGIN, gen.LIVE_END))
    problems = gen.lecture_problems(solution, lecture)
    assert any("keeps solution code" in p for p in problems), problems


def test_learner_copies_drop_the_live_markers_and_the_speaker_notes():
    for path in SOLUTIONS:
        learner = _read(ROOT / "notebooks" / path.name)
        for cell in learner.cells:
            assert gen.LIVE_BEGIN not in cell.source and gen.LIVE_END not in cell.source
            assert cell.metadata.get("slideshow", {}).get("slide_type") != "notes"
        assert learner.cells[0].metadata["slideshow"]["slide_type"] == "slide"


def test_the_generator_writes_and_checks_the_lecture_copies(tmp_path, capsys):
    sols, nbs, lec = tmp_path / "solutions", tmp_path / "notebooks", tmp_path / "lecture"
    sols.mkdir()
    (sols / SOLUTIONS[0].name).write_text(SOLUTIONS[0].read_text())
    args = ["--solutions", str(sols), "--notebooks", str(nbs), "--lecture-dir", str(lec)]
    assert run_main(gen, args + ["--lecture", "--check"], capsys)[0] == 1
    assert run_main(gen, args + ["--lecture"], capsys)[0] == 0
    assert (lec / SOLUTIONS[0].name).exists()
    assert run_main(gen, args + ["--lecture", "--check"], capsys)[0] == 0
    # a solution whose live cell lost its region fails the check, with the reason
    nb = _read(sols / SOLUTIONS[0].name)
    live = next(c for c in nb.cells if gen.is_live(c))
    live.source = gen._drop_lines(live.source, (gen.LIVE_BEGIN, gen.LIVE_END))
    nbformat.write(nb, str(sols / SOLUTIONS[0].name))
    code, err = run_main(gen, args + ["--check"], capsys)
    assert code == 1 and "no '### BEGIN LIVE'" in err


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_lecture_copy_runs_top_to_bottom_with_the_live_cells_as_scaffolds(path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("LVMLIB_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("LVMLIB_RUN_CACHE", raising=False)
    lecture = gen.lecture_version(_read(path))
    NotebookClient(lecture, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "solutions")}}).execute()
    # each live exercise was left unfinished, and its check carried on with lvmlib's reference
    printed = "\n".join(o.get("text", "") for c in lecture.cells if c.cell_type == "code" for o in c.outputs)
    n_live_exercises = sum(bool(gen.is_live(c) and c.metadata.get("nbgrader", {}).get("solution")) for c in lecture.cells)
    assert printed.count("not done yet") >= n_live_exercises >= 1


# --------------------------------------------------------------------------- offline HTML slides


def _local_references(html: str) -> list[str]:
    return re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)\"""", html)


def _check_offline(html_path: Path, nb: nbformat.NotebookNode) -> str:
    html = html_path.read_text(encoding="utf-8")
    assert build_slides.remote_references(html) == []
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), "a remote script or style sheet"
    refs = _local_references(html)
    assert any("reveal.js" in r for r in refs) and any("MathJax.js" in r for r in refs)
    for ref in refs:
        assert (html_path.parent / ref.split("?")[0]).exists(), f"{ref} is not next to the slides"
    n_slides, n_sub = slides.slide_count(nb)
    # nbconvert opens a <section> per slide and one more per (sub-)slide inside it
    assert html.count("<section") == 2 * n_slides + n_sub
    return html


def test_offline_html_slides_of_every_notebook_without_running_them(tmp_path):
    out = tmp_path / "slides"
    written = build_slides.build(SOLUTIONS, out, run=False)
    assert len(written) == len(SOLUTIONS)
    for path, html_path in zip(SOLUTIONS, written):
        html = _check_offline(html_path, _read(path))
        assert html.count('<aside class="notes">') == sum(
            c.metadata.get("slideshow", {}).get("slide_type") == "notes" for c in _read(path).cells)
    for css in (out / "_static").rglob("*.css"):
        assert not build_slides.remote_references(css.read_text(errors="replace")), f"{css} imports from the web"


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_offline_html_slides_of_every_notebook_with_their_outputs(path, tmp_path, executed_solution):
    """The slides of the executed notebook (one smoke-mode run of each, shared with nbval: conftest.py)."""
    out = tmp_path / "slides"
    [html_path] = build_slides.build([path], out, executed=executed_solution)
    html = _check_offline(html_path, _read(path))
    assert "data:image/png;base64," in html, f"{html_path.name} has no embedded figure"
    assert "Traceback" not in html

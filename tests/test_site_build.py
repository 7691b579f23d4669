"""The website's build tool (tools/build_site.py), without building: its arguments, its refusal of
solutions, the solution lines it looks for, and a page list that covers every page source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools import build_site

ROOT = Path(__file__).resolve().parent.parent


def test_arguments_and_their_defaults():
    args = build_site.parse_args([])
    assert (args.execute, args.smoke) == ("cache", False)
    assert args.out == ROOT / "build" / "site"
    assert build_site.parse_args(["--smoke"]).out == ROOT / "build" / "site-cache" / "smoke" / "html"
    assert build_site.parse_args(["--execute", "force"]).execute == "force"
    assert build_site.parse_args(["--execute", "off", "--out", "x"]).out == Path("x")


@pytest.mark.parametrize("argv", [["--execute", "sometimes"], ["--execute"], ["--smoke", "yes"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        build_site.parse_args(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert ("--execute" in err and "cache" in err) if "--execute" in argv else "unrecognized arguments: yes" in err


def test_the_solutions_folder_is_refused(capsys):
    assert build_site.main(["--notebooks", str(ROOT / "solutions"), "--execute", "off"]) == 2
    err = capsys.readouterr().err
    assert "never solutions/" in err and "notebooks/" in err


def _copy_with(tmp_path, change) -> Path:
    folder = tmp_path / "course"
    folder.mkdir()
    nb = json.loads((ROOT / "notebooks" / "00_why_generative_models.ipynb").read_text())
    change(nb)
    (folder / "00_why_generative_models.ipynb").write_text(json.dumps(nb))
    return folder


@pytest.mark.parametrize("what, change", [
    ("### BEGIN SOLUTION", lambda nb: nb["cells"][1]["source"].append("\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n")),
    ("### BEGIN HIDDEN TESTS", lambda nb: nb["cells"][1]["source"].append("\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n")),
    ("worked discussion", lambda nb: nb["cells"][0].setdefault("metadata", {}).setdefault("tags", []).append("discussion")),
])
def test_a_notebook_holding_a_solution_is_refused_wherever_it_is(tmp_path, capsys, what, change):
    folder = _copy_with(tmp_path, change)
    assert build_site.main(["--notebooks", str(folder), "--execute", "off", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "refusing to put solutions on the site" in err and what in err and "00_why_generative_models" in err
    assert not (tmp_path / "out").exists()


def test_a_folder_without_notebooks_is_refused(tmp_path, capsys):
    assert build_site.main(["--notebooks", str(tmp_path), "--execute", "off"]) == 2
    assert "found none" in capsys.readouterr().err
    assert build_site.main(["--notebooks", str(tmp_path / "missing"), "--execute", "off"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_the_learner_notebooks_are_accepted():
    notebooks = build_site.check_learner_folder(ROOT / "notebooks")
    assert [nb.name for nb in notebooks] == sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))


def test_solution_lines_are_found_and_none_is_in_the_learner_notebooks():
    lines = build_site.solution_lines()
    assert len(lines) > 50, "the solution blocks of solutions/ should give many distinctive lines"
    learner = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "notebooks").glob("*.ipynb"))
    learner_lines = {line.strip() for c in json.loads("[" + ",".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "notebooks").glob("*.ipynb")) + "]")
        for cell in c["cells"] for line in "".join(cell["source"]).splitlines()}
    assert not lines & learner_lines
    assert "### BEGIN SOLUTION" not in learner


def test_a_solution_line_on_a_built_page_is_found(tmp_path):
    line = sorted(build_site.solution_lines())[0]
    (tmp_path / "page.html").write_text(f"<html><body><pre><span>{line.replace('<', '&lt;')}</span></pre></body></html>")
    (tmp_path / "clean.html").write_text("<html><body><p>not done yet</p></body></html>")
    found = build_site.solutions_on_site(tmp_path, build_site.solution_lines())
    assert found == [f"page.html: {line}"]


def _toctree_entries(text: str) -> list[str]:
    entries = []
    for block in re.findall(r"```\{toctree\}\n(.*?)```", text, flags=re.S):
        entries += [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(":")]
    return entries


def test_every_page_is_in_the_site_and_reachable_from_the_home_page():
    """Every page of site/, every learner notebook and every recorded result is in a table of contents."""
    home = _toctree_entries((ROOT / "site" / "index.md").read_text(encoding="utf-8"))
    pages = sorted(str(p.relative_to(ROOT / "site").with_suffix("")) for p in (ROOT / "site").rglob("*.md"))
    assert sorted(home + ["index"]) == sorted(pages + ["notebooks/index", "results/index"])
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    index = build_site.notebooks_index(notebooks)
    assert _toctree_entries(index) == [nb.stem for nb in notebooks]
    for nb in notebooks:  # a title and a download link each
        assert f"{{download}}`{nb.name} <{nb.name}>`" in index
        assert f"[{build_site._notebook_title(nb)}]({nb.stem}.ipynb)" in index
    results = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    assert _toctree_entries(build_site.results_index(results)) == [r.stem for r in results]


def test_the_site_uses_no_cdn():
    conf = (ROOT / "site" / "conf.py").read_text(encoding="utf-8")
    assert 'mathjax_path = "mathjax/tex-chtml.js"' in conf
    assert "https://" not in conf and "http://" not in conf
    script = (ROOT / "tools" / "install_site_assets.sh").read_text(encoding="utf-8")
    assert "mathjax@${MATHJAX_VERSION}" in script and "MATHJAX_VERSION=3.2.2" in script and "axe-core@" in script
    assert "install_site_assets.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")

"""The README's two commands exist as written, and CI runs the same test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_readme_starts_with_the_setup_and_test_commands():
    blocks = bash_blocks((ROOT / "README.md").read_text())
    assert "jupyter lab notebooks/" in blocks[0]
    assert blocks[1].strip().endswith("python -m pytest -n auto")   # every core (README, "Tests")


def test_ci_runs_the_readme_test_command():
    test_command = bash_blocks((ROOT / "README.md").read_text())[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_requirements_pin_the_cpu_torch():
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text().split()


def test_reading_a_notebook_compiles_no_iri_grammar():
    """requirements.txt pins jsonschema below 4.24, whose format checks import rfc3987-syntax, which builds
    a parser for IRIs at import: 1.4 s in every process that reads a notebook (Jupyter servers, nbgrader)."""
    import sys

    import jsonschema  # noqa: F401
    import nbformat  # noqa: F401

    assert "rfc3987_syntax" not in sys.modules and "lark" not in sys.modules


def test_the_learners_environment_carries_no_authoring_tools():
    """requirements.txt (the learner's .venv) has no nbgrader, pytest or playwright; the dev file adds them."""
    def names(path):
        lines = (ROOT / path).read_text().splitlines()
        return {re.split(r"[=<>\[ ]", line.strip())[0].lower() for line in lines
                if line.strip() and not line.lstrip().startswith(("#", "-r"))}

    learner, dev = names("requirements.txt"), names("requirements-dev.txt")
    assert not learner & {"nbgrader", "pytest", "nbval", "playwright"}
    assert {"nbgrader", "pytest", "nbval"} <= dev
    blocks = bash_blocks((ROOT / "README.md").read_text())
    assert ".venv/bin/pip install -r requirements.txt" in blocks[0]
    assert ".venv-dev/bin/pip install -r requirements-dev.txt" in blocks[1]


def test_readme_commands_name_the_environment_they_run_in():
    """No bare python/jupyter/nbgrader in the README's commands: each names .venv/bin or .venv-dev/bin."""
    text = (ROOT / "README.md").read_text()
    commands = [line for block in bash_blocks(text) for line in block.splitlines()]
    commands += re.findall(r"`((?:python|pytest)\b[^`]*)`", text)  # inline commands (not names like `nbgrader X`)
    bare = [c for c in commands if re.match(r"\s*(python|jupyter|nbgrader|pytest)\b", c)
            and not c.lstrip().startswith("python3 -m venv")]
    allowed_conda = "inside it, then `python -m pytest`"
    bare = [c for c in bare if not (c.strip() == "python -m pytest" and allowed_conda in text)]
    bare = [c for c in bare if not (c.strip() == "jupyter lab notebooks/" and "conda activate" in text)]
    assert bare == [], f"commands without their environment: {bare}"

"""The README's two commands exist as written, and CI runs the same test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_readme_starts_with_the_setup_and_test_commands():
    blocks = bash_blocks((ROOT / "README.md").read_text())
    assert "jupyter lab notebooks/" in blocks[0]
    assert blocks[1].strip().endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    test_command = bash_blocks((ROOT / "README.md").read_text())[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_requirements_pin_the_cpu_torch():
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text().split()

"""The inventory of wrong answers that the tests feed to the exercise checks.

The exercises are those whose graded check cell appears in ``solutions/*.ipynb`` (the line
``name = checks.<module>.check_<name>(name)``), found there and never listed by hand. Their wrong
answers live in the test files of the checks, ``tests/test_checks_*.py``, as two module-level tables:

``WRONG_ANSWERS``  ``{exercise: {mistake: wrong function}}``: answers that make a
    mistake the check lists; the check must fail and its message must name that mistake (the line
    "This is a known mistake: ..." contains ``mistake``).
``UNLISTED``       ``{exercise: {label: wrong function}}``: plausible
    wrong answers that are none of the check's listed mistakes; the check must fail, in the notebook's
    check cell and in the hidden test, and name no listed mistake.

In both, an entry may be a list of functions (one mistake written several ways) or a tuple whose first
item is the function (the rest is for the test file that owns the table, e.g. the part to be named).

The rule (asserted by ``tests/test_checks_catalogue.py``): every exercise has at least five wrong
answers in all, and at least half of them are not among its check's listed mistakes (as many unlisted
as listed, or more).

``python tests/wrong_answers.py`` prints, per exercise, how many wrong answers of each kind it has.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
MIN_WRONG = 5

_CHECK_CALL = re.compile(r"^\s*(\w+)\s*=\s*checks\.(\w+)\.(check_\w+)\(\s*\1\s*\)", re.M)


@dataclass
class Exercise:
    name: str          # the learner's function (or class), as the solution names it
    notebook: str      # the solution notebook's file name
    check: Callable    # the check its graded cell calls
    listed: list[tuple[str, Callable]] = field(default_factory=list)    # (mistake, wrong answer)
    unlisted: list[tuple[str, Callable]] = field(default_factory=list)  # (label, wrong answer)

    @property
    def total(self) -> int:
        return len(self.listed) + len(self.unlisted)

    def follows_the_rule(self) -> bool:
        """At least MIN_WRONG wrong answers, at least half of them not among the listed mistakes."""
        return self.total >= MIN_WRONG and len(self.unlisted) >= len(self.listed)


def graded_exercises(solutions: Path = ROOT / "solutions") -> dict[str, Exercise]:
    """{exercise: Exercise} for every graded check cell of the solution notebooks, in the course's order."""
    import nbformat

    found: dict[str, Exercise] = {}
    for path in sorted(solutions.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or not cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                continue
            calls = _CHECK_CALL.findall(cell.source)
            if not calls and "checks." in cell.source:
                raise ValueError(f"{path.name}: a graded cell calls a check in a form not read here "
                                 f"(expected `name = checks.<module>.check_<name>(name)`):\n{cell.source}")
            for name, module, check in calls:
                fn = getattr(importlib.import_module(f"lvmlib.checks.{module}"), check)
                if name in found and found[name].check is not fn:
                    raise ValueError(f"{path.name}: the exercise {name!r} is checked by two different checks")
                found.setdefault(name, Exercise(name, path.name, fn))
    if not found:
        raise ValueError(f"no graded check cell found in {solutions}")
    return found


def solution_code(solutions: Path = ROOT / "solutions") -> dict[str, list[str]]:
    """{exercise: its solution's code lines} (between nbgrader's solution markers, comments and blank lines
    dropped), read from the cell that defines the exercise's function or class."""
    import nbformat

    found: dict[str, list[str]] = {}
    for path in sorted(solutions.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or "### BEGIN SOLUTION" not in cell.source:
                continue
            named = re.search(r"^(?:def|class) (\w+)", cell.source, re.M)
            if not named:
                continue
            body = cell.source.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]
            lines = [line.split("#", 1)[0].strip() for line in body.splitlines()]
            found[named.group(1)] = [line for line in lines if line]
    return found


def _test_modules() -> list:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    return [importlib.import_module(p.stem) for p in sorted(TESTS.glob("test_checks_*.py"))]


def _functions(value) -> list[Callable]:
    """A table's entry: a function, a list of functions (one mistake written several ways), or a tuple whose
    first item is the function (the rest says more about it to the test file that owns the table)."""
    if isinstance(value, list):
        return [f for v in value for f in _functions(v)]
    return [value[0] if isinstance(value, tuple) else value]


def inventory() -> dict[str, Exercise]:
    """The graded exercises with the wrong answers that the test files give them.

    A table naming an exercise that no solution grades is an error (a typo, or an exercise removed),
    and so is a label given twice for one exercise.
    """
    exercises = graded_exercises()
    for module in _test_modules():
        for table_name in ("WRONG_ANSWERS", "UNLISTED"):
            table = getattr(module, table_name, None) or {}
            for exercise, entries in table.items():
                if exercise not in exercises:
                    raise KeyError(f"{module.__name__}.{table_name} names {exercise!r}, which no graded cell of "
                                   f"solutions/ checks (exercises: {', '.join(exercises)})")
                ex = exercises[exercise]
                for label, value in entries.items():
                    rows = ex.listed if table_name == "WRONG_ANSWERS" else ex.unlisted
                    if any(label == have for have, _ in rows):
                        raise ValueError(f"{module.__name__}.{table_name}[{exercise!r}] repeats {label!r}, "
                                         "already given by another test file")
                    rows.extend((label, fn) for fn in _functions(value))
    return exercises


def format_table(exercises: dict[str, Exercise]) -> str:
    lines = [f"{'notebook':<10} {'exercise':<28} {'listed':>6} {'unlisted':>8} {'total':>5}  rule"]
    for ex in exercises.values():
        lines.append(f"{ex.notebook[:2]:<10} {ex.name:<28} {len(ex.listed):>6} {len(ex.unlisted):>8} {ex.total:>5}  "
                     + ("ok" if ex.follows_the_rule() else f"NO (>= {MIN_WRONG} in all, half of them not listed)"))
    n_listed = sum(len(e.listed) for e in exercises.values())
    n_unlisted = sum(len(e.unlisted) for e in exercises.values())
    lines.append(f"{'all':<10} {len(exercises):<28} {n_listed:>6} {n_unlisted:>8} {n_listed + n_unlisted:>5}  "
                 f"{sum(e.follows_the_rule() for e in exercises.values())} of {len(exercises)} follow the rule")
    return "\n".join(lines)


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    table = inventory()
    print(format_table(table))
    sys.exit(0 if all(e.follows_the_rule() for e in table.values()) else 1)

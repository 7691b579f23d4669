"""How the test run is organised (tests/conftest.py holds the settings of the tests themselves).

- Parallel runs (``python -m pytest -n auto``, pytest-xdist): a notebook runs cell by cell in one
  kernel, so each file, a notebook or a test module, stays whole on one worker (``--dist loadfile``
  is used where xdist's default would split files).
- Each notebook of ``solutions/`` is executed once per run, by nbval: the outputs of its cells are
  kept, and the tests that only read a solution notebook's outputs (the offline HTML slides) take
  them from the ``executed_solution`` fixture instead of executing the notebook again. Those tests
  run after the notebooks; a notebook that nbval did not run to the end in this process (another
  xdist worker ran it, or it was deselected) is executed by the fixture itself.
  The kernels of ``solutions/`` draw their figures inline (as in JupyterLab), so that the outputs
  hold the figures.
- The notebooks that train a model (a cell tagged ``training``: 05, 06, 07, in both folders) are
  marked ``slow``: the quick lane (``-m "not slow and not browser"``) runs the others.
- A time budget: with ``LVMLIB_TEST_BUDGET_S`` set (``.ci/run`` sets it for the README's test
  command), the run ends with its slowest tests and fails when it took longer than that many
  seconds (wall clock, from the start of the session to its end).
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
SOLUTIONS = ROOT / "solutions"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
FIXTURE = "executed_solution"
TRAINING_TAG = "training"       # a cell that trains a model (benchmarks/results/notebook_cells.md)
BUDGET_ENV = "LVMLIB_TEST_BUDGET_S"
N_SLOWEST = 15


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # xdist's default ("load", and "worksteal") hands out single tests: it would split a notebook's cells
    if getattr(config.option, "dist", "no") in ("load", "worksteal"):
        config.option.dist = "loadfile"
    config.pluginmanager.register(ExecutedSolutions(), "executed_solutions")
    budget = os.environ.get(BUDGET_ENV)
    if budget and not hasattr(config, "workerinput"):     # the controller of an xdist run, or a plain run
        try:
            seconds = float(budget)
        except ValueError:
            raise pytest.UsageError(f"{BUDGET_ENV} must be a number of seconds, got {budget!r}") from None
        if seconds <= 0:
            raise pytest.UsageError(f"{BUDGET_ENV} must be a positive number of seconds, got {budget!r}")
        config.pluginmanager.register(TimeBudget(seconds), "time_budget")


class TimeBudget:
    """Fails the run when it takes longer than its budget, and says which tests took the time."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.perf_counter()
        self.took: dict[str, float] = {}
        self.elapsed = None

    def pytest_runtest_logreport(self, report):
        # a notebook counts as one test: its cells run in one kernel
        key = report.nodeid.split("::")[0] + "  (every cell)" if ".ipynb::" in report.nodeid else report.nodeid
        self.took[key] = self.took.get(key, 0.0) + report.duration

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session):
        self.elapsed = time.perf_counter() - self.start
        if self.elapsed > self.seconds and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        slowest = sorted(self.took.items(), key=lambda kv: -kv[1])[:N_SLOWEST]
        tr.section(f"time budget ({BUDGET_ENV}={self.seconds:g} s)")
        for nodeid, seconds in slowest:
            tr.write_line(f"{seconds:8.1f} s  {nodeid}")
        verdict = "within" if self.elapsed <= self.seconds else "OVER"
        tr.write_line(f"the run took {self.elapsed:.0f} s: {verdict} its budget of {self.seconds:g} s "
                      f"(setup, call and teardown of each test summed above)",
                      red=verdict == "OVER", green=verdict == "within")


def _trains(notebook_file) -> bool:
    """Whether a notebook (nbval's collector of it) has a training cell."""
    cached = getattr(notebook_file, "_lvm_trains", None)
    if cached is None:
        cached = any(TRAINING_TAG in c.get("metadata", {}).get("tags", []) for c in notebook_file.nb.cells)
        notebook_file._lvm_trains = cached
    return cached


def _is_solution_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell" and Path(str(item.path)).parent == SOLUTIONS


class ExecutedSolutions:
    """The notebooks of solutions/ as nbval executed them in this process (path -> notebook)."""

    def __init__(self):
        # path -> {"nb": the notebook, "outputs": {code cell number: outputs}, "failed": whether a cell failed}
        self._runs: dict[Path, dict] = {}
        self._executed: dict[Path, nbformat.NotebookNode] = {}

    # -- ordering: tests that read executed notebooks come after the notebooks;
    #    a notebook that trains (a cell tagged `training`) is slow, in both folders
    @pytest.hookimpl(tryfirst=True)        # before -m deselects
    def pytest_collection_modifyitems(self, items):
        for item in items:
            if type(item).__name__ == "IPyNbCell" and _trains(item.parent):
                item.add_marker(pytest.mark.slow)
        readers = [item for item in items if FIXTURE in getattr(item, "fixturenames", ())]
        if readers:
            ids = {id(item) for item in readers}
            items[:] = [item for item in items if id(item) not in ids] + readers

    # -- the kernels of solutions/ draw inline (their setup starts the kernel)
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        if not _is_solution_cell(item):
            yield
            return
        before = os.environ.get("MPLBACKEND")
        os.environ["MPLBACKEND"] = INLINE_BACKEND
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("MPLBACKEND", None)
            else:
                os.environ["MPLBACKEND"] = before

    # -- each cell's outputs, kept
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if not _is_solution_cell(item):
            return
        report = outcome.get_result()
        path = Path(str(item.path))
        run = self._runs.setdefault(path, {"nb": item.parent.nb, "outputs": {}, "failed": False})
        if report.failed or (report.skipped and call.when == "call"):
            run["failed"] = True
        if call.when == "call" and report.passed:
            run["outputs"][item.cell_num] = list(item.test_outputs or [])

    def from_nbval(self, path: Path) -> nbformat.NotebookNode | None:
        """The notebook with its outputs, if nbval ran every code cell of it without a failure."""
        run = self._runs.get(Path(path))
        if run is None or run["failed"]:
            return None
        nb = copy.deepcopy(run["nb"])
        code = [c for c in nb.cells if c.cell_type == "code"]
        if len(run["outputs"]) != len(code):
            return None
        for number, cell in enumerate(code):
            cell.outputs = [nbformat.from_dict(dict(o)) for o in run["outputs"][number]]
            cell.execution_count = number + 1
        nbformat.validate(nb)
        return nb

    def get(self, path: Path, timeout: int = 900) -> nbformat.NotebookNode:
        """The executed notebook: nbval's run of it, or else executed here once (smoke mode)."""
        path = Path(path)
        if path not in self._executed:
            nb = self.from_nbval(path)
            if nb is None:
                import sys

                sys.path.insert(0, str(ROOT / "tools"))
                import build_slides

                saved = {name: os.environ.get(name) for name in ("LVMLIB_SMOKE", "LVMLIB_RUN_CACHE")}
                os.environ["LVMLIB_SMOKE"] = "1"
                os.environ.pop("LVMLIB_RUN_CACHE", None)
                try:
                    nb = build_slides.execute(nbformat.read(str(path), as_version=4), path, timeout)
                finally:
                    for name, value in saved.items():
                        if value is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = value
            self._executed[path] = nb
        return copy.deepcopy(self._executed[path])


@pytest.fixture(scope="session")
def executed_solution(request):
    """``executed_solution(path)``: a notebook of solutions/ with the outputs of one smoke-mode run.

    Shared by every test that only reads the outputs; nbval's run is reused when it ran here.
    """
    plugin = request.config.pluginmanager.get_plugin("executed_solutions")
    return plugin.get

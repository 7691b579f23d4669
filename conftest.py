"""How the test run is organised (tests/conftest.py holds the settings of the tests themselves).

- Parallel runs (``python -m pytest -n auto``, pytest-xdist): the README's test command uses every
  core. Work is handed to the workers in units (:func:`unit_of`): a notebook's cells stay together
  in one kernel on one worker, a test module stays whole (its module fixtures are built once), the
  browser tests share one JupyterLab, and a few long tests are units of their own so that both
  workers stay busy. The longest units are handed out first (``LONG_FIRST``), then the notebooks and
  the website that reads them, so that the website's build does not end the run alone; the other
  tests that only read executed notebooks (the slides) go last.
- Each notebook is executed once per run, by nbval: the outputs of its cells are kept, and the
  tests that only read a notebook's outputs (the offline HTML slides, the website) take them from
  the ``executed_solution`` and ``executed_notebook`` fixtures instead of executing it again. An
  executed notebook is shared between the workers through the run's temporary folder; a reader
  waits for a notebook another worker is running, and executes (in smoke mode) only a notebook
  that nbval did not run in this session (deselected, or failed).
  Kernels draw their figures inline (as in JupyterLab), so that the outputs hold the figures.
- The notebooks that train a model (a cell tagged ``training``: 05, 06, 07, in both folders) are
  marked ``slow``: the quick lane (``-m "not slow and not browser"``) runs the others.
- A time budget: with ``LVMLIB_TEST_BUDGET_S`` set (``.ci/run`` sets it for the README's test
  command), the run ends with its slowest tests and fails when it took longer than that many
  seconds (wall clock, from the start of the session to its end).
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

# A worker of a parallel run shares the cores with the others: torch (and the kernels, the graders and
# the servers it starts, which inherit this) computes on one thread instead of one per core each,
# which oversubscribes the cores. Set OMP_NUM_THREADS to choose otherwise.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
COURSE_FOLDERS = (SOLUTIONS, NOTEBOOKS)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
READER_FIXTURES = ("executed_solution", "executed_notebook")
TRAINING_TAG = "training"       # a cell that trains a model (benchmarks/results/notebook_cells.md)
BUDGET_ENV = "LVMLIB_TEST_BUDGET_S"
N_SLOWEST = 15
WAIT_FOR_OTHER_WORKER_S = 900   # a reader waits this long for a notebook another worker is running

# --- units of work for the workers (pytest-xdist) ---------------------------------------------------

# Tests (file::function) each of whose runs (each parameter) is a unit of its own: long tests that
# would otherwise keep their module on one worker, and tests that read executed notebooks (a unit that
# reads them is handed out last, so a module with one reader among other tests lists the reader here).
OWN_UNIT = {
    "tests/test_class_course.py::test_a_class_of_four_graded_in_full",
    "tests/test_class_course.py::test_a_class_of_four_graded_side_by_side",
    "tests/test_class_course.py::test_grading_keeps_exercises_apart",
    "tests/test_lecture.py::test_lecture_copy_runs_top_to_bottom_with_the_live_cells_as_scaffolds",
    "tests/test_lecture.py::test_offline_html_slides_of_every_notebook_with_their_outputs",
    "tests/test_exercise_flow.py::test_nbgrader_generates_and_autogrades_the_course",
    "tests/test_exercise_flow.py::test_unfinished_notebook_runs_to_the_end_on_the_reference",
    "tests/test_training.py::test_compiled_training_matches_eager",
}
BROWSER_UNIT = "tests/test_browser*.py (one JupyterLab)"
# Units handed out first, longest first (each entry: the start of a unit's name).
LONG_FIRST = (
    "tests/test_class_course.py::test_a_class_of_four_graded_in_full",
    "tests/test_class_hub.py",
    "tests/test_class_course.py::test_a_class_of_four_graded_side_by_side",
    BROWSER_UNIT,
    "tests/test_exercise_flow.py::test_nbgrader_generates_and_autogrades_the_course",
    "tests/test_class_course.py",
    "solutions/07", "notebooks/07", "solutions/08", "notebooks/08", "solutions/05", "notebooks/05",
    "solutions/06", "notebooks/06",
    "notebooks/", "solutions/",        # the other notebooks, before the website that reads the learner copies
    "tests/test_site.py",              # reads every notebook of notebooks/: after them, not at the end of the run
)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to (what one worker runs as a whole)."""
    path, _, rest = nodeid.partition("::")
    if path.endswith(".ipynb"):
        return path                                   # a notebook: every cell in one kernel
    if f"{path}::{rest.split('[')[0]}" in OWN_UNIT:
        return nodeid
    if Path(path).name.startswith("test_browser"):
        return BROWSER_UNIT
    return path


def _rank(unit: str, reads: bool) -> int:
    """Where a unit goes in the order: by LONG_FIRST, else after those; a reader of executed notebooks
    last (unless LONG_FIRST names it), when the notebooks it reads have been run."""
    listed = next((i for i, start in enumerate(LONG_FIRST) if unit.startswith(start)), None)
    if listed is not None:
        return listed
    return len(LONG_FIRST) + 1 if reads else len(LONG_FIRST)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than cores. Much of a worker's time is spent waiting (kernels and
    servers starting, browsers rendering, graders' processes), and a third worker on 2 cores filled it:
    335 s for the suite against 471 s with two (README, "Tests")."""
    return (os.cpu_count() or 1) + 1


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """The course's units (:func:`unit_of`), handed out in the order of the collection."""
    if config.getvalue("dist") == "each":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return CourseScheduling(config, log)


KERNEL_START_TRIES = 3


def _retrying_kernel(running_kernel):
    """nbval's kernel, started again when it dies before it answers (at most ``KERNEL_START_TRIES``).

    jupyter_client picks a kernel's five ports by binding port 0 and letting them go; the kernel binds
    them a moment later. Under a parallel run another process (a kernel, a server, a grader) can take
    one in between, and the kernel exits at once ("Kernel died before replying to kernel_info"): the
    whole notebook then fails before its first cell. A new start draws new ports. Each retry is
    reported as a warning in the run's summary, so a kernel that cannot start at all still fails."""

    class RetryingKernel(running_kernel):
        def __init__(self, *args, **kwargs):
            for attempt in range(1, KERNEL_START_TRIES + 1):
                try:
                    super().__init__(*args, **kwargs)
                    return
                except RuntimeError as error:
                    if "died before replying" not in str(error) or attempt == KERNEL_START_TRIES:
                        raise
                    import warnings

                    warnings.warn(f"a notebook's kernel died as it started ({error}); started it again "
                                  f"(try {attempt + 1} of {KERNEL_START_TRIES})", stacklevel=2)

    RetryingKernel.__name__ = RetryingKernel.__qualname__ = running_kernel.__name__
    return RetryingKernel


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    import nbval.plugin

    if not getattr(nbval.plugin.RunningKernel, "_lvm_retries", False):
        nbval.plugin.RunningKernel = _retrying_kernel(nbval.plugin.RunningKernel)
        nbval.plugin.RunningKernel._lvm_retries = True
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False      # the order is the collection's (see pytest_collection_modifyitems)
    config.pluginmanager.register(ExecutedNotebooks(), "executed_notebooks")
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
        workers = getattr(tr.config.option, "numprocesses", None)
        tr.section(f"time budget ({BUDGET_ENV}={self.seconds:g} s)")
        for nodeid, seconds in slowest:
            tr.write_line(f"{seconds:8.1f} s  {nodeid}")
        verdict = "within" if self.elapsed <= self.seconds else "OVER"
        tr.write_line(f"the run took {self.elapsed:.0f} s on {os.cpu_count()} cores"
                      f"{f' with {workers} workers' if workers else ', one process'}: {verdict} its budget of "
                      f"{self.seconds:g} s (setup, call and teardown of each test summed above; "
                      f"{sum(self.took.values()):.0f} s in all)",
                      red=verdict == "OVER", green=verdict == "within")


def _trains(notebook_file) -> bool:
    """Whether a notebook (nbval's collector of it) has a training cell."""
    cached = getattr(notebook_file, "_lvm_trains", None)
    if cached is None:
        cached = any(TRAINING_TAG in c.get("metadata", {}).get("tags", []) for c in notebook_file.nb.cells)
        notebook_file._lvm_trains = cached
    return cached


def _course_notebook(item) -> Path | None:
    """The notebook of solutions/ or notebooks/ whose cell ``item`` is (None for any other test)."""
    if type(item).__name__ != "IPyNbCell":
        return None
    path = Path(str(item.path))
    return path if path.parent in COURSE_FOLDERS else None


def _key(path: Path) -> str:
    return f"{path.parent.name}-{path.name}"


class ExecutedNotebooks:
    """The course's notebooks as nbval executed them in this run, shared by the workers of the run."""

    def __init__(self):
        # path -> {"nb": the notebook, "outputs": {code cell number: outputs}, "failed": whether a cell failed}
        self._runs: dict[Path, dict] = {}
        self._executed: dict[Path, nbformat.NotebookNode] = {}
        self._shared: Path | None = None
        self._worker = os.environ.get("PYTEST_XDIST_WORKER", "main")

    # -- the folder the workers share: the run's base temporary folder (a worker's is inside it)
    def pytest_sessionstart(self, session):
        factory = getattr(session.config, "_tmp_path_factory", None)
        if factory is None:
            return
        base = factory.getbasetemp()
        shared = base.parent if hasattr(session.config, "workerinput") else base
        self._shared = shared / "executed-notebooks"
        self._shared.mkdir(exist_ok=True)

    def _file(self, path: Path, suffix: str = ".ipynb") -> Path | None:
        return None if self._shared is None else self._shared / (_key(path) + suffix)

    # -- ordering: whole units, longest first, the readers of executed notebooks last;
    #    a notebook that trains (a cell tagged `training`) is slow, in both folders
    @pytest.hookimpl(tryfirst=True)        # before -m deselects
    def pytest_collection_modifyitems(self, config, items):
        units: dict[str, list] = {}
        reads: dict[str, bool] = {}
        for item in items:
            if type(item).__name__ == "IPyNbCell" and _trains(item.parent):
                item.add_marker(pytest.mark.slow)
            unit = unit_of(item.nodeid)
            reader = any(name in getattr(item, "fixturenames", ()) for name in READER_FIXTURES)
            units.setdefault(unit, []).append(item)
            reads[unit] = reads.get(unit, False) or reader
        order = sorted(units, key=lambda unit: _rank(unit, reads[unit]))    # stable: collection order within a rank
        items[:] = [item for unit in order for item in units[unit]]

    # -- the kernels draw inline (their setup starts the kernel); another worker learns that a
    #    notebook is being run here
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        path = _course_notebook(item)
        if path is None:
            yield
            return
        if item.cell_num == 0 and self._file(path, ".running") is not None:
            self._file(path, ".running").write_text(self._worker)
        before = os.environ.get("MPLBACKEND")
        os.environ["MPLBACKEND"] = INLINE_BACKEND
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("MPLBACKEND", None)
            else:
                os.environ["MPLBACKEND"] = before

    # -- each cell's outputs, kept; the whole notebook written for the other workers
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        path = _course_notebook(item)
        if path is None:
            return
        report = outcome.get_result()
        run = self._runs.setdefault(path, {"nb": item.parent.nb, "outputs": {}, "failed": False, "n_code": sum(
            c.cell_type == "code" for c in item.parent.nb.cells)})
        if report.failed or (report.skipped and call.when == "call"):
            run["failed"] = True
        if call.when == "call" and report.passed:
            run["outputs"][item.cell_num] = list(item.test_outputs or [])
        if call.when == "teardown" and self._shared is not None:
            if run["failed"]:
                self._file(path, ".running").unlink(missing_ok=True)
            elif len(run["outputs"]) == run["n_code"] and not run.get("published"):
                run["published"] = True
                self._publish(path, self.from_nbval(path))

    def _publish(self, path: Path, nb: nbformat.NotebookNode) -> None:
        target = self._file(path)
        partial = target.with_suffix(f".{self._worker}.partial")
        nbformat.write(nb, str(partial))
        os.replace(partial, target)
        self._file(path, ".running").unlink(missing_ok=True)

    def from_nbval(self, path: Path) -> nbformat.NotebookNode | None:
        """The notebook with its outputs, if nbval ran every code cell of it here without a failure."""
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

    def from_other_worker(self, path: Path) -> nbformat.NotebookNode | None:
        """The notebook as another worker's nbval ran it, waiting while it runs there."""
        target, running = self._file(path), self._file(path, ".running")
        if target is None:
            return None
        deadline = time.monotonic() + WAIT_FOR_OTHER_WORKER_S
        while not target.exists():
            try:
                runner = running.read_text()
            except OSError:
                return None                       # nobody is running it
            if runner == self._worker or time.monotonic() > deadline:
                return None                       # left unfinished here, or taking too long elsewhere
            time.sleep(0.5)
        return nbformat.read(str(target), as_version=4)

    def get(self, path: Path, timeout: int = 900) -> nbformat.NotebookNode:
        """The executed notebook: nbval's run of it (here or on another worker), or else executed once
        here, in smoke mode, and shared."""
        path = Path(path).resolve()
        if path.parent not in COURSE_FOLDERS:
            raise ValueError(f"path must be a notebook of solutions/ or notebooks/, got {path}")
        if path not in self._executed:
            nb = self.from_nbval(path) or self.from_other_worker(path)
            if nb is None:
                nb = self._execute_once(path, timeout)
            self._executed[path] = nb
        return copy.deepcopy(self._executed[path])

    def _execute_once(self, path: Path, timeout: int) -> nbformat.NotebookNode:
        from filelock import FileLock

        lock = FileLock(str(self._file(path, ".lock"))) if self._shared is not None else None
        if lock is not None:
            lock.acquire()
        try:
            target = self._file(path)
            if target is not None and target.exists():     # another reader executed it meanwhile
                return nbformat.read(str(target), as_version=4)
            nb = _execute_smoke(path, timeout)
            if target is not None:
                self._publish(path, nb)
            return nb
        finally:
            if lock is not None:
                lock.release()


def _execute_smoke(path: Path, timeout: int) -> nbformat.NotebookNode:
    """``path`` executed top to bottom in smoke mode, figures inline (as the slides and the site show them)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import build_slides

    saved = {name: os.environ.get(name) for name in ("LVMLIB_SMOKE", "LVMLIB_RUN_CACHE")}
    os.environ["LVMLIB_SMOKE"] = "1"
    os.environ.pop("LVMLIB_RUN_CACHE", None)
    try:
        return build_slides.execute(nbformat.read(str(path), as_version=4), path, timeout)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def executed_solution(request):
    """``executed_solution(path)``: a notebook of solutions/ with the outputs of one smoke-mode run.

    Shared by every test that only reads the outputs; nbval's run is reused (conftest.py's docstring).
    """
    plugin = request.config.pluginmanager.get_plugin("executed_notebooks")
    return plugin.get


@pytest.fixture(scope="session")
def executed_notebook(request):
    """``executed_notebook(path)``: a learner's notebook of notebooks/ with its outputs, as above."""
    plugin = request.config.pluginmanager.get_plugin("executed_notebooks")
    return plugin.get

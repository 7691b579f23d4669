"""A learner's attempts at an exercise, run one after another in one kernel of a learner's notebook.

As a learner works: the cells above the exercise run once; each attempt puts its answers in their
cells and runs from the exercise's cell down, until a cell fails (a check that says what is wrong)
or the notebook ends. The next attempt starts again at the exercise's cell, in the same kernel, as
a learner who fixes an answer and runs the cells again. Shared by the exercise-flow tests: one
kernel start and one run of the cells above instead of one per attempt. Attempts run lazily, in
order, when a test first asks for one of them or a later one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


@dataclass
class Attempt:
    error: str | None       # the failing cell's error (None: the notebook ran to its end)
    stopped_at: str         # the source of the last cell run
    printed: str            # the text the attempt's cells printed


def grade_ids(nb: nbformat.NotebookNode) -> dict[str, int]:
    return {c.metadata["nbgrader"]["grade_id"]: i for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("grade_id")}


class Attempts:
    """``Attempts(path, {name: {grade_id: answer source}}, cwd)``: ``attempts[name]`` is an :class:`Attempt`.

    Every attempt edits the same first exercise cell (the one it starts at); answers replace the
    learner's stub (``raise NotImplementedError()``) of their cells. Use as a context manager: the
    kernel starts on the first attempt asked for and stops at the end of the ``with`` block."""

    def __init__(self, path: Path, attempts: dict[str, dict[str, str]], cwd: Path, timeout: int = 600):
        self.nb = nbformat.read(str(path), as_version=4)
        where = grade_ids(self.nb)
        starts = {min(where[gid] for gid in answers) for answers in attempts.values()}
        if len(starts) != 1:
            raise ValueError(f"every attempt must start at the same exercise cell, got cells {sorted(starts)}")
        self.start = starts.pop()
        for answers in attempts.values():
            for gid in answers:
                assert "raise NotImplementedError()" in self.nb.cells[where[gid]].source, f"{gid} is not a stub"
        self.attempts, self.where = attempts, where
        self.client = NotebookClient(self.nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
        self.done: dict[str, Attempt] = {}
        self._kernel = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._kernel is not None:
            self._kernel.__exit__(*exc)
            self._kernel = None

    def __getitem__(self, name: str) -> Attempt:
        for earlier in self.attempts:
            if earlier not in self.done:
                self.done[earlier] = self._run(earlier)
            if earlier == name:
                return self.done[name]
        raise KeyError(name)

    def error_at(self, name: str, check: str) -> str:
        """The error of attempt ``name``, which must have stopped at the cell that calls ``check``."""
        attempt = self[name]
        assert attempt.error is not None, f"the attempt {name!r} ran to the end of the notebook"
        assert check in attempt.stopped_at, (
            f"the attempt {name!r} should stop at the cell of {check}; it stopped at:\n{attempt.stopped_at}")
        return attempt.error

    def _run(self, name: str) -> Attempt:
        if self._kernel is None:
            self._kernel = self.client.setup_kernel()
            self._kernel.__enter__()
            for i, cell in enumerate(self.nb.cells[:self.start]):
                if cell.cell_type == "code":
                    self.client.execute_cell(cell, i)
        cells = [nbformat.from_dict(copy.deepcopy(dict(c))) for c in self.nb.cells]
        for gid, source in self.attempts[name].items():
            cells[self.where[gid]].source = source
        ran, error = [], None
        for i in range(self.start, len(cells)):
            if cells[i].cell_type != "code":
                continue
            ran.append(cells[i])
            try:
                self.client.execute_cell(cells[i], i)
            except CellExecutionError as err:
                error = str(err)
                break
        printed = "".join(o.get("text", "") for c in ran for o in c.get("outputs", []))
        return Attempt(error, ran[-1].source if ran else "", printed)

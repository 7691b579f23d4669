"""Write a course notebook in ``solutions/`` from Python, with nbgrader's cell metadata.

Authors build a notebook once with this helper; from then on the ``.ipynb`` in
``solutions/`` is the source, edited in JupyterLab. Usage::

    from tools.nbauthor import Notebook
    nb = Notebook("Probabilistic PCA")
    nb.md("# Probabilistic PCA ...")
    nb.code("import lvmlib ...")
    nb.solution("ppca_loglik", '''
    def log_likelihood(X, W, mu, sigma2):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION
    ''')
    nb.check("ppca_loglik_check", '''
    log_likelihood = checks.ppca.check_log_likelihood(log_likelihood)
    ### BEGIN HIDDEN TESTS
    checks.ppca.check_log_likelihood(log_likelihood, strict=True, seed=1)
    ### END HIDDEN TESTS
    ''', points=1)
    nb.write("solutions/02_probabilistic_pca.ipynb")

A ``solution`` cell is nbgrader's "autograded answer" (its body between the
``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers is replaced by
``raise NotImplementedError()`` in the learner's copy); a ``check`` cell is an
"autograded tests" cell worth ``points``, locked, whose hidden tests are removed
from the learner's copy and restored when an instructor autogrades.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _clean(source: str) -> str:
    return textwrap.dedent(source).strip("\n")


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


class Notebook:
    """A notebook being written, cell by cell."""

    def __init__(self, title: str):
        self.title = title
        self.cells: list = []
        self._ids: set[str] = set()

    def _grade_id(self, grade_id: str) -> str:
        if grade_id in self._ids:
            raise ValueError(f"grade_id {grade_id!r} is used twice in {self.title!r}")
        self._ids.add(grade_id)
        return grade_id

    def md(self, source: str) -> "Notebook":
        self.cells.append(new_markdown_cell(_clean(source)))
        return self

    def code(self, source: str) -> "Notebook":
        self.cells.append(new_code_cell(_clean(source)))
        return self

    def solution(self, grade_id: str, source: str) -> "Notebook":
        source = _clean(source)
        if "### BEGIN SOLUTION" not in source or "### END SOLUTION" not in source:
            raise ValueError(f"solution cell {grade_id!r} needs ### BEGIN SOLUTION / ### END SOLUTION markers")
        meta = _nbgrader(self._grade_id(grade_id), solution=True, grade=False, locked=False)
        self.cells.append(new_code_cell(source, metadata=meta))
        return self

    def check(self, grade_id: str, source: str, points: float = 1) -> "Notebook":
        meta = _nbgrader(self._grade_id(grade_id), solution=False, grade=True, locked=True, points=points)
        self.cells.append(new_code_cell(_clean(source), metadata=meta))
        return self

    def write(self, path: str | Path) -> Path:
        nb = new_notebook(cells=self.cells, metadata={
            "kernelspec": KERNELSPEC,
            "language_info": {"name": "python"},
        })
        nbformat.validate(nb)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        return path

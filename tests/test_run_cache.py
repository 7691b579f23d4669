"""The fast path of a training cell: lvmlib.runtime.run_cache keeps a finished run and loads it."""

import pytest
import torch
from torch import nn

from lvmlib import training
from lvmlib.runtime import RUN_CACHE_ENV, run_cache


class _AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        err = ((self.lin(x) - x) ** 2).sum(dim=1)  # (B,)
        return {"loss": err.mean(), "err": err}


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 4, generator=g), torch.randn(32, 4, generator=g)


def _train(**cache):
    torch.manual_seed(0)
    model = _AutoEncoder()
    x_train, x_val = _data()
    config = training.TrainConfig(lr=1e-2, batch_size=16, max_epochs=15, patience=None, progress=False)
    return model, training.train(model, x_train, x_val, config, **cache)


def test_without_the_variable_every_run_trains(monkeypatch):
    monkeypatch.delenv(RUN_CACHE_ENV, raising=False)
    assert run_cache("05_vae") == {}


def test_a_finished_run_is_saved_then_loaded_instead_of_trained(monkeypatch, tmp_path):
    monkeypatch.setenv(RUN_CACHE_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv("LVMLIB_SMOKE", "0")
    kwargs = run_cache("toy")
    assert kwargs["resume_from"] is None and kwargs["checkpoint"] == tmp_path / "runs" / "toy.pt"
    model, first = _train(**kwargs)
    assert first.epochs == 15 and (tmp_path / "runs" / "toy.pt").exists()

    again = run_cache("toy")
    assert again["resume_from"] == again["checkpoint"]
    calls = []
    original = _AutoEncoder.forward

    def counting(self, x):
        calls.append(self.training)
        return original(self, x)

    monkeypatch.setattr(_AutoEncoder, "forward", counting)
    loaded, second = _train(**again)
    assert not any(calls), "a finished run was trained again"
    assert second.history == first.history and second.best_epoch == first.best_epoch
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_smoke_runs_are_kept_apart(monkeypatch, tmp_path):
    monkeypatch.setenv(RUN_CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("LVMLIB_SMOKE", "1")
    assert run_cache("05_vae")["checkpoint"].name == "05_vae-smoke.pt"


@pytest.mark.parametrize("name", ["", "../escape", "a b", 3])
def test_a_name_that_is_not_a_file_name_is_refused(monkeypatch, name):
    monkeypatch.delenv(RUN_CACHE_ENV, raising=False)
    with pytest.raises(ValueError, match="name must be"):
        run_cache(name)


# --------------------------------------------------------------------------- the notebooks' training cells

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

import nbformat  # noqa: E402

SOLUTIONS = sorted((Path(__file__).resolve().parent.parent / "solutions").glob("*.ipynb"))
# cells that train and are not training cells, with the reason
NOT_TRAINING_CELLS = {
    ("06_the_vae_on_a_gpu.ipynb", "8873195a"): "times one epoch on each device: a cached run would show an old time",
}


def _is_train_call(node, trainers) -> bool:
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "train" and isinstance(func.value, ast.Name):
        return func.value.id == "training"
    return isinstance(func, ast.Name) and func.id in trainers


def _calls(tree, trainers, skip_defs: bool):
    """The calls in ``tree`` (outside function and class bodies when skip_defs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if skip_defs and node is not tree and isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call) and _is_train_call(node, trainers):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _training_in(nb):
    """(cell, trains, uses the run cache) for every code cell: a cell trains when it calls
    ``training.train`` or a function of the notebook that does, outside a definition."""
    trees = [(c, ast.parse(c.source)) for c in nb.cells if c.cell_type == "code"]
    trainers, cached = set(), set()
    for _ in range(3):  # functions that call functions that train
        for _, tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and any(True for _ in _calls(node, trainers, False)):
                    trainers.add(node.name)
                    if "run_cache(" in ast.unparse(node):
                        cached.add(node.name)
    for cell, tree in trees:
        calls = list(_calls(tree, trainers, True))
        uses_cache = bool(calls) and all(
            "run_cache(" in ast.unparse(call) or (isinstance(call.func, ast.Name) and call.func.id in cached)
            for call in calls)
        yield cell, bool(calls), uses_cache


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_every_cell_that_trains_is_a_training_cell_with_the_fast_path(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell, trains, uses_cache in _training_in(nb):
        tagged = "training" in cell.metadata.get("tags", [])
        where = f"{path.name} cell {cell.get('id')}"
        if (path.name, cell.get("id")) in NOT_TRAINING_CELLS:
            assert trains and not tagged, f"{where} is listed as a cell that trains without the tag"
            continue
        assert tagged == trains, f"{where}: {'trains without' if trains else 'has'} the tag 'training'"
        if trains:
            assert uses_cache, f"{where} trains without lvmlib.runtime.run_cache (the fast path)"
            assert "progress=False" not in cell.source, f"{where} turns its progress bar off"


def test_the_check_of_training_cells_sees_a_cell_that_trains_untagged():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def fit(m):\n    return training.train(m, x, None, cfg)"),
        nbformat.v4.new_code_cell("fit(model)", metadata={"tags": ["training"]}),
        nbformat.v4.new_code_cell("r = training.train(m, x, None, cfg, **lvmlib.runtime.run_cache('a'))"),
    ])
    found = [(trains, cached) for _, trains, cached in _training_in(nb)]
    assert found == [(False, False), (True, False), (True, True)]

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

"""lvmlib.runtime: seeding reproducibility, device choice, smoke mode."""

import random

import numpy as np
import pytest
import torch

import lvmlib
from lvmlib import runtime


def draw():
    return random.random(), np.random.rand(3).tolist(), torch.randn(3).tolist()


def test_seed_everything_reproduces_all_generators():
    lvmlib.seed_everything(123)
    first = draw()
    lvmlib.seed_everything(123)
    assert draw() == first
    lvmlib.seed_everything(124)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_seed_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="seed"):
        lvmlib.seed_everything(bad)


def test_device_choice():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert lvmlib.get_device("auto").type == expected
    assert lvmlib.get_device("cpu") == torch.device("cpu")
    assert lvmlib.get_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        lvmlib.get_device("gpu")
    with pytest.raises(TypeError, match="device must be"):
        lvmlib.get_device(0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            lvmlib.get_device("cuda")


def test_smoke_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv(runtime.SMOKE_ENV, "1")
    assert lvmlib.smoke_mode() and lvmlib.smoke(100, 2) == 2
    monkeypatch.setenv(runtime.SMOKE_ENV, "0")
    assert not lvmlib.smoke_mode() and lvmlib.smoke(100, 2) == 100
    monkeypatch.delenv(runtime.SMOKE_ENV)
    assert not lvmlib.smoke_mode()
    monkeypatch.setenv(runtime.SMOKE_ENV, "maybe")
    with pytest.raises(ValueError, match="LVMLIB_SMOKE"):
        lvmlib.smoke_mode()


def test_describe_environment_names_versions_and_device():
    text = runtime.describe_environment("cpu")
    assert torch.__version__ in text and "device       cpu" in text

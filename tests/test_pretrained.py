"""The pretrained models shipped in lvmlib/pretrained: checksums, refusal of altered files, offline loading."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from lvmlib import pretrained
from lvmlib.vae import VAE, VAEConfig

NAMES = ["mnist_vae", "mnist_vae_2d"]


def test_the_shipped_models_are_there():
    assert set(NAMES) <= set(pretrained.available())


@pytest.mark.parametrize("name", NAMES)
def test_recorded_checksum_matches_and_the_model_loads_in_eval_mode(name):
    record = pretrained.info(name)
    path = pretrained.FOLDER / record["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]
    assert path.stat().st_size < 4_000_000  # a few MB at most
    model = pretrained.load(name)
    assert isinstance(model, VAE) and not model.training
    assert model.config.D == 784 and model.config.likelihood == "bernoulli"
    # the recorded configuration is what the model has; fields added to VAEConfig since keep their defaults
    recorded = {k: v for k, v in record["model_config"].items() if k != "device"}
    assert {k: v for k, v in vars(model.config).items() if k in recorded} == recorded
    defaults = vars(VAEConfig(D=784, M=model.config.M))
    assert all(v == defaults[k] for k, v in vars(model.config).items() if k not in recorded and k != "device")
    x = torch.bernoulli(torch.full((16, 784), 0.2), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.isfinite(model(x)["elbo"]).all()
    # what was recorded beside it: the command, the data, the scores
    assert record["commands"][0].startswith("python -m lvmlib.training --dataset mnist")
    assert record["is_samples"] >= 1000 and record["is_images"] >= 1
    assert 0 < record["test_neg_log_px"] <= record["test_neg_elbo"]


@pytest.mark.parametrize("name", NAMES)
def test_loading_uses_weights_only_and_needs_no_network(name, monkeypatch):
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    def no_network(*args, **kwargs):
        raise AssertionError("loading a pretrained model must not touch the network")

    monkeypatch.setattr(torch, "load", spy)
    monkeypatch.setattr("socket.socket.connect", no_network)
    pretrained.load(name)
    assert seen == [True]
    # and the file itself is plain tensors and values
    raw = real_load(pretrained.FOLDER / f"{name}.pt", weights_only=True)
    assert set(raw) == {"format", "name", "model_config", "model_state"}


def _copy(name, tmp_path):
    for ext in (".pt", ".json"):
        shutil.copy(pretrained.FOLDER / f"{name}{ext}", tmp_path / f"{name}{ext}")
    return tmp_path / f"{name}.pt"


@pytest.mark.parametrize("name", NAMES)
def test_a_tampered_copy_is_refused(name, tmp_path):
    path = _copy(name, tmp_path)
    assert pretrained.load(name, folder=tmp_path) is not None  # the intact copy loads
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit inside the weights
    path.write_bytes(bytes(raw))
    with pytest.raises(pretrained.PretrainedChecksumError, match=r"does not match its recorded SHA-256"):
        pretrained.load(name, folder=tmp_path)


def test_a_changed_record_is_refused_too(tmp_path):
    _copy("mnist_vae", tmp_path)
    rec = json.loads((tmp_path / "mnist_vae.json").read_text())
    rec["sha256"] = "0" * 64
    (tmp_path / "mnist_vae.json").write_text(json.dumps(rec))
    with pytest.raises(pretrained.PretrainedChecksumError, match="recorded 0000"):
        pretrained.load("mnist_vae", folder=tmp_path)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match=r"name must be one of the pretrained models \['mnist_vae', 'mnist_vae_2d'"):
        pretrained.load("cifar_vae")

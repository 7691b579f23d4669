"""Bad input to the trainer, its checkpoints and its command line: each is refused with an error
that names the argument and what was expected; faults lose nothing learned and leave nothing corrupt."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lvmlib.training import (
    NonFiniteLossError,
    TrainConfig,
    evaluate,
    load_checkpoint,
    load_vae,
    save_checkpoint,
    train,
)
from lvmlib.training.checkpoints import CheckpointError
from lvmlib.vae import VAE

from training_helpers import one_thread, run_cli, tiny_vae  # noqa: F401  (one_thread: an autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


def quiet(**kw) -> TrainConfig:
    base = dict(progress=False, device="cpu", batch_size=16, max_epochs=3, patience=None, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def tiny_data(n: int = 32, d: int = 6, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, d)) > 0.5).astype(np.float32)


def finite_state(state) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


# --------------------------------------------------------------------------- TrainConfig


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(lr=-1.0), ValueError, r"TrainConfig\.lr must be a finite number > 0"),
        (dict(lr=float("inf")), ValueError, r"TrainConfig\.lr must be a finite number"),
        (dict(batch_size=True), ValueError, r"TrainConfig\.batch_size must be an integer >= 1"),
        (dict(batch_size="64"), ValueError, r"TrainConfig\.batch_size must be an integer >= 1"),
        (dict(max_epochs=1.5), ValueError, r"TrainConfig\.max_epochs must be an integer >= 1"),
        (dict(patience=0), ValueError, r"TrainConfig\.patience must be an integer >= 1 or None"),
        (dict(monitor=""), ValueError, r"TrainConfig\.monitor must be 'auto' or the name of an output term"),
        (dict(monitor_mode="down"), ValueError, r"TrainConfig\.monitor_mode must be 'min' or 'max'"),
        (dict(eval_batch_size=0), ValueError, r"TrainConfig\.eval_batch_size must be an integer >= 1 or None"),
        (dict(seed=2**40), ValueError, r"TrainConfig\.seed must be an integer between 0 and 2\*\*32 - 1"),
        (dict(device="gpu"), ValueError, r"TrainConfig\.device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        (dict(warmup_epochs=-1), ValueError, r"TrainConfig\.warmup_epochs must be an integer >= 0"),
        (dict(binarize="yes"), TypeError, r"TrainConfig\.binarize must be True or False"),
        (dict(bf16=1), TypeError, r"TrainConfig\.bf16 must be True or False"),
        (dict(compile_model=None), TypeError, r"TrainConfig\.compile_model must be True or False"),
        (dict(lr_factor=1.0), ValueError, r"TrainConfig\.lr_factor must be a finite number > 0.0 and < 1.0"),
        (dict(checkpoint_path=5), TypeError, r"TrainConfig\.checkpoint_path must be a path or None"),
        (dict(optimizer=None), ValueError, r"TrainConfig\.optimizer must be one of"),
    ],
)
def test_train_config_refuses(kw, exc, match):
    with pytest.raises(exc, match=match):
        TrainConfig(**kw)


def test_numpy_numbers_are_accepted_and_become_builtins():
    cfg = quiet(batch_size=np.int64(8), eval_batch_size=np.int32(5), lr=np.float32(1e-2), max_epochs=np.int16(2),
                progress=np.False_, optimizer="Adam")
    assert type(cfg.batch_size) is int and type(cfg.eval_batch_size) is int and type(cfg.lr) is float
    assert cfg.progress is False and cfg.optimizer == "adam"
    res = train(tiny_vae(), tiny_data(), tiny_data(8, seed=1), cfg)  # eval_batch_size reaches evaluate as an int
    assert res.epochs == 2
    json.dumps(res.to_dict())


# --------------------------------------------------------------------------- data


class NoKLWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return {"loss": self.w * x.float().mean()}


def _nan_data():
    x = tiny_data()
    x[3, 2] = np.nan
    return x


def _levels_with_fraction():
    x = np.random.default_rng(0).integers(0, 5, size=(32, 6)).astype(np.float32)
    x[0, 0] = 1.5
    return x


@pytest.mark.parametrize(
    "make_model, train_data, val_data, cfg_kw, exc, match",
    [
        (tiny_vae, _nan_data, None, {}, ValueError, r"train_data must be finite, got 1 NaN"),
        (tiny_vae, tiny_data, lambda: np.zeros((8, 5), np.float32), {}, ValueError,
         r"val_data must have shape \(N, D=6\), got \(8, 5\)"),
        (tiny_vae, lambda: np.array([["a"] * 6] * 4), None, {}, TypeError,
         r"train_data must hold numbers \(bool, integer or float\), got a numpy array of dtype <U1"),
        (tiny_vae, lambda: [[0.0] * 6] * 4, None, {}, TypeError,
         r"train_data must be a torch\.Tensor or numpy array"),
        (tiny_vae, lambda: tiny_data() * 3, None, {}, ValueError, r"train_data must lie in \[0, 1\]"),
        (lambda: tiny_vae(likelihood="categorical", n_levels=5), _levels_with_fraction, None, {}, ValueError,
         r"train_data must hold integer levels 0\.\.4"),
        (tiny_vae, lambda: torch.zeros(4, 6, dtype=torch.complex64), None, {}, TypeError,
         r"train_data must hold real numbers"),
        (tiny_vae, lambda: np.zeros((4, 6, 1), np.float32), None, {}, ValueError,
         r"train_data must have shape \(N, D=6\), got \(4, 6, 1\)"),
        (NoKLWeight, lambda: (np.zeros((4, 2)), np.zeros((3, 2))), None, {}, ValueError,
         r"train_data: all parts must have the same number of rows, got \[4, 3\]"),
        (lambda: tiny_vae(likelihood="categorical", n_levels=5),
         lambda: np.random.default_rng(0).integers(0, 5, size=(32, 6)), None, dict(binarize=True), ValueError,
         r"TrainConfig\.binarize needs train_data as floats in \[0, 1\]"),
        (lambda: tiny_vae(likelihood="gaussian"), lambda: tiny_data() * 3, None, dict(binarize=True), ValueError,
         r"TrainConfig\.binarize needs train_data in \[0, 1\].*got values in \[0, 3\]"),
        (NoKLWeight, tiny_data, None, dict(warmup_epochs=3), TypeError,
         r"TrainConfig\.warmup_epochs=3 needs a model with a kl_weight attribute"),
        (tiny_vae, lambda: np.zeros((0, 6), np.float32), None, {}, ValueError, r"train_data is empty \(0 rows\)"),
    ],
)
def test_train_refuses_bad_data(make_model, train_data, val_data, cfg_kw, exc, match):
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(exc, match=match):
        train(model, train_data(), val_data() if val_data else None, quiet(**cfg_kw))
    for k, v in model.state_dict().items():  # refused before any step
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(callbacks=[5]), TypeError, r"callbacks must be callables taking an EpochInfo, got 5"),
        (dict(config={"lr": 1e-3}), TypeError, r"config must be a TrainConfig, got dict"),
    ],
)
def test_train_refuses_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        train(tiny_vae(), tiny_data(), **kwargs)


def test_evaluate_refuses_a_bad_batch_size_and_accepts_numpy_ints():
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        evaluate(tiny_vae(), tiny_data(), batch_size=0)
    assert "elbo" in evaluate(tiny_vae(), tiny_data(), batch_size=np.int64(7))


# --------------------------------------------------------------------------- checkpoint paths


def test_a_checkpoint_path_under_a_file_fails_before_the_first_epoch(tmp_path):
    (tmp_path / "afile").write_text("x")
    epochs = []
    with pytest.raises(NotADirectoryError, match=r"cannot write the checkpoint .*afile' is a file, not a folder"):
        train(tiny_vae(), tiny_data(), None, quiet(), checkpoint=tmp_path / "afile" / "sub" / "ckpt.pt",
              callbacks=[lambda info: epochs.append(info.epoch)])
    assert epochs == []


def test_a_checkpoint_path_naming_a_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"the checkpoint path must name a file, but .* is a folder"):
        train(tiny_vae(), tiny_data(), None, quiet(), checkpoint=tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions that bind this user")
def test_an_unwritable_checkpoint_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=r"the folder .*locked' is not writable"):
            train(tiny_vae(), tiny_data(), None, quiet(), checkpoint=locked / "ckpt.pt")
    finally:
        locked.chmod(0o700)


# --------------------------------------------------------------------------- unreadable checkpoints


@pytest.fixture
def saved_run(tmp_path):
    path = tmp_path / "ckpt.pt"
    model = tiny_vae(activation="tanh")
    train(model, tiny_data(), tiny_data(8, seed=1), quiet(max_epochs=2), checkpoint=path)
    return path, model


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _pickled_object(path: Path) -> None:
    torch.save({"model_state": {}, "thing": np.random.default_rng(0)}, path)


def _flipped_tensor_byte(path: Path) -> None:
    # flip one byte inside the stored weights of the encoder's first layer
    w = load_checkpoint(path)["model_state"]["encoder.net.0.weight"]
    raw = path.read_bytes()
    at = raw.find(w.numpy().tobytes())
    assert at > 0
    flipped = bytearray(raw)
    flipped[at + 5] ^= 0xFF
    path.write_bytes(bytes(flipped))


@pytest.mark.parametrize(
    "damage, match",
    [
        (_empty, r"the checkpoint .* is empty \(0 bytes\)"),
        (_truncated, r"cannot read the checkpoint .*: it is truncated, corrupted or not a checkpoint file"),
        (_random_bytes, r"cannot read the checkpoint .* \(4096 bytes\): it is truncated, corrupted or not a checkpoint"),
        (_pickled_object, r"holds Python objects other than tensors and plain values, which lvmlib refuses"),
        (_flipped_tensor_byte, r"is corrupted: its content does not match the checksum stored when it was saved"),
    ],
)
def test_damaged_checkpoints_are_refused_clearly(saved_run, damage, match):
    path, _ = saved_run
    damage(path)
    for load in (load_checkpoint, load_vae):
        with pytest.raises(CheckpointError, match=match) as info:
            load(path)
        message = str(info.value)
        assert "weights_only=False" not in message and "weights_only" not in message.replace("weights only", "")
        assert info.value.__cause__ is None  # no torch error (and its advice) chained below
        assert info.value.__context__ is None or info.value.__suppress_context__
    with pytest.raises(CheckpointError, match=match):
        train(tiny_vae(activation="tanh"), tiny_data(), None, quiet(), resume_from=path)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"the checkpoint path must name a file, but .* is a folder"):
        load_checkpoint(tmp_path)


# --------------------------------------------------------------------------- resume mismatches


@pytest.mark.parametrize(
    "other, match",
    [
        (lambda: tiny_vae(activation="relu"), r"it was trained with a model of activation='tanh' \(the model has 'relu'\)"),
        (lambda: tiny_vae(activation="tanh", M=3), r"it was trained with a model of M=2 \(the model has 3\)"),
        (lambda: tiny_vae(activation="tanh", likelihood="gaussian"),
         r"likelihood='bernoulli' \(the model has 'gaussian'\)"),
        (NoKLWeight, r"it was saved from a VAE, the model is a NoKLWeight"),
    ],
)
def test_resume_into_another_model_is_refused(saved_run, other, match):
    path, _ = saved_run
    model = other()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = tiny_data() if isinstance(model, VAE) else tiny_data()[:, :1]
    with pytest.raises(ValueError, match=match):
        train(model, data, None, quiet(max_epochs=4), resume_from=path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_resume_with_another_warmup_is_refused(saved_run):
    path, _ = saved_run
    model = tiny_vae(activation="tanh")
    model.kl_weight = 1.0
    with pytest.raises(ValueError, match=r"it was trained with warmup_epochs=0, the config asks for warmup_epochs=2"):
        train(model, tiny_data(), None, quiet(max_epochs=4, warmup_epochs=2), resume_from=path)


def test_load_vae_refuses_weights_that_do_not_fit_the_config(tmp_path):
    path = tmp_path / "bad.pt"
    cfg = dict(D=6, M=2, H=8, n_hidden_layers=1, likelihood="bernoulli", device="cpu")
    state = tiny_vae(H=9).state_dict()
    save_checkpoint(path, {"model_state": state, "model_config": cfg})
    with pytest.raises(CheckpointError, match=r"the weights in .* do not fit the VAE its model_config describes"):
        load_vae(path)


# --------------------------------------------------------------------------- faults


class _InfGrad(torch.autograd.Function):
    """Identity forward (a finite loss), infinite gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * float("inf")


class ExplodesAt(nn.Module):
    """loss = (w - 1)^2, except at training call ``bad``: a finite loss whose gradient is infinite,
    so that Adam's step makes w NaN while every loss stays finite."""

    def __init__(self, bad: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.bad, self.calls = bad, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.bad:
                return {"loss": _InfGrad.apply(self.w) * 0.0}
        return {"loss": (self.w - 1.0) ** 2 + 0.0 * x.sum()}


def test_nan_weights_from_a_finite_loss_never_become_the_best(tmp_path):
    # 2 batches per epoch; the 4th call (the last step of epoch 2) makes w NaN with a loss of 0,
    # the lowest of the run: without validation data that epoch would look best.
    path = tmp_path / "ckpt.pt"
    model = ExplodesAt(bad=4)
    with pytest.raises(NonFiniteLossError, match=r"the weights became NaN or infinite during epoch 2 while every loss was finite"):
        train(model, torch.ones(8, 1), None, quiet(batch_size=4, max_epochs=5, lr=0.1), checkpoint=path)
    assert torch.isfinite(model.w) and model.w.item() > 0  # epoch 1's weights are back
    ck = load_checkpoint(path)
    assert ck["epoch"] == 1 and ck["best_epoch"] == 1
    assert finite_state(ck["model_state"]) and finite_state(ck["best_state"])
    assert torch.equal(ck["best_state"]["w"], model.w.detach())


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_tmp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    model = tiny_vae()
    real_save = torch.save
    calls = {"n": 0}

    def save_then_fail(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] >= 2:  # epoch 2's save: half a file, then the disk is full
            f.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(OSError, match=r"cannot write the checkpoint .*ckpt\.pt': No space left on device"):
        train(model, tiny_data(), tiny_data(8, seed=1), quiet(max_epochs=4), checkpoint=path)
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.tmp"))
    ck = load_checkpoint(path)  # epoch 1's checkpoint, intact (its checksum holds)
    assert ck["epoch"] == 1 and ck["history"]["epoch"] == [1]
    # the model holds the best weights of the two epochs it completed, as a 2-epoch run does
    ref = tiny_vae()
    train(ref, tiny_data(), tiny_data(8, seed=1), quiet(max_epochs=2))
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k


def test_an_interrupt_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    real_save = torch.save
    calls = {"n": 0}

    def interrupted_save(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"part")
            raise KeyboardInterrupt
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", interrupted_save)
    res = train(tiny_vae(), tiny_data(), tiny_data(8, seed=1), quiet(max_epochs=4), checkpoint=path)
    monkeypatch.undo()
    assert res.interrupted and not list(tmp_path.glob("*.tmp"))
    assert load_checkpoint(path)["epoch"] == 2  # the pending epoch was written once the save could run


def test_on_a_gpu_the_loss_is_checked_once_per_epoch_and_still_names_the_batch(tmp_path, monkeypatch):
    import lvmlib.training.loop as loop

    class NaNAt(nn.Module):
        def __init__(self, bad):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))
            self.bad, self.calls = bad, 0

        def forward(self, x):
            if self.training:
                self.calls += 1
                if self.calls >= self.bad:
                    return {"loss": self.w * float("nan")}
            return {"loss": (self.w - 2.0) ** 2 + 0.0 * x.sum()}

    monkeypatch.setattr(loop, "_checks_each_step", lambda device: False)  # the GPU's way, on the CPU
    path = tmp_path / "ckpt.pt"
    model = NaNAt(bad=5)  # 2 batches per epoch: epoch 3, batch 1, and every step after it
    with pytest.raises(NonFiniteLossError, match=r"the loss is nan at epoch 3, batch 1/2"):
        train(model, torch.ones(8, 1), torch.ones(2, 1), quiet(batch_size=4, max_epochs=5, lr=0.1), checkpoint=path)
    ck = load_checkpoint(path)
    assert ck["epoch"] == 2 and finite_state(ck["model_state"]) and finite_state(ck["best_state"])
    assert torch.isfinite(model.w) and torch.equal(model.w.detach(), ck["best_state"]["w"])


# --------------------------------------------------------------------------- command line



@pytest.mark.parametrize(
    "extra, match",
    [
        (["--binarize", "dynamic", "--likelihood", "categorical"],
         r"--binarize dynamic needs --likelihood bernoulli, got --likelihood categorical"),
        (["--ema-decay", "1.5"], r"--ema-decay must lie strictly between 0 and 1, got 1\.5"),
        (["--beta", "-1"], r"--beta must be a finite number >= 0, got -1"),
        (["--beta", "nan"], r"--beta must be a finite number >= 0, got nan"),
        (["--warmup", "-1"], r"argument --warmup: expected an integer >= 0, got '-1'"),
        (["--eval-subset", "0"], r"argument --eval-subset: expected a positive integer, got '0'"),
        (["--device", "gpu"], r"--device: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
        (["--resume"], r"--resume: there is no checkpoint at"),
    ],
)
def test_cli_refuses_bad_options(tmp_path, capsys, extra, match):
    code, err = run_cli(["--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress", *extra], capsys)
    assert code == 2
    assert re.search(match, err), err


def test_cli_out_naming_a_file_or_under_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, err = run_cli(["--out", str(tmp_path / "f")], capsys)
    assert code == 2 and "--out must name a folder" in err and "is a file" in err
    code, err = run_cli(["--out", str(tmp_path / "f" / "run")], capsys)
    assert code == 2 and "cannot be created" in err and "is a file, not a folder" in err


def test_cli_resume_from_a_corrupted_checkpoint_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(np.random.default_rng(1).bytes(2000))
    code, err = run_cli(["--out", str(out), "--resume", "--epochs", "1", "--no-progress", "--device", "cpu",
                      "--latent", "2", "--hidden", "8", "--layers", "1"], capsys)
    assert code == 1
    assert "error: cannot read the checkpoint" in err and "weights_only" not in err and "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_ctrl_c_exits_130_with_the_best_model_saved(tmp_path, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lvmlib.training", "--dataset", "digits", "--latent", "2", "--hidden", "16",
           "--layers", "1", "--epochs", "100000", "--patience", "100000", "--batch-size", "500",
           "--device", "cpu", "--threads", "1", "--no-progress", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # a fresh session with the default SIGINT disposition, as a terminal gives it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (out / "checkpoint.pt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
        time.sleep(0.5)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    ck = load_checkpoint(out / "checkpoint.pt")  # whole, checksum verified
    assert ck["epoch"] >= 1 and finite_state(ck["best_state"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs"] == ck["epoch"]

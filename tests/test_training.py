"""Tests of lvmlib.training: the loop, early stopping, history, checkpoints, resume, failures, CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lvmlib.runtime import get_device
from lvmlib.training import (
    NonFiniteLossError,
    TrainConfig,
    TrainResult,
    evaluate,
    load_checkpoint,
    load_vae,
    main,
    save_checkpoint,
    train,
)
from lvmlib.vae import VAE

from training_helpers import one_thread, tiny_vae  # noqa: F401  (one_thread: an autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


def quiet(**kw) -> TrainConfig:
    base = dict(progress=False, device="cpu", batch_size=16, max_epochs=5, patience=None, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def tiny_data(n: int = 40, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, d)) > 0.5).astype(np.float32)


class Scripted(nn.Module):
    """A model whose validation losses follow a given script and whose weight moves every step.

    Training: loss = w (so SGD lowers w by lr each step, momentum aside); evaluation: the next
    value of ``val_script``. Every example also reports its own value as a per-example term.
    """

    def __init__(self, val_script):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.val_script = list(val_script)
        self.n_eval = 0

    def forward(self, x):
        if self.training:
            return {"loss": self.w * 1.0, "x": x[:, 0].float()}
        v = self.val_script[min(self.n_eval, len(self.val_script) - 1)]
        self.n_eval += 1
        return {"loss": torch.tensor(float(v)), "x": x[:, 0].float(), "gain": torch.tensor(-2.0 * v)}


class Faulty(nn.Module):
    """Wraps a model; the ``bad_call``-th training call gives a NaN loss or raises ``exc``."""

    def __init__(self, inner, bad_call=None, exc=None):
        super().__init__()
        self.inner = inner
        self.bad_call, self.exc, self.calls = bad_call, exc, 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls == self.bad_call:
                if self.exc is not None:
                    raise self.exc
                out = dict(out)
                out["loss"] = out["loss"] * float("nan")
        return out


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field, value",
    [
        ("optimizer", "rmsprop"),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("max_epochs", 0),
        ("patience", 0),
        ("weight_decay", -1.0),
        ("grad_clip", 0.0),
        ("lr_schedule", "step"),
        ("ema_decay", 1.0),
        ("eval_every", 0),
        ("seed", -1),
        ("checkpoint_every", 0),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_config_type_errors():
    with pytest.raises(TypeError, match="progress"):
        TrainConfig(progress="yes")
    with pytest.raises(TypeError, match="device"):
        TrainConfig(device=0)


def test_train_rejects_bad_inputs():
    model = tiny_vae()
    with pytest.raises(TypeError, match="model"):
        train("not a model", tiny_data(), None, quiet())
    with pytest.raises(TypeError, match="config"):
        train(model, tiny_data(), None, {"lr": 1e-3})
    with pytest.raises(TypeError, match="train_data"):
        train(model, [[0.0] * 6], None, quiet())
    with pytest.raises(ValueError, match="train_data"):
        train(model, np.zeros((0, 6), np.float32), None, quiet())
    with pytest.raises(TypeError, match="loss"):
        train(nn.Linear(6, 1), tiny_data(), None, quiet())


# --------------------------------------------------------------------------- the loop


def test_epoch_averages_are_weighted_by_batch_size():
    # N = 10 with batch 4 gives batches of 4, 4, 2: the epoch average must still be the data mean.
    x_tr = torch.arange(10.0).reshape(10, 1) ** 2
    x_va = torch.tensor([[1.0], [2.0], [6.0]])
    model = Scripted([3.0] * 10)
    res = train(model, x_tr, x_va, quiet(batch_size=4, max_epochs=2, optimizer="sgd", lr=0.1))
    assert res.history["train"]["x"] == pytest.approx([x_tr.mean().item()] * 2)
    assert res.history["val"]["x"] == pytest.approx([3.0, 3.0])
    assert res.history["val"]["loss"] == pytest.approx([3.0, 3.0])


def test_each_epoch_visits_every_example_once_in_a_seeded_order():
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            if self.training:
                seen.append(x[:, 0].long().tolist())
            return {"loss": self.w * 1.0}

    x = torch.arange(12.0).reshape(12, 1)
    train(Recorder(), x, None, quiet(batch_size=5, max_epochs=3, optimizer="sgd"))
    epochs = [sum(seen[i : i + 3], []) for i in (0, 3, 6)]  # 3 batches (5, 5, 2) per epoch
    assert [len(b) for b in seen] == [5, 5, 2] * 3
    for order in epochs:
        assert sorted(order) == list(range(12))
    assert epochs[0] != epochs[1]  # reshuffled each epoch
    first = list(epochs)
    seen.clear()
    train(Recorder(), x, None, quiet(batch_size=5, max_epochs=3, optimizer="sgd"))
    assert [sum(seen[i : i + 3], []) for i in (0, 3, 6)] == first  # same seed, same order


def test_early_stopping_stops_after_patience_and_restores_best_weights():
    # validation loss improves until epoch 4 (value 1.0), then never again
    script = [5.0, 4.0, 3.0, 1.0, 2.0, 1.5, 1.2, 1.1, 0.5, 0.1]
    weights = {}

    def record(info):
        weights[info.epoch] = info.model.w.item()

    model = Scripted(script)
    res = train(model, torch.ones(8, 1), torch.ones(4, 1), quiet(patience=3, max_epochs=50, optimizer="sgd", lr=0.1),
                callbacks=[record])
    assert res.best_epoch == 4
    assert res.best_val_loss == 1.0
    assert res.epochs == 7 and res.stopped_early
    assert res.history["epoch"] == [1, 2, 3, 4, 5, 6, 7]
    assert res.history["val"]["loss"] == pytest.approx(script[:7])
    assert len(set(weights.values())) == 7  # the weight moved every epoch
    assert model.w.item() == weights[4]  # the best epoch's weight is back
    assert 0 < res.time_to_best <= res.total_time


def test_monitor_another_term_in_either_direction():
    script = [5.0, 4.0, 3.0, 1.0, 2.0, 1.5, 1.2, 1.1, 0.5, 0.1]
    cfg = quiet(patience=3, max_epochs=50, optimizer="sgd", monitor="gain", monitor_mode="max")
    res = train(Scripted(script), torch.ones(8, 1), torch.ones(4, 1), cfg)
    assert res.best_epoch == 4 and res.epochs == 7
    assert res.best_val_loss == pytest.approx(2.0)  # the score is -gain = 2 * loss (lower is better)
    with pytest.raises(KeyError, match="nope"):
        train(Scripted(script), torch.ones(8, 1), torch.ones(4, 1), quiet(monitor="nope"))
    with pytest.raises(ValueError, match="monitor_mode"):
        TrainConfig(monitor_mode="up")


def test_min_delta_and_no_validation():
    model = Scripted([5.0, 4.99, 4.98, 4.97, 4.96])
    res = train(model, torch.ones(8, 1), torch.ones(4, 1), quiet(patience=2, min_delta=0.1, max_epochs=20, optimizer="sgd"))
    assert res.best_epoch == 1 and res.epochs == 3
    # without validation data, the best epoch is the one with the lowest training loss
    model = Scripted([0.0])
    res = train(model, torch.ones(8, 1), None, quiet(max_epochs=4, optimizer="sgd", lr=0.1))
    assert res.best_epoch == 4 and res.history["val"] == {} and not res.stopped_early


def test_vae_history_keys_and_lengths():
    model = tiny_vae()
    res = train(model, tiny_data(), tiny_data(20, seed=1), quiet(max_epochs=4, eval_every=2))
    assert isinstance(res, TrainResult)
    assert set(res.history["train"]) == {"loss", "elbo", "re", "kl"}
    assert set(res.history["val"]) == {"loss", "elbo", "re", "kl"}
    assert all(len(v) == 4 for v in res.history["train"].values())
    assert res.history["val_epoch"] == [2, 4]
    assert all(len(v) == 2 for v in res.history["val"].values())
    assert len(res.history["lr"]) == len(res.history["time"]) == 4
    for split in ("train", "val"):  # elbo = re - kl and loss = -elbo (beta = 1), epoch by epoch
        h = res.history[split]
        assert np.allclose(np.array(h["elbo"]), np.array(h["re"]) - np.array(h["kl"]), atol=1e-4)
        assert np.allclose(h["loss"], -np.array(h["elbo"]), atol=1e-4)
    json.dumps(res.to_dict())  # JSON-ready


def test_training_lowers_the_loss_and_evaluate_matches_a_manual_average():
    x = tiny_data(64)
    model = tiny_vae()
    res = train(model, x, x[:32], quiet(max_epochs=30, lr=1e-2, batch_size=32))
    assert res.history["train"]["loss"][-1] < res.history["train"]["loss"][0] - 0.3
    torch.manual_seed(3)
    ev = evaluate(model, x, batch_size=7)  # uneven batches
    torch.manual_seed(3)
    model.eval()
    with torch.no_grad():
        ref = torch.cat([model(torch.as_tensor(x[s : s + 7]))["elbo"] for s in range(0, 64, 7)]).mean().item()
    assert ev["elbo"] == pytest.approx(ref, rel=1e-5)


def test_ema_weights_are_the_running_average():
    # loss = w with SGD (momentum 0.9) moves w every step; with ema the restored model holds
    # the averaged weight, which lags behind the live one.
    model = Scripted([1.0])
    res = train(model, torch.ones(4, 1), None, quiet(max_epochs=6, batch_size=4, optimizer="sgd", lr=0.1, ema_decay=0.5))
    live = Scripted([1.0])
    train(live, torch.ones(4, 1), None, quiet(max_epochs=6, batch_size=4, optimizer="sgd", lr=0.1))
    # replay the SGD trajectory to get the reference average
    w, v, ema = 0.0, 0.0, 0.0
    for t in range(6):
        v = 0.9 * v + 1.0 if t else 1.0
        w -= 0.1 * v
        d = min(0.5, (1 + t) / (10 + t))
        ema = d * ema + (1 - d) * w
    assert live.w.item() == pytest.approx(w, abs=1e-6)
    assert model.w.item() == pytest.approx(ema, abs=1e-6)
    assert res.best_epoch == 6


def test_grad_clip_bounds_the_step_and_cosine_schedule_follows_its_formula():
    class Steep(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return {"loss": 1000.0 * self.w}

    model = Steep()
    train(model, torch.ones(4, 1), None, quiet(max_epochs=1, batch_size=4, optimizer="sgd", lr=0.1, grad_clip=2.0))
    assert model.w.item() == pytest.approx(-0.2)  # gradient 1000 clipped to norm 2, one SGD step of lr 0.1
    model = Steep()
    train(model, torch.ones(4, 1), None, quiet(max_epochs=1, batch_size=4, optimizer="sgd", lr=0.1))
    assert model.w.item() == pytest.approx(-100.0)

    res = train(Steep(), torch.ones(4, 1), None,
                quiet(max_epochs=6, batch_size=4, lr=0.1, lr_schedule="cosine", lr_min_factor=0.1))
    lr_min, T = 0.01, 6
    expected = [lr_min + (0.1 - lr_min) * (1 + math.cos(math.pi * e / T)) / 2 for e in range(T)]
    assert res.history["lr"] == pytest.approx(expected)


def test_device_auto_trains_on_the_auto_device():
    model = tiny_vae()
    res = train(model, tiny_data(), tiny_data(10), quiet(device="auto", max_epochs=1))
    assert next(model.parameters()).device.type == get_device("auto").type
    assert res.epochs == 1


def test_progress_bar_runs(capsys):
    train(tiny_vae(), tiny_data(), tiny_data(10), quiet(max_epochs=2, progress=True))
    err = capsys.readouterr().err
    assert "2/2" in err


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    path = tmp_path / "run" / "ckpt.pt"
    model = tiny_vae(likelihood="categorical", n_levels=5)
    x = np.random.default_rng(0).integers(0, 5, size=(40, 6))
    res = train(model, x, x[:10], quiet(max_epochs=3), checkpoint=path)
    assert res.checkpoint_path == str(path) and path.is_file()
    raw = torch.load(path, weights_only=True)  # plain containers and tensors only
    assert raw["epoch"] == 3 and raw["best_epoch"] == res.best_epoch
    assert raw["model_config"]["likelihood"] == "categorical" and raw["model_config"]["n_levels"] == 5
    assert raw["train_config"]["max_epochs"] == 3
    assert raw["history"]["epoch"] == [1, 2, 3]
    ck = load_checkpoint(path)
    assert set(ck["best_state"]) == set(model.state_dict())
    rebuilt = load_vae(path)
    model.eval()
    xt = torch.as_tensor(x[:8])
    for a, b in ((model, rebuilt),):
        torch.manual_seed(1)
        out_a = a(xt)
        torch.manual_seed(1)
        out_b = b(xt)
        assert torch.equal(out_a["elbo"], out_b["elbo"])
    assert torch.equal(model.reconstruct(xt), rebuilt.reconstruct(xt))


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="model_state"):
        load_checkpoint(tmp_path / "other.pt")
    save_checkpoint(tmp_path / "nocfg.pt", {"model_state": {}, "model_config": None})
    with pytest.raises(ValueError, match="model_config"):
        load_vae(tmp_path / "nocfg.pt")


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("schedule", ["constant", "plateau"])
def test_resume_ends_exactly_like_an_uninterrupted_run(tmp_path, schedule):
    x, xv = tiny_data(48), tiny_data(16, seed=1)
    kw = dict(max_epochs=6, lr=5e-3, lr_schedule=schedule, lr_patience=1, ema_decay=0.9)
    full = tiny_vae()
    res_full = train(full, x, xv, quiet(**kw))

    # the same run, stopped by an exception after its 3rd epoch, then resumed
    path = tmp_path / "ckpt.pt"

    def stop_after_3(info):
        if info.epoch == 3:
            raise RuntimeError("power cut")

    part = tiny_vae()
    with pytest.raises(RuntimeError, match="power cut"):
        train(part, x, xv, quiet(**kw), checkpoint=path, callbacks=[stop_after_3])
    assert load_checkpoint(path)["epoch"] == 2  # the last completed epoch before the failure
    resumed = tiny_vae(seed=123)  # different init: everything must come from the checkpoint
    res = train(resumed, x, xv, quiet(**kw), checkpoint=path, resume_from=path)
    assert res.history["epoch"] == list(range(1, 7))
    assert res.history["train"]["loss"] == res_full.history["train"]["loss"]
    assert res.history["val"]["loss"] == res_full.history["val"]["loss"]
    assert res.history["lr"] == res_full.history["lr"]
    assert res.best_epoch == res_full.best_epoch
    for k, v in _params(full).items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert load_checkpoint(path)["epoch"] == 6


def test_keyboard_interrupt_mid_epoch_returns_the_best_model_and_saves(tmp_path):
    x, xv = tiny_data(48), tiny_data(16, seed=1)
    path = tmp_path / "ckpt.pt"
    # 3 batches per epoch: the 11th call is inside epoch 4
    model = Faulty(tiny_vae(), bad_call=11, exc=KeyboardInterrupt())
    res = train(model, x, xv, quiet(max_epochs=10), checkpoint=path)
    assert res.interrupted and not res.stopped_early
    assert res.epochs == 3 and res.history["epoch"] == [1, 2, 3]
    ck = load_checkpoint(path)
    assert ck["epoch"] == 3
    best = ck["best_state"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, best[k]), k  # the best weights are in the model
    # and the run can be continued
    res2 = train(Faulty(tiny_vae(seed=5)), x, xv, quiet(max_epochs=5), resume_from=path)
    assert res2.history["epoch"] == [1, 2, 3, 4, 5] and not res2.interrupted


def test_nan_loss_raises_naming_epoch_and_batch_and_keeps_the_last_good_state(tmp_path):
    x, xv = tiny_data(48), tiny_data(16, seed=1)
    path = tmp_path / "ckpt.pt"
    model = Faulty(tiny_vae(), bad_call=8)  # epoch 3, batch 2 (3 batches per epoch)
    with pytest.raises(NonFiniteLossError, match=r"epoch 3, batch 2/3"):
        train(model, x, xv, quiet(max_epochs=10), checkpoint=path)
    ck = load_checkpoint(path)
    assert ck["epoch"] == 2 and ck["history"]["epoch"] == [1, 2]
    assert all(torch.isfinite(v).all() for v in ck["model_state"].values())
    for k, v in model.state_dict().items():  # the model holds the best (finite) weights again
        assert torch.equal(v, ck["best_state"][k]), k
    # the NaN check also works without a checkpoint file
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 1/3"):
        train(Faulty(tiny_vae(), bad_call=1), x, xv, quiet())


def test_resume_refuses_a_missing_file_or_another_optimizer(tmp_path):
    with pytest.raises(FileNotFoundError):
        train(tiny_vae(), tiny_data(), None, quiet(), resume_from=tmp_path / "nope.pt")
    path = tmp_path / "ckpt.pt"
    train(tiny_vae(), tiny_data(), None, quiet(max_epochs=1), checkpoint=path)
    with pytest.raises(ValueError, match="optimizer='adam'"):
        train(tiny_vae(), tiny_data(), None, quiet(optimizer="adamax"), resume_from=path)
    with pytest.raises(ValueError, match="ema_decay"):
        train(tiny_vae(), tiny_data(), None, quiet(ema_decay=0.9), resume_from=path)


# --------------------------------------------------------------------------- command line


def test_cli_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "--likelihood" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--latent", "0", "--out", "x"])
    assert e.value.code == 2
    assert "--latent" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--dataset", "cifar", "--out", "x"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lvmlib.training", "--dataset", "digits", "--latent", "2", "--hidden", "16",
           "--layers", "1", "--likelihood", "categorical", "--epochs", "2", "--patience", "5",
           "--batch-size", "256", "--eval-samples", "3", "--device", "cpu", "--no-progress", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "test -ELBO" in proc.stdout and "-log p(x)" in proc.stdout
    hist = json.loads((out / "history.json").read_text())
    assert hist["epochs"] == 2 and len(hist["history"]["train"]["loss"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert math.isfinite(summary["test_neg_elbo"]) and math.isfinite(summary["test_neg_log_px"])
    # -log p(x) by importance sampling is at most the single-sample bound on average (loosely)
    assert summary["test_neg_log_px"] < summary["test_neg_elbo"] + 5
    model = load_vae(out / "checkpoint.pt")
    assert model.config.M == 2 and model.config.likelihood == "categorical"


# --------------------------------------------------------------------------- KL warm-up, monitor, binarization, speed options


class Weighted(nn.Module):
    """A model with a kl_weight: training loss w^2 + kl_weight; reports its kl_weight per example."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.kl_weight = 1.0

    def forward(self, x):
        n = x.shape[0]
        return {"loss": self.w**2 + self.kl_weight, "kw": torch.full((n,), float(self.kl_weight))}


def test_warmup_sets_kl_weight_per_epoch_and_resets_it(tmp_path):
    model = Weighted()
    res = train(model, torch.ones(8, 1), None, quiet(max_epochs=6, warmup_epochs=4, optimizer="sgd"))
    expected = [min(1.0, e / 4) for e in range(1, 7)]
    assert res.history["kl_weight"] == pytest.approx(expected)
    assert res.history["train"]["kw"] == pytest.approx(expected)  # what the model saw in each epoch
    assert model.kl_weight == 1.0
    # resumed half way, the weights follow the same schedule (derived from the epoch)
    path = tmp_path / "ckpt.pt"
    train(Weighted(), torch.ones(8, 1), None, quiet(max_epochs=3, warmup_epochs=4, optimizer="sgd"), checkpoint=path)
    res2 = train(Weighted(), torch.ones(8, 1), None, quiet(max_epochs=6, warmup_epochs=4, optimizer="sgd"),
                 resume_from=path)
    assert res2.history["kl_weight"] == pytest.approx(expected)


def test_monitor_auto_watches_the_elbo_not_a_weighted_loss():
    # the validation loss keeps falling, the ELBO is best at epoch 2: "auto" must pick epoch 2
    class Beta(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))
            self.n_eval = 0

        def forward(self, x):
            if self.training:
                return {"loss": self.w * 1.0, "elbo": -torch.ones(x.shape[0])}
            self.n_eval += 1
            elbo = [-5.0, -1.0, -2.0, -3.0, -4.0][self.n_eval - 1]
            return {"loss": torch.tensor(10.0 - self.n_eval), "elbo": torch.full((x.shape[0],), elbo)}

    res = train(Beta(), torch.ones(4, 1), torch.ones(2, 1), quiet(max_epochs=5, optimizer="sgd"))
    assert res.best_epoch == 2 and res.best_val_loss == pytest.approx(1.0)
    res = train(Beta(), torch.ones(4, 1), torch.ones(2, 1), quiet(max_epochs=5, optimizer="sgd", monitor="loss"))
    assert res.best_epoch == 5


def test_dynamic_binarization_draws_fresh_seeded_bernoulli_batches():
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            if self.training:
                seen.append(x.clone())
            return {"loss": self.w * 1.0}

    grey = torch.full((400, 50), 0.3)
    grey[:, :10] = 0.9
    train(Recorder(), grey, None, quiet(max_epochs=3, batch_size=400, binarize=True, optimizer="sgd"))
    first = list(seen)
    assert all(set(torch.unique(b).tolist()) <= {0.0, 1.0} for b in first)
    assert not torch.equal(first[0], first[1])  # a fresh draw every epoch
    draws = torch.stack(first)  # (3, 400, 50): the frequencies of ones match the grey levels
    assert draws[..., :10].mean().item() == pytest.approx(0.9, abs=0.01)
    assert draws[..., 10:].mean().item() == pytest.approx(0.3, abs=0.01)
    seen.clear()
    train(Recorder(), grey, None, quiet(max_epochs=3, batch_size=400, binarize=True, optimizer="sgd"))
    assert all(torch.equal(a, b) for a, b in zip(first, seen))  # same seed, same draws


def test_resume_is_exact_with_binarization_and_warmup(tmp_path):
    x, xv = np.random.default_rng(0).random((48, 6)).astype(np.float32), tiny_data(16, seed=1)
    kw = dict(max_epochs=5, lr=5e-3, binarize=True, warmup_epochs=3)

    def model():
        m = tiny_vae()
        m.kl_weight = 1.0  # the VAE's loss reads it where it supports warm-up
        return m

    full = model()
    res_full = train(full, x, xv, quiet(**kw))
    path = tmp_path / "ckpt.pt"
    train(model(), x, xv, quiet(**{**kw, "max_epochs": 2}), checkpoint=path)
    resumed = model()
    res = train(resumed, x, xv, quiet(**kw), resume_from=path)
    assert res.history["train"]["loss"] == res_full.history["train"]["loss"]
    assert res.history["val"]["elbo"] == res_full.history["val"]["elbo"]
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_each_split_is_checked_once_and_batches_skip_the_checks(monkeypatch):
    model = tiny_vae()
    checked, flags = [], []
    real_check, real_forward = VAE.check_data, VAE.forward

    def spy_check(self, x, name="x"):
        checked.append(name)
        return real_check(self, x, name)

    def spy_forward(self, x, generator=None, *, check=True):
        flags.append(check)
        return real_forward(self, x, generator, check=check)

    monkeypatch.setattr(VAE, "check_data", spy_check)
    monkeypatch.setattr(VAE, "forward", spy_forward)
    train(model, tiny_data(40), tiny_data(10, seed=1), quiet(max_epochs=2, batch_size=8))
    assert checked == ["train_data", "val_data"]
    assert len(flags) == 2 * 5 + 2 and not any(flags)  # 5 training batches and 1 validation batch per epoch


def test_bf16_autocast_trains_close_to_float32():
    x = tiny_data(64)
    a, b = tiny_vae(), tiny_vae()
    ra = train(a, x, None, quiet(max_epochs=5, lr=1e-2))
    rb = train(b, x, None, quiet(max_epochs=5, lr=1e-2, bf16=True))
    assert all(p.dtype == torch.float32 for p in b.parameters())
    assert rb.history["train"]["loss"][-1] == pytest.approx(ra.history["train"]["loss"][-1], rel=0.05)
    assert rb.history["train"]["loss"][-1] < rb.history["train"]["loss"][0]


@pytest.mark.slow
@pytest.mark.parametrize("n, batch_size", [(32, 32), (40, 16)])  # (40, 16): a short last batch
def test_compiled_training_matches_eager(monkeypatch, n, batch_size):
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)  # the same random draws as eager mode
    x = tiny_data(n)
    a, b = tiny_vae(), tiny_vae()
    ra = train(a, x, None, quiet(max_epochs=2, batch_size=batch_size))
    rb = train(b, x, None, quiet(max_epochs=2, batch_size=batch_size, compile_model=True))
    assert rb.history["train"]["loss"] == pytest.approx(ra.history["train"]["loss"], rel=1e-4)


def _write_idx(path, array, magic_type=0x08):
    import gzip
    import struct

    header = struct.pack(">BBBB", 0, 0, magic_type, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(raw)
    import hashlib

    return hashlib.sha256(raw).hexdigest()


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A small stand-in for the MNIST files (4x4 images), with its own checksums."""
    import lvmlib.data as lvdata

    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    sums = {
        "train-images-idx3-ubyte.gz": _write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (10200, 4, 4))),
        "train-labels-idx1-ubyte.gz": _write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 10200)),
        "t10k-images-idx3-ubyte.gz": _write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (50, 4, 4))),
        "t10k-labels-idx1-ubyte.gz": _write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 50)),
    }
    monkeypatch.setattr(lvdata, "MNIST_SHA256", sums)
    return folder


@pytest.mark.parametrize("binarize", ["dynamic", "static", "none"])
def test_cli_mnist_binarization_and_throughput(tmp_path, fake_mnist, capsys, binarize):
    out = tmp_path / "run"
    code = main(["--dataset", "mnist", "--data-dir", str(fake_mnist), "--binarize", binarize, "--latent", "2",
                 "--hidden", "8", "--layers", "1", "--epochs", "2", "--batch-size", "100", "--eval-samples", "4",
                 "--device", "cpu", "--no-progress", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "images/s" in printed and "s per epoch" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["binarize"] == binarize and summary["model_config"]["likelihood"] == "bernoulli"
    assert summary["train_config"]["binarize"] is (binarize == "dynamic")
    assert summary["images_per_s"] == pytest.approx(200 / summary["s_per_epoch"])
    assert summary["command"].startswith("python -m lvmlib.training --dataset mnist")
    model = load_vae(out / "checkpoint.pt")
    assert model.config.D == 16 and model.config.M == 2

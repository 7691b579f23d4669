"""Bad input to the parts added after the first round (priors, the hierarchical VAE, pretrained
models, widgets, MNIST, the training command line, the class tools): each is refused with an
error that names the argument or the file, what was expected and what to do; nothing returns NaN
silently, nothing a user wrote is replaced without being asked, nothing waits in silence."""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from lvmlib import data as lvdata
from lvmlib import pretrained, priors
from lvmlib.hierarchical import HierarchicalVAE, HierarchicalVAEConfig
from lvmlib.training import TrainConfig, load_checkpoint, load_vae, save_checkpoint, train
from lvmlib.training.checkpoints import CheckpointError
from lvmlib.vae import VAE, VAEConfig
from lvmlib.widgets import interpolate, latent_path, latent_sweep

from training_helpers import one_thread, run_cli  # noqa: F401  (one_thread: an autouse fixture)

NAN = float("nan")


def _vae(**kw) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(**{"D": 6, "M": 2, "H": 8, "device": "cpu", **kw}))


def _x(n: int = 16) -> torch.Tensor:
    return (torch.rand(n, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()


def _quiet(**kw) -> TrainConfig:
    return TrainConfig(**{"progress": False, "device": "cpu", "batch_size": 8, "max_epochs": 1, "patience": None, **kw})


# --------------------------------------------------------------------------- non-finite parameters, by name

def _poison(model, name: str, value=NAN):
    with torch.no_grad():
        dict(model.named_parameters())[name].view(-1)[0] = value
    return model


POISONED = [
    pytest.param(dict(prior="mog", n_components=3), "prior.logits", NAN, id="mog-logit-nan"),
    pytest.param(dict(prior="mog", n_components=3), "prior.means", NAN, id="mog-mean-nan"),
    pytest.param(dict(prior="mog", n_components=3), "prior.log_vars", math.inf, id="mog-log-var-inf"),
    pytest.param(dict(prior="vamp", n_components=3), "prior.pseudo_inputs", NAN, id="vamp-pseudo-input-nan"),
]


@pytest.mark.parametrize("cfg, name, value", POISONED)
def test_a_non_finite_prior_parameter_is_named_wherever_it_enters(cfg, name, value):
    model = _poison(_vae(**cfg), name, value)
    short = name.split(".")[-1]
    z = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=rf"{short} must be finite"):
        model.prior.log_prob(z)  # a user's own call checks
    with pytest.raises(ValueError, match=rf"{short} must be finite"):
        model.prior.sample(5)
    with pytest.raises(ValueError, match=rf"{short} must be finite"):
        model(_x())  # forward with check=True
    with pytest.raises(ValueError, match=rf"parameter {re.escape(name)} \(before training\) must be finite"):
        train(model, _x(), None, _quiet())  # the start of training, not "the loss is nan at epoch 1"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"state_dict's {re.escape(name)} .*must be finite"):
        _vae(**cfg).load_state_dict(state)  # loading
    with pytest.raises(ValueError, match=rf"state_dict's {short} .*must be finite"):
        model.prior.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("prior.")})


def test_every_logit_minus_inf_is_refused_not_nan():
    model = _vae(prior="mog", n_components=3)
    with torch.no_grad():
        model.prior.logits.fill_(-math.inf)
    with pytest.raises(ValueError, match=r"logits must be finite"):
        model.prior.sample(3)


def test_a_non_finite_encoder_weight_is_named_in_the_vamp_prior():
    model = _vae(prior="vamp", n_components=3)
    with torch.no_grad():
        model.encoder.net[0].weight.fill_(NAN)
    with pytest.raises(ValueError, match=r"parameter encoder\.net\.0\.weight .*must be finite"):
        model.check_parameters()
    with pytest.raises(ValueError, match=r"VampPrior's component means mu\(u_k\) .*must be finite"):
        model.prior.log_prob(torch.zeros(2, 2))  # the prior alone names its components


def test_check_false_reads_nothing_and_check_true_costs_one_read_of_the_parameters():
    model = _vae(prior="mog", n_components=3)
    _poison(model, "prior.means")
    out = model(_x(), check=False)  # no host read: the NaN goes through, as documented
    assert torch.isnan(out["loss"])


def test_mixture_log_prob_refuses_weights_that_do_not_normalise_and_names_its_arguments():
    means, log_vars = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"log_weights must be normalised .* summing to 2"):
        priors.mixture_log_prob(torch.zeros(4, 3), means, log_vars, torch.zeros(2))  # weights 1 and 1
    with pytest.raises(ValueError, match=r"argument means must be finite"):
        priors.mixture_log_prob(torch.zeros(4, 3), torch.full((2, 3), NAN), log_vars, torch.log(torch.full((2,), 0.5)))
    with pytest.raises(ValueError, match=r"log_weights must have shape \(K,\) = \(2,\)"):
        priors.mixture_log_prob(torch.zeros(4, 3), means, log_vars, torch.zeros(3))
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., M=3\)"):
        priors.mixture_log_prob(torch.zeros(4, 2), means, log_vars, torch.log(torch.full((2,), 0.5)))
    ok = priors.mixture_log_prob(torch.zeros(4, 3), means, log_vars, torch.log(torch.full((2,), 0.5)))
    torch.testing.assert_close(ok, torch.distributions.Normal(0.0, 1.0).log_prob(torch.zeros(4, 3)).sum(-1))


def test_the_vamp_prior_names_its_encoder_and_d():
    enc = _vae().encoder  # D = 6
    with pytest.raises(ValueError, match=r"D \(the pseudo-inputs' dimension\) must be the encoder's input dimension 6, got 5"):
        priors.VampPrior(2, 5, enc, n_components=3)
    one = priors.VampPrior(2, 6, lambda u: u[:, :2], n_components=3)
    with pytest.raises(TypeError, match=r"encoder must return a pair \(mu_z, log_var\) of tensors"):
        one.log_prob(torch.zeros(1, 2))
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int"):
        _vae(prior="mog").prior.sample(3, generator=3)


def test_inherited_methods_that_mean_nothing_for_the_hierarchical_vae_refuse():
    model = HierarchicalVAE(HierarchicalVAEConfig(D=6, M=2, M2=2, H=8, device="cpu"))
    mu, lv = model.encode(_x(4))
    with pytest.raises(NotImplementedError, match=r"HierarchicalVAE\.kl is not defined: .*kl_z1 \+ kl_z2"):
        model.kl(mu, lv)
    assert set(model(_x(4))) >= {"kl", "kl_z1", "kl_z2"}  # what to use instead is there


def test_kl_weight_is_a_finite_number():
    model = _vae()
    model.kl_weight = 0.25
    assert model.kl_weight == 0.25 and "_kl_weight" not in model.state_dict()
    for bad in (NAN, -1.0, "1", True):
        with pytest.raises(ValueError, match=r"kl_weight must be a finite number >= 0"):
            model.kl_weight = bad


# --------------------------------------------------------------------------- widgets

def test_latent_sweep_and_interpolate_refuse_what_would_draw_nan_or_fail_inside():
    model = _vae()
    with pytest.raises(ValueError, match=r"values must be finite, got 1 NaN"):
        latent_sweep(model, torch.zeros(2), 0, torch.tensor([0.0, NAN]))
    with pytest.raises(ValueError, match=r"z0 must be finite"):
        latent_sweep(model, torch.tensor([NAN, 0.0]), 0, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"x_b must be one image, a tensor or numpy array of shape \(D,\) = \(6,\), got shape \(5,\)"):
        interpolate(model, torch.zeros(6), torch.zeros(5))
    with pytest.raises(ValueError, match=r"z_a must be finite"):
        latent_path(torch.tensor([NAN, 0.0]), torch.zeros(2), 3)
    out = interpolate(model, np.zeros(6, dtype=np.float32), np.ones(6, dtype=np.float32), steps=3)  # numpy images work
    assert out.shape == (3, 6) and torch.isfinite(out).all()


# --------------------------------------------------------------------------- checkpoints and pretrained models

@pytest.fixture
def saved(tmp_path):
    model = _vae()
    path = tmp_path / "ck.pt"
    train(model, _x(), _x(8), _quiet(max_epochs=2), checkpoint=path)
    return path


def test_load_vae_refuses_a_class_it_does_not_know(saved, tmp_path):
    ck = load_checkpoint(saved)
    ck["model_class"] = "LadderVAE"
    save_checkpoint(tmp_path / "other.pt", ck)
    with pytest.raises(CheckpointError, match=r"holds a 'LadderVAE', which load_vae cannot rebuild"):
        load_vae(tmp_path / "other.pt")
    ck["model_class"] = "FlowVAE"  # a class it knows, but the config builds a Gaussian-posterior VAE
    save_checkpoint(tmp_path / "flow.pt", ck)
    with pytest.raises(CheckpointError, match=r"says it holds a 'FlowVAE', but its model_config builds a 'VAE'"):
        load_vae(tmp_path / "flow.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_load_vae_on_cuda_without_a_gpu_says_so_not_that_the_file_is_bad(saved):
    with pytest.raises(ValueError, match=r"map_location='cuda' asks for a GPU, but this machine has no CUDA GPU"):
        load_vae(saved, map_location="cuda")


def test_resume_from_a_checkpoint_without_epoch_names_it(saved, tmp_path):
    ck = load_checkpoint(saved)
    del ck["epoch"]
    save_checkpoint(tmp_path / "no_epoch.pt", ck)
    with pytest.raises(CheckpointError, match=r"no 'epoch' entry, where the last completed epoch"):
        train(_vae(), _x(), _x(8), _quiet(max_epochs=3), resume_from=tmp_path / "no_epoch.pt")


def test_resume_applies_the_learning_rate_asked_for(saved):
    result = train(_vae(), _x(), _x(8), _quiet(max_epochs=3, lr=0.01), resume_from=saved)
    assert result.history["lr"] == pytest.approx([1e-3, 1e-3, 0.01])  # epochs 1-2 before, 3 after the resume
    # under a schedule whose state depends on the lr, a new lr is refused rather than half applied
    path = saved.with_name("cos.pt")
    train(_vae(), _x(), _x(8), _quiet(max_epochs=2, lr_schedule="cosine"), checkpoint=path)
    with pytest.raises(ValueError, match=r"cannot resume .* with lr=0.01: it was trained with lr=0.001 under the 'cosine'"):
        train(_vae(), _x(), _x(8), _quiet(max_epochs=3, lr_schedule="cosine", lr=0.01), resume_from=path)


def _copy_pretrained(tmp_path, name="mnist_vae_2d"):
    for ext in (".pt", ".json"):
        shutil.copy(pretrained.FOLDER / f"{name}{ext}", tmp_path / f"{name}{ext}")
    return name


def test_pretrained_names_the_folder_the_weights_and_the_record(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"folder .*nowhere' does not exist"):
        pretrained.load("mnist_vae", folder=tmp_path / "nowhere")
    name = _copy_pretrained(tmp_path)
    (tmp_path / f"{name}.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"has its record .* but not its weights .*mnist_vae_2d\.pt"):
        pretrained.load(name, folder=tmp_path)
    name = _copy_pretrained(tmp_path)
    rec = json.loads((tmp_path / f"{name}.json").read_text())
    del rec["sha256"]
    (tmp_path / f"{name}.json").write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"has no \"sha256\" of the weights"):
        pretrained.load(name, folder=tmp_path)
    (tmp_path / f"{name}.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"mnist_vae_2d\.json' of the pretrained model 'mnist_vae_2d' is not valid JSON"):
        pretrained.load(name, folder=tmp_path)


# --------------------------------------------------------------------------- MNIST

def test_mnist_folder_download_flag_and_empty_files(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(lvdata.MNIST_ENV, str(tmp_path / "file"))
    with pytest.raises(NotADirectoryError, match=r"LVMLIB_MNIST_DIR must name a folder .* is a file"):
        lvdata.load_mnist(download=False)
    with pytest.raises(TypeError, match=r"download must be True or False, got 'no'"):
        lvdata.load_mnist(tmp_path, download="no")
    import gzip
    import struct
    for name in lvdata.MNIST_SHA256:  # valid IDX files with zero images
        ndim = 3 if "images" in name else 1
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(bytes([0, 0, 8, ndim]) + struct.pack(f">{ndim}I", 0, *([28, 28] if ndim == 3 else [])))
    with pytest.raises(lvdata.ChecksumError, match=r"train-images-idx3-ubyte\.gz holds no data"):
        lvdata.load_mnist(tmp_path, download=False, verify=False)


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/"
    stop.set()
    thread.join(2)
    for c in held:
        c.close()
    srv.close()


def test_a_silent_network_costs_seconds_and_says_what_to_do_offline(tmp_path, monkeypatch, silent_server):
    monkeypatch.setattr(lvdata, "MNIST_MIRRORS", (silent_server, silent_server + "mirror2/"))
    said = []
    t0 = time.monotonic()
    with pytest.raises(lvdata.MNISTNotFoundError) as info:
        lvdata.download_mnist(tmp_path, timeout=0.3, log=said.append)
    elapsed = time.monotonic() - t0
    assert elapsed < 3, elapsed  # two mirrors x 0.3 s, then no more tries for the other files
    assert said[0].startswith("downloading MNIST train-images-idx3-ubyte.gz from " + silent_server)
    assert len([s for s in said if s.startswith("downloading")]) == 2
    msg = str(info.value)
    assert "To work offline, put these files" in msg and "timed out" in msg and "digits" in msg
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds"):
        lvdata.download_mnist(tmp_path, timeout=0)


def test_the_whole_download_is_bounded(tmp_path, monkeypatch, silent_server):
    monkeypatch.setattr(lvdata, "MNIST_MIRRORS", (silent_server,))
    t0 = time.monotonic()
    with pytest.raises(lvdata.MNISTNotFoundError, match=r"timed out|total_timeout"):
        lvdata.download_mnist(tmp_path, timeout=5, total_timeout=0.4, log=lambda m: None)
    assert time.monotonic() - t0 < 3


# --------------------------------------------------------------------------- the command line

TINY = ["--dataset", "digits", "--latent", "2", "--hidden", "8", "--layers", "1", "--epochs", "1", "--eval-samples",
        "0", "--device", "cpu", "--no-progress", "--batch-size", "500"]



@pytest.mark.parametrize("extra, match", [
    (["--latent-top", "4"], r"--latent-top applies to --hierarchical only"),
    (["--components", "8"], r"--components applies to --prior mog or --prior vamp only, got --prior standard_normal"),
    (["--prior", "mog", "--no-vamp-encoder-gradient"], r"--no-vamp-encoder-gradient applies to --prior vamp only"),
    (["--resume", "--overwrite"], r"--resume continues the run in --out and --overwrite replaces it"),
])
def test_cli_refuses_options_that_do_not_apply(tmp_path, capsys, extra, match):
    code, err = run_cli([*TINY, "--out", str(tmp_path / "run"), *extra], capsys)
    assert code == 2 and re.search(match, err), err


def test_cli_refuses_an_empty_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli([*TINY, "--out", ""], capsys)
    assert code == 2 and "--out must name a folder" in err and "got an empty string" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_never_replaces_a_run_unasked_and_resume_applies_lr(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli([*TINY, "--out", str(out)], capsys)[0] == 0
    before = {n: (out / n).read_bytes() for n in ("checkpoint.pt", "history.json", "summary.json")}
    code, err = run_cli([*TINY, "--out", str(out), "--latent", "3"], capsys)
    assert code == 2 and "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert {n: (out / n).read_bytes() for n in before} == before  # nothing touched
    code, err = run_cli([*TINY, "--out", str(out), "--resume", "--epochs", "2", "--lr", "0.01"], capsys)
    assert code == 0, err
    assert "resumed with lr 0.01 (the checkpoint was trained with lr 0.001)" in err
    history = json.loads((out / "history.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert history["history"]["lr"] == pytest.approx([1e-3, 0.01]) and summary["train_config"]["lr"] == 0.01
    assert run_cli([*TINY, "--out", str(out), "--overwrite", "--latent", "3"], capsys)[0] == 0
    assert json.loads((out / "summary.json").read_text())["model_config"]["M"] == 3
    # a resume the trainer refuses leaves the checkpoint alone and does not call it "the last good epoch"
    code, err = run_cli([*TINY, "--out", str(out), "--resume", "--epochs", "2", "--optimizer", "sgd"], capsys)
    assert code == 1 and "it was trained with optimizer='adam'" in err
    assert "last good epoch" not in err and "was not changed" in err


def test_cli_ctrl_c_in_epoch_one_does_not_point_to_a_missing_checkpoint(tmp_path, capsys, monkeypatch):
    from lvmlib.training import loop

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop._Run, "train_epoch", interrupted)
    out = tmp_path / "run"
    code, err = run_cli([*TINY, "--out", str(out)], capsys)
    assert code == 130 and not (out / "checkpoint.pt").exists()
    assert "before any epoch was completed: no checkpoint of this run was written" in err
    assert "--resume" not in err


# --------------------------------------------------------------------------- the class tools

def _tiny_solutions(folder: Path) -> Path:
    from tools.nbauthor import Notebook

    nb = Notebook("One exercise")
    nb.code("import torch\nfrom lvmlib import checks")
    nb.solution("double", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION")
    nb.check("double_check", "checks.check_function(double, lambda x: 2 * x, [checks.Case((torch.arange(3.0),))], "
             "name='double')", points=1)
    nb.write(folder / "tiny.ipynb")
    return folder


def test_the_class_course_tool_refuses_a_folder_it_did_not_build(tmp_path):
    from tools.make_class_course import MARKER, build_course

    solutions = _tiny_solutions(tmp_path / "solutions")
    mine = tmp_path / "mine"
    (mine / "source").mkdir(parents=True)
    (mine / "source" / "notes.txt").write_text("my notes")
    (mine / "nbgrader_config.py").write_text("# my config")
    with pytest.raises(FileExistsError, match=r"is a folder that this tool did not build .* nothing in it was changed"):
        build_course(mine, solutions, generate=False)
    assert (mine / "source" / "notes.txt").read_text() == "my notes"
    assert (mine / "nbgrader_config.py").read_text() == "# my config"
    # a folder it built is rebuilt, and only what it wrote is replaced
    course = tmp_path / "course"
    build_course(course, solutions, generate=False)
    assert (course / MARKER).is_file() and (course / "source" / "tiny" / "tiny.ipynb").is_file()
    (course / "source" / "tiny" / "extra.txt").write_text("someone else's")
    build_course(course, solutions, generate=False)
    assert (course / "source" / "tiny" / "extra.txt").read_text() == "someone else's"


def test_a_notebook_that_is_not_json_is_named(tmp_path):
    from tools.make_class_course import build_course

    solutions = _tiny_solutions(tmp_path / "solutions")
    (solutions / "broken.ipynb").write_text("{ not json")
    with pytest.raises(ValueError, match=r"broken\.ipynb is not a notebook \(not valid JSON"):
        build_course(tmp_path / "course", solutions, generate=False)
    assert not (tmp_path / "course").exists()


def test_a_learners_own_cell_is_graded_under_the_exercise_timeout(tmp_path):
    pytest.importorskip("nbgrader")
    from tools.course_grading import ExerciseExecute, course_code, exercise_plan

    from tools.make_class_course import grading_notebook, read_notebook

    source = grading_notebook(read_notebook(_tiny_solutions(tmp_path) / "tiny.ipynb"))
    ex = ExerciseExecute(timeout=1800, exercise_timeout=7)
    plan = exercise_plan(source)
    ex._answers = {e.answer_id: e for e in plan}
    ex._tests = {t: e for e in plan for t in e.test_ids}
    ex._course_code, ex._notebook_timeout = course_code(source), 1800
    own = next(c for c in source.cells if c.cell_type == "code" and "import torch" in c.source)
    assert ex.timeout_for(own) == 1800  # the notebook's own cell
    assert ex.timeout_for(nbformat.v4.new_code_cell("while True:\n    pass")) == 7  # a cell the learner added
    edited = nbformat.v4.new_code_cell(own.source + "\nwhile True: pass")
    assert ex.timeout_for(edited) == 7  # or changed
    answer = next(c for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "double")
    assert ex.timeout_for(answer) == 7


@pytest.mark.parametrize("at_epoch", [1, 2])
def test_an_interrupt_inside_an_epochs_bookkeeping_leaves_history_and_checkpoint_agreeing(tmp_path, monkeypatch, at_epoch):
    """Ctrl-C after an epoch is recorded but before its checkpoint is written: the result says what is on disk."""
    from lvmlib.training import loop

    real = loop._Run.keep_if_best

    def interrupted(self, score, now):
        if self.epoch == at_epoch:
            raise KeyboardInterrupt
        return real(self, score, now)

    monkeypatch.setattr(loop._Run, "keep_if_best", interrupted)
    path = tmp_path / "ck.pt"
    result = train(_vae(), _x(), _x(8), _quiet(max_epochs=4), checkpoint=path)
    assert result.interrupted and result.epochs == at_epoch - 1
    assert len(result.history["epoch"]) == at_epoch - 1
    if at_epoch == 1:
        assert not path.exists()
    else:
        ck = load_checkpoint(path)
        assert ck["epoch"] == result.epochs and ck["history"]["epoch"] == result.history["epoch"]

"""The command line: ``python -m lvmlib.training`` trains a VAE on the digits or MNIST.

It writes OUT/checkpoint.pt (``load_vae`` rebuilds the model), OUT/history.json and
OUT/summary.json (the test -ELBO and the importance-sampled test log-likelihood), and prints
the seconds per epoch and the images per second of the training pass.

    python -m lvmlib.training --dataset digits --latent 16 --hidden 256 \\
        --likelihood categorical --epochs 500 --patience 20 --out runs/digits
    python -m lvmlib.training --dataset mnist --latent 20 --hidden 400 --layers 1 \\
        --activation relu --batch-size 128 --epochs 50 --out runs/mnist   # Bernoulli, dynamic binarization

MNIST with the Bernoulli likelihood is binarized: "dynamic" (default) draws x_b ~ Bern(x) from
the grey levels afresh every epoch on the device (seeded), "static" draws once, "none" keeps the
grey levels. The validation and test images are binarized once with a fixed seed (0), so test
scores of different runs are comparable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import signal
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from lvmlib.runtime import get_device
from lvmlib.training.batches import evaluate
from lvmlib.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from lvmlib.training.loop import train
from lvmlib.training.results import NonFiniteLossError, plain

BINARIZE = ("dynamic", "static", "none")
EVAL_BINARIZE_SEED = 0  # the fixed draw of the binarized validation and test images
RUN_FILES = ("checkpoint.pt", "history.json", "summary.json")  # what a run writes into --out

__all__ = ["main"]


def _argument(convert, description: str, ok):
    """An argparse type: ``convert`` the text, then require ``ok(value)``, else say what was expected."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value

    return parse


_positive_int = _argument(int, "a positive integer", lambda v: v >= 1)
_nonneg_int = _argument(int, "an integer >= 0", lambda v: v >= 0)
_positive_float = _argument(float, "a positive number", lambda v: v > 0 and math.isfinite(v))


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lvmlib.training",
        description="Train a VAE on the 8x8 digits (embedded) or MNIST (IDX files) with early stopping; "
        "write the checkpoint, the history (JSON) and a summary with the test -ELBO and log-likelihood.",
        epilog="The defaults are the book's VAE (two hidden layers of 256 LeakyReLU units, M = 16). The best "
        "digits configuration measured in benchmarks/bench_vae_digits.py adds: --layers 1 --activation tanh "
        "--beta 1.5 --weight-decay 1e-2 --ema-decay 0.999 --batch-size 256 --lr 8e-3. "
        "MNIST as in the PyTorch examples' VAE: --dataset mnist --latent 20 --hidden 400 --layers 1 "
        "--activation relu --batch-size 128.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=["digits", "mnist"], default="digits", help="data set (default: digits)")
    d.add_argument("--data-dir", default=None,
                   help="folder with the MNIST IDX .gz files (default: $LVMLIB_MNIST_DIR, else ~/.cache/lvmlib/mnist)")
    d.add_argument("--binarize", choices=list(BINARIZE), default=None,
                   help="Bernoulli likelihood only: dynamic (a fresh draw each epoch), static (one draw) or none "
                   "(grey levels) (default: dynamic)")
    m = p.add_argument_group("model (lvmlib.vae.VAEConfig)")
    m.add_argument("--latent", type=_positive_int, default=16, help="M, latent dimensions (default: 16)")
    m.add_argument("--hidden", type=_positive_int, default=256, help="H, units per hidden layer (default: 256)")
    m.add_argument("--layers", type=_nonneg_int, default=2, help="hidden layers in encoder and decoder (default: 2)")
    m.add_argument(
        "--activation", choices=["relu", "leaky_relu", "tanh", "elu"], default="leaky_relu", help="(default: leaky_relu)"
    )
    m.add_argument(
        "--likelihood",
        choices=["bernoulli", "gaussian", "categorical"],
        default=None,
        help="p(x|z); categorical models raw levels (digits 0..16, MNIST 0..255) "
        "(default: categorical for digits, bernoulli for mnist)",
    )
    m.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (default: 1)")
    m.add_argument("--prior", choices=["standard_normal", "mog", "vamp"], default="standard_normal",
                   help="p(z): N(0, I), a learnable mixture of Gaussians, or the VampPrior (pseudo-inputs "
                   "initialised from training images) (default: standard_normal)")
    m.add_argument("--components", type=_positive_int, default=None,
                   help="mixture components (--prior mog) or pseudo-inputs (--prior vamp) (default: 16)")
    m.add_argument("--vamp-encoder-gradient", action=argparse.BooleanOptionalAction, default=None,
                   help="--prior vamp: the gradient of the prior's term log p(z) reaches the encoder's weights "
                   "through the components mu(u_k), lv(u_k) too, the ELBO's gradient (default); "
                   "--no-vamp-encoder-gradient cuts that path, so through the components it trains the "
                   "pseudo-inputs only (the encoder still gets log p(z)'s gradient through z = mu + sigma eps, "
                   "and the update is no longer the ELBO's gradient)")
    m.add_argument("--hierarchical", action="store_true",
                   help="a two-level hierarchical VAE p(z2) p(z1|z2) p(x|z1) (lvmlib.hierarchical); "
                   "--latent is the size of z1, --latent-top the size of z2")
    m.add_argument("--flow", choices=["planar", "householder", "iaf"], default=None,
                   help="q(z|x) as a Gaussian pushed through a normalizing flow (lvmlib.flows) (default: none, "
                        "the Gaussian posterior)")
    m.add_argument("--flow-length", type=_positive_int, default=None,
                   help="K, the number of flow steps of --flow (default: 4 when --flow is given)")
    m.add_argument("--latent-top", type=_positive_int, default=None,
                   help="M2, the top latent dimensions of --hierarchical (default: 8)")
    t = p.add_argument_group("training (lvmlib.training.TrainConfig)")
    t.add_argument("--epochs", type=_positive_int, default=500, help="maximum epochs (default: 500)")
    t.add_argument("--patience", type=_positive_int, default=20, help="early-stopping patience in epochs (default: 20)")
    t.add_argument("--batch-size", type=_positive_int, default=64, help="(default: 64)")
    t.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate (default: 1e-3)")
    t.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam", help="(default: adam)")
    t.add_argument("--lr-schedule", choices=list(SCHEDULES), default="constant", help="(default: constant)")
    t.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty (default: 0)")
    t.add_argument("--ema-decay", type=float, default=None, help="average the weights (e.g. 0.999) (default: off)")
    t.add_argument("--warmup", type=_nonneg_int, default=0,
                   help="KL warm-up epochs: the KL weight grows linearly to 1 at this epoch (default: 0, off)")
    t.add_argument("--seed", type=_nonneg_int, default=0, help="(default: 0)")
    t.add_argument("--device", default="auto", help="auto (CUDA when there is a GPU), cpu, cuda or cuda:N (default: auto)")
    t.add_argument("--threads", type=_positive_int, default=None, help="torch threads on the CPU (default: torch's)")
    t.add_argument("--bf16", action="store_true", help="bfloat16 autocast in the forward pass (for CUDA)")
    t.add_argument("--compile", action="store_true", help="train through torch.compile(model)")
    t.add_argument("--eval-batch-size", type=_positive_int, default=None,
                   help="validation batch size (default: 1024 on the CPU, 4096 on a GPU)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--resume", action="store_true",
                   help="continue the run saved in OUT/checkpoint.pt (--lr and --weight-decay apply from now on)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (without it, a folder holding a run is refused)")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="folder for checkpoint.pt, history.json and summary.json")
    o.add_argument(
        "--eval-samples",
        type=_nonneg_int,
        default=1000,
        help="K importance samples for the test log-likelihood (0: skip it) (default: 1000)",
    )
    o.add_argument("--eval-subset", type=_positive_int, default=None,
                   help="estimate the test log-likelihood on the first N test images only (default: all)")
    return p


def _binarized(x: np.ndarray, seed: int) -> np.ndarray:
    """One Bernoulli draw of grey levels in [0, 1]: x_b ~ Bern(x), seeded. (N, D) float32."""
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.as_tensor(x, dtype=torch.float32), generator=g).numpy()


def _load_dataset(args: argparse.Namespace):
    """(train, val, test, D, n_levels) as numpy arrays (N, D) in the form the likelihood models."""
    from lvmlib import data as lvdata

    scale = "raw" if args.likelihood == "categorical" else "unit"
    if args.dataset == "digits":
        split = lvdata.digits_split(scale=scale)
        n_levels = 17
    else:
        kwargs = {"scale": scale}
        if args.data_dir is not None:
            kwargs["data_dir"] = args.data_dir
        split = lvdata.mnist_split(**kwargs)
        n_levels = 256
    tr, va, te = (np.asarray(a) for a in (split.train, split.val, split.test))
    tr, va, te = (a.reshape(a.shape[0], -1) for a in (tr, va, te))  # (N, D)
    if args.binarize in ("dynamic", "static"):
        va, te = _binarized(va, EVAL_BINARIZE_SEED), _binarized(te, EVAL_BINARIZE_SEED + 1)
        if args.binarize == "static":
            tr = _binarized(tr, args.seed + 2)
    return tr, va, te, tr.shape[1], n_levels


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The checks argparse's types cannot express; ``parser.error`` names the option."""
    if args.likelihood is None:
        args.likelihood = "bernoulli" if args.dataset == "mnist" else "categorical"
    if args.binarize is None:
        args.binarize = "dynamic" if args.likelihood == "bernoulli" else "none"
    elif args.binarize != "none" and args.likelihood != "bernoulli":
        parser.error(f"--binarize {args.binarize} needs --likelihood bernoulli, got --likelihood {args.likelihood}")
    if not (math.isfinite(args.beta) and args.beta >= 0):
        parser.error(f"--beta must be a finite number >= 0, got {args.beta}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        parser.error(f"--weight-decay must be a finite number >= 0, got {args.weight_decay}")
    if args.ema_decay is not None and not (math.isfinite(args.ema_decay) and 0 < args.ema_decay < 1):
        parser.error(f"--ema-decay must lie strictly between 0 and 1, got {args.ema_decay}")
    if not args.hierarchical and args.latent_top is not None:
        parser.error("--latent-top applies to --hierarchical only (the size of its top level z2); "
                     "add --hierarchical or drop --latent-top")
    if args.prior not in ("mog", "vamp") and args.components is not None:
        parser.error(f"--components applies to --prior mog or --prior vamp only, got --prior {args.prior}; "
                     "add --prior mog or --prior vamp, or drop --components")
    if args.prior != "vamp" and args.vamp_encoder_gradient is not None:
        flag = "--vamp-encoder-gradient" if args.vamp_encoder_gradient else "--no-vamp-encoder-gradient"
        parser.error(f"{flag} applies to --prior vamp only, got --prior {args.prior}")
    args.latent_top = 8 if args.latent_top is None else args.latent_top
    args.components = 16 if args.components is None else args.components
    args.vamp_encoder_gradient = True if args.vamp_encoder_gradient is None else args.vamp_encoder_gradient
    if not args.out.strip():
        parser.error("--out must name a folder (for checkpoint.pt, history.json, summary.json), got an empty "
                     "string; to write into the current folder say --out .")
    if args.resume and args.overwrite:
        parser.error("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if args.flow_length is not None and args.flow is None:
        parser.error(f"--flow-length {args.flow_length} needs --flow NAME (planar, householder or iaf)")
    if args.flow is not None and args.hierarchical:
        parser.error("--flow is not available with --hierarchical (the flow posterior has one latent level)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out must name a folder (for checkpoint.pt, history.json, summary.json), "
                     f"but {str(out)!r} is a file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                parser.error(f"--out {str(out)!r} cannot be created: {str(parent)!r} is a file, not a folder")
            break
    if out.is_dir() and not args.resume and not args.overwrite:
        found = [name for name in RUN_FILES if (out / name).exists()]
        if found:
            parser.error(f"--out {str(out)!r} already holds a run ({', '.join(found)}): add --resume to continue it, "
                         "--overwrite to replace it, or name another folder")


def _stamp(path: Path):
    """What identifies a file's version (modification time and size), None when there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _saved_lr(path: Path) -> float | None:
    """The learning rate the checkpoint was trained with (None when it cannot be read: train says why)."""
    from lvmlib.training.checkpoints import load_checkpoint

    try:
        lr = (load_checkpoint(path).get("train_config") or {}).get("lr")
    except (OSError, ValueError):
        return None
    return float(lr) if isinstance(lr, (int, float)) else None


def build_model(args: argparse.Namespace, D: int, n_levels: int, device: torch.device):
    """The VAE the options describe (seeded by --seed), and its configuration."""
    from lvmlib.vae import VAE, VAEConfig

    extra: dict[str, Any] = {}
    if getattr(args, "hierarchical", False):
        from lvmlib.hierarchical import HierarchicalVAE as VAE, HierarchicalVAEConfig as VAEConfig  # noqa: N814

        extra["M2"] = args.latent_top
    flow = getattr(args, "flow", None)
    if flow is not None:
        extra["posterior"] = flow
        extra["flow_length"] = args.flow_length if getattr(args, "flow_length", None) is not None else 4
    torch.manual_seed(args.seed)
    vcfg = VAEConfig(
        **extra,
        prior=getattr(args, "prior", "standard_normal"),
        n_components=getattr(args, "components", 16),
        vamp_encoder_gradient=getattr(args, "vamp_encoder_gradient", True),
        D=D,
        M=args.latent,
        H=args.hidden,
        n_hidden_layers=args.layers,
        activation=args.activation,
        likelihood=args.likelihood,
        n_levels=n_levels,
        beta=args.beta,
        device=str(device),
    )
    return VAE(vcfg), vcfg


def _train_config(args: argparse.Namespace, device: torch.device) -> TrainConfig:
    return TrainConfig(
        optimizer=args.optimizer,
        lr=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        patience=args.patience,
        lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay,
        ema_decay=args.ema_decay,
        monitor="elbo",  # early stopping on the validation ELBO, whatever beta or the warm-up is
        monitor_mode="max",
        warmup_epochs=args.warmup,
        binarize=args.binarize == "dynamic",
        bf16=args.bf16,
        compile_model=args.compile,
        eval_batch_size=args.eval_batch_size,
        seed=args.seed,
        device=str(device),
        progress=not args.no_progress,
    )


def _throughput(result, n_train: int) -> dict[str, Any]:
    """Seconds per epoch of the training pass (median over this session's epochs) and images/s."""
    times = result.history.get("train_time") or []
    if not times:
        return {}
    per_epoch = statistics.median(times)
    out = {"s_per_epoch": per_epoch, "images_per_s": n_train / per_epoch, "first_epoch_s": times[0]}
    print(f"training pass: {per_epoch:.3f} s per epoch (median of {len(times)}), "
          f"{out['images_per_s']:,.0f} images/s ({n_train} images per epoch)")
    return out


def _test_scores(model, x_test, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Test -ELBO and, with --eval-samples K > 0, -log p(x) by importance sampling; printed too."""
    scores: dict[str, Any] = {}
    torch.manual_seed(args.seed)
    test = evaluate(model, x_test)
    scores["test_neg_elbo"] = -test["elbo"] if "elbo" in test else test["loss"]
    print(f"test -ELBO                 {scores['test_neg_elbo']:.3f} nats per example")
    if args.eval_samples > 0:
        from lvmlib.variational import log_px_importance

        subset = x_test if args.eval_subset is None else x_test[: args.eval_subset]
        model.eval()
        g = torch.Generator(device=device).manual_seed(args.seed)
        with torch.no_grad():
            x_t = torch.as_tensor(subset, device=device)
            log_px = log_px_importance(model, x_t, K=args.eval_samples, generator=g)
        scores["test_neg_log_px"] = -float(log_px.mean())
        scores["eval_samples"] = args.eval_samples
        scores["eval_images"] = len(subset)
        print(f"test -log p(x)             {scores['test_neg_log_px']:.3f} nats per example "
              f"(importance sampling, K={args.eval_samples}, {len(subset)} test images)")
    return scores


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> int:
    try:
        device = get_device(args.device)
    except (ValueError, TypeError, RuntimeError) as err:
        parser.error(f"--device: {err}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        x_train, x_val, x_test, D, n_levels = _load_dataset(args)
    except (FileNotFoundError, OSError, ValueError) as err:
        print(f"error: cannot load {args.dataset}: {err}", file=sys.stderr)
        return 2

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--out: cannot create the folder {str(out)!r}: {err.strerror or err}")
    ckpt_path = out / "checkpoint.pt"
    if args.overwrite:  # asked for: the old run's files go now, so that no file of it is left beside the new run's
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    if args.resume and not ckpt_path.is_file():
        parser.error(f"--resume: there is no checkpoint at {ckpt_path}")

    model, vcfg = build_model(args, D, n_levels, device)
    model.init_prior(x_train)  # the VampPrior's pseudo-inputs from training images (a resume overwrites them)
    if args.warmup and not hasattr(model, "kl_weight"):
        parser.error("--warmup needs a VAE whose loss has a KL weight (model.kl_weight); this VAE has none")
    tcfg = _train_config(args, device)
    resumed_lr = _saved_lr(ckpt_path) if args.resume else None
    before = _stamp(ckpt_path)
    try:
        result = train(
            model, x_train, x_val, tcfg, checkpoint=ckpt_path, resume_from=ckpt_path if args.resume else None
        )
    except (ValueError, OSError, NonFiniteLossError) as err:
        print(f"error: {err}", file=sys.stderr)
        if ckpt_path.is_file() and _stamp(ckpt_path) != before:
            print(f"the last good epoch is saved in {ckpt_path}", file=sys.stderr)
        elif before is not None:
            print(f"{ckpt_path} was not changed", file=sys.stderr)
        return 1
    if resumed_lr is not None and resumed_lr != args.lr:
        print(f"resumed with lr {args.lr:g} (the checkpoint was trained with lr {resumed_lr:g}); "
              "summary.json and history.json record the lr used", file=sys.stderr)
    result.save_json(out / "history.json")

    summary: dict[str, Any] = {
        "command": "python -m lvmlib.training " + shlex.join(argv),
        "dataset": args.dataset,
        "binarize": args.binarize,
        "n_train": len(x_train),
        "device": str(device),
        "model_config": plain(dataclasses.asdict(vcfg)),
        "train_config": plain(dataclasses.asdict(tcfg)),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "time_to_best_s": result.time_to_best,
        "total_time_s": result.total_time,
        "stopped_early": result.stopped_early,
        "interrupted": result.interrupted,
        "resumed": bool(args.resume),
    }
    print(f"best epoch {result.best_epoch} of {result.epochs}; validation -ELBO {result.best_val_loss:.3f}")
    summary.update(_throughput(result, len(x_train)))
    if result.interrupted:
        (out / "summary.json").write_text(json.dumps(plain(summary), indent=1))
        if ckpt_path.is_file() and result.epochs >= 1:
            print(f"interrupted: the run up to epoch {result.epochs} (best model: epoch {result.best_epoch}) is in "
                  f"{ckpt_path}; run the same command with --resume to continue", file=sys.stderr)
        else:
            print("interrupted during epoch 1, before any epoch was completed: no checkpoint of this run was written; "
                  "run the same command (with --overwrite) to start again", file=sys.stderr)
        return 130
    summary.update(_test_scores(model, x_test, args, device))
    (out / "summary.json").write_text(json.dumps(plain(summary), indent=1))
    print(f"wrote {ckpt_path}, {out / 'history.json'}, {out / 'summary.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lvmlib.training``: train a VAE, write checkpoint.pt, history.json, summary.json.

    Exit status: 0 done, 1 training failed (the last good epoch is saved), 2 bad arguments or
    no data (or --out holding a run, without --resume or --overwrite), 130 interrupted (Ctrl-C or
    SIGTERM; the run so far is saved once an epoch is complete, --resume continues).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    previous = _stop_on_sigterm()
    try:
        return _run(parser, args, argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """SIGTERM (a scheduler or ``kill``) stops training like Ctrl-C: the best model is kept and saved.
    Returns the previous handler (None where it cannot be set, e.g. outside the main thread)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return None

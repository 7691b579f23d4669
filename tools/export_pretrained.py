"""Ship a VAE trained with ``python -m lvmlib.training`` as ``lvmlib/pretrained/NAME.pt`` + ``NAME.json``.

Takes the best weights of the run's checkpoint (the weights the command restored and scored),
writes them with the model's configuration as a plain dict (loadable with weights_only=True),
and records beside them the file's SHA-256, the command(s) that produced it, the data, the
epochs, the wall time, the machine and the test scores from the run's summary.json. The shipped
file is then loaded back through ``lvmlib.pretrained.load`` and compared with the checkpoint.

    python tools/export_pretrained.py --run runs/mnist_vae --name mnist_vae
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lvmlib import pretrained  # noqa: E402
from lvmlib.training import load_checkpoint  # noqa: E402
from machine import cpu_model  # noqa: E402


def markdown(r: dict) -> str:
    c = r["model_config"]
    lines = [
        f"# {r['name']}",
        "",
        f"`lvmlib.pretrained.load({r['name']!r})`: a VAE with D={c['D']}, M={c['M']}, H={c['H']}, "
        f"{c['n_hidden_layers']} hidden layer(s) of {c['activation']}, {c['likelihood']} likelihood, beta={c['beta']}.",
        "",
        f"- file: `{r['file']}`, {r['bytes']:,} bytes ({r['dtype']}), sha256 `{r['sha256']}` (verified at load)",
        f"- data: {r['data']['dataset']}, {r['data']['train_images']:,} training images, binarization "
        f"{r['data']['binarize']}; {r['data']['split']}",
        f"- epochs: {r['epochs']} (best: {r['best_epoch']}), training wall time {r['training_wall_time_s']:.0f} s, "
        f"median {r['median_epoch_s']:.1f} s per epoch on {r['machine']['device']} ({r['machine']['cpu']}; "
        f"{r['machine']['note']})",
        f"- test -ELBO: {r['test_neg_elbo']:.2f} nats per image (the {r['test_neg_elbo_images']:,} test images, one z each)",
        f"- test -log p(x) by importance sampling: {r['test_neg_log_px']:.2f} nats per image "
        f"(K = {r['is_samples']}, "
        + ("all" if r["is_images"] == r["test_neg_elbo_images"] else "the first") + f" {r['is_images']:,} test images)",
        "",
        "Produced by:",
        "",
        "```bash",
        *r["commands"],
        "```",
        "",
    ]
    if r["notes"]:
        lines += ["Notes:", "", *[f"- {n}" for n in r["notes"]], ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="the --out folder of the training command")
    p.add_argument("--name", required=True, help="the model's name in lvmlib.pretrained")
    p.add_argument("--command", action="append", default=None,
                   help="the command(s) as run, in order (default: the one recorded in summary.json)")
    p.add_argument("--note", action="append", default=[], help="a note for the record")
    args = p.parse_args(argv)
    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    history = json.loads((run / "history.json").read_text())
    ck = load_checkpoint(run / "checkpoint.pt")
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in ck["best_state"].items()}
    content = {"format": pretrained.FORMAT, "name": args.name, "model_config": ck["model_config"], "model_state": state}
    out_pt = pretrained.FOLDER / f"{args.name}.pt"
    torch.save(content, out_pt)
    digest = hashlib.sha256(out_pt.read_bytes()).hexdigest()
    times = history["history"].get("train_time") or []
    record = {
        "name": args.name,
        "file": out_pt.name,
        "sha256": digest,
        "bytes": out_pt.stat().st_size,
        "dtype": "float32",
        "commands": args.command or [summary["command"]],
        "data": {
            "dataset": summary["dataset"],
            "binarize": summary["binarize"],
            "train_images": summary["n_train"],
            "split": "MNIST: the first 50,000 training images for training, the last 10,000 for validation, "
            "the 10,000 test images for the scores (lvmlib.data.mnist_split); validation and test images "
            "binarized once with fixed seeds (lvmlib.training.cli)",
        },
        "model_config": ck["model_config"],
        "train_config": summary["train_config"],
        "epochs": summary["epochs"],
        "best_epoch": summary["best_epoch"],
        "stopped_early": summary["stopped_early"],
        "training_wall_time_s": summary["total_time_s"],
        "median_epoch_s": summary.get("s_per_epoch"),
        "images_per_s": summary.get("images_per_s"),
        "machine": {
            "cpu": f"{cpu_model()} ({os.cpu_count()} logical CPUs)",
            "device": summary["device"],
            "torch": torch.__version__,
            "python": platform.python_version(),
            "note": "a shared machine: the wall times depend on the load of other work",
        },
        "best_val_neg_elbo": summary["best_val_loss"],
        "test_neg_elbo": summary["test_neg_elbo"],
        "test_neg_elbo_images": 10000,
        "test_neg_log_px": summary.get("test_neg_log_px"),
        "is_samples": summary.get("eval_samples"),
        "is_images": summary.get("eval_images"),
        "exported": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "notes": args.note,
    }
    (pretrained.FOLDER / f"{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    (pretrained.FOLDER / f"{args.name}.md").write_text(markdown(record))
    model = pretrained.load(args.name)  # verifies the checksum, weights_only
    for k, v in model.state_dict().items():
        if not torch.equal(v, state[k]):
            raise SystemExit(f"the shipped weights differ from the checkpoint's at {k}")
    print(f"wrote {out_pt} ({record['bytes']} bytes, sha256 {digest}) and {args.name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

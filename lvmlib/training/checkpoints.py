"""Checkpoints: plain dicts of tensors and built-in values, written atomically, read with weights_only.

A checkpoint holds everything a run needs to continue exactly: the weights, the optimiser and
schedule, the history, the best weights so far, the elapsed time and the random state.
Keys: "format", "model_state", "model_config" (dict or None), "model_class", "train_config",
"optimizer_state", "scheduler_state", "history", "epoch", "best_state", "best_epoch",
"best_val", "elapsed", "time_to_best", "rng_state", "ema_state".
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lvmlib.training.results import plain

__all__ = ["save_checkpoint", "load_checkpoint", "load_vae", "CheckpointError", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 2  # 2: a "checksum" of the content, verified at load (1: none)
_CHECKSUM_KEY = "checksum"


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: empty, truncated, corrupted, or not an lvmlib checkpoint."""


def content_checksum(state: Mapping[str, Any]) -> str:
    """SHA-256 over a checkpoint's content: every tensor's dtype, shape and bytes, every other value.

    Keys are visited in sorted order and tensors are read on the CPU, so the digest does not
    depend on where the tensors were loaded. The "checksum" key itself is left out.
    """
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().to("cpu").contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(obj, Mapping):
            h.update(b"{")
            for k in sorted(obj, key=str):
                if k == _CHECKSUM_KEY and obj is state:
                    continue
                h.update(repr(k).encode())
                feed(obj[k])
            h.update(b"}")
        elif isinstance(obj, (list, tuple)):
            h.update(b"[" if isinstance(obj, list) else b"(")
            for v in obj:
                feed(v)
            h.update(b"]")
        else:
            h.update(f"{type(obj).__name__}:{obj!r};".encode())

    feed(state)
    return h.hexdigest()


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not every system can open a folder (the rename is still atomic)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike, what: str = "checkpoint") -> Path:
    """Fail now, not after an epoch, when ``path`` cannot be written: its folder is created.

    Raises ValueError when the path is empty or names a folder, NotADirectoryError when a
    regular file stands where a folder of the path should be, PermissionError when the
    folder is not writable.
    """
    if isinstance(path, str) and not path.strip():
        raise ValueError(f"the {what} path must name a file, got an empty string")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"the {what} path must name a file, but {str(path)!r} is a folder")
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(
                f"cannot write the {what} {str(path)!r}: {str(parent)!r} is a file, not a folder"
            )
        if parent.exists():
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the {what} {str(path)!r}: the folder {str(path.parent)!r} is not writable")
    return path


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a checkpoint dict with ``torch.save``, atomically and durably.

    The content's SHA-256 (``content_checksum``) is stored under "checksum" and verified by
    ``load_checkpoint``. The bytes go to ``path + ".tmp"``, are flushed to the disk (fsync),
    and the temporary file is renamed over ``path``: a crash or a full disk leaves the
    previous checkpoint intact, and a failed write removes the temporary file.
    The dict must hold only tensors and built-in containers/scalars so that
    ``torch.load(path, weights_only=True)`` can read it (no pickled classes).
    Inputs: path, state (dict). Returns: the path written.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    path = check_writable(path)
    content = dict(state)
    content.setdefault("format", CHECKPOINT_FORMAT)
    content[_CHECKSUM_KEY] = content_checksum(content)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(content, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(err, OSError):
            raise OSError(err.errno, f"cannot write the checkpoint {str(path)!r}: {err.strerror or err}") from err
        raise
    _fsync_folder(path.parent)
    return path


def _torch_load(path: Path, map_location) -> Any:
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"the checkpoint {str(path)!r} is empty (0 bytes): it was never written completely")
    if not zipfile.is_zipfile(path):
        reason = "it is truncated, corrupted or not a checkpoint file (not the zip archive torch.save writes)"
    else:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            if "unsupported global" in str(err).lower():
                # Never pass on torch's advice to load with weights_only=False: that would run code.
                reason = "it holds Python objects other than tensors and plain values, which lvmlib refuses to load"
            else:
                reason = "it is truncated, corrupted or not a checkpoint file (its content cannot be unpickled)"
        except (EOFError, RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
            reason = f"it is truncated, corrupted or not a checkpoint file ({type(err).__name__})"
    raise CheckpointError(f"cannot read the checkpoint {str(path)!r} ({size} bytes): {reason}")


def check_map_location(map_location) -> None:
    """Refuse a device that this machine does not have before any file is read (not the file's fault)."""
    if map_location is None:
        return
    if not isinstance(map_location, (str, torch.device)):
        raise TypeError(f"map_location must be a device such as 'cpu' or 'cuda', or None, got {map_location!r}")
    try:
        dev = torch.device(map_location)
    except (RuntimeError, ValueError):
        raise ValueError(f"map_location must be a device such as 'cpu', 'cuda' or 'cuda:N', got {map_location!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"map_location={str(map_location)!r} asks for a GPU, but this machine has no CUDA GPU "
                             "available to torch: load with map_location='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"map_location={str(map_location)!r} names GPU {dev.index}, but this machine has "
                             f"{torch.cuda.device_count()}: use 'cuda:0' .. 'cuda:{torch.cuda.device_count() - 1}' or 'cpu'")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"map_location={str(map_location)!r} asks for an Apple GPU (MPS), which this machine does "
                         "not have: load with map_location='cpu'")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``train``/``save_checkpoint`` with ``weights_only=True``.

    The stored checksum is verified (format 2): a file whose bytes changed after it was written
    is refused. Keys: see the module docstring.
    Raises: FileNotFoundError (no file), CheckpointError (empty, truncated, corrupted, not a
    checkpoint, or the checksum does not match).
    """
    check_map_location(map_location)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"the checkpoint path must name a file, but {str(path)!r} is a folder")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    ckpt = _torch_load(path, map_location)
    if not isinstance(ckpt, dict) or "model_state" not in ckpt:
        raise CheckpointError(f"{str(path)!r} is not a checkpoint written by lvmlib.training (no 'model_state')")
    fmt = ckpt.get("format", 1)
    if not isinstance(fmt, int) or fmt > CHECKPOINT_FORMAT or fmt < 1:
        raise CheckpointError(f"{str(path)!r} has checkpoint format {fmt!r}; this lvmlib reads formats 1..{CHECKPOINT_FORMAT}")
    if fmt >= 2 or _CHECKSUM_KEY in ckpt:
        stored = ckpt.get(_CHECKSUM_KEY)
        if not isinstance(stored, str) or stored != content_checksum(ckpt):
            raise CheckpointError(
                f"the checkpoint {str(path)!r} is corrupted: its content does not match the checksum stored "
                "when it was saved (bytes changed on disk or in transfer); use an earlier copy or train again"
            )
    return ckpt


def vae_from_state(cfg_dict: Any, state: Mapping[str, Any], where: str,
                   map_location: str | torch.device | None = "cpu", model_class: str | None = None) -> nn.Module:
    """``VAE(VAEConfig(**cfg_dict))`` with ``state`` loaded, in eval mode; errors name ``where``.

    ``model_class`` "HierarchicalVAE" rebuilds a ``lvmlib.hierarchical.HierarchicalVAE`` instead;
    "FlowVAE" (a VAE whose config names a flow posterior) is rebuilt by ``VAE(config)``.
    """
    from lvmlib.vae import VAE, VAEConfig

    if model_class not in (None, "VAE", "FlowVAE", "HierarchicalVAE"):
        raise CheckpointError(
            f"{where} holds a {model_class!r}, which load_vae cannot rebuild (it rebuilds a VAE, a FlowVAE or "
            "a HierarchicalVAE): build that model yourself and load the checkpoint's 'model_state' into it"
        )
    if model_class == "HierarchicalVAE":
        from lvmlib.hierarchical import HierarchicalVAE as VAE, HierarchicalVAEConfig as VAEConfig  # noqa: N814
    if not cfg_dict or not isinstance(cfg_dict, Mapping):
        raise ValueError(f"{where} holds no model_config; it was not written for a VAE")
    fields = {f.name for f in dataclasses.fields(VAEConfig)}
    unknown = set(cfg_dict) - fields
    if unknown:
        raise ValueError(f"model_config in {where} has fields VAEConfig does not know: {sorted(unknown)}")
    cfg_dict = dict(cfg_dict)
    if map_location is not None:
        cfg_dict["device"] = str(map_location)
    elif "device" in cfg_dict:
        cfg_dict["device"] = "cpu"
    try:
        config = VAEConfig(**cfg_dict)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the model_config in {where} is not a valid {VAEConfig.__name__}: {err}") from None
    model = VAE(config)
    if model_class is not None and type(model).__name__ != model_class:
        raise CheckpointError(
            f"{where} says it holds a {model_class!r}, but its model_config builds a {type(model).__name__!r}: "
            "the record does not agree with itself; it was not written by lvmlib.training"
        )
    dtype = model.dtype
    state = {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"the weights in {where} do not fit the VAE its model_config describes: {first[1].strip() if len(first) > 1 else first[0]}"
        ) from None
    if map_location is not None:
        model.to(map_location)
    return model.eval()


def load_vae(path: str | os.PathLike, map_location: str | torch.device | None = "cpu", *, best: bool = True) -> nn.Module:
    """Rebuild a ``lvmlib.vae.VAE`` from a checkpoint: ``VAE(VAEConfig(**model_config))``
    (a ``lvmlib.hierarchical.HierarchicalVAE`` when the checkpoint's model_class says so).

    best=True loads the best weights (the ones ``train`` restored), otherwise the latest.
    The model is returned in eval mode on ``map_location``.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    state = ckpt.get("best_state") if best and ckpt.get("best_state") is not None else ckpt["model_state"]
    return vae_from_state(ckpt.get("model_config"), state, repr(str(path)), map_location, ckpt.get("model_class"))


def plain_scheduler_state(scheduler: Any) -> dict | None:
    if scheduler is None:
        return None
    sd = scheduler.state_dict()
    return {k: plain(v) if not isinstance(v, torch.Tensor) else v for k, v in sd.items()}


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Any] | None) -> None:
    if not state:
        return
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)

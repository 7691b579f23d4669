"""The course's data: embedded digits, MNIST from IDX files, and toy 2-D data.

- **digits** (the default): scikit-learn's 8x8 handwritten digits, 1797 images of
  D = 64 pixels with integer values 0..16. It ships inside scikit-learn, so every
  notebook and test runs offline. The split is the one of Tomczak's book code:
  the first 1000 images for training, the next 350 for validation, the last 447
  for testing.
- **MNIST** (optional): the four standard IDX ``.gz`` files in a data folder
  (``$LVMLIB_MNIST_DIR``, else ``~/.cache/lvmlib/mnist``). The decompressed content
  of each file is checked against its SHA-256 (the compressed bytes differ between
  mirrors, the content does not). When the files are missing a download is tried;
  when that fails too, the error says which files to put where.
- **toy 2-D data** for the lecture's figure "projection of 2-D data onto 1-D".
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import math
import numbers
import os
import shutil
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGITS_SIZES = (1000, 350, 447)
DIGITS_LEVELS = 17  # pixel values 0..16

MNIST_ENV = "LVMLIB_MNIST_DIR"
# SHA-256 of the decompressed content of each file (the same for every mirror).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DATASETS = ("digits", "mnist", "toy2d")
_SCALES = ("unit", "raw", "binary")


class MNISTNotFoundError(FileNotFoundError):
    """The MNIST files are not in the data folder and could not be downloaded."""


class ChecksumError(ValueError):
    """A data file's content is not what it should be (corrupted or truncated)."""


@dataclass(frozen=True)
class Split:
    """A train/validation/test split of a data set (numpy arrays, one row per example)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    y_train: np.ndarray | None = None
    y_val: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def D(self) -> int:
        """The number of dimensions of one example."""
        return int(self.train.shape[1])

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def _check_scale(scale: str, allowed=_SCALES) -> None:
    if not isinstance(scale, str) or scale not in allowed:
        raise ValueError(f"scale must be one of {allowed}, got {scale!r}")


def _scaled(images: np.ndarray, scale: str, max_value: int) -> np.ndarray:
    """raw: integers as stored; unit: floats in [0, 1]; binary: 0/1 floats (threshold at half)."""
    if scale == "raw":
        return images.astype(np.int64)
    unit = images.astype(np.float32) / np.float32(max_value)
    if scale == "binary":
        return (unit > 0.5).astype(np.float32)
    return unit


# ----------------------------------------------------------------------------- digits

def load_digits(scale: str = "unit", return_labels: bool = False):
    """scikit-learn's 8x8 digits, loaded offline.

    Inputs: scale "unit" (float32 in [0, 1], pixel / 16), "raw" (int64 levels 0..16)
        or "binary" (float32 0/1, pixel > 8).
    Returns: X (1797, 64), and the labels y (1797,) when ``return_labels``.
    """
    _check_scale(scale)
    if not isinstance(return_labels, bool):
        raise TypeError(f"return_labels must be True or False, got {return_labels!r}")
    images, labels = _digits_table()
    X = _scaled(images, scale, DIGITS_LEVELS - 1)
    return (X, labels.astype(np.int64)) if return_labels else X


DIGITS_SHAPE = (1797, 65)       # scikit-learn's digits.csv.gz: 64 pixels, then the label, per row


def _digits_file() -> Path | None:
    """scikit-learn's file of the digits, found without importing scikit-learn (about 0.6 s of a
    notebook's start that needs nothing else from it); None when it is not where it has always been."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


@functools.cache
def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """The digits' pixels (1797, 64) float64 and labels (1797,), read once per process (callers copy)."""
    table = None
    path = _digits_file()
    if path is not None:
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2)
        except (OSError, ValueError):
            table = None
    if table is None or table.shape != DIGITS_SHAPE:
        from sklearn.datasets import load_digits as _sk_load_digits    # its own reader, wherever the file is

        bunch = _sk_load_digits()
        return bunch.data, bunch.target
    return table[:, :-1], table[:, -1].astype(np.int64)


def split_rows(X: np.ndarray, sizes, y: np.ndarray | None = None) -> Split:
    """Split rows in order into train/validation/test of the given sizes (they must add up to len(X)).

    Inputs: X (N, D) array (a list is converted with np.asarray); sizes three positive integers
        adding up to N; y (optional) labels (N,), one per row, split the same way.
    Returns: a :class:`Split`.
    """
    if isinstance(X, (list, tuple)):
        X = np.asarray(X)
    if not hasattr(X, "shape") or not hasattr(X, "__getitem__"):
        raise TypeError(f"X must be an array of shape (N, D), got {type(X).__name__}")
    if len(X.shape) != 2:
        raise ValueError(f"X must have shape (N, D) (one row per example), got shape {tuple(X.shape)}")
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"sizes must be three positive integers (train, val, test), got {sizes!r}") from None
    if len(sizes) != 3 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) and s > 0 for s in sizes
    ):
        raise ValueError(f"sizes must be three positive integers (train, val, test), got {sizes!r}")
    sizes = tuple(int(s) for s in sizes)
    if sum(sizes) != len(X):
        raise ValueError(f"sizes {sizes} add up to {sum(sizes)}, but the data has {len(X)} rows")
    if y is not None:
        if isinstance(y, (list, tuple)):
            y = np.asarray(y)
        if not hasattr(y, "shape") or len(y.shape) != 1 or y.shape[0] != len(X):
            shape = tuple(y.shape) if hasattr(y, "shape") else type(y).__name__
            raise ValueError(f"y must hold one label per row of X, shape ({len(X)},), got {shape}")
    a, b = sizes[0], sizes[0] + sizes[1]
    parts = (X[:a], X[a:b], X[b:])
    labels = (None, None, None) if y is None else (y[:a], y[a:b], y[b:])
    return Split(*parts, *labels)


def digits_split(scale: str = "unit", return_labels: bool = False, sizes=DIGITS_SIZES) -> Split:
    """The digits split of Tomczak's book code: first 1000 train, next 350 validation, last 447 test.

    Inputs: scale as in :func:`load_digits`; sizes (train, val, test) adding up to 1797.
    Returns: a :class:`Split` (train (1000, 64), val (350, 64), test (447, 64)), with labels if asked.
    """
    X, y = load_digits(scale, return_labels=True)
    return split_rows(X, sizes, y if return_labels else None)


# ----------------------------------------------------------------------------- MNIST

def mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The MNIST folder: ``data_dir`` if given, else ``$LVMLIB_MNIST_DIR``, else ``~/.cache/lvmlib/mnist``."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir must be a path (str or os.PathLike) or None, got {type(data_dir).__name__}")
        folder = Path(data_dir).expanduser()
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"data_dir must name a folder (for the four MNIST IDX .gz files), "
                                     f"but {str(folder)!r} is a file")
        return folder
    if os.environ.get(MNIST_ENV):
        folder = Path(os.environ[MNIST_ENV]).expanduser()
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(
                f"the environment variable {MNIST_ENV} must name a folder (for the four MNIST IDX .gz files), "
                f"but {str(folder)!r} is a file; set it to a folder or unset it"
            )
        return folder
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return cache / "lvmlib" / "mnist"


def read_idx(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Parse a gzipped IDX file (unsigned-byte data): the array and the SHA-256 of its content."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ChecksumError(f"{path} is not a readable gzip file ({err}); delete it and fetch it again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ChecksumError(f"{path} is not an IDX file (bad magic number); delete it and fetch it again")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise ChecksumError(f"{path}: IDX data type 0x{dtype_code:02x} is not unsigned bytes (0x08)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ChecksumError(f"{path} is truncated (incomplete IDX header)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ChecksumError(
            f"{path} holds {len(raw) - header} data bytes, its header promises {expected} "
            f"(shape {shape}): the file is truncated or corrupted; delete it and fetch it again"
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    return data, hashlib.sha256(raw).hexdigest()


def _missing_message(folder: Path, missing: list[str], reason: str) -> str:
    files = "\n".join(f"    {folder / name}" for name in missing)
    return (
        f"MNIST is not available: {reason}.\n"
        f"To work offline, put these files (the standard MNIST IDX .gz files) here:\n{files}\n"
        f"(copied from a machine with a network: they can be downloaded from {' or '.join(MNIST_MIRRORS)}).\n"
        f"To use another folder, set the environment variable {MNIST_ENV} or pass data_dir=; "
        "or use the digits (dataset 'digits'), which need no download."
    )


DOWNLOAD_TIMEOUT = 5.0  # seconds a connection may stay silent (connect, or between two reads)
DOWNLOAD_LIMIT = 600.0  # seconds for the whole download, progress printed on the way


def _check_seconds(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def download_mnist(data_dir: str | os.PathLike | None = None, files=None, timeout: float = DOWNLOAD_TIMEOUT,
                   total_timeout: float = DOWNLOAD_LIMIT, log=None) -> Path:
    """Download the missing MNIST files into the data folder; raises MNISTNotFoundError on failure.

    Says what it downloads from where before each attempt (``log``, default: print to stderr).
    ``timeout``: seconds a connection may stay silent (to connect, or between two reads) before
    that mirror is given up, for this file and the next ones; ``total_timeout``: seconds for the
    whole download. A network that accepts connections and never answers costs at most
    ``timeout`` per mirror, and the error says what to do offline.
    """
    import sys
    import time

    timeout = _check_seconds("timeout", timeout)
    total_timeout = _check_seconds("total_timeout", total_timeout)
    if log is None:
        def log(msg):
            print(msg, file=sys.stderr, flush=True)
    folder = mnist_dir(data_dir)
    files = list(files or MNIST_SHA256)
    deadline = time.monotonic() + total_timeout
    mirrors = list(MNIST_MIRRORS)
    errors = []
    for name in files:
        target = folder / name
        if target.exists():
            continue
        for mirror in list(mirrors):
            url = mirror + name
            partial = target.with_suffix(target.suffix + ".part")
            log(f"downloading MNIST {name} from {url} into {folder} "
                f"(gives up after {timeout:g} s without an answer)")
            try:
                folder.mkdir(parents=True, exist_ok=True)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the download took longer than total_timeout={total_timeout:g} s")
                with urllib.request.urlopen(url, timeout=min(timeout, left)) as response, open(partial, "wb") as out:
                    while True:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"the download took longer than total_timeout={total_timeout:g} s")
                        chunk = response.read(1 << 16)
                        if not chunk:
                            break
                        out.write(chunk)
                partial.replace(target)
                break
            except Exception as err:  # no network, HTTP error, silence, disk error: give this mirror up
                try:
                    partial.unlink()
                except OSError:
                    pass
                errors.append(f"{url}: {err or type(err).__name__}")
                mirrors.remove(mirror)
                log(f"  failed: {err or type(err).__name__}")
        else:
            missing = [n for n in files if not (folder / n).exists()]
            raise MNISTNotFoundError(_missing_message(folder, missing, "the download failed (" + "; ".join(errors) + ")"))
    return folder


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = True, verify: bool = True,
               checksums: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """MNIST as uint8 arrays: {"train_images" (60000, 784), "train_labels" (60000,), "test_images", "test_labels"}.

    Inputs: data_dir the folder with the four IDX .gz files (see :func:`mnist_dir`); download
        (True or False) tries to fetch missing files (see :func:`download_mnist`: it says what it
        fetches from where, and gives up a silent mirror after a few seconds); verify checks each
        file's decompressed content against ``checksums`` (default :data:`MNIST_SHA256`).
    Raises: MNISTNotFoundError naming the files and the folder when they are missing;
        ChecksumError when a file is corrupted or holds no images.
    """
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"download must be True or False, got {download!r}")
    if not isinstance(verify, (bool, np.bool_)):
        raise TypeError(f"verify must be True or False, got {verify!r}")
    folder = mnist_dir(data_dir)
    checksums = MNIST_SHA256 if checksums is None else checksums
    missing = [name for name in MNIST_SHA256 if not (folder / name).exists()]
    if missing:
        if not download:
            raise MNISTNotFoundError(_missing_message(folder, missing, "files are missing and download=False"))
        download_mnist(folder, missing)
    arrays = {}
    for name in MNIST_SHA256:
        data, digest = read_idx(folder / name)
        if verify and digest != checksums.get(name):
            raise ChecksumError(
                f"{folder / name}: the content's SHA-256 is {digest}, expected {checksums.get(name)}; "
                "the file is corrupted or not the MNIST file of that name. Delete it and fetch it again."
            )
        if data.ndim < 1 or data.shape[0] == 0 or data.size == 0:
            raise ChecksumError(f"{folder / name} holds no data (shape {data.shape}): it is not the MNIST file of that "
                                "name. Delete it and fetch it again.")
        arrays[name] = data
    out = {
        "train_images": arrays["train-images-idx3-ubyte.gz"],
        "train_labels": arrays["train-labels-idx1-ubyte.gz"],
        "test_images": arrays["t10k-images-idx3-ubyte.gz"],
        "test_labels": arrays["t10k-labels-idx1-ubyte.gz"],
    }
    for part in ("train", "test"):
        images, labels = out[f"{part}_images"], out[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ChecksumError(f"MNIST {part} images {images.shape} and labels {labels.shape} do not match")
        out[f"{part}_images"] = images.reshape(len(images), -1)  # (N, H*W)
    return out


def mnist_split(scale: str = "unit", n_val: int = 10000, return_labels: bool = False, **load_kw) -> Split:
    """MNIST as a :class:`Split`: the last ``n_val`` training images for validation, the official test set.

    Inputs: scale "unit" (float32 in [0, 1]), "binary" (0/1 at 0.5) or "raw" (int64 0..255);
        n_val between 1 and the number of training images - 1; other keywords go to :func:`load_mnist`.
    """
    _check_scale(scale)
    if isinstance(n_val, (bool, np.bool_)) or not isinstance(n_val, (int, np.integer)) or n_val < 1:
        raise ValueError(f"n_val must be a positive integer (the number of validation images), got {n_val!r}")
    data = load_mnist(**load_kw)
    n_train_all = len(data["train_images"])
    if not 0 < n_val < n_train_all:
        raise ValueError(f"n_val must be an integer between 1 and {n_train_all - 1}, got {n_val!r}")
    X = np.concatenate([data["train_images"], data["test_images"]])
    y = np.concatenate([data["train_labels"], data["test_labels"]]).astype(np.int64)
    sizes = (n_train_all - n_val, n_val, len(data["test_images"]))
    return split_rows(_scaled(X, scale, 255), sizes, y if return_labels else None)


# ----------------------------------------------------------------------------- dynamic binarization

def binarize(x, generator=None):
    """Dynamic binarization: a fresh Bernoulli draw of each pixel, with its grey level as the probability.

        b_nd ~ Bernoulli(x_nd),  independently for every pixel and every call,
        so E[b_nd] = x_nd: over the epochs the binary images average to the grey ones.

    Drawn again every epoch, a binary likelihood sees a new binary image each time instead of
    one fixed binary version of the data set ("static binarization": one such draw made once, as
    Salakhutdinov & Murray 2008 did for MNIST; not a threshold at 0.5). Dynamic binarization is
    the usual treatment of MNIST for Bernoulli VAEs since Burda et al. (2016).

    Inputs: x (..., D) floats in [0, 1] (a torch tensor or numpy array); generator an optional
        torch.Generator on x's device (the draw is reproducible with a seeded one).
    Returns: a tensor of 0. and 1. of x's shape, dtype and device (float32 for a numpy input).
    """
    import torch

    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.asarray(x, dtype=np.float32))
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor or array of grey levels in [0, 1], got "
                        f"{x.dtype if torch.is_tensor(x) else type(x).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("x must hold grey levels in [0, 1] (probabilities), got values outside (or NaN)")
    return torch.bernoulli(x, generator=generator)


# ----------------------------------------------------------------------------- toy data

def toy_2d(n: int = 200, seed: int = 0, angle_deg: float = 30.0, spread: float = 2.0, noise: float = 0.3) -> np.ndarray:
    """2-D points scattered along a line: the lecture's "projection of 2-D data onto 1-D".

    x = mean + s * u + e * v, with u = (cos angle, sin angle), v orthogonal to u,
    s ~ N(0, spread^2), e ~ N(0, noise^2). Returns (n, 2) float64.
    Inputs: n >= 2; seed a non-negative integer; angle_deg a finite number; spread and noise
        positive finite numbers.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, value, positive in (("angle_deg", angle_deg, False), ("spread", spread, True), ("noise", noise, True)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value) or (positive and value <= 0):
            raise ValueError(f"{name} must be a {'positive ' if positive else ''}finite number, got {value!r}")
    rng = np.random.default_rng(seed)
    a = np.deg2rad(angle_deg)
    u = np.array([np.cos(a), np.sin(a)])
    v = np.array([-np.sin(a), np.cos(a)])
    s = rng.normal(0.0, spread, size=(n, 1))
    e = rng.normal(0.0, noise, size=(n, 1))
    return np.array([1.0, 0.5]) + s * u + e * v  # (n, 2)


def load_dataset(name: str, **kwargs) -> Split | np.ndarray:
    """Load a data set by name: "digits" (a Split), "mnist" (a Split) or "toy2d" (an (n, 2) array)."""
    if not isinstance(name, str):
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if name == "digits":
        return digits_split(**kwargs)
    if name == "mnist":
        return mnist_split(**kwargs)
    if name == "toy2d":
        return toy_2d(**kwargs)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")

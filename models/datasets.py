"""Input shapes, class counts and normalisation constants of the supported datasets.

``models`` does not import ``bench``; this small table mirrors ``bench.enums.Dataset``. CIFAR-10
mean/std from quark0/darts ``cnn/utils.py``; CIFAR-100 and (Fashion-)MNIST are the usual
per-channel training-set statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from models.errors import ModelError


@dataclass(frozen=True)
class DatasetShape:
    """What a model needs to know about a dataset."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


DATASETS: dict[str, DatasetShape] = {
    d.name: d
    for d in (
        DatasetShape(
            "cifar10", 3, 32, 10, (0.49139968, 0.48215827, 0.44653124),
            (0.24703233, 0.24348505, 0.26158768),
        ),
        DatasetShape(
            "cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
        ),
        DatasetShape("mnist", 1, 28, 10, (0.1307,), (0.3081,)),
        DatasetShape("fashion_mnist", 1, 28, 10, (0.2860,), (0.3530,)),
    )
}  # fmt: skip


def dataset_shape(dataset: object) -> DatasetShape:
    """Look up a dataset by name (a string or a str enum; case and dashes are ignored)."""
    raw = dataset.value if isinstance(dataset, Enum) else dataset
    key = str(raw).strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ModelError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` so that models take images in ``[0, 1]``.

    The constants are non-persistent buffers: they follow ``.to(device)`` but stay out of the
    state dict (they come from the dataset, not from training).
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.constants = (tuple(mean), tuple(std))
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", torch.tensor(mean).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.constants[0]}, std={self.constants[1]}"

"""Input normalisation inside the model, so that every model takes images in ``[0, 1]``.

The per-dataset constants come from :data:`core.datasets.DATASETS`.
"""

from __future__ import annotations

import torch
from torch import nn

from core.datasets import DatasetInfo, dataset_info
from core.errors import UserError
from models.errors import ModelError


def model_dataset(dataset: object) -> DatasetInfo:
    """:func:`core.datasets.dataset_info`, failing with a :class:`ModelError`."""
    try:
        return dataset_info(dataset)
    except UserError as err:
        raise ModelError(str(err)) from None


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

"""Parameter counts at paper scale (CIFAR-10, paper-scale defaults, no auxiliary head).

Models are built on the ``meta`` device (shapes only, no memory, no initialisation cost) and the
counts are cached per model name and genotype file version.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import nn

import genotypes
from models.datasets import model_dataset
from models.registry import ModelInfo, build_model, get_model_info


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def paper_scale_params(name: str) -> int | None:
    """Parameters of ``name`` at paper scale on CIFAR-10 without the auxiliary head.

    ``None`` for an unavailable entry.
    """
    info = get_model_info(name)
    if not info.available:
        return None
    return _cached_count(info.name, _genotype_version(info))


def paper_scale_params_m(name: str) -> float | None:
    """:func:`paper_scale_params` in millions."""
    count = paper_scale_params(name)
    return None if count is None else count / 1e6


def _genotype_version(info: ModelInfo) -> str:
    if info.genotype is None:
        return ""
    path = genotypes.find_genotype_file(info.genotype)
    stat = os.stat(path)
    return f"{path}:{stat.st_mtime_ns}:{stat.st_size}"


@functools.lru_cache(maxsize=256)
def _cached_count(name: str, version: str) -> int:
    info = get_model_info(name)
    kwargs = dict(info.defaults)
    if "auxiliary" in kwargs:
        kwargs["auxiliary"] = False
    with torch.device("meta"):
        model = build_model(info, model_dataset("cifar10"), kwargs)
    return count_parameters(model)

"""Resumable training state: everything :func:`bench.training.train` needs to continue a killed
run bit-identically (model, optimizer, schedule, RNG streams of torch, numpy, Python and of the
loader's shuffling and augmentation, the finished epochs' metrics), saved atomically after each
epoch without pickle (safetensors + JSON, ``racl_search.run_state``).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from racl_search.run_state import load_run_state, rng_state, save_run_state, set_rng_state


def loader_generators(loader) -> list[torch.Generator]:  # noqa: ANN001
    """The torch generators a loader draws from: the sampler's shuffling and the augmentation."""
    holders = []
    for outer in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        holders += [(outer, "generator"), (getattr(outer, "sampler", None), "generator")]
    holders.append((getattr(loader, "collate_fn", None), "gen"))
    gens: list[torch.Generator] = []
    for holder, attr in holders:
        gen = getattr(holder, attr, None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in gens):
            gens.append(gen)
    return gens


def capture(model: nn.Module, optimizer, scheduler, loader, epochs: list[dict]) -> dict[str, Any]:  # noqa: ANN001
    """The state after the finished ``epochs``."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "loader_rng": [g.get_state() for g in loader_generators(loader)],
        "numpy_rng": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
        "epochs": epochs,
    }


def restore(state: dict[str, Any], model: nn.Module, optimizer, scheduler, loader) -> list[dict]:  # noqa: ANN001
    """Load ``state`` into the objects; returns the finished epochs' metrics."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    for gen, saved in zip(loader_generators(loader), state["loader_rng"], strict=True):
        gen.set_state(saved.to(torch.uint8))
    kind, keys, pos, has_gauss, cached = state["numpy_rng"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    return list(state["epochs"])


def save(state_dir: Path, epoch: int, state: dict[str, Any]) -> None:
    """Write the state of finished ``epoch`` (1-based) atomically."""
    save_run_state(state_dir, epoch, state)


def load(state_dir: Path | None) -> tuple[int, dict[str, Any]] | None:
    """``(finished epochs, state)`` or None."""
    return None if state_dir is None else load_run_state(state_dir)


def clear(state_dir: Path | None) -> None:
    """Remove the state folder once the checkpoint is written."""
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)

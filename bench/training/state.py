"""Resumable training state: everything :func:`bench.training.trainer.train` needs to continue a
killed run bit-identically (model, optimizer, schedule, the RNG streams of torch, numpy, Python and
of the loader's shuffling and augmentation of every rank, the finished epochs' metrics and, for a
save within an epoch, the loader position), written atomically without pickle (safetensors +
JSON, ``racl_search.run_state``). Saving times and the position: ``bench.training.saver``;
the layout and its reasons: docs/PROTOCOL.md, "Resumable training".
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from core.atomic import atomic_write, atomic_write_text
from core.errors import UserError
from racl_search.run_state import (
    STATE_JSON,
    load_run_state,
    rng_state,
    set_rng_state,
    split_tensors,
)


def sampler_generators(loader) -> list[torch.Generator]:  # noqa: ANN001
    """The torch generators the loader's shuffling draws from."""
    holders = []
    for outer in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        holders += [(outer, "generator"), (getattr(outer, "sampler", None), "generator")]
    return _distinct(holders)


def loader_generators(loader) -> list[torch.Generator]:  # noqa: ANN001
    """The torch generators a loader draws from: the sampler's shuffling and the augmentation."""
    gens = sampler_generators(loader)
    return gens + [g for g in _distinct([(getattr(loader, "collate_fn", None), "gen")])
                   if all(g is not h for h in gens)]  # fmt: skip


def _distinct(holders: list[tuple[object, str]]) -> list[torch.Generator]:
    gens: list[torch.Generator] = []
    for holder, attr in holders:
        gen = getattr(holder, attr, None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in gens):
            gens.append(gen)
    return gens


def rng_bundle(loader) -> dict[str, Any]:  # noqa: ANN001
    """This process's random streams: torch (CPU, CUDA), the loader's generators, numpy, Python."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "rng": rng_state(),
        "loader_rng": [g.get_state() for g in loader_generators(loader)],
        "numpy_rng": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_bundle(bundle: dict[str, Any], loader) -> None:  # noqa: ANN001
    """Inverse of :func:`rng_bundle`."""
    set_rng_state(bundle["rng"])
    for gen, saved in zip(loader_generators(loader), bundle["loader_rng"], strict=True):
        gen.set_state(saved.to(torch.uint8))
    kind, keys, pos, has_gauss, cached = bundle["numpy_rng"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = bundle["python_rng"]
    random.setstate((version, tuple(internal), gauss))


def capture(
    model: nn.Module,
    optimizer,  # noqa: ANN001
    scheduler,  # noqa: ANN001
    epochs: list[dict],
    bundles: list[dict[str, Any]],
) -> dict[str, Any]:
    """The state after the finished ``epochs``; ``bundles``: every rank's :func:`rng_bundle`
    (with its ``position`` in the epoch: each rank has its own share of the batches).

    Rank 0's streams sit at the top level, the layout of a one-process state
    (docs/decisions/store.md, "Recipe fields and older states"); ``ranks`` holds all of them
    when there is more than one process.
    """
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        **bundles[0],
        "epochs": epochs,
    }
    if len(bundles) > 1:
        state["ranks"] = bundles
    return state


def restore(
    state: dict[str, Any],
    model: nn.Module,
    optimizer,  # noqa: ANN001
    scheduler,  # noqa: ANN001
    loader,  # noqa: ANN001
    rank: int = 0,
    world_size: int = 1,
) -> list[dict]:
    """Load ``state`` into the objects and this rank's streams; returns the finished epochs.

    A state saved by another number of processes is refused: its ranks' streams do not map.
    """
    ranks = _ranks(state)
    if len(ranks) != world_size:
        raise UserError(
            f"the training state was saved by {len(ranks)} process(es), not {world_size}: "
            "resume with the same number, or delete its .partial folder to start again"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    set_rng_bundle(ranks[rank], loader)
    return list(state["epochs"])


def rank_entry(state: dict[str, Any], rank: int) -> dict[str, Any]:
    """Rank ``rank``'s own part of ``state`` (its streams and its place in the epoch)."""
    return _ranks(state)[rank]


def _ranks(state: dict[str, Any]) -> list[dict[str, Any]]:
    return state.get("ranks") or [state]


def save(state_dir: Path, epoch: int, state: dict[str, Any], batch: int = 0) -> Path:
    """Write the state after ``epoch`` finished epochs and ``batch`` batches of the next one.

    The tensors go to a file named by both (never overwritten in place), then ``state.json``
    names it, each atomically; older tensor files are removed afterwards. A kill at any moment
    leaves the previous or the new state whole.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = split_tensors(state, "s", tensors)
    weights = state_dir / f"state-{epoch}-{batch}.safetensors"
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp)))
    meta = {"epoch": epoch, "batch": batch, "tensors": weights.name, "state": skeleton}
    atomic_write_text(state_dir / STATE_JSON, json.dumps(meta))
    for old in state_dir.glob("state-*.safetensors"):
        if old != weights:
            old.unlink(missing_ok=True)
    return weights


def load(state_dir: Path | None) -> tuple[int, dict[str, Any]] | None:
    """``(finished epochs, state)`` or None."""
    return None if state_dir is None else load_run_state(state_dir)


def clear(state_dir: Path | None) -> None:
    """Remove the state folder once the checkpoint is written."""
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)

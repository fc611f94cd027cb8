"""When :func:`bench.training.trainer.train` saves its state, and where in an epoch it stands.

A state is saved after every epoch and, within an epoch, after the first batch that ends at
least ``every_s`` seconds after the previous save. A save within an epoch records the
:class:`Position`: the finished epochs, the batches done of the current one, that epoch's whole
batch order (indices) and its running sums, so that a resumed process replays exactly the rest
of the epoch. Under torchrun rank 0 decides the moment (one broadcast per batch), every rank's
random streams and position (its own share of the batches) are gathered to rank 0 and rank 0
writes the one state. See docs/PROTOCOL.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from bench.training import state as train_state
from core import distributed

SAVE_EVERY_S = 600.0  # within long epochs: ten minutes of work at most is lost to a kill


@dataclass
class Position:
    """A place within an epoch: ``batch`` batches done of epoch ``epoch`` (0-based)."""

    epoch: int
    batch: int
    order: list[list[int]]
    after: list[torch.Tensor]  # the shuffling generators' states once the whole pass is drawn
    sums: dict[str, float] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        flat = [i for b in self.order for i in b]
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "order": torch.tensor(flat, dtype=torch.int64),
            "sizes": [len(b) for b in self.order],
            "after": list(self.after),
            "sums": dict(self.sums),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any] | None) -> Position | None:
        if data is None:
            return None
        flat, order, at = data["order"].tolist(), [], 0
        for size in data["sizes"]:
            order.append(flat[at : at + size])
            at += size
        after = [t.to(torch.uint8) for t in data["after"]]
        return cls(int(data["epoch"]), int(data["batch"]), order, after, dict(data["sums"]))


def _index_sampler(loader):  # noqa: ANN001, ANN202
    """What the loader draws batches of indices from (its batch sampler, else its sampler)."""
    return loader.batch_sampler if loader.batch_sampler is not None else loader.sampler


def epoch_order(loader) -> tuple[list[list[int]], list[torch.Tensor]]:  # noqa: ANN001
    """The batches of indices the loader's next pass yields, and the states its shuffling
    generators reach once that pass is drawn to the end, without moving them.

    The end states matter: a RandomSampler draws once more when its pass runs out, so a resumed
    epoch sets them instead of replaying the pass. Holds for samplers that draw from their own
    generator (``core.data.train_loader``) or from the epoch alone (DistributedSampler after
    ``set_epoch``); the tests check both.
    """
    gens = train_state.sampler_generators(loader)
    saved = [g.get_state() for g in gens]
    order = [list(map(int, b)) for b in _index_sampler(loader)]
    after = [g.get_state() for g in gens]
    for g, s in zip(gens, saved, strict=True):
        g.set_state(s)
    return order, after


def remaining_batches(loader, position: Position) -> Iterator[tuple[torch.Tensor, ...]]:  # noqa: ANN001
    """The rest of the epoch at ``position``, fetched and collated as the loader does; the
    shuffling generators are left where the whole pass would leave them."""
    for idx in position.order[position.batch :]:
        if loader.batch_size is None:  # the sampler yields whole batches (core.data)
            yield loader.collate_fn(loader.dataset[idx])
        else:
            yield loader.collate_fn([loader.dataset[i] for i in idx])
    for g, s in zip(train_state.sampler_generators(loader), position.after, strict=True):
        g.set_state(s)


@dataclass
class Saver:
    """Saves the training state after each epoch and every ``every_s`` seconds within one."""

    state_dir: Path | None
    every_s: float | None
    model: nn.Module
    optimizer: Any
    scheduler: Any
    loader: Any
    extra: Any  # () -> dict of further state (the model selection's)
    scaler: Any = None  # fp16's GradScaler (CUDA), saved with the state so a resume keeps its scale
    last: float = field(default_factory=time.monotonic)

    def due(self, batch: int, n_batches: int) -> bool:
        """Whether to save after ``batch`` batches of ``n_batches`` (rank 0 decides)."""
        if self.state_dir is None or self.every_s is None or batch >= n_batches:
            return False
        return bool(distributed.broadcast_object(time.monotonic() - self.last >= self.every_s))

    def save(self, epochs: list[dict], position: Position | None = None) -> None:
        """Write the state (collective under torchrun: every rank calls it)."""
        if self.state_dir is None:
            return
        own = train_state.rng_bundle(self.loader)
        own["position"] = position.to_state() if position is not None else None
        bundles = gather(own)
        if distributed.context().is_main:
            state = train_state.capture(self.model, self.optimizer, self.scheduler, epochs, bundles)
            state["selection"] = self.extra()
            if self.scaler is not None:
                state["grad_scaler"] = self.scaler.state_dict()  # plain numbers: JSON
            batch = position.batch if position is not None else 0
            train_state.save(self.state_dir, len(epochs), state, batch)
        self.last = time.monotonic()


def gather(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's ``bundle`` in rank order (one process: ``[bundle]``)."""
    ctx = distributed.context()
    if not ctx.enabled:
        return [bundle]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, bundle)  # in memory over the process group; nothing on disk
    return out

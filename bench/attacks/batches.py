"""The one seeded batched loop every evaluation kind runs its rows through (:func:`per_batch`).

Rows are cut into the batches of the one-process batching; each batch is seeded by its global
index (:func:`batch_seed`), so under ``torchrun`` each rank computes its run of whole batches
exactly as one process does, and the per-row results are gathered in order on every rank.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from core import distributed

RowsFn = Callable[[int, int], Tensor]


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block under ``torch.manual_seed(seed)`` without disturbing the global RNG."""
    devices = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed % (2**63))
        yield


def batch_seed(seed: int, batch_index: int) -> int:
    """A per-batch seed derived deterministically from a cell seed."""
    return (seed * 1_000_003 + batch_index * 7919 + 17) % (2**63)


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch of the one-process batching: its global index, its rows, its seeding."""

    index: int
    rows: slice
    seed: int
    device: torch.device | None

    def seeded(self, seed: int | None = None) -> contextlib.AbstractContextManager[None]:
        """The block under ``batch_seed(seed, index)`` (``seed``: the loop's by default)."""
        return seeded(batch_seed(self.seed if seed is None else seed, self.index), self.device)


def per_batch(
    n: int,
    batch_size: int,
    compute: Callable[[Batch], Tensor],
    *,
    seed: int = 0,
    device: torch.device | None = None,
    width: tuple[int, ...] = (),
) -> Tensor:
    """``compute(batch)`` for every batch of rows ``[0, n)``, concatenated in row order.

    Batches hold ``batch_size`` rows and are numbered from 0 as in one process; under torchrun
    each rank computes its run of whole batches (:func:`sharded_rows`), with the same indices,
    hence the same seeds. ``compute`` returns one bool row per row of its batch, of trailing
    shape ``width``, and enters ``batch.seeded()`` around whatever draws random numbers.
    """
    size = max(batch_size, 1)

    def shard(start: int, stop: int) -> Tensor:
        parts = [torch.zeros(0, *width, dtype=torch.bool)]
        for b, first in enumerate(range(start, stop, size), start=start // size):
            parts.append(compute(Batch(b, slice(first, min(first + size, stop)), seed, device)))
        return torch.cat(parts)

    return sharded_rows(n, size, shard)


def sharded_rows(n: int, batch_size: int, compute: RowsFn) -> Tensor:
    """``compute(start, stop)`` (a bool tensor, one row per input row) over rows ``[0, n)``.

    One process: ``compute(0, n)``. Under torchrun each rank calls it on its contiguous run of
    whole batches (``start`` is a multiple of ``batch_size``, so the batches inside are those of
    the one-process run) and the rows of every rank are gathered in order on every rank. A
    failure on any rank is raised on every rank, so the ranks stay in step.
    """
    if not distributed.context().enabled:
        return compute(0, n)
    rows = distributed.shard_range(n, block=batch_size)
    local, error = None, None
    try:
        local = compute(rows.start, rows.stop)
    except Exception as err:  # noqa: BLE001 - every rank learns of it, then it is raised
        error = err
    distributed.raise_if_any_failed(error)
    return distributed.gather_bool(local, n, block=batch_size)

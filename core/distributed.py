"""Scale-out under ``torchrun``: process-group set-up, device resolution, sharding, gathering,
agreement, DDP wrapping.

Without torchrun's environment (or with ``WORLD_SIZE`` 1) every helper returns at once without
touching ``torch.distributed``. What each stage shards, and why a sharded evaluation equals a
one-process one bit for bit: docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from core.enums import Device
from core.errors import UserError, with_type

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether the job has more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0 (the one that writes)."""
        return self.rank == 0


class RankFailed(RuntimeError):
    """Another rank failed in a step every rank takes together."""


_context = DistContext()


def _env_int(name: str, default: int) -> int:
    """A whole number >= 0 from torchrun's environment; anything else is a one-line UserError."""
    text = os.environ.get(name, str(default)).strip()
    if not text.isdigit() or len(text) > 9:
        raise UserError(f"environment variable {name}={text[:20]!r} is not a process count/rank")
    return int(text)


def launched_by_torchrun() -> bool:
    """Whether torchrun (or an equivalent launcher) started this process among several."""
    return _env_int("WORLD_SIZE", 1) > 1 and "RANK" in os.environ


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given.

    Asking for CUDA on a machine without it is a :class:`UserError`.
    """
    if isinstance(device, torch.device):
        return device
    text = str(device).strip().lower()
    index = ""
    if text.startswith("cuda:") and text[5:].isdigit():
        text, index = "cuda", text[4:]
    choice = Device.parse(text)
    if choice is Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice is Device.CUDA and not torch.cuda.is_available():
        raise UserError("device cuda requested but no CUDA GPU is available; use --device cpu")
    return torch.device(choice.value + index)


def wants_cuda(device: str | torch.device) -> bool:
    """Whether ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) means a CUDA GPU here."""
    text = str(device)
    if text == "auto":
        return torch.cuda.is_available()
    return text.startswith("cuda") and torch.cuda.is_available()


def init(device: str | torch.device = "cpu") -> DistContext:
    """Join the process group torchrun set up (nccl for CUDA, gloo on CPU); idempotent.

    Without torchrun's environment this returns the one-process context and does nothing.
    """
    global _context
    if not launched_by_torchrun():
        return _context
    cuda = wants_cuda(device)
    local_rank = _env_int("LOCAL_RANK", 0)
    if cuda:
        torch.cuda.set_device(local_rank)  # before the group: nccl binds the current device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    _context = DistContext(dist.get_rank(), dist.get_world_size(), local_rank)
    return _context


def shutdown() -> None:
    """Leave the process group (if any) and return to the one-process context."""
    global _context
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _context = DistContext()


@contextlib.contextmanager
def session(device: str | torch.device = "cpu") -> Iterator[DistContext]:
    """:func:`init` for the block; leaves the group afterwards if this block joined it.

    A block that ends normally ends with a barrier, so every rank exits together once rank 0
    has written and printed (torchrun stops every rank as soon as one exits with an error code,
    e.g. ``bench run``'s 1 for failed cells). An exception skips the barrier.
    """
    joined = launched_by_torchrun() and not (dist.is_available() and dist.is_initialized())
    ctx = init(device)
    try:
        yield ctx
        barrier()
    finally:
        if joined:
            shutdown()


def context() -> DistContext:
    """This process's place in the job."""
    return _context


def device_for(device: str | torch.device) -> str | torch.device:
    """This rank's device: ``cuda``/``auto`` become ``cuda:<local_rank>`` under torchrun.

    One process: ``device`` unchanged.
    """
    if not _context.enabled:
        return device
    text = str(device)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cuda":
        text = f"cuda:{_context.local_rank}"
    return torch.device(text) if isinstance(device, torch.device) else text


def rank_seed(seed: int) -> int:
    """A per-rank seed (``seed`` itself on rank 0): independent random streams per rank."""
    return seed + 1_000_003 * _context.rank


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if _context.enabled:
        dist.barrier()


def _comm_device() -> torch.device:
    """Where collective tensors must live: the current GPU for nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# -- sharding ----------------------------------------------------------------------------------


def shard_range(
    n: int, rank: int | None = None, world_size: int | None = None, block: int = 1
) -> range:
    """The contiguous rows ``[start, stop)`` of ``n`` that ``rank`` handles.

    Rows are grouped in blocks of ``block`` (the last one may be short); each rank takes a
    contiguous run of whole blocks, the first ``blocks % world_size`` ranks one block more. With
    ``block`` = the evaluation batch size every batch is one of the one-process batches.
    """
    rank = _context.rank if rank is None else rank
    world_size = _context.world_size if world_size is None else world_size
    block = max(int(block), 1)
    blocks = -(-n // block)
    per, extra = divmod(blocks, world_size)
    first = rank * per + min(rank, extra)
    last = first + per + (1 if rank < extra else 0)
    return range(min(first * block, n), min(last * block, n))


def gather_bool(local: Tensor, n_total: int, block: int = 1) -> Tensor:
    """Every rank's rows of a bool tensor (shards of :func:`shard_range`), in rank order.

    ``local`` has one row per row of this rank's shard and any trailing shape (the same on every
    rank); the result, on every rank, has ``n_total`` rows. One process: ``local`` itself.
    """
    if not _context.enabled:
        return local
    world = _context.world_size
    sizes = [len(shard_range(n_total, r, world, block)) for r in range(world)]
    if local.shape[0] != sizes[_context.rank]:
        raise ValueError(f"rank {_context.rank} has {local.shape[0]} rows, expected its shard")
    padded = torch.zeros((max(max(sizes), 1), *local.shape[1:]), dtype=torch.uint8)
    padded[: local.shape[0]] = local.to("cpu", torch.uint8)
    padded = padded.to(_comm_device())
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s].cpu() for p, s in zip(parts, sizes, strict=True)]).bool()


# -- agreement ---------------------------------------------------------------------------------


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (picklable objects; one process: ``obj``)."""
    if not _context.enabled:
        return obj
    box = [obj if _context.is_main else None]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0 only; its value, or its exception, on every rank.

    For steps only rank 0 may take (open the store, plan against it, write a file): the other
    ranks wait for it, so the call is also a barrier. One process: ``fn()``.
    """
    if not _context.enabled:
        return fn()
    value, error = None, None
    if _context.is_main:
        try:
            value = fn()
        except Exception as err:  # noqa: BLE001 - handed to every rank, re-raised below
            error = err
    sent_value, sent_error = broadcast_object((value, _portable(error)))
    if _context.is_main and error is not None:
        raise error
    if sent_error is not None:
        raise sent_error
    return sent_value


def agree_on_failure(error: BaseException | None) -> BaseException | None:
    """The job's outcome of a step each rank took on its own (collective: every rank calls it).

    Returns None when every rank succeeded; else this rank's own error, or, where this rank
    succeeded, a :class:`RankFailed` naming the first failing rank and its error.
    """
    if not _context.enabled:
        return error
    mine = None if error is None else with_type(error)
    texts: list[str | None] = [None] * _context.world_size
    dist.all_gather_object(texts, mine)
    if error is not None:
        return error
    for rank, text in enumerate(texts):
        if text is not None:
            return RankFailed(f"rank {rank} failed: {text}")
    return None


def raise_if_any_failed(error: BaseException | None) -> None:
    """Raise on every rank when any rank failed (see :func:`agree_on_failure`)."""
    failed = agree_on_failure(error)
    if failed is not None:
        raise failed


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over the ranks (float64; one process: the values)."""
    if not _context.enabled:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def all_reduce_max(t: Tensor) -> Tensor:
    """Element-wise maximum of ``t`` over the ranks (one process: ``t``)."""
    if not _context.enabled:
        return t
    out = t.detach().to(_comm_device()).clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out.to(t.device)


def average_gradients(params: Sequence[Tensor]) -> None:
    """Replace each gradient by the mean over the ranks, bit-identical on every rank.

    The gradients are gathered and summed in rank order on every rank (an all-reduce need not
    give every rank the same bits). Parameters without a gradient are left alone (the ranks run
    the same code, so they are the same on every rank). One process: nothing changes.
    """
    params = [p for p in params if p.grad is not None]
    if not _context.enabled or not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params]).contiguous()
    parts = [torch.empty_like(flat) for _ in range(_context.world_size)]
    dist.all_gather(parts, flat)
    mean = torch.stack(parts).sum(dim=0) / _context.world_size
    offset = 0
    for p in params:
        size = p.numel()
        p.grad = mean[offset : offset + size].view_as(p).clone()
        offset += size


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics, power-iteration vectors) on every rank."""
    if not _context.enabled:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


# -- models ------------------------------------------------------------------------------------


def wrap_ddp(model: nn.Module) -> nn.Module:
    """DistributedDataParallel around ``model`` under torchrun, the model itself otherwise.

    The model must already be on this rank's device. BatchNorm stays per-rank (no SyncBatchNorm):
    each rank normalises with its own batch statistics and DDP copies rank 0's buffers (running
    statistics) to the other ranks at every forward.
    """
    if not _context.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    first = next(iter(model.parameters()), None)
    device_ids = [first.device.index] if first is not None and first.is_cuda else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (else the model itself)."""
    return getattr(model, "module", model)


def _portable(error: BaseException | None) -> BaseException | None:
    """``error`` if it survives pickling, else a RuntimeError with its text."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any unpicklable exception
        return RuntimeError(with_type(error))

"""Effort accounting: forward and backward passes through a model, counted in one place.

A :class:`PassCounter` hooks the model's forward (not any attack): every call adds its batch
rows to ``forward``, and a hook on the output adds the same rows to ``backward`` each time a
gradient flows back through the logits. So the suite's attacks, AutoAttack and torchattacks are
counted alike, as AttackBench counts queries (forward and backward passes per image). A run
in several phases reads :meth:`snapshot` before and after; a PGD run that yields iteration
checkpoints records the passes spent up to each (:meth:`mark`), so each step-sweep cell gets
its own prefix. Counts are model calls x batch rows; the runner divides by the cell's images.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from torch import Tensor, nn

ATTRIBUTE = "racl_pass_counter"


class PassCounter:
    """Rows through the forward and the backward of the models it is attached to."""

    def __init__(self) -> None:
        self.forward = 0
        self.backward = 0
        self.uncounted = 0  # passes that went through a compiled graph, around the hooks
        self.marks: dict[Hashable, list[int]] = {}

    def attach(self, model: nn.Module) -> None:
        """Count ``model``'s passes (idempotent); the model keeps a reference for :func:`of`."""
        if getattr(model, ATTRIBUTE, None) is self:
            return
        model.register_forward_hook(self._seen)
        setattr(model, ATTRIBUTE, self)

    def _seen(self, module: nn.Module, args: tuple, out: Any) -> None:
        first = args[0] if args else None
        rows = int(first.shape[0]) if isinstance(first, Tensor) and first.dim() else 1
        self.forward += rows
        if isinstance(out, Tensor) and out.requires_grad:
            out.register_hook(lambda grad: self._back(rows))

    def _back(self, rows: int) -> None:
        self.backward += rows

    def snapshot(self) -> tuple[int, int, int]:
        return self.forward, self.backward, self.uncounted

    def since(self, start: tuple[int, int, int]) -> tuple[int, int]:
        return self.forward - start[0], self.backward - start[1]

    def blind_since(self, start: tuple[int, int, int]) -> bool:
        """Whether a compiled pass (not counted) ran since ``start``."""
        return self.uncounted != start[2]

    def mark(self, key: Hashable, start: tuple[int, int]) -> None:
        """Add the passes since ``start`` to the running total of ``key``."""
        f, b = self.since(start)
        total = self.marks.setdefault(key, [0, 0])
        total[0] += f
        total[1] += b


def of(model: nn.Module) -> PassCounter | None:
    """The counter attached to ``model``, if any."""
    return getattr(model, ATTRIBUTE, None)


def uncounted(model: nn.Module) -> None:
    """Note a pass of ``model`` through a compiled graph (its hooks do not see it): a cell that
    holds one records no effort rather than a count that misses it."""
    counter = of(model)
    if counter is not None:
        counter.uncounted += 1


SHARED_RUNS = ("transfer", "eps_sweep")  # one run makes every cell of the group


def cell_effort(counter: PassCounter, kind: str, cell: Any, start: tuple[int, int, int],
                previous: tuple[int, int, int]) -> tuple[float | None, float | None]:  # fmt: skip
    """(forward, backward) passes per image of ``cell`` (``cell.n`` images, ``cell.steps``) in
    a group of ``kind`` that began at ``start``, the group's previous cell ending at
    ``previous``: a step-sweep cell its PGD prefix and verdict (:meth:`PassCounter.mark`); a
    cell of one shared run (a transfer generation, the overlapped eps sweep) the whole run; any
    other cell the passes since the previous cell (its own attack, and the clean forward when
    the group computed it). ``(None, None)`` when a compiled pass ran: not counted, not guessed."""
    if counter.blind_since(start if str(kind) in (*SHARED_RUNS, "step_sweep") else previous):
        return None, None
    key = ("steps", getattr(cell, "steps", None))
    if str(kind) == "step_sweep" and key in counter.marks:
        forward, backward = counter.marks[key]
    elif str(kind) in SHARED_RUNS:
        forward, backward = counter.since(start)
    else:
        forward, backward = counter.since(previous)
    return forward / cell.n, backward / cell.n

"""The executor's handlers: the per-sample correctness of one group of cells, per EvalKind.

Clean predictions are computed once per model and slice (read back from the store when cached);
a step sweep is one PGD run for all its iteration checkpoints; an eps sweep attacks only the
survivors of the stored budgets; a transfer group is one generation on its source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from bench.evaluate import (
    clean_correct,
    eps_sweep_correct,
    step_sweep_correct,
    transfer_correct,
    whitebox_correct,
)
from bench.plan.units import Cell, CellGroup, ModelRef, result_identity
from bench.results.store import ResultStore, result_key, unpack_per_sample
from bench.run.compile_policy import options_for
from core import distributed
from core.enums import EvalKind

Results = Iterator[tuple[Cell, Tensor]]
Handler = Callable[[list[Cell], list[Cell]], Results]


class GroupHandlers:
    """Evaluate groups on loaded models and data; ``store`` is rank 0's (None elsewhere)."""

    def __init__(
        self,
        store: ResultStore | None,
        seed: int,
        models: dict[str, nn.Module],
        data: dict[tuple[str, str], tuple[Tensor, Tensor]],
        batch_size: int,
        options: dict[str, Any],
    ) -> None:
        self.store, self.seed, self.models, self.data = store, seed, models, data
        self.batch_size, self.options = batch_size, options
        self.clean_cache: dict[tuple[str, str], Tensor] = {}
        self.table: dict[EvalKind, Handler] = {
            EvalKind.CLEAN: self._clean,
            EvalKind.WHITEBOX: self._whitebox,
            EvalKind.TRANSFER: self._transfer,
            EvalKind.STEP_SWEEP: self._step_sweep,
            EvalKind.EPS_SWEEP: self._eps_sweep,
        }

    def run(self, group: CellGroup, cells: list[Cell], todo: list[Cell]) -> Results:
        """Yield ``(cell, correct)`` for each cell of ``todo`` (the missing cells of ``cells``)."""
        return self.table[group.kind](cells, todo)

    def _xy(self, cell: Cell) -> tuple[Tensor, Tensor]:
        return self.data[(cell.target.dataset.value, cell.data_slice)]

    def clean(self, ref: ModelRef, cell: Cell) -> Tensor:
        """Clean correctness of ``ref`` on the cell's slice: memory, then store, then compute."""
        slot = (ref.hash, cell.data_slice)
        if slot not in self.clean_cache:
            identity = result_identity(EvalKind.CLEAN, ref, cell.data_slice, None, None, self.seed)
            stored = self.stored_bits(result_key(identity))
            if stored is not None:
                self.clean_cache[slot] = stored
            else:
                x, y = self._xy(cell)
                model = self.models[ref.hash]
                self.clean_cache[slot] = clean_correct(model, x, y, self.batch_size)
        return self.clean_cache[slot]

    def stored_bits(self, key: str) -> Tensor | None:
        """Per-sample correctness of a stored successful row (rank 0 reads, every rank gets it)."""

        def read() -> Tensor | None:
            row = self.store.get(key)
            if row is None or row.get("error") is not None or not row.get("per_sample"):
                return None
            return torch.from_numpy(unpack_per_sample(row["per_sample"], int(row["n"])).copy())

        return distributed.on_main(read)

    def survivors(self, cell: Cell) -> Tensor:
        """The images the cell ``cell.after`` left correct (its first ``cell.n``): the attack
        then runs on them only, as AutoAttack runs each member on the previous survivors."""
        bits = self.stored_bits(cell.after)
        if bits is None:
            raise RuntimeError(f"{cell.label()}: the cell it follows has no stored result")
        return bits[: cell.n]

    def _clean(self, cells: list[Cell], todo: list[Cell]) -> Results:
        for c in todo:
            yield c, self.clean(c.target, c)

    def _whitebox(self, cells: list[Cell], todo: list[Cell]) -> Results:
        for c in todo:
            x, y = self._xy(c)
            correct = whitebox_correct(
                self.models[c.target.hash],
                x,
                y,
                c.spec,
                batch_size=self.batch_size,
                clean=self.clean(c.target, c) if c.after is None else self.survivors(c),
                seed=c.seed,
                options=options_for(self.options, c.target.hash),
            )
            yield c, correct

    def _transfer(self, cells: list[Cell], todo: list[Cell]) -> Results:
        first = todo[0]
        source = self.models[first.group.checkpoint]
        x, y = self._xy(first)
        targets = {c.key: self.models[c.target.hash] for c in todo}
        clean = {c.key: self.clean(c.target, c) for c in todo}
        result = transfer_correct(
            source,
            targets,
            x,
            y,
            first.spec,
            batch_size=self.batch_size,
            clean=clean,
            seed=first.seed,
            options=options_for(self.options, first.group.checkpoint),  # the source's attack
        )
        for c in todo:
            yield c, result[c.key]

    def _step_sweep(self, cells: list[Cell], todo: list[Cell]) -> Results:
        first = todo[0]
        x, y = self._xy(first)
        model = self.models[first.target.hash]
        clean = self.clean(first.target, first)
        steps = [c.steps for c in todo]
        sweep = step_sweep_correct(
            model,
            x,
            y,
            first.spec,
            steps,
            batch_size=self.batch_size,
            clean=clean,
            seed=first.seed,
            options=options_for(self.options, first.target.hash),
        )
        for c in todo:
            yield c, sweep[c.steps]

    def _eps_sweep(self, cells: list[Cell], todo: list[Cell]) -> Results:
        """Every missing budget of the sweep in one overlapped run; stored budgets bound it."""
        first = min(cells, key=lambda c: c.eps)
        wanted = {c.key for c in todo}
        known = {}
        for c in cells:
            if c.key not in wanted:
                known[c.eps] = self.stored_bits(c.key)
                if known[c.eps] is None:
                    raise RuntimeError(f"cached cell {c.label()} has no per-sample row")
        x, y = self._xy(first)
        by_eps = {c.eps: c for c in todo}
        out = eps_sweep_correct(
            self.models[first.target.hash],
            x,
            y,
            first.spec,
            list(by_eps),
            batch_size=self.batch_size,
            clean=self.clean(first.target, first),
            seed=lambda eps: by_eps[eps].seed,
            attack_for_eps=lambda eps: by_eps[eps].spec,
            options=options_for(self.options, first.target.hash),
            known=known,
        )
        for eps, c in sorted(by_eps.items()):
            yield c, out[eps]

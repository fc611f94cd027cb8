"""The runner's indicator phase: attack-failure indicators for every white-box cell of a plan.

After the cells are computed (or found cached), each white-box cell of an experiment (not the
trust cells themselves) whose stored indicator row is missing, of another revision or of another
size gets one: :func:`bench.trust.indicators.cell_indicators` on the first ``n_indicator`` images of
its slice, plus the unconstrained-attack counts read from the checkpoint's large-budget trust
cell. Checkpoints of cached cells are loaded (never trained) for it. Under torchrun every rank
loads the checkpoints (a collective step); rank 0 computes and writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from bench.evaluate import as_attack
from bench.plan.experiments import TRUST_ATTACK
from bench.plan.trust_cells import TRUST_EXPERIMENTS
from bench.plan.units import Cell, ModelRef, Plan, derive_seed
from bench.results.store import ResultStore
from bench.run.compile_policy import options_for
from bench.run.leases import Claims
from bench.trust.indicators import REVISION, cell_indicators
from bench.trust.paired_checks import unconstrained_counts
from core import distributed
from core.enums import EvalKind
from core.errors import with_type

Ensure = Callable[[ModelRef], None]


def indicator_cells(plan: Plan) -> list[Cell]:
    """The plan's white-box cells that get indicators (those of an experiment, not of trust)."""
    return [
        c
        for c in plan.cells
        if c.kind is EvalKind.WHITEBOX and not set(c.experiments) <= set(TRUST_EXPERIMENTS)
    ]


class IndicatorPhase:
    """Compute the missing indicator rows of a plan (see the module docstring)."""

    def __init__(
        self,
        plan: Plan,
        store: ResultStore | None,
        models: dict[str, nn.Module],
        ensure: Ensure,
        *,
        checkpoint_dir: Path,
        data_dir: Any,
        batch_size: int,
        options: dict[str, Any],
        run_id: int,
        claims: Claims | None = None,
    ) -> None:
        self.plan, self.store, self.models, self.ensure = plan, store, models, ensure
        self.checkpoint_dir, self.data_dir = checkpoint_dir, data_dir
        self.batch_size, self.options, self.run_id = batch_size, options, run_id
        self.claims = claims or Claims(None)  # another process on the store: one computes a row
        self.data: dict[str, tuple[Tensor, Tensor]] = {}
        self.scores: dict[str, dict[int, float]] = {}  # checkpoint -> unstable score per image
        self.errors: list[tuple[Cell, str]] = []  # cells whose indicators could not be computed

    def size(self, cell: Cell) -> int:
        return min(self.plan.preset.n_indicator, cell.n)

    def run(self) -> int:
        """Compute and store the missing rows; returns how many were computed."""
        by_key = {c.key: c for c in indicator_cells(self.plan)}
        todo = [by_key[k] for k in distributed.on_main(lambda: self._todo(by_key))]
        for ref in {c.target.hash: c.target for c in todo}.values():
            if ref.hash not in self.models:
                self.ensure(ref)
        todo = [c for c in todo if c.target.hash in self.models]
        return distributed.on_main(lambda: self._compute_all(todo))

    def _compute_all(self, todo: list[Cell]) -> int:
        """Each row in turn, taking next the first one no other process is computing (its
        lease taken here); when every one left is held, the first (waiting for it)."""
        left, computed = list(todo), 0
        while left:
            cell = self.claims.first_free(left, lambda c: f"indicators:{c.key}")
            left.remove(cell)
            computed += self._guarded(cell)
        return computed

    def _guarded(self, cell: Cell) -> int:
        """:meth:`_compute`, an exception recorded in ``errors`` instead of ending the run."""
        try:
            with self.claims.exclusive(f"indicators:{cell.key}"):
                if self._current(cell, self.store.indicator_rows([cell.key])):
                    return 0  # another process stored it meanwhile
                return self._compute(cell)
        except Exception as err:  # noqa: BLE001 - failures are results: the run goes on
            self.errors.append((cell, with_type(err)))
            return 0

    def _todo(self, by_key: dict[str, Cell]) -> list[str]:
        """Keys of cells with a successful row, a loadable checkpoint and no current indicators."""
        stored = {r["key"]: r for r in self.store.indicator_rows(list(by_key))}
        done = self.store.cached_keys(by_key)
        out = []
        for key, cell in by_key.items():
            current = self._current(cell, [stored[key]] if key in stored else [])
            if key in done and not current and self._loadable(cell.target):
                out.append(key)
        return out

    def _current(self, cell: Cell, rows: list[dict[str, Any]]) -> bool:
        """Whether ``rows`` (the cell's stored indicator row, if any) are of this revision/size."""
        return any(r["revision"] == REVISION and r["n"] == self.size(cell) for r in rows)

    def _loadable(self, ref: ModelRef) -> bool:
        if ref.hash in self.models or getattr(ref, "factory", None) is not None:
            return True
        return (self.checkpoint_dir / f"{ref.hash}.json").exists()

    def _xy(self, cell: Cell, n: int) -> tuple[Tensor, Tensor]:
        from core.data import eval_tensors

        dataset = cell.target.dataset.value
        if dataset not in self.data or len(self.data[dataset][0]) < n:
            self.data[dataset] = eval_tensors(dataset, n, self.data_dir)
        x, y = self.data[dataset]
        return x[:n], y[:n]

    def _compute(self, cell: Cell) -> int:
        start = time.perf_counter()
        n = self.size(cell)
        x, y = self._xy(cell, n)
        attack = as_attack(cell.spec, options_for(self.options, cell.target.hash))
        seed = derive_seed(cell.seed, "indicators")
        model = self.models[cell.target.hash]
        scores = self.scores.setdefault(cell.target.hash, {})  # the phase's first n images
        counts = cell_indicators(
            model, x, y, attack, seed=seed, batch_size=self.batch_size, scores=scores
        )
        if getattr(attack, "stepwise", False):  # the large-budget PGD reads a stepwise attack
            counts["unconstrained_failure"] = self._unconstrained(cell.target)
        self.store.put_indicators(
            {
                "key": cell.key,
                "run_id": self.run_id,
                **{k: cell.identity()[k] for k in ("checkpoint", "dataset", "data_slice", "eps")},
                "model": cell.target.model,
                "training": cell.target.training.value,
                "attack": cell.spec.name,
                "attack_key": cell.spec.key(),
                "label": cell.spec.label(),
                "n": n,
                "revision": REVISION,
                "counts": counts,
                "elapsed_s": time.perf_counter() - start,
            }
        )
        return 1

    def _unconstrained(self, ref: ModelRef) -> list[int] | None:
        """Survivors of the checkpoint's large-budget trust cell among its clean-correct images."""
        spec_key = TRUST_ATTACK.spec(ref.dataset).key()
        cells = [
            c
            for c in self.plan.cells
            if c.target.hash == ref.hash and c.spec is not None and c.spec.key() == spec_key
        ]
        attacked = [self.store.get(c.key) for c in cells]
        attacked = [r for r in attacked if r is not None and r.get("error") is None]
        if not attacked:
            return None
        clean = [
            r for r in self.store.rows(checkpoint=ref.hash, kind=EvalKind.CLEAN) if not r["error"]
        ]
        return unconstrained_counts(attacked[0], clean)

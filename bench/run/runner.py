"""Run a plan into the results store: train or load checkpoints, compute only missing cells.

:func:`execute` readies each checkpoint the missing cells need
(``bench.training.trainer.ensure_trained``) and runs every group of missing cells as soon as its
models are ready, through the handlers of ``bench.run.handlers``; each row (with its model's
capacity and the passes it spent) is committed as soon as it is done, a failure becomes a row
with ``error`` set, trust checks run at the end. Cost rules: ``docs/decisions/planner.md``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.attacks.counting import PassCounter, cell_effort
from bench.plan.cost import model_capacity
from bench.plan.planner import plan
from bench.plan.units import Cell, CellGroup, ModelRef, Plan, result_row
from bench.plan.units import needed_checkpoints as _needs
from bench.results.store import ResultStore
from bench.run.ending import sigterm_interrupts, status_of
from bench.run.handlers import GroupHandlers
from bench.run.indicator_phase import IndicatorPhase, indicator_cells
from bench.run.leases import Claims, start_claims
from bench.run.summary import RunSummary
from bench.trust.row_checks import TrustResult, run_checks
from core import distributed
from core.errors import with_type
from racl_search.variants import TABLE5_VARIANTS

__all__ = ["RunSummary", "execute", "plan", "result_row"]

Log = Callable[[str], None]


def execute(
    run_plan: Plan,
    store: ResultStore | None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    *,
    checkpoint_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    run_meta: dict[str, Any] | None = None,
    batch_size: int | None = None,
    attack_options: dict[str, Any] | None = None,
    log: Log | None = None,
) -> RunSummary:
    """Compute the plan's missing cells into ``store``; returns the run summary.

    Under torchrun: every rank calls this with the same plan; ``store`` is rank 0's (None on the
    other ranks, which never open it); progress and ``log`` are rank 0's only.
    """
    ctx = distributed.context()
    if ctx.is_main and store is None:
        raise ValueError("execute needs the results store (on rank 0 under torchrun)")
    if checkpoint_dir is None:
        checkpoint_dir = distributed.on_main(lambda: store.path.parent / "checkpoints")
    quiet = log is None or not ctx.is_main
    runner = _Executor(
        run_plan,
        store,
        distributed.device_for(distributed.resolve_device(device)),
        progress and ctx.is_main,
        Path(checkpoint_dir),
        data_dir,
        batch_size or run_plan.preset.batch_size,
        attack_options or {},
        (lambda message: None) if quiet else log,
    )
    return runner.run(run_meta or {})


class _Executor:
    def __init__(
        self,
        run_plan: Plan,
        store: ResultStore | None,
        device: torch.device,
        progress: bool,
        checkpoint_dir: Path,
        data_dir: Any,
        batch_size: int,
        attack_options: dict[str, Any],
        log: Log,
    ) -> None:
        self.plan, self.store, self.device = run_plan, store, device
        self.progress, self.checkpoint_dir, self.data_dir = progress, checkpoint_dir, data_dir
        self.log = log
        self.models: dict[str, nn.Module] = {}
        self.capacity: dict[str, tuple[int, float | None]] = {}  # hash -> (params, FLOPs/image)
        self.counter = PassCounter()  # every model's forward and backward passes (effort)
        self.failed_refs: dict[str, str] = {}
        self.data: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}
        self.handlers = GroupHandlers(
            store, run_plan.seed, self.models, self.data, batch_size, attack_options
        )
        self.timings: dict[str, float] = defaultdict(float)
        self.summary = RunSummary(run_id=-1)
        self.indicator_errors: list[TrustResult] = []  # indicators that could not be computed
        self.bar: Any = None
        self.main = distributed.context().is_main
        self.claims = Claims(None)  # leases of the cells and checkpoints (bench.run.leases)
        self.deferred: list[tuple[CellGroup, list[Cell]]] = []

    # -- orchestration ----------------------------------------------------------------------
    def run(self, meta: dict[str, Any]) -> RunSummary:
        start = time.perf_counter()
        pending = {g: cs for g, cs in self.plan.groups().items() if any(not c.cached for c in cs)}
        self._load_data(pending)
        run_meta = {**meta, "seed": self.plan.seed, "preset": self.plan.preset.name}
        run_meta["device"] = str(self.device)
        self.summary.world_size = distributed.context().world_size
        self.summary.run_id = distributed.on_main(lambda: self.store.begin_run(run_meta))
        self.summary.cached = len(self.plan.cached)
        self.summary.skipped = len(self.plan.skipped)
        from core.progress import progress_bar

        missing = sum(1 for cs in pending.values() for c in cs if not c.cached)
        self.bar = progress_bar(total=missing, desc="cells", unit="cell", enabled=self.progress)
        self.claims = start_claims(self.store, self.summary.run_id)
        ended: BaseException | None = None
        try:
            with sigterm_interrupts():
                self._run_groups(pending)
                self._indicators()
        except BaseException as err:
            ended = err
            raise
        finally:
            self.claims.close()
            self.bar.close()
            if self.main:
                self._trust()
            self.timings["total_s"] = time.perf_counter() - start
            self.summary.timings = dict(self.timings)
            if self.main:
                status = status_of(ended, self.summary.failed)
                self.store.finish_run(self.summary.run_id, status, self.summary.to_json())
        return self.summary

    def _run_groups(self, pending: dict[CellGroup, list[Cell]]) -> None:
        order = list(
            dict.fromkeys(
                h for cs in pending.values() for c in cs if not c.cached for h in c.checkpoints()
            )
        )
        ready: set[str] = set()
        last = {g: cs for g, cs in pending.items() if any(c.after for c in cs)}  # gap cells
        while order:
            h = self._next_checkpoint(order)
            order.remove(h)
            self._ensure(self.plan.refs[h])
            ready.add(h)
            for group in [g for g, cs in pending.items() if _needs(cs) <= ready and g not in last]:
                self._run_group(group, pending.pop(group))
        self._run_deferred()
        for group in last:  # after the cells they follow, whatever group those are in
            self._run_group(group, pending.pop(group))
        self._run_deferred()

    def _next_checkpoint(self, order: list[str]) -> str:
        """The first checkpoint of ``order`` that no other live process is training or loading
        (a worker of ``bench run --workers`` trains the next one meanwhile instead of waiting),
        its lease taken here; the first of all when every one is held (:meth:`_ensure` then
        waits for it)."""
        return self.claims.first_free(order, lambda h: f"checkpoint:{h}")

    def _run_deferred(self) -> None:
        """Groups another process had: wait for it, then compute what it left undone."""
        while self.deferred:
            group, cells = self.deferred.pop(0)
            self.claims.wait(c for c in cells if not c.cached)
            self._run_group(group, cells)

    def _load_data(self, pending: dict[CellGroup, list[Cell]]) -> None:
        """Load every needed eval slice first, so a missing dataset fails before any work."""
        from core.data import eval_tensors

        start = time.perf_counter()
        wanted: dict[str, dict[str, int]] = defaultdict(dict)
        for cells in pending.values():
            for c in cells:
                wanted[c.target.dataset.value][c.data_slice] = c.n
        for dataset, slices in wanted.items():
            x, y = eval_tensors(dataset, max(slices.values()), self.data_dir)
            for name, n in slices.items():
                self.data[(dataset, name)] = (x[:n], y[:n])
        self.timings["data_s"] += time.perf_counter() - start

    # -- checkpoints -----------------------------------------------------------------------
    def _ensure(self, ref: ModelRef) -> None:
        from core.data import DatasetUnavailable

        start, stage = time.perf_counter(), "load_s"
        mem = self.summary.start_phase(self.device)
        error: Exception | None = None
        try:
            with self.claims.checkpoint(ref.hash):  # another process training it: wait, load
                on_disk = (self.checkpoint_dir / f"{ref.hash}.json").exists()
                stage = "load_s" if on_disk or ref.factory is not None else "train_s"
                if ref.needs_search:
                    self._search(ref)
                model, meta = self._load_or_train(ref)
            self.models[ref.hash] = model.to(self.device).eval()
            self.counter.attach(self.models[ref.hash])
            self.capacity[ref.hash] = model_capacity(self.models[ref.hash], ref.dataset)
            if self.main:
                kept = {"metrics": meta.get("metrics"), "content_hash": meta.get("content_hash")}
                self.store.put_checkpoint(ref.hash, model=ref.model, dataset=ref.dataset.value,
                                          training=ref.training.value, config=meta["config"],
                                          metrics=kept, path=meta.get("path"))  # fmt: skip
        except DatasetUnavailable:
            raise
        except Exception as err:  # a failed checkpoint fails its cells, not the run
            error = err
        error = distributed.agree_on_failure(error)  # a checkpoint one rank lacks fails on all
        peak = self.summary.end_phase(ref.label, mem)
        if error is None:
            self.log(f"checkpoint {ref.label}: {ref.hash} ({stage[:-2]}, peak {peak})")
        else:
            self.models.pop(ref.hash, None)
            self.failed_refs[ref.hash] = f"checkpoint {ref.label}: {with_type(error)}"
            self.log(self.failed_refs[ref.hash])
        self.timings[stage] += time.perf_counter() - start

    def _load_or_train(self, ref: ModelRef) -> tuple[nn.Module, dict[str, Any]]:
        """A user's model with its weights, else the zoo checkpoint (trained when absent)."""
        from bench.training.config import warm_start_inputs
        from bench.training.trainer import ensure_trained

        if ref.factory is not None:
            from bench.training.user_model import load_user_model

            user = ref.factory
            model = load_user_model(user, ref.dataset.value, self.device)
            config = {"factory": user.factory.text, "weights": str(user.weights or "")}
            path = None if user.weights is None else str(user.weights)
            return model, {"config": config, "content_hash": user.weights_sha256, "path": path}
        parent = None  # a warm start: the natural checkpoint, trained first when missing
        if ref.parent is not None:
            parent = self._load_or_train(self.plan.refs[ref.parent])[0]
        model, meta = ensure_trained(
            ref.model,
            ref.dataset,
            ref.cfg,
            model_overrides=dict(ref.overrides),
            checkpoint_dir=self.checkpoint_dir,
            device=self.device,
            data_dir=self.data_dir,
            progress=self.progress,
            compile=bool(self.handlers.options.get("train_compile", False)),
            inputs=warm_start_inputs(ref.parent),
            save_every_s=self.handlers.options.get("save_every_s"),
            init=None if parent is None else parent.state_dict(),
        )
        return model, {**meta, "config": ref.cfg.to_dict()}

    def _search(self, ref: ModelRef) -> None:
        """Run the RACL search for a Table 5 genotype (racl_search.api.ensure_searched)."""
        start = time.perf_counter()
        from racl_search import api

        setting = TABLE5_VARIANTS.get(ref.model)
        if setting is None:
            raise RuntimeError(f"needs search: no Table 5 variant {ref.model!r} in racl_search")
        api.ensure_searched(
            ref.model,
            method=setting.method,
            eta=setting.eta,
            rho=setting.rho,
            preset=self.plan.preset.search_preset,
            dataset=ref.dataset.value,
            seed=self.plan.seed,
            device=str(self.device),
            data_dir=self.data_dir,
        )
        self.timings["search_s"] += time.perf_counter() - start

    # -- groups ----------------------------------------------------------------------------
    def _run_group(self, group: CellGroup, cells: list[Cell]) -> None:
        missing = [c for c in cells if not c.cached]
        todo = []
        for c in missing:
            broken = [self.failed_refs[h] for h in c.checkpoints() if h in self.failed_refs]
            if broken:
                self._write_error(c, broken[0])
            else:
                todo.append(c)
        todo, done = self.claims.group(todo) if todo else (todo, [])
        for c in done:  # stored since by another process
            c.cached, self.summary.cached = True, self.summary.cached + 1
            self.bar.update(1)
        if todo is None:  # another process computes the group: come back to it at the end
            self.deferred.append((group, cells))
        if not todo:
            return
        stage, written, last = f"{group.kind.value}_s", set(), time.perf_counter()
        start = previous = self.counter.snapshot()
        self.counter.marks.clear()
        try:
            for cell, correct in self.handlers.run(group, cells, todo):
                now = time.perf_counter()
                effort = cell_effort(self.counter, group.kind, cell, start, previous)
                previous = self.counter.snapshot()
                self._write(cell, correct, now - last, effort)
                self.timings[stage] += now - last
                written.add(cell.key)
                last = time.perf_counter()
        except Exception as err:  # failures are results: record and go on
            self.timings[stage] += time.perf_counter() - last
            for c in todo:
                if c.key not in written:
                    self._write_error(c, with_type(err))
        finally:
            self.claims.release(todo)

    # -- rows ------------------------------------------------------------------------------
    def _row(self, cell: Cell) -> dict[str, Any]:
        row = result_row(cell, self.summary.run_id, self.plan.preset.name)
        row["params"], row["flops"] = self.capacity.get(cell.target.hash, (None, None))
        return row

    def _write(self, cell: Cell, correct: Tensor, elapsed: float, effort: tuple) -> None:
        correct = correct.to("cpu", torch.bool)
        row = self._row(cell)
        row.update(
            correct=int(correct.sum()),
            accuracy=100.0 * float(correct.float().mean()),
            per_sample=correct.numpy(),
            elapsed_s=elapsed,
            forward_passes=effort[0],
            backward_passes=effort[1],
        )
        if self.main:
            self.store.put_result(row)
        self.summary.computed += 1
        self.bar.update(1)

    def _write_error(self, cell: Cell, message: str) -> None:
        row = self._row(cell)
        row.update(error=message)
        if self.main:
            self.store.put_result(row)
        self.summary.failed += 1
        self.summary.failures.append(f"{cell.label()}: {message}")
        self.log(f"FAILED {cell.label()}: {message}")
        self.bar.update(1)

    def _indicators(self) -> None:
        start = time.perf_counter()
        phase = IndicatorPhase(
            self.plan,
            self.store,
            self.models,
            self._ensure,
            checkpoint_dir=self.checkpoint_dir,
            data_dir=self.data_dir,
            batch_size=self.handlers.batch_size,
            options=self.handlers.options,
            run_id=self.summary.run_id,
            claims=self.claims,
        )
        computed = phase.run()
        self.timings["indicators_s"] += time.perf_counter() - start
        if computed:
            self.log(f"indicators of attack failure: {computed} cell(s)")
        for cell, message in phase.errors:
            self.log(f"indicators of {cell.label()} not computed: {message}")
            t, detail = cell.target, f"{cell.label()}: {message}"
            args = ("indicators", t.model, False, detail, t.dataset.value, t.training.value)
            self.indicator_errors.append(TrustResult(*args))

    def _trust(self) -> None:
        start = time.perf_counter()
        rows = self.store.rows(key=[c.key for c in self.plan.cells])
        indicators = self.store.indicator_rows(c.key for c in indicator_cells(self.plan))
        self.summary.indicators = indicators
        results = run_checks(rows, indicators) + self.indicator_errors
        for r in results:
            self.store.add_trust(
                self.summary.run_id,
                r.check,
                model=r.model,
                dataset=r.dataset,
                training=r.training,
                detail=r.detail,
                passed=r.passed,
            )
        self.summary.trust = results
        self.timings["trust_s"] += time.perf_counter() - start

"""Run a plan into the results store: train or load checkpoints, compute only missing cells.

:func:`plan` (from :mod:`bench.planner`) says what to compute; :func:`execute` trains or loads
each needed checkpoint through ``bench.training.ensure_trained`` (checkpoints in
``<store dir>/checkpoints`` unless given), then runs every group of missing cells as soon as its
models are ready, following the cost rules: clean predictions once per model and slice (read back
from the store when cached), one PGD run for all iteration checkpoints, ascending budgets
attacking only survivors (resuming from the stored survivors), one transfer generation per
source. Each cell's row is committed as soon as it is done; a failure (training or evaluation)
becomes a row with ``error`` set and the run goes on (exit code 1 at the end). Trust checks run
over the plan's rows and are stored; per-stage timings go into the run's ``summary_json``.

Under ``torchrun`` every rank calls :func:`execute` with the same plan (rank 0 plans and
broadcasts it, see ``bench run``); only rank 0 holds the store (the others pass ``None``) and
writes rows, checkpoints rows, trust checks and the run record; what rank 0 reads from the store
(cached clean results, stored survivors) is broadcast. Checkpoints are trained with DDP, each
evaluation is sharded by :mod:`bench.evaluate` and gathered on every rank, and a failure on any
rank fails the cell (or the checkpoint) on every rank, so the ranks stay in step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
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
from bench.planner import Cell, ModelRef, Plan, plan
from bench.store import ResultStore, result_key, unpack_per_sample
from bench.trust import TrustResult, run_checks
from core import distributed
from core.errors import UserError
from genotypes.names import zoo_name
from racl_search.variants import TABLE5_PREFIX, TABLE5_VARIANTS

__all__ = ["RunSummary", "execute", "plan"]

Log = Callable[[str], None]


@dataclass
class RunSummary:
    """What a run did: counts, failures, trust verdicts and per-stage timings (seconds)."""

    run_id: int
    computed: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    trust: list[TrustResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    world_size: int = 1  # processes under torchrun (recorded in the JSON when more than one)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        world = {"world_size": self.world_size} if self.world_size > 1 else {}
        return {
            "run_id": self.run_id,
            "computed": self.computed,
            "cached": self.cached,
            "failed": self.failed,
            "skipped": self.skipped,
            "failures": self.failures,
            "trust": [
                {
                    "check": t.check,
                    "model": t.model,
                    "training": t.training,
                    "dataset": t.dataset,
                    "passed": t.passed,
                    "detail": t.detail,
                }
                for t in self.trust
            ],
            "trust_failed": sum(not t.passed for t in self.trust),
            "timings": {k: round(v, 2) for k, v in sorted(self.timings.items())},
            **world,
        }


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
        self.batch_size, self.options, self.log = batch_size, attack_options, log
        self.models: dict[str, nn.Module] = {}
        self.failed_refs: dict[str, str] = {}
        self.data: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}
        self.clean_cache: dict[tuple[str, str], Tensor] = {}
        self.timings: dict[str, float] = defaultdict(float)
        self.summary = RunSummary(run_id=-1)
        self.bar: Any = None
        self.main = distributed.context().is_main

    # -- orchestration ----------------------------------------------------------------------
    def run(self, meta: dict[str, Any]) -> RunSummary:
        start = time.perf_counter()
        pending = {g: cs for g, cs in self.plan.groups().items() if any(not c.cached for c in cs)}
        self._load_data(pending)
        run_meta = {
            **meta,
            "seed": self.plan.seed,
            "preset": self.plan.preset.name,
            "device": str(self.device),
        }
        self.summary.world_size = distributed.context().world_size
        self.summary.run_id = distributed.on_main(lambda: self.store.begin_run(run_meta))
        self.summary.cached = len(self.plan.cached)
        self.summary.skipped = len(self.plan.skipped)
        from core.progress import progress_bar

        missing = sum(1 for cs in pending.values() for c in cs if not c.cached)
        self.bar = progress_bar(total=missing, desc="cells", unit="cell", enabled=self.progress)
        status = "interrupted"
        try:
            self._run_groups(pending)
            status = "failed" if self.summary.failed else "ok"
        finally:
            self.bar.close()
            if self.main:
                self._trust()
            self.timings["total_s"] = time.perf_counter() - start
            self.summary.timings = dict(self.timings)
            if self.main:
                self.store.finish_run(self.summary.run_id, status, self.summary.to_json())
        return self.summary

    def _run_groups(self, pending: dict[tuple, list[Cell]]) -> None:
        order = list(
            dict.fromkeys(
                h for cs in pending.values() for c in cs if not c.cached for h in _refs_of(c)
            )
        )
        ready: set[str] = set()
        for h in order:
            self._ensure(self.plan.refs[h])
            ready.add(h)
            for gid in [g for g, cs in pending.items() if _needs(cs) <= ready]:
                self._run_group(gid, pending.pop(gid))

    def _load_data(self, pending: dict[tuple, list[Cell]]) -> None:
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
        from bench.training import ensure_trained
        from core.data import DatasetUnavailable

        start = time.perf_counter()
        stage = "load_s" if (self.checkpoint_dir / f"{ref.hash}.json").exists() else "train_s"
        error: Exception | None = None
        try:
            if ref.needs_search:
                self._search(ref)
            model, meta = ensure_trained(
                ref.model,
                ref.dataset,
                ref.cfg,
                model_overrides=dict(ref.overrides),
                checkpoint_dir=self.checkpoint_dir,
                device=self.device,
                data_dir=self.data_dir,
                progress=self.progress,
            )
            self.models[ref.hash] = model.to(self.device).eval()
            if self.main:
                self.store.put_checkpoint(
                    ref.hash,
                    model=ref.model,
                    dataset=ref.dataset.value,
                    training=ref.training.value,
                    config=ref.cfg.to_dict(),
                    metrics={
                        "metrics": meta.get("metrics"),
                        "content_hash": meta.get("content_hash"),
                    },
                    path=meta.get("path"),
                )
        except DatasetUnavailable:
            raise
        except Exception as err:  # a failed checkpoint fails its cells, not the run
            error = err
        error = distributed.agree_on_failure(error)  # a checkpoint one rank lacks fails on all
        if error is None:
            self.log(f"checkpoint {ref.label}: {ref.hash} ({stage[:-2]})")
        else:
            self.models.pop(ref.hash, None)
            self.failed_refs[ref.hash] = f"checkpoint {ref.label}: {_err_text(error)}"
            self.log(self.failed_refs[ref.hash])
        self.timings[stage] += time.perf_counter() - start

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
    def _run_group(self, gid: tuple, cells: list[Cell]) -> None:
        missing = [c for c in cells if not c.cached]
        todo = []
        for c in missing:
            broken = [self.failed_refs[h] for h in _refs_of(c) if h in self.failed_refs]
            if broken:
                self._write_error(c, broken[0])
            else:
                todo.append(c)
        if not todo:
            return
        compute = getattr(self, f"_g_{gid[0]}")
        stage = f"{gid[0]}_s"
        written: set[str] = set()
        last = time.perf_counter()
        try:
            for cell, correct in compute(cells, todo):
                now = time.perf_counter()
                self._write(cell, correct, now - last)
                self.timings[stage] += now - last
                written.add(cell.key)
                last = time.perf_counter()
        except Exception as err:  # failures are results: record and go on
            self.timings[stage] += time.perf_counter() - last
            for c in todo:
                if c.key not in written:
                    self._write_error(c, _err_text(err))

    def _xy(self, cell: Cell) -> tuple[Tensor, Tensor]:
        return self.data[(cell.target.dataset.value, cell.data_slice)]

    def clean(self, ref: ModelRef, cell: Cell) -> Tensor:
        """Clean correctness of ``ref`` on the cell's slice: memory, then store, then compute."""
        slot = (ref.hash, cell.data_slice)
        if slot not in self.clean_cache:
            key = result_key(
                {
                    "kind": "clean",
                    "checkpoint": ref.hash,
                    "dataset": ref.dataset.value,
                    "data_slice": cell.data_slice,
                    "seed": self.plan.seed,
                }
            )
            stored = self.stored_bits(key)
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

    def _g_clean(self, cells: list[Cell], todo: list[Cell]) -> Iterator[tuple[Cell, Tensor]]:
        for c in todo:
            yield c, self.clean(c.target, c)

    def _g_whitebox(self, cells: list[Cell], todo: list[Cell]) -> Iterator[tuple[Cell, Tensor]]:
        for c in todo:
            x, y = self._xy(c)
            correct = whitebox_correct(
                self.models[c.target.hash],
                x,
                y,
                c.spec,
                batch_size=self.batch_size,
                clean=self.clean(c.target, c),
                seed=c.seed,
                options=self.options,
            )
            yield c, correct

    def _g_transfer(self, cells: list[Cell], todo: list[Cell]) -> Iterator[tuple[Cell, Tensor]]:
        first = todo[0]
        source = self.models[first.group[1]]
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
            options=self.options,
        )
        for c in todo:
            yield c, result[c.key]

    def _g_step_sweep(self, cells: list[Cell], todo: list[Cell]) -> Iterator[tuple[Cell, Tensor]]:
        first = todo[0]
        x, y = self._xy(first)
        model = self.models[first.target.hash]
        clean = self.clean(first.target, first)
        steps = [c.steps for c in todo]
        sweep = step_sweep_correct(
            model, x, y, first.spec, steps, batch_size=self.batch_size, clean=clean, seed=first.seed
        )
        for c in todo:
            yield c, sweep[c.steps]

    def _g_eps_sweep(self, cells: list[Cell], todo: list[Cell]) -> Iterator[tuple[Cell, Tensor]]:
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
            options=self.options,
            known=known,
        )
        for eps, c in sorted(by_eps.items()):
            yield c, out[eps]

    # -- rows ------------------------------------------------------------------------------
    def _row(self, cell: Cell) -> dict[str, Any]:
        spec, src = cell.spec, cell.source
        return {
            "key": cell.key,
            "run_id": self.summary.run_id,
            "kind": cell.kind.value,
            "model": cell.target.model,
            "checkpoint": cell.target.hash,
            "dataset": cell.target.dataset.value,
            "data_slice": cell.data_slice,
            "n": cell.n,
            "training": cell.target.training.value,
            "preset": self.plan.preset.name,
            "seed": self.plan.seed,
            "attack": None if spec is None else spec.name,
            "attack_key": None if spec is None else spec.key(),
            "eps": cell.eps,
            "steps": cell.steps,
            "step_size": None if spec is None else spec.alpha,
            "norm": None if spec is None else spec.norm.value,
            "source": None if src is None else src.model,
            "source_checkpoint": None if src is None else src.hash,
        }

    def _write(self, cell: Cell, correct: Tensor, elapsed: float) -> None:
        correct = correct.to("cpu", torch.bool)
        row = self._row(cell)
        row.update(
            correct=int(correct.sum()),
            accuracy=100.0 * float(correct.float().mean()),
            per_sample=correct.numpy(),
            elapsed_s=elapsed,
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

    def _trust(self) -> None:
        start = time.perf_counter()
        rows = self.store.rows(key=[c.key for c in self.plan.cells])
        results = run_checks(rows)
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


def _refs_of(cell: Cell) -> list[str]:
    refs = [cell.target.hash]
    if cell.source is not None:
        refs.insert(0, cell.source.hash)
    if cell.group[0] == "transfer" and cell.group[1] not in refs:
        refs.insert(0, cell.group[1])
    return refs


def _needs(cells: list[Cell]) -> set[str]:
    return {h for c in cells if not c.cached for h in _refs_of(c)}


def _err_text(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def check_plan_models(models: list[str] | None) -> None:
    """Unknown model names -> ModelError (one line, exit 2) before anything runs."""
    if not models:
        return
    from models import get_model_info

    for name in models:
        if zoo_name(name).startswith(TABLE5_PREFIX):
            continue
        get_model_info(zoo_name(name))
    if len(set(models)) != len(models):
        raise UserError(f"a model is listed twice in --models {','.join(models)}")

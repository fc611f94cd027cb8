"""Planning: experiments x preset -> cells, their cached status and a cost estimate.

:func:`plan` expands experiments (``bench.experiments``) under a preset (``bench.presets``) into
cells - one per (model checkpoint, data slice, evaluation kind, attack, eps, steps, transfer
source) - marks those already in the store, and estimates the cost in forward-pass equivalents
(a forward = 1, a forward+backward to the input = 3) and seconds from a per-model forward rate
measured on one small batch. Cells are grouped so the cost rules hold when executed
(``bench.runner``): one PGD run for every iteration checkpoint, ascending budgets per eps
sweep, one transfer generation per source (the matrix diagonal is white-box from it).

Checkpoints are identified by ``bench.training.config_hash`` (the name of the checkpoint file),
so the plan knows which cells are cached before anything is trained. Seeds: the global seed
trains the checkpoints and enters every key; the attack seed of a generation is derived from
(global seed, checkpoint, slice, attack without its step count), so a resumed run reproduces
the same numbers and PGD-k of an iteration sweep starts where a white-box PGD-k on the same
slice starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.experiments import (
    TRUST_ATTACK,
    AttackPlan,
    Experiment,
    sweep_budgets,
)
from bench.presets import PresetConfig
from core.datasets import dataset_info
from core.enums import Dataset, EvalKind, Training
from genotypes.names import zoo_name
from racl_search.variants import TABLE5_PREFIX

DEFAULT_RATE = 500.0  # forward images/s when not calibrated

CUSTOM = "custom"  # the name of the ad-hoc experiment of --models/--attacks


@dataclass(frozen=True)
class ModelRef:
    """A checkpoint to train or load: model, training, dataset, overrides and config."""

    model: str
    training: Training
    dataset: Dataset
    overrides: tuple[tuple[str, Any], ...]
    hash: str
    cfg: Any = field(compare=False, hash=False, repr=False)
    needs_search: bool = False

    @property
    def label(self) -> str:
        return f"{self.model}/{self.training.value}/{self.dataset.value}"


@dataclass
class Cell:
    """One result row to have: what to evaluate and where its row lives (``key``)."""

    kind: EvalKind
    target: ModelRef
    data_slice: str
    n: int
    spec: Any
    source: ModelRef | None
    group: tuple
    key: str
    seed: int
    experiments: list[str]
    cached: bool = False
    cost: float = 0.0

    @property
    def eps(self) -> float | None:
        return None if self.spec is None else float(self.spec.eps)

    @property
    def steps(self) -> int | None:
        return None if self.spec is None else int(self.spec.steps)

    def label(self) -> str:
        attack = "clean" if self.spec is None else self.spec.label()
        src = f" from {self.source.model}" if self.source is not None else ""
        eps = f" eps={self.eps:.4g}" if self.spec is not None else ""
        return f"{self.target.label} {self.kind.value} {attack}{eps}{src} [{self.data_slice}]"


@dataclass(frozen=True)
class Skipped:
    experiment: str
    model: str
    reason: str


@dataclass
class Plan:
    """Cells to compute and cached, refs to train, skipped entries, cost estimate."""

    preset: PresetConfig
    seed: int
    cells: list[Cell]
    refs: dict[str, ModelRef]
    skipped: list[Skipped]
    eval_slices: dict[tuple[Dataset, str], int]
    train_cost: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    @property
    def missing(self) -> list[Cell]:
        return [c for c in self.cells if not c.cached]

    @property
    def cached(self) -> list[Cell]:
        return [c for c in self.cells if c.cached]

    def groups(self) -> dict[tuple, list[Cell]]:
        out: dict[tuple, list[Cell]] = {}
        for cell in self.cells:
            out.setdefault(cell.group, []).append(cell)
        return out

    def estimate(self) -> dict[str, float]:
        """Estimated cost of the missing work: forward equivalents and seconds."""
        passes = sum(c.cost for c in self.missing)
        eval_s = sum(c.cost / self.rates.get(c.group[1], DEFAULT_RATE) for c in self.missing)
        needed = {h for c in self.missing for h in _group_refs(c)}
        train_passes = sum(v for h, v in self.train_cost.items() if h in needed)
        train_s = sum(
            v / self.rates.get(h, DEFAULT_RATE) for h, v in self.train_cost.items() if h in needed
        )
        return {
            "eval_passes": round(passes),
            "eval_s": round(eval_s, 1),
            "train_passes": round(train_passes),
            "train_s": round(train_s, 1),
            "total_s": round(eval_s + train_s, 1),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "preset": self.preset.name,
            "seed": self.seed,
            "cells": len(self.cells),
            "to_compute": len(self.missing),
            "cached": len(self.cached),
            "checkpoints": len(self.refs),
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "needs_search": sorted({r.model for r in self.refs.values() if r.needs_search}),
            "estimate": self.estimate(),
            "missing": [c.label() for c in self.missing],
        }


def _group_refs(cell: Cell) -> list[str]:
    refs = [cell.target.hash]
    if cell.source is not None:
        refs.append(cell.source.hash)
    return refs


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from the canonical JSON of ``parts``."""
    text = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


# -- planning ------------------------------------------------------------------------------


@dataclass
class PlanRequest:
    """What the user asked for (the CLI fills it)."""

    experiments: list[Experiment]
    preset: PresetConfig
    models: list[str] | None = None
    dataset: Dataset | None = None
    eps: float | None = None
    n: int | None = None
    seed: int = 0


class _Planner:
    def __init__(self, req: PlanRequest, store: Any) -> None:
        self.req = req
        self.preset = req.preset
        self.store = store
        self.cells: dict[str, Cell] = {}
        self.refs: dict[str, ModelRef] = {}
        self.skipped: list[Skipped] = []
        self.slices: dict[tuple[Dataset, str], int] = {}

    # models and checkpoints -------------------------------------------------------------
    def model_names(self, exp: Experiment) -> list[str]:
        names = [zoo_name(m) for m in exp.models]
        if exp.needs_search or exp.name == CUSTOM:  # named by the user or the search
            return self._filter_user(names)
        if self.preset.models is not None:  # a preset's allowlist scales the paper experiments
            names = [m for m in names if m in self.preset.models]
        return self._filter_user(names)

    def _filter_user(self, names: list[str]) -> list[str]:
        if self.req.models is None:
            return names
        wanted = [zoo_name(m) for m in self.req.models]
        return [m for m in names if m in wanted]

    def available(self, exp: Experiment, model: str) -> bool:
        if exp.needs_search:
            if _genotype_exists(model) or _search_api_available():
                return True
            reason = "needs search: racl_search.api is not available to search this genotype"
            self.skipped.append(Skipped(exp.name, model, reason))
            return False
        from models import get_model_info

        info = get_model_info(model)
        if not info.available:
            self.skipped.append(Skipped(exp.name, model, info.reason or "unavailable"))
        return info.available

    def ref(self, model: str, training: Training, dataset: Dataset) -> ModelRef:
        from bench.training import TrainConfig, config_hash

        needs_search = model.startswith(TABLE5_PREFIX) and not _genotype_exists(model)
        if needs_search:
            overrides = dict(self.preset.cell_overrides)
        else:
            overrides = self.preset.overrides_for(model)
        cfg = TrainConfig.paper(training, dataset)
        changes = dict(self.preset.train.get(training.value, {}))
        changes["seed"] = self.req.seed
        cfg = dataclasses.replace(cfg, **changes)
        h = config_hash(model, overrides, dataset, cfg)
        ref = ModelRef(
            model, training, dataset, tuple(sorted(overrides.items())), h, cfg, needs_search
        )
        self.refs.setdefault(h, ref)
        return self.refs[h]

    # slices -----------------------------------------------------------------------------
    def slice_for(self, dataset: Dataset, n: int | None) -> tuple[str, int]:
        from core.data import describe_slice

        size = dataset_info(dataset).test_size
        n = size if n is None else min(n, size)
        name = describe_slice(dataset, n)
        self.slices[(dataset, name)] = n
        return name, n

    def eval_n(self) -> int | None:
        return self.req.n if self.req.n is not None else self.preset.n_eval

    def sweep_n(self) -> int | None:
        sizes = [v for v in (self.req.n, self.preset.n_sweep or self.preset.n_eval) if v]
        return min(sizes) if sizes else None

    # cells ------------------------------------------------------------------------------
    def add(
        self,
        kind: EvalKind,
        target: ModelRef,
        sl: tuple[str, int],
        spec: Any,
        exp: str,
        *,
        source: ModelRef | None = None,
        group: tuple | None = None,
        seed: int = 0,
    ) -> None:
        identity = {
            "kind": kind.value,
            "checkpoint": target.hash,
            "dataset": target.dataset.value,
            "data_slice": sl[0],
            "attack_key": None if spec is None else spec.key(),
            "eps": None if spec is None else spec.eps,
            "steps": None if spec is None else spec.steps,
            "source_checkpoint": None if source is None else source.hash,
            "seed": self.req.seed,
        }
        from bench.store import result_key

        key = result_key(identity)
        group = group or (kind.value, target.hash, sl[0], None if spec is None else spec.key())
        if key in self.cells:
            cell = self.cells[key]
            if exp not in cell.experiments:
                cell.experiments.append(exp)
            if group[0] == "transfer" and cell.group[0] != "transfer":
                cell.group, cell.seed = group, seed
            return
        self.cells[key] = Cell(kind, target, sl[0], sl[1], spec, source, group, key, seed, [exp])

    def gen_seed(self, ref: ModelRef, sl: str, spec: Any) -> int:
        base = dataclasses.replace(spec, steps=1) if spec.fixed_step_iterative else spec
        return derive_seed(self.req.seed, ref.hash, sl, base.key())

    def spec(self, plan: AttackPlan, dataset: Dataset) -> Any:
        return plan.spec(dataset, self.req.eps if plan.eps is None else None)

    def whitebox(self, ref: ModelRef, sl: tuple[str, int], spec: Any, exp: str) -> None:
        self.add(EvalKind.WHITEBOX, ref, sl, spec, exp, seed=self.gen_seed(ref, sl[0], spec))

    def experiment(self, exp: Experiment) -> None:
        datasets = self._datasets(exp)
        for dataset in datasets:
            names = [m for m in self.model_names(exp) if self.available(exp, m)]
            refs = [self.ref(m, t, dataset) for m in names for t in exp.trainings]
            main = self.slice_for(dataset, self.eval_n())
            for ref in refs:
                self._per_model(exp, ref, dataset, main)
            if exp.transfer is not None and refs:
                self._transfer(exp, refs, dataset, main)
            if exp.matrix is not None and refs:
                self._matrix(exp, refs, dataset, main)

    def _datasets(self, exp: Experiment) -> tuple[Dataset, ...]:
        if self.req.dataset is not None:
            return (self.req.dataset,)
        if self.preset.dataset is not None:
            return (self.preset.dataset,)
        return exp.datasets

    def _per_model(
        self, exp: Experiment, ref: ModelRef, dataset: Dataset, main: tuple[str, int]
    ) -> None:
        name = f"{exp.name}:{exp.part}"
        if exp.clean:
            self.add(EvalKind.CLEAN, ref, main, None, name)
        for ap in exp.whitebox:
            self.whitebox(ref, main, self.spec(ap, dataset), name)
        sweep = self.slice_for(dataset, self.sweep_n())
        if exp.step_sweep is not None or exp.eps_sweeps:
            self.add(EvalKind.CLEAN, ref, sweep, None, name)
        if exp.step_sweep is not None:
            self._step_sweep(exp, ref, dataset, sweep, name)
        for ap in exp.eps_sweeps:
            self._eps_sweep(ap, ref, dataset, sweep, name)

    def _step_sweep(
        self, exp: Experiment, ref: ModelRef, dataset: Dataset, sl: tuple[str, int], name: str
    ) -> None:
        ks = self.preset.step_checkpoints or exp.step_checkpoints
        base = self.spec(exp.step_sweep, dataset)
        group = ("step_sweep", ref.hash, sl[0], dataclasses.replace(base, steps=max(ks)).key())
        seed = self.gen_seed(ref, sl[0], base)
        for k in sorted(set(ks)):
            spec = dataclasses.replace(base, steps=k)
            self.add(EvalKind.STEP_SWEEP, ref, sl, spec, name, group=group, seed=seed)

    def _eps_sweep(
        self, ap: AttackPlan, ref: ModelRef, dataset: Dataset, sl: tuple[str, int], name: str
    ) -> None:
        from bench.evaluate import spec_at_eps

        base = ap.spec(dataset, None)
        group = ("eps_sweep", ref.hash, sl[0], base.key())
        for eps in sweep_budgets(dataset, self.preset.eps_count):
            spec = spec_at_eps(base, eps)
            seed = self.gen_seed(ref, sl[0], spec)
            self.add(EvalKind.EPS_SWEEP, ref, sl, spec, name, group=group, seed=seed)

    def _source_ref(self, exp: Experiment, dataset: Dataset) -> ModelRef:
        source = self.preset.transfer_source or zoo_name(exp.transfer.source)
        return self.ref(source, exp.transfer.source_training, dataset)

    def _transfer(
        self, exp: Experiment, refs: list[ModelRef], dataset: Dataset, main: tuple[str, int]
    ) -> None:
        src = self._source_ref(exp, dataset)
        name = f"{exp.name}:{exp.part}"
        for ap in exp.transfer.attacks:
            spec = self.spec(ap, dataset)
            group = ("transfer", src.hash, main[0], spec.key())
            seed = self.gen_seed(src, main[0], spec)
            for ref in refs:
                kind = EvalKind.WHITEBOX if ref.hash == src.hash else EvalKind.TRANSFER
                source = None if kind is EvalKind.WHITEBOX else src
                self.add(kind, ref, main, spec, name, source=source, group=group, seed=seed)

    def _matrix(
        self, exp: Experiment, refs: list[ModelRef], dataset: Dataset, main: tuple[str, int]
    ) -> None:
        name = f"{exp.name}:{exp.part}"
        spec = self.spec(exp.matrix, dataset)
        for src in refs:
            group = ("transfer", src.hash, main[0], spec.key())
            seed = self.gen_seed(src, main[0], spec)
            for tgt in refs:
                kind = EvalKind.WHITEBOX if tgt.hash == src.hash else EvalKind.TRANSFER
                source = None if kind is EvalKind.WHITEBOX else src
                self.add(kind, tgt, main, spec, name, source=source, group=group, seed=seed)

    def trust_cells(self) -> None:
        for ref in list(self.refs.values()):
            sl = self.slice_for(ref.dataset, min(self.preset.n_trust, self.eval_n() or 10**9))
            self.whitebox(ref, sl, TRUST_ATTACK.spec(ref.dataset), "trust")


def _search_api_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("racl_search.api") is not None


def _genotype_exists(name: str) -> bool:
    import genotypes

    return name in genotypes.list_genotypes()


def plan(
    experiments: list[Experiment],
    preset: PresetConfig,
    models: list[str] | None = None,
    attacks: list[str] | None = None,
    dataset: Dataset | None = None,
    store: Any = None,
    *,
    eps: float | None = None,
    n: int | None = None,
    seed: int = 0,
    training: Training = Training.PGD_AT,
    calibrate: bool = True,
    checkpoint_dir: Path | None = None,
) -> Plan:
    """Expand experiments into cells, mark the cached ones, estimate the cost.

    ``attacks`` (texts for ``parse_attack``) add an ad-hoc experiment ``custom`` over ``models``
    (white-box + clean under ``training``); ``models`` otherwise filters the experiments.
    """
    experiments = list(experiments)
    if attacks:
        experiments.append(custom_experiment(models, attacks, training, preset))
    req = PlanRequest(experiments, preset, models, dataset, eps, n, seed)
    planner = _Planner(req, store)
    for exp in experiments:
        planner.experiment(exp)
    planner.trust_cells()
    cells = list(planner.cells.values())
    if store is not None:
        cached = store.cached_keys(c.key for c in cells)
        for c in cells:
            c.cached = c.key in cached
    result = Plan(preset, seed, cells, planner.refs, planner.skipped, planner.slices)
    _estimate_costs(result, calibrate, checkpoint_dir)
    return result


def custom_experiment(
    models: list[str] | None, attacks: list[str], training: Training, preset: PresetConfig
) -> Experiment:
    """The ad-hoc experiment of ``bench run --models ... --attacks ...``."""
    names = tuple(zoo_name(m) for m in (models or preset.models or ("racl_published",)))
    plans = tuple(AttackPlan(text) for text in attacks)
    return Experiment(
        CUSTOM,
        CUSTOM,
        "Ad-hoc white-box evaluation",
        names,
        (training,),
        datasets=(Dataset.CIFAR10,),
        whitebox=plans,
    )


# -- cost estimate ----------------------------------------------------------------------------


def _estimate_costs(result: Plan, calibrate: bool, checkpoint_dir: Path | None) -> None:
    """Fill each cell's cost (forward equivalents; a shared generation split over its group),
    the training cost of checkpoints not on disk, and per-checkpoint forward rates."""
    size: dict[tuple, int] = {}
    top: dict[tuple, int] = {}
    for c in result.cells:
        size[c.group] = size.get(c.group, 0) + 1
        top[c.group] = max(top.get(c.group, 1), c.steps or 1)
    for c in result.cells:
        if c.kind is EvalKind.CLEAN:
            c.cost = float(c.n)
            continue
        shared = c.group[0] in ("transfer", "step_sweep")
        gen = 3.0 * c.n * (top[c.group] if c.group[0] == "step_sweep" else (c.steps or 1))
        c.cost = (gen / size[c.group] if shared else gen) + c.n
    for h, ref in result.refs.items():
        on_disk = checkpoint_dir is not None and (checkpoint_dir / f"{h}.safetensors").exists()
        result.train_cost[h] = 0.0 if on_disk else _train_cost(ref)
        result.rates[h] = _forward_rate(ref) if calibrate else DEFAULT_RATE


def _train_cost(ref: ModelRef) -> float:
    """Forward equivalents of training: 3 per image, plus the attack's steps for PGD-AT/TRADES."""
    cfg = ref.cfg
    per_image = 3.0
    if ref.training is not Training.NATURAL:
        per_image += 3.0 * getattr(cfg, "attack_steps", 7) + 1.0
    n = getattr(cfg, "n_train", None) or dataset_info(ref.dataset).train_size
    return n * getattr(cfg, "epochs", 1) * per_image


_RATE_CACHE: dict[tuple, float] = {}


def _forward_rate(ref: ModelRef, batch: int = 64) -> float:
    """Forward images/s of the model on one random batch (cached per architecture)."""
    name = "racl_published" if ref.needs_search else ref.model
    key = (name, ref.overrides, ref.dataset)
    if key not in _RATE_CACHE:
        _RATE_CACHE[key] = _measure_rate(name, ref, batch)
    return _RATE_CACHE[key]


def _measure_rate(name: str, ref: ModelRef, batch: int) -> float:
    import torch

    from models import create_model

    try:
        model = create_model(name, dataset=ref.dataset.value, **dict(ref.overrides)).eval()
        x = torch.rand(batch, *dataset_info(ref.dataset).shape)
        with torch.no_grad():
            model(x)  # warm-up: allocations, kernel selection
            start = time.perf_counter()
            model(x)
            model(x)
        return 2 * batch / max(time.perf_counter() - start, 1e-6)
    except Exception:  # an estimate only: fall back rather than fail the plan
        return DEFAULT_RATE

"""Planning: experiments x preset -> cells, marked cached from the store, with a cost estimate.

:func:`plan` expands experiments (``bench.plan.experiments``) under a preset
(``bench.plan.presets``) into cells (``bench.plan.units``), grouped so ``bench.run.runner`` can
follow the cost rules; ``bench.plan.cost`` estimates the work. Grouping and seeding rules:
``docs/decisions/planner.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.attacks.pgd import best_iterate
from bench.plan.cost import estimate_costs
from bench.plan.experiments import AttackPlan, Experiment, sweep_budgets
from bench.plan.presets import PresetConfig
from bench.plan.trust_cells import add_trust_cells
from bench.plan.units import Cell, CellGroup, ModelRef, Plan, Skipped, derive_seed
from bench.training.config import warm_start_inputs
from core.datasets import dataset_info
from core.enums import Dataset, EvalKind, Training
from core.errors import UserError
from genotypes.names import zoo_name
from racl_search.variants import TABLE5_PREFIX

if TYPE_CHECKING:
    from bench.attacks import AttackSpec
    from bench.results.store import ResultStore
    from bench.training.user_model import UserModel

CUSTOM = "custom"  # the name of the ad-hoc experiment of --models/--attacks


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
    user_model: UserModel | None = None  # a user's factory + weights (bench.training.user_model)
    match: tuple[str, str] | None = None  # (params|flops, reference): capacity-matched widths


class Planner:
    def __init__(self, req: PlanRequest, store: ResultStore | None) -> None:
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
        if self.user_ref(model):
            return True
        if exp.needs_search:
            return True  # its genotype is on file, or the run searches it (racl_search.api)
        from models import get_model_info

        info = get_model_info(model)
        if not info.available:
            self.skipped.append(Skipped(exp.name, model, info.reason or "unavailable"))
        return info.available

    def user_ref(self, model: str) -> bool:
        user = self.req.user_model
        return user is not None and model == user.name

    def ref(self, model: str, training: Training, dataset: Dataset) -> ModelRef:
        from bench.training.config import config_hash

        if self.user_ref(model):
            user = self.req.user_model
            ref = ModelRef(model, training, dataset, (), user.identity, None, factory=user)
            return self.refs.setdefault(ref.hash, ref)

        needs_search = model.startswith(TABLE5_PREFIX) and not _genotype_exists(model)
        if needs_search:
            overrides = dict(self.preset.cell_overrides)
        else:
            overrides = self.preset.overrides_for(model)
        if self.req.match is not None:
            overrides.update(self._matched(model, dataset, overrides))
        cfg, extra, recipe = self.preset.train_config(model, training, dataset)
        overrides.update(extra)
        cfg = dataclasses.replace(cfg, seed=self.req.seed)
        parent = None
        if self.preset.warm_start and training is not Training.NATURAL:
            parent = self.ref(model, Training.NATURAL, dataset).hash
        h = config_hash(model, overrides, dataset, cfg, warm_start_inputs(parent))
        items = tuple(sorted(overrides.items()))
        ref = ModelRef(model, training, dataset, items, h, cfg, needs_search, recipe, parent=parent)
        self.refs.setdefault(h, ref)
        return self.refs[h]

    def _matched(self, model: str, dataset: Dataset, overrides: dict) -> dict[str, int]:
        """``model``'s width matched to the reference's capacity at this preset's scale."""
        from bench.plan.capacity_match import match_width

        measure, reference = self.req.match
        ref_overrides = self.preset.overrides_for(reference)
        m = match_width(model, reference, measure, dataset, overrides, ref_overrides)
        return {m.key: m.width}

    # slices -----------------------------------------------------------------------------
    def slice_for(self, dataset: Dataset, n: int | None) -> tuple[str, int]:
        from core.data import describe_slice

        size = dataset_info(dataset).test_size
        if self.req.n is not None and self.req.n > size:  # never cut silently
            raise UserError(f"--n {self.req.n} is above the {dataset.value} test set size ({size})")
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
        spec: AttackSpec | None,
        exp: str,
        *,
        source: ModelRef | None = None,
        group: CellGroup | None = None,
        seed: int = 0,
    ) -> None:
        """Add a cell (or add ``exp`` to the cell with its key); a transfer group wins."""
        if group is None:
            group = CellGroup(kind, target.hash, sl[0], None if spec is None else spec.key())
        cell = Cell(
            kind=kind,
            target=target,
            data_slice=sl[0],
            n=sl[1],
            spec=spec,
            source=source,
            group=group,
            seed=seed,
            run_seed=self.req.seed,
            experiments=[exp],
        )
        known = self.cells.setdefault(cell.key, cell)
        if known is cell:
            return
        if exp not in known.experiments:
            known.experiments.append(exp)
        if group.kind is EvalKind.TRANSFER and known.group.kind is not EvalKind.TRANSFER:
            known.group, known.seed = group, seed

    def gen_seed(self, ref: ModelRef, sl: str, spec: AttackSpec) -> int:
        base = dataclasses.replace(spec, steps=1) if spec.fixed_step_iterative else spec
        return derive_seed(self.req.seed, ref.hash, sl, base.key())

    def spec(self, plan: AttackPlan, dataset: Dataset) -> AttackSpec:
        return plan.spec(dataset, self.req.eps if plan.eps is None else None)

    def whitebox(self, ref: ModelRef, sl: tuple[str, int], spec: AttackSpec, exp: str) -> None:
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
        top = dataclasses.replace(base, steps=max(ks)).key()
        group = CellGroup(EvalKind.STEP_SWEEP, ref.hash, sl[0], top)
        seed = self.gen_seed(ref, sl[0], base)
        for k in sorted(set(ks)):
            spec = dataclasses.replace(base, steps=k)
            self.add(EvalKind.STEP_SWEEP, ref, sl, spec, name, group=group, seed=seed)

    def _eps_sweep(
        self, ap: AttackPlan, ref: ModelRef, dataset: Dataset, sl: tuple[str, int], name: str
    ) -> None:
        base = ap.spec(dataset, None)
        group = CellGroup(EvalKind.EPS_SWEEP, ref.hash, sl[0], base.key())
        for eps in sweep_budgets(dataset, self.preset.eps_count):
            spec = base.at_eps(eps)
            seed = self.gen_seed(ref, sl[0], spec)
            self.add(EvalKind.EPS_SWEEP, ref, sl, spec, name, group=group, seed=seed)

    def _source_ref(self, exp: Experiment, dataset: Dataset) -> ModelRef:
        source = self.preset.transfer_source or zoo_name(exp.transfer.source)
        return self.ref(source, exp.transfer.source_training, dataset)

    def _transfer(
        self, exp: Experiment, refs: list[ModelRef], dataset: Dataset, main: tuple[str, int]
    ) -> None:
        src = self._source_ref(exp, dataset)
        for ap in exp.transfer.attacks:
            self._generation(src, refs, main, self.spec(ap, dataset), f"{exp.name}:{exp.part}")

    def _matrix(
        self, exp: Experiment, refs: list[ModelRef], dataset: Dataset, main: tuple[str, int]
    ) -> None:
        spec = self.spec(exp.matrix, dataset)
        for src in refs:
            self._generation(src, refs, main, spec, f"{exp.name}:{exp.part}")

    def _generation(
        self,
        src: ModelRef,
        targets: list[ModelRef],
        main: tuple[str, int],
        spec: AttackSpec,
        name: str,
    ) -> None:
        """One transfer generation from ``src`` to every target; the diagonal is white-box."""
        group = CellGroup(EvalKind.TRANSFER, src.hash, main[0], spec.key())
        seed = self.gen_seed(src, main[0], spec)
        for ref in targets:
            kind = EvalKind.WHITEBOX if ref.hash == src.hash else EvalKind.TRANSFER
            source = None if kind is EvalKind.WHITEBOX else src
            self.add(kind, ref, main, spec, name, source=source, group=group, seed=seed)


def _genotype_exists(name: str) -> bool:
    import genotypes

    return name in genotypes.list_genotypes()


def plan(
    experiments: list[Experiment],
    preset: PresetConfig,
    models: list[str] | None = None,
    attacks: list[str] | None = None,
    dataset: Dataset | None = None,
    store: ResultStore | None = None,
    *,
    eps: float | None = None,
    n: int | None = None,
    seed: int = 0,
    training: Training = Training.PGD_AT,
    calibrate: bool = True,
    checkpoint_dir: Path | None = None,
    user_model: UserModel | None = None,
    match: tuple[str, str] | None = None,
) -> Plan:
    """Expand experiments into cells, mark the cached ones, estimate the cost.

    ``attacks`` (texts for ``parse_attack``) add an ad-hoc experiment ``custom`` over ``models``
    (white-box + clean under ``training``); ``models`` otherwise filters the experiments.
    ``user_model``: a user's model, named in ``models`` by its name. ``match``: (``params`` or
    ``flops``, reference model): every zoo model's width scaled to the reference's capacity
    (:mod:`bench.plan.capacity_match`), its own checkpoints.
    """
    experiments = list(experiments)
    if eps is None:
        eps = preset.eps
    if attacks:
        experiments.append(custom_experiment(models, attacks, training, preset))
    req = PlanRequest(experiments, preset, models, dataset, eps, n, seed, user_model, match)
    planner = Planner(req, store)
    for exp in experiments:
        planner.experiment(exp)
    add_trust_cells(planner)
    share_step_runs(planner.cells.values())
    cells = list(planner.cells.values())
    if store is not None:
        cached = store.cached_keys(c.key for c in cells)
        for c in cells:
            c.cached = c.key in cached
    result = Plan(preset, seed, cells, planner.refs, planner.skipped, planner.slices)
    estimate_costs(result, calibrate, checkpoint_dir)
    return result


def _prefix_signature(cell: Cell) -> tuple:
    """What a PGD-k cell shares with every PGD-K run it is the first k steps of: the attacked
    checkpoint, slice, attack seed and the spec but for its step count (step size resolved)."""
    spec = dataclasses.replace(cell.spec, step_size=cell.spec.alpha, steps=1)
    return (cell.target.hash, cell.data_slice, cell.seed, spec.key())


def share_step_runs(cells: Iterable[Cell]) -> None:
    """Move each white-box PGD-k cell that a step sweep's run already computes into that sweep.

    With a fixed step and the same start PGD-k is the prefix of PGD-K (``bench.attacks.pgd``),
    and the planner gives a white-box PGD-k and a step sweep on the same checkpoint and slice
    the same attack seed. So when a step sweep runs PGD-K (K >= k) there, the white-box row is
    that run's k-th iterate: the same per-sample verdicts, without a second run. The cell keeps
    its kind and key (only the group that computes it changes), as the matrix diagonal does
    in the transfer group. Plain PGD only (``best_iterate`` rows stop early; a gap cell attacks
    survivors), and only cells in a white-box group of their own.
    """
    cells = list(cells)
    sweeps: dict[tuple, tuple[CellGroup, int]] = {}
    for c in cells:
        if c.kind is EvalKind.STEP_SWEEP:  # (not the white-box cells a sweep already took)
            sig = _prefix_signature(c)
            group, top = sweeps.get(sig, (c.group, 0))
            sweeps[sig] = (group, max(top, c.steps))
    for c in cells:
        own = c.kind is EvalKind.WHITEBOX and c.group.kind is EvalKind.WHITEBOX
        if not own or c.after is not None or c.spec.name != "pgd" or best_iterate(c.spec):
            continue
        group, top = sweeps.get(_prefix_signature(c), (None, 0))
        if group is not None and c.steps <= top:
            c.group = group


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

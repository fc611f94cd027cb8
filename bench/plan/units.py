"""What a plan holds: checkpoint refs, cells (one result row each) and their groups, the plan.

A cell's :meth:`Cell.identity` is the one definition of the fields its result key hashes; the
planner keys cells with it and the runner writes it into each row. Why cells are grouped the way
they are: ``docs/decisions/planner.md``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from bench.plan.presets import PresetConfig
from bench.results.store import result_key
from core.enums import Dataset, EvalKind, Training

if TYPE_CHECKING:
    from bench.attacks import AttackSpec


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
    recipe: str | None = field(default=None, compare=False)
    factory: Any = field(default=None, compare=False, hash=False, repr=False)  # a UserModel
    parent: str | None = None  # the natural checkpoint it fine-tunes (PresetConfig.warm_start)

    @property
    def label(self) -> str:
        return f"{self.model}/{self.training.value}/{self.dataset.value}"


class CellGroup(NamedTuple):
    """Cells the executor computes together, in one run of the handler for ``kind``.

    ``checkpoint`` is the model the group's attack runs on (a transfer group's source; its
    white-box diagonal belongs to the transfer group); ``attack_key`` is the spec key of that
    run (None for clean).
    """

    kind: EvalKind
    checkpoint: str
    data_slice: str
    attack_key: str | None


def result_identity(
    kind: EvalKind,
    target: ModelRef,
    data_slice: str,
    spec: AttackSpec | None,
    source: ModelRef | None,
    seed: int,
) -> dict[str, Any]:
    """The identity fields of a result row (``bench.results.store.IDENTITY_FIELDS``); ``seed`` is
    the run's global seed."""
    return {
        "kind": kind.value,
        "checkpoint": target.hash,
        "dataset": target.dataset.value,
        "data_slice": data_slice,
        "attack_key": None if spec is None else spec.key(),
        "eps": None if spec is None else spec.eps,
        "steps": None if spec is None else spec.steps,
        "source_checkpoint": None if source is None else source.hash,
        "seed": seed,
    }


@dataclass
class Cell:
    """One result row to have: what to evaluate, its group, and where its row lives (``key``).

    ``run_seed`` is the run's global seed (it trains the checkpoints and enters the key);
    ``seed`` is the seed of the attack generation that computes the cell.
    """

    kind: EvalKind
    target: ModelRef
    data_slice: str
    n: int
    spec: AttackSpec | None
    source: ModelRef | None
    group: CellGroup
    seed: int
    run_seed: int
    experiments: list[str]
    cached: bool = False
    cost: float = 0.0
    after: str | None = None  # key of the cell whose survivors it attacks (the gap check)

    def identity(self) -> dict[str, Any]:
        """The fields the result key hashes, as the row stores them."""
        return result_identity(
            self.kind, self.target, self.data_slice, self.spec, self.source, self.run_seed
        )

    @functools.cached_property
    def key(self) -> str:
        """The row's key: sha256 of :meth:`identity` (``bench.results.store.result_key``)."""
        return result_key(self.identity())

    @property
    def eps(self) -> float | None:
        return None if self.spec is None else float(self.spec.eps)

    @property
    def steps(self) -> int | None:
        return None if self.spec is None else int(self.spec.steps)

    def checkpoints(self) -> list[str]:
        """Hashes of the checkpoints the cell needs, in the order the executor readies them."""
        refs = [self.target.hash]
        if self.source is not None:
            refs.insert(0, self.source.hash)
        if self.group.kind is EvalKind.TRANSFER and self.group.checkpoint not in refs:
            refs.insert(0, self.group.checkpoint)
        return refs

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

    def groups(self) -> dict[CellGroup, list[Cell]]:
        out: dict[CellGroup, list[Cell]] = {}
        for cell in self.cells:
            out.setdefault(cell.group, []).append(cell)
        return out


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from the canonical JSON of ``parts``."""
    text = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def result_row(cell: Cell, run_id: int, preset: str) -> dict[str, Any]:
    """The stored row of ``cell`` (before its outcome): key, identity and descriptive fields."""
    spec, src = cell.spec, cell.source
    return {
        "key": cell.key,
        "run_id": run_id,
        **cell.identity(),
        "model": cell.target.model,
        "n": cell.n,
        "training": cell.target.training.value,
        "preset": preset,
        "attack": None if spec is None else spec.name,
        "step_size": None if spec is None else spec.alpha,
        "norm": None if spec is None else spec.norm.value,
        "source": None if src is None else src.model,
    }


def needed_checkpoints(cells: list[Cell]) -> set[str]:
    """Hashes of the checkpoints the missing cells of ``cells`` need."""
    return {h for c in cells if not c.cached for h in c.checkpoints()}

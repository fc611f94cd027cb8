"""What a report covers: one dataset, one preset and one attack budget (:class:`Scope`), and the
store seen through that scope (:class:`ReportContext`, what every table builder reads).
How the defaults are chosen: docs/decisions/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.loading import StoreData, most_common
from bench.report.paper import NameMap, load_paper_results
from bench.report.selection import FlagBook, Query, ResultIndex
from core.datasets import DATASETS
from core.enums import EvalKind
from core.errors import UserError

BUDGET_KINDS = (EvalKind.WHITEBOX, EvalKind.TRANSFER)
PREFERRED_TRAINING = "pgd_at"


def standard_eps(dataset: str) -> float | None:
    """The dataset's standard L-inf budget (:data:`core.datasets.DATASETS`), None if unknown."""
    info = next((d for d in DATASETS.values() if d.name == dataset), None)
    return None if info is None else info.eps


@dataclass(frozen=True)
class Scope:
    """The dataset, preset and attack budget the tables and figures use."""

    dataset: str
    preset: str | None
    eps: float | None


def in_preset(results: pd.DataFrame, preset: str | None) -> pd.DataFrame:
    """Rows of ``preset`` (all rows when ``preset`` is None)."""
    if preset is None:
        return results
    return results[results["preset"] == preset]


def choose_eps(rows: pd.DataFrame, dataset: str) -> float | None:
    """The budget of the report: the most common one among the attack rows of the newest run
    that has any (so a re-run at another budget, such as the demo's move from eps 0.3 to 0.1,
    is reported over the stale rows), the dataset's standard budget winning a tie."""
    attacked = rows[rows["kind"].isin(BUDGET_KINDS) & rows["eps"].notna()]
    if attacked.empty:
        return None
    if "run_id" in attacked and attacked["run_id"].notna().any():
        attacked = attacked[attacked["run_id"] == attacked["run_id"].max()]
    counts = attacked["eps"].astype(float).round(8).value_counts()
    top = sorted(float(e) for e in counts[counts == counts.max()].index)
    standard = standard_eps(dataset)
    if standard is not None and any(abs(e - standard) < 1e-6 for e in top):
        return standard
    return top[0]


def _known(rows: pd.DataFrame, column: str) -> str:
    return ", ".join(sorted(map(str, rows[column].dropna().unique())))


def choose_scope(
    results: pd.DataFrame, dataset: str | None = None, preset: str | None = None
) -> Scope:
    """Pick the report's scope; an explicit dataset/preset absent from the store is a UserError."""
    if results.empty:
        raise UserError("the results store has no successful result rows to report")
    if preset is not None and not (results["preset"] == preset).any():
        raise UserError(
            f"no results with preset {preset!r} in the store (have: {_known(results, 'preset')})"
        )
    if preset is None:
        preset = most_common(results["preset"])
    rows = in_preset(results, preset)
    if dataset is not None and not (rows["dataset"] == dataset).any():
        raise UserError(
            f"no results for dataset {dataset!r} in the store (have: {_known(rows, 'dataset')})"
        )
    if dataset is None:
        dataset = str(most_common(rows["dataset"]))
    rows = rows[rows["dataset"] == dataset]
    return Scope(dataset=dataset, preset=preset, eps=choose_eps(rows, dataset))


@dataclass
class ReportContext:
    """The store seen through one scope (dataset, preset, eps)."""

    store: StoreData
    scope: Scope
    names: NameMap
    index: ResultIndex  # successful rows of the scope's dataset and preset
    preset_rows: pd.DataFrame  # successful rows of the preset, every dataset (Table 4)
    flags: FlagBook
    paper: dict
    trainings: dict[str, str]  # checkpoint hash -> training (report/sources.py)

    @classmethod
    def build(cls, store: StoreData, scope: Scope, names: NameMap) -> ReportContext:
        preset_rows = in_preset(store.results, scope.preset)
        rows = preset_rows[preset_rows["dataset"] == scope.dataset]
        failed = in_preset(store.failed, scope.preset)
        failed = failed[failed["dataset"] == scope.dataset]
        from bench.report.sources import checkpoint_trainings

        flags = FlagBook(store.trust, failed, scope.dataset, store.indicators)
        trainings = checkpoint_trainings(store.results, store.checkpoints)
        paper = load_paper_results()
        return cls(store, scope, names, ResultIndex(rows), preset_rows, flags, paper, trainings)

    def steps_for(self, kind: str, attack: str, training: str | None, wanted: int) -> int:
        """``wanted`` when the store has it; else the only (or nearest) step count it has."""
        frame = self.index.frame
        mask = (frame["kind"] == kind) & (frame["attack"] == attack)
        if training is not None:
            mask &= frame["training"] == training
        present = sorted({int(s) for s in frame.loc[mask, "steps"].dropna()})
        if not present or wanted in present:
            return wanted
        return min(present, key=lambda s: (abs(s - wanted), s))

    def training_for(self, kind: str, models: list[str] | None = None, **match: str) -> str | None:
        """PGD-AT when such rows exist for ``kind``; else the most common training present."""
        frame = self.index.frame
        mask = frame["kind"] == kind
        if models is not None:
            mask &= frame["model"].isin(models)
        for col, value in match.items():
            mask &= frame[col] == value
        trainings = frame.loc[mask, "training"].dropna()
        if trainings.empty or (trainings == PREFERRED_TRAINING).any():
            return PREFERRED_TRAINING
        return most_common(trainings)

    def has(self, model: str, query: Query) -> bool:
        return not self.index.rows(model, query).empty

"""Everything a table builder needs: the scoped results, the name map, the flag book, the paper."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.flags import FlagBook
from bench.report.loading import StoreData
from bench.report.lookup import Query, ResultIndex
from bench.report.paper import NameMap, load_paper_results
from bench.report.scope import Scope, in_preset

PREFERRED_TRAINING = "pgd_at"


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

    @classmethod
    def build(cls, store: StoreData, scope: Scope, names: NameMap) -> ReportContext:
        preset_rows = in_preset(store.results, scope.preset)
        rows = preset_rows[preset_rows["dataset"] == scope.dataset]
        failed = in_preset(store.failed, scope.preset)
        failed = failed[failed["dataset"] == scope.dataset]
        flags = FlagBook(store.trust, failed, scope.dataset)
        return cls(store, scope, names, ResultIndex(rows), preset_rows, flags, load_paper_results())

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
        counts = trainings.value_counts()
        return sorted(counts[counts == counts.max()].index)[0]

    def has(self, model: str, query: Query) -> bool:
        return not self.index.rows(model, query).empty

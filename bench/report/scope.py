"""Which slice of the store a report describes: one dataset, one preset, one attack budget.

A store may hold several datasets (Table 4 spans them) and presets (smoke and demo runs side by
side). Unless told, the report takes the dataset and preset with the most successful rows, and the
dataset's standard L-inf budget when the store has it (CIFAR 8/255, MNIST 0.3, as in the RACL
paper, Section 3.2), else the budget most white-box/transfer rows use.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.datasets import DATASETS
from core.errors import UserError

BUDGET_KINDS = ("whitebox", "transfer")


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


def _most_common(values: pd.Series) -> object | None:
    values = values.dropna()
    if values.empty:
        return None
    counts = values.value_counts()
    best = counts[counts == counts.max()].index
    return sorted(best, key=str)[0]


def in_preset(results: pd.DataFrame, preset: str | None) -> pd.DataFrame:
    """Rows of ``preset`` (all rows when ``preset`` is None)."""
    if preset is None:
        return results
    return results[results["preset"] == preset]


def choose_eps(rows: pd.DataFrame, dataset: str) -> float | None:
    """The dataset's standard budget if present among attack rows, else the most common one."""
    attacked = rows[rows["kind"].isin(BUDGET_KINDS)]["eps"].dropna()
    if attacked.empty:
        return None
    standard = standard_eps(dataset)
    if standard is not None and ((attacked - standard).abs() < 1e-6).any():
        return standard
    return float(_most_common(attacked.round(8)))


def choose_scope(
    results: pd.DataFrame, dataset: str | None = None, preset: str | None = None
) -> Scope:
    """Pick the report's scope; an explicit dataset/preset absent from the store is a UserError."""
    if results.empty:
        raise UserError("the results store has no successful result rows to report")
    if preset is not None and not (results["preset"] == preset).any():
        known = ", ".join(sorted(map(str, results["preset"].dropna().unique())))
        raise UserError(f"no results with preset {preset!r} in the store (have: {known})")
    if preset is None:
        preset = _most_common(results["preset"])
    rows = in_preset(results, preset)
    if dataset is not None and not (rows["dataset"] == dataset).any():
        known = ", ".join(sorted(map(str, rows["dataset"].dropna().unique())))
        raise UserError(f"no results for dataset {dataset!r} in the store (have: {known})")
    if dataset is None:
        dataset = str(_most_common(rows["dataset"]))
    rows = rows[rows["dataset"] == dataset]
    return Scope(dataset=dataset, preset=preset, eps=choose_eps(rows, dataset))

"""Look up one table cell's measurement among the store's result rows.

A cell is described by a :class:`Query` (kind, attack, steps, training, source, eps). Rows that
match and share one configuration (attack key, eps, steps, training, source, data slice) are
pooled (sum of correct over sum of n: several seeds of the same cell become one number). When
several configurations match (e.g. MIM at 10 and at 20 steps and the query leaves steps open, or
clean accuracy on the main slice and on the smaller sweep slice), the one with the most images
wins, then the most steps, then the smallest key, so the choice is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

EPS_TOL = 1e-6


@dataclass(frozen=True)
class Query:
    """What a table cell asks of the store; ``None`` means "any"."""

    kind: str
    attack: str | None = None
    steps: int | None = None
    training: str | None = None
    source: str | None = None
    eps: float | None = None


@dataclass(frozen=True)
class Measure:
    """A pooled measurement: accuracy in percent over ``n`` images."""

    accuracy: float
    n: int
    rows: int
    eps: float | None
    steps: int | None
    step_size: float | None
    attack_key: str | None
    training: str | None


def _same_eps(series: pd.Series, eps: float) -> pd.Series:
    return (series - eps).abs() <= EPS_TOL * max(1.0, abs(eps))


class ResultIndex:
    """Successful result rows of one dataset and preset, grouped by (kind, model)."""

    def __init__(self, results: pd.DataFrame) -> None:
        self.frame = results
        self._groups = {key: sub for key, sub in results.groupby(["kind", "model"], sort=True)}

    def models(self, kind: str) -> list[str]:
        return sorted(model for k, model in self._groups if k == kind)

    def rows(self, model: str, query: Query) -> pd.DataFrame:
        """The rows of ``model`` that match ``query``."""
        sub = self._groups.get((query.kind, model))
        if sub is None:
            return self.frame.iloc[0:0]
        mask = pd.Series(True, index=sub.index)
        if query.training is not None:
            mask &= sub["training"] == query.training
        if query.attack is not None:
            mask &= sub["attack"] == query.attack
        if query.steps is not None:
            mask &= sub["steps"] == query.steps
        if query.source is not None:
            mask &= sub["source"] == query.source
        if query.eps is not None:
            mask &= _same_eps(sub["eps"], query.eps)
        return sub[mask]

    def measure(self, model: str, query: Query) -> Measure | None:
        """The pooled measurement for ``model`` under ``query``, or None when nothing matches."""
        rows = self.rows(model, query)
        if rows.empty:
            return None
        return pool(rows)


def _config_key(rows: pd.DataFrame) -> pd.Series:
    key = rows["attack_key"].map(str)
    for col in ("eps", "steps", "training", "source", "data_slice"):
        key = key + "|" + rows[col].map(str)
    return key


def pool(rows: pd.DataFrame) -> Measure:
    """Pool matching rows: pick one configuration (most images, most steps), sum over it."""
    configs = rows.assign(_cfg=_config_key(rows))
    totals = configs.groupby("_cfg").agg(n=("n", "sum"), steps=("steps", "max"))
    totals = totals.fillna({"steps": -1}).reset_index()
    totals = totals.sort_values(["n", "steps", "_cfg"], ascending=[False, False, True])
    chosen = configs[configs["_cfg"] == totals.iloc[0]["_cfg"]]
    n = int(chosen["n"].fillna(0).sum())
    if chosen["correct"].notna().all() and n > 0:
        accuracy = 100.0 * float(chosen["correct"].sum()) / n
    else:
        weights = chosen["n"].fillna(1).clip(lower=1)
        accuracy = float((chosen["accuracy"] * weights).sum() / weights.sum())
    first = chosen.iloc[0]
    return Measure(
        accuracy=accuracy,
        n=n,
        rows=len(chosen),
        eps=_opt_float(first["eps"]),
        steps=_opt_int(first["steps"]),
        step_size=_opt_float(first["step_size"]),
        attack_key=None if first["attack_key"] is None else str(first["attack_key"]),
        training=first["training"],
    )


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _opt_int(value: object) -> int | None:
    value = _opt_float(value)
    return None if value is None else int(value)

"""Figure 3 data from the store: accuracy vs PGD iterations (3a) and vs eps for PGD/FGSM (3b, 3c).

``step_sweep`` rows give one point per recorded iteration count; ``eps_sweep`` rows one point per
budget (worst case over the budgets up to it and over every iterate, see docs/ARCHITECTURE.md).
A point is chosen like a table cell (``selection.pool``): the first seed's accuracy, with its
95 % Wilson interval (drawn as a band) and every seed's outcomes kept for the claims. PGD-AT
models are preferred, as in the paper's Figure 3; otherwise the most common training present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.report.scope import ReportContext
from bench.report.selection import Measure, pool
from core.enums import EvalKind

NOTES = {  # what a point of an eps sweep means (the harness's worst case, not one attack run)
    "figure3b": "Each point: the worst case over every budget up to that eps and over every PGD "
    "iterate (a sample counts as fooled if any smaller budget or any iterate fooled it).",
    "figure3c": "Each point: the worst case over every budget up to that eps (FGSM has one "
    "iterate).",
}

SWEEPS = {
    "figure3a": (EvalKind.STEP_SWEEP, "pgd", "steps"),
    "figure3b": (EvalKind.EPS_SWEEP, "pgd", "eps"),
    "figure3c": (EvalKind.EPS_SWEEP, "fgsm", "eps"),
}


@dataclass(frozen=True)
class Series:
    """One model's curve: x values ascending, accuracy in percent (first seed), images per point,
    the 95 % interval per point (``low``, ``high``) and the point measures (paired tests)."""

    model: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    n: int
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    points: tuple[Measure, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Sweep:
    key: str
    kind: str
    attack: str
    axis: str
    training: str | None
    series: tuple[Series, ...]


def _series(rows: pd.DataFrame, model: str, axis: str) -> Series:
    sub = rows[rows["model"] == model].copy()
    sub["_x"] = sub[axis].astype(float).round(8)
    xs = sorted(set(sub["_x"]))
    points = tuple(pool(sub[sub["_x"] == x]) for x in xs)
    bands = [(p.seeds[0].interval() if p.seeds else None) or (p.accuracy,) * 2 for p in points]
    return Series(
        model,
        tuple(xs),
        tuple(p.accuracy for p in points),
        min(p.n for p in points),
        tuple(b[0] for b in bands),
        tuple(b[1] for b in bands),
        points,
    )


def load_sweep(ctx: ReportContext, key: str) -> Sweep:
    """The curves of one Figure 3 panel (empty ``series`` when the store has none)."""
    kind, attack, axis = SWEEPS[key]
    frame = ctx.index.frame
    rows = frame[(frame["kind"] == kind) & (frame["attack"] == attack) & frame[axis].notna()]
    training = ctx.training_for(kind, attack=attack) if not rows.empty else None
    rows = rows[rows["training"] == training]
    if axis == "steps" and ctx.scope.eps is not None:
        same = (rows["eps"] - ctx.scope.eps).abs() < 1e-6
        rows = rows[same] if same.any() else rows
    models = sorted(set(rows["model"]), key=lambda m: (not ctx.names.is_racl(m), m))
    series = tuple(_series(rows, m, axis) for m in models)
    return Sweep(key, kind, attack, axis, training, series)

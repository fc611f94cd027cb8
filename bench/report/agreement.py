"""Agreement with the paper: Kendall's tau per table column with a bootstrap interval over test
images, and the Markdown of the agreement section (taus and the claims checklist).

Kendall's tau (``scipy.stats.kendalltau``, tau-b) compares our ordering of the rows of a column
with the paper's, over the rows both have ("n/a" under 3). Its interval: the test images are
resampled with replacement (the same draw for every model evaluated on the same images), each
model's accuracy recomputed from its per-sample outcomes, tau recomputed; the 2.5 and 97.5
percentiles of 1000 resamples (first seed). Reasons: docs/decisions/statistics.md.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau

from bench.report.claims import Claim, check_claims
from bench.report.matched import MatchedClaims, matched_markdown
from bench.report.stats import (
    ALPHA,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    bootstrap_weights,
    kendall_tau_b,
    percentile_interval,
)
from bench.report.table_model import Cell, Table

__all__ = ["Claim", "Tau", "agreement_markdown", "check_claims", "column_taus"]


@dataclass(frozen=True)
class Tau:
    table: str
    column: str
    tau: float | None
    n: int
    ci: tuple[float, float] | None = None

    def text(self) -> str:
        return "n/a" if self.tau is None else f"{self.tau:+.2f}"

    @property
    def spans_zero(self) -> bool | None:
        return None if self.ci is None else self.ci[0] <= 0 <= self.ci[1]

    def ci_text(self) -> str:
        if self.tau is None or self.ci is None:
            return "n/a"
        note = " (spans 0)" if self.spans_zero else ""
        return f"[{self.ci[0]:+.2f}, {self.ci[1]:+.2f}]{note}"


def column_taus(table: Table) -> list[Tau]:
    """Kendall's tau per column over rows with both numbers (Table 3: per target, off-diagonal)."""
    if table.skipped:
        return []
    if table.key == "table3":
        return [_matrix_tau(table)]
    out = []
    for col in table.columns:
        both = [c for _, c in table.column(col) if c.ours is not None and c.paper is not None]
        groups = [[c] for c in both]
        out.append(_make_tau(table.key, col, groups, [c.paper for c in both]))
    return out


def _make_tau(key: str, column: str, groups: list[list[Cell]], paper: list[float]) -> Tau:
    ours = [sum(c.ours for c in g) / len(g) for g in groups]
    tau = _tau(ours, paper)
    ci = None if tau is None else _bootstrap(groups, paper)
    return Tau(key, column, tau, len(groups), ci)


def _tau(ours: list[float], paper: list[float]) -> float | None:
    if len(ours) < 3:
        return None
    value = kendalltau(ours, paper).statistic
    return None if value is None or math.isnan(value) else float(value)


def _bootstrap(groups: list[list[Cell]], paper: list[float]) -> tuple[float, float] | None:
    """Percentile interval of tau over resampled test images; None if a cell lacks its bits."""
    values = np.empty((BOOTSTRAP_RESAMPLES, len(groups)))
    weights: dict[tuple[str | None, int], np.ndarray] = {}
    for g, cells in enumerate(groups):
        accs = []
        for cell in cells:
            first = cell.seeds[0] if cell.seeds else None
            if first is None or first.bits is None:
                return None
            slot = (first.data_slice, first.n)
            if slot not in weights:  # one draw per set of images, seeded by its name
                rng = np.random.default_rng([BOOTSTRAP_SEED, zlib.crc32(str(slot).encode())])
                weights[slot] = bootstrap_weights(first.n, BOOTSTRAP_RESAMPLES, rng)
            accs.append(weights[slot] @ first.bits.astype(float) * (100.0 / first.n))
        values[:, g] = np.mean(accs, axis=0)
    return percentile_interval(kendall_tau_b(values, np.asarray(paper)))


def _matrix_tau(table: Table) -> Tau:
    """Targets ranked by mean off-diagonal (transfer) accuracy, ours vs the paper's."""
    groups, paper = [], []
    for j, _ in enumerate(table.columns):
        cells = [r.cells[j] for i, r in enumerate(table.rows) if i != j]
        both = [c for c in cells if c.ours is not None and c.paper is not None]
        if both:
            groups.append(both)
            paper.append(sum(c.paper for c in both) / len(both))
    return _make_tau(table.key, "mean transfer accuracy per target", groups, paper)


STATS_LINES = (
    f"Every accuracy carries its 95 % Wilson interval. Claims on our numbers use McNemar's exact "
    f"test on the paired per-sample outcomes (same test images, same attack), two-sided, "
    f"alpha = {ALPHA}: **held** = every comparison the claim makes is significant in the paper's "
    "direction; **not held** = some comparison is significant against it (Bonferroni over the "
    "claim's tests); **inconclusive** otherwise (a tie, every model at 0 %, too few images).",
    "With several training seeds, each seed is tested on its own: held needs every seed held "
    "(the claim replicates across training runs), one seed significantly against makes it not "
    "held. The paper's own numbers are read as points (the check of our reading of the claim).",
    "Images needed: for an inconclusive claim, the test images per seed for McNemar's test to "
    "detect the paper's gap with 80 % power at alpha 0.05 (Connor 1987), at the share of "
    "images on which our two models disagree (at least the gap); the hardest comparison decides.",
)


def agreement_markdown(
    taus: list[Tau], claims: list[Claim], matched: MatchedClaims | None = None
) -> str:
    """The agreement section (Markdown); with ``matched``, the claims at matched capacity."""
    lines = [
        "## Agreement with the paper",
        "",
        "### Kendall's tau (our ranking vs the paper's)",
        "",
        "95 % interval: percentile bootstrap over the test images (1000 resamples, the same "
        "images drawn for every model; first seed); '(spans 0)' = the ranking's agreement with "
        "the paper's is not distinguishable from none.",
        "",
    ]
    lines += ["| Table | Column | tau | 95 % interval | rows |", "|---|---|---:|---|---:|"]
    lines += [f"| {t.table} | {t.column} | {t.text()} | {t.ci_text()} | {t.n} |" for t in taus]
    lines += ["", "### Claims of the paper", "", *[f"{s}\n" for s in STATS_LINES]]
    head = "| Claim | Where | Ours | Paper's numbers | Images needed | Detail |"
    lines += [head, "|---|---|---|---|---|---|"]
    for c in claims:
        cells = [c.text, c.where, c.ours, c.paper, c.needed, c.detail]
        lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    if matched is not None:
        lines += ["", matched_markdown(claims, matched).rstrip("\n")]
    return "\n".join(lines) + "\n"

"""The paper's claims at matched capacity (issue 29): a second store, filled by
``bench run --match params|flops`` (every zoo model's width scaled to the reference's size, each
its own checkpoint), is read through the report's own scope and judged by the same checklist
(``bench.report.claims``); the report shows both verdicts of every claim side by side.

The matched run keeps a store of its own because a report pools a model's rows by name: native
and matched checkpoints of ``darts`` in one store would answer one table cell together. The
second store must cover the report's dataset, preset and attack budget; whether its models are
matched is read from its own Table 1 (the capacity line of ``bench.report.capacity``), and said.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.report.claims import Claim, check_claims
from bench.report.loading import load_store
from bench.report.paper import NameMap
from bench.report.scope import ReportContext, Scope, choose_scope
from bench.report.sweeps import SWEEPS, load_sweep
from bench.report.tables import build_tables
from core.errors import UserError

CAPACITY_TABLES = ("table1_with_at", "table1_without_at")


@dataclass(frozen=True)
class MatchedClaims:
    """The checklist judged on a capacity-matched store: its path, its capacity line (from its
    Table 1) and whether that line says every row is within the tolerance, and its claims."""

    store_path: Path
    capacity: str
    matched: bool
    claims: list[Claim]


def _capacity_line(tables: dict) -> tuple[str, bool]:
    for key in CAPACITY_TABLES:
        table = tables.get(key)
        if table is None or table.skipped:
            continue
        for line in table.header:
            if line.startswith("Capacity matched"):
                return line, True
            if line.startswith("Capacity differs"):
                return line, False
    return "its Table 1 has no parameter counts of RACL and another model to compare", False


def matched_claims(path: str | Path, scope: Scope, names: NameMap) -> MatchedClaims:
    """The claims judged on the store at ``path`` within the report's ``scope`` (same dataset,
    preset and budget; anything else is a UserError naming what differs)."""
    store = load_store(path)
    theirs = choose_scope(store.results, scope.dataset, scope.preset)
    if (theirs.eps is None) != (scope.eps is None):
        raise UserError(f"--matched-store {path}: it has no attack rows at the report's budget")
    if theirs.eps is not None and abs(theirs.eps - scope.eps) > 1e-9:
        raise UserError(
            f"--matched-store {path}: its attack budget eps={theirs.eps:g} differs from the "
            f"report's eps={scope.eps:g}; run the matched plan at the same budget"
        )
    ctx = ReportContext.build(store, theirs, names)
    tables = {t.key: t for t in build_tables(ctx)}
    sweeps = {key: load_sweep(ctx, key) for key in SWEEPS}
    line, matched = _capacity_line(tables)
    return MatchedClaims(Path(path), line, matched, check_claims(tables, sweeps, names.is_racl))


def comparison_rows(native: list[Claim], matched: MatchedClaims) -> list[list[str]]:
    """One row per claim: text, where, verdict at the report's sizes, at matched capacity,
    whether it changed, the matched run's images needed and detail."""
    theirs = {(c.text, c.where): c for c in matched.claims}
    rows = []
    for claim in native:
        other = theirs.get((claim.text, claim.where))
        if other is None:  # both lists come from one checklist: a missing claim is a bug
            raise AssertionError(f"claim {claim.text!r} missing from the matched checklist")
        changed = "same" if other.ours == claim.ours else "changed"
        rows.append(
            [claim.text, claim.where, claim.ours, other.ours, changed, other.needed, other.detail]
        )
    return rows


MATCHED_HEADER = (
    "Claim",
    "Where",
    "Ours",
    "Ours at matched capacity",
    "Verdict",
    "Images needed (matched)",
    "Detail (matched)",
)


def matched_intro(matched: MatchedClaims) -> list[str]:
    """The lines above the comparison table: which store, and whether its models are matched."""
    status = (
        "its models are matched"
        if matched.matched
        else "its models are NOT all matched, so these verdicts are not at matched capacity"
    )
    return [
        f"The same checklist judged on `{matched.store_path.name}` (a `bench run --match` "
        f"store: each zoo model's width scaled to the reference's size): {status}. "
        f"{matched.capacity}.",
        "A verdict that changes between the columns depends on model size, not only on "
        "architecture (RobArch's objection).",
    ]


def matched_markdown(native: list[Claim], matched: MatchedClaims) -> str:
    """The Markdown subsection of the agreement section."""
    lines = ["### Claims at matched capacity", "", *[f"{s}\n" for s in matched_intro(matched)]]
    lines += ["| " + " | ".join(MATCHED_HEADER) + " |", "|" + "---|" * len(MATCHED_HEADER)]
    for row in comparison_rows(native, matched):
        lines.append("| " + " | ".join(x.replace("|", "/") for x in row) + " |")
    return "\n".join(lines) + "\n"

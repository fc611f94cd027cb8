"""The checklist of the RACL paper's claims (Section 3 of "Adversarially Robust Neural
Architecture Search with Confidence Learning"), each turned into comparisons "A above B" on the
same test images and judged by ``bench.report.verdicts``: on our per-sample outcomes (held, not
held, inconclusive) and, as a check of the reading, on the paper's own numbers. A claim is "not
run" when the store lacks the cells it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.report.paper import RACL
from bench.report.sweeps import Sweep
from bench.report.table_model import Row, Table, measured_cell
from bench.report.verdicts import NOT_RUN, Comparison, detail, images_needed, judge, paper_verdict

Built = list[Comparison] | str  # the comparisons of a claim, or why it cannot be run


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, where it is made, its verdict on ours and on the paper's numbers,
    the test images an inconclusive verdict would need, and the detail."""

    text: str
    where: str
    ours: str
    paper: str
    detail: str
    needed: str = "-"


def _first_row(table: Table, paper_row: str) -> Row | None:
    return next((r for r in table.rows if r.paper_row == paper_row), None)


def _best(table: Table, cols: list[str], target: str = RACL) -> Built:
    """The row mapped to ``target`` above every other row, in each of ``cols`` (the paper's
    reading allows ties)."""
    out = []
    for col in cols:
        if col not in table.columns:
            continue
        cells = table.column(col)
        mine = next((c for r, c in cells if r.paper_row == target), None)
        if mine is None:
            continue
        out += [Comparison(col, r.label, mine, c, False) for r, c in cells if r.paper_row != target]
    return out or f"needs {target} and another row in {', '.join(cols) or 'a column'}"


def _beats(table: Table, cols: list[str], rival: str, mine: str = RACL) -> Built:
    """The ``mine`` row strictly above the ``rival`` row in each of ``cols``."""
    a, b = _first_row(table, mine), _first_row(table, rival)
    if a is None or b is None:
        return f"needs rows {mine} and {rival}"
    out = []
    for col in cols:
        if col not in table.columns:
            return f"no column {col}"
        j = table.columns.index(col)
        if a.cells[j].ours is None and a.cells[j].paper is None:
            return f"{col}: missing value"
        out.append(Comparison(col, b.label, a.cells[j], b.cells[j]))
    return out


def _pgd_col(table: Table) -> str:
    return next((c for c in table.columns if c.startswith("PGD")), "PGD")


def _matrix_rows(table: Table) -> Built:
    """In every source row (other than RACL's), the RACL target above every other target."""
    rows = [r.paper_row for r in table.rows]
    if RACL not in rows:
        return "RACL is not in the matrix"
    j = rows.index(RACL)
    out = []
    for i, row in enumerate(table.rows):
        if i == j:
            continue
        for k, cell in enumerate(row.cells):
            if k not in (i, j):
                rival = f"target {table.columns[k]}"
                out.append(Comparison(f"from {row.label}", rival, row.cells[j], cell, False))
    return out or "no source row with RACL and another target"


def _transfer_asymmetry(table: Table) -> Built:
    """RACL -> AmoebaNet leaves lower accuracy than AmoebaNet -> RACL (stronger examples)."""
    rows = [r.paper_row for r in table.rows]
    if RACL not in rows or "amoebanet" not in rows:
        return "needs RACL and AmoebaNet in the matrix"
    r, a = rows.index(RACL), rows.index("amoebanet")
    into, out_of = table.rows[a].cells[r], table.rows[r].cells[a]
    return [Comparison("AmoebaNet->RACL", "RACL->AmoebaNet", into, out_of)]


def _sweep_best(sweep: Sweep | None, racl: Callable[[str], bool]) -> Built:
    """RACL's curve above every other curve at each x they share."""
    if sweep is None or not sweep.series:
        return "no sweep rows"
    mine = [s for s in sweep.series if racl(s.model)]
    others = [s for s in sweep.series if not racl(s.model)]
    if not mine or not others:
        return "needs RACL and another model"
    out = []
    for x, point in zip(mine[0].x, mine[0].points, strict=True):
        for other in others:
            theirs = dict(zip(other.x, other.points, strict=True)).get(x)
            if theirs is not None:
                a, b = measured_cell(point, None), measured_cell(theirs, None)
                out.append(Comparison(f"{x:g}", other.model, a, b, False))
    return out or "no shared points"


def _ablation_cl(table: Table) -> Built:
    """eta=0.9, rho=0.001 above 'without CL' in every attack column."""
    cols = [c for c in table.columns if c != "Clean"]
    return _beats(table, cols, "without_cl", "eta0.9_rho0.001")


def _claim(text: str, where: str, built: Built, paper: bool = True) -> Claim:
    if isinstance(built, str):
        return Claim(text, where, NOT_RUN, NOT_RUN if paper else "-", built)
    judged = judge(built)
    note = detail(judged) or "no cell with our value"
    return Claim(
        text,
        where,
        judged.verdict,
        paper_verdict(built) if paper else "-",
        note,
        images_needed(judged),
    )


def check_claims(
    tables: dict[str, Table], sweeps: dict[str, Sweep], racl: Callable[[str], bool]
) -> list[Claim]:
    """Every claim of the checklist, in the paper's order."""
    claims: list[Claim] = []

    def add(text: str, where: str, key: str, build: Callable[[Table], Built]) -> None:
        table = tables.get(key)
        if table is None or table.skipped:
            claims.append(Claim(text, where, NOT_RUN, NOT_RUN, "table not filled"))
        else:
            claims.append(_claim(text, where, build(table)))

    attacks = lambda t: [c for c in t.columns if c != "Clean"]  # noqa: E731
    t1, t1n = "table1_with_at", "table1_without_at"
    add(
        "With AT, RACL is the most robust model under every attack (FGSM, MIM, PGD)",
        "Sec. 3.2, Table 1 left",
        t1,
        lambda t: _best(t, attacks(t)),
    )
    add(
        "With AT, RACL beats its baseline PC-DARTS under FGSM and PGD",
        "Sec. 3.2 (52.67->57.44, 41.92->49.34)",
        t1,
        lambda t: _beats(t, ["FGSM", _pgd_col(t)], "pc_darts"),
    )
    add(
        "Without AT, RACL is the most robust model under MIM and PGD",
        "Sec. 3.2, Table 1 right",
        t1n,
        lambda t: _best(t, ["MIM", _pgd_col(t)]),
    )
    add(
        "Without AT, RACL beats PC-DARTS under MIM (the architecture itself adds robustness)",
        "Sec. 3.2 (4.68 vs 1.21)",
        t1n,
        lambda t: _beats(t, ["MIM"], "pc_darts"),
    )
    add(
        "RACL has the highest accuracy under all three attacks transferred from VGG-19",
        "Sec. 3.3, Table 2",
        "table2",
        lambda t: _best(t, list(t.columns)),
    )
    add(
        "In every row (source) of the transfer matrix RACL is the most robust target",
        "Sec. 3.3, Table 3",
        "table3",
        _matrix_rows,
    )
    add(
        "RACL's adversarial examples transfer more strongly (RACL->AmoebaNet < AmoebaNet->RACL)",
        "Sec. 3.3",
        "table3",
        _transfer_asymmetry,
    )
    add(
        "RACL (PGD-AT) beats the other defences on every dataset",
        "Sec. 3.2, Table 4",
        "table4",
        lambda t: _best(t, list(t.columns)),
    )
    add(
        "eta=0.9, rho=0.001 gives the best PGD accuracy of the ablation",
        "Sec. 3.5, Table 5",
        "table5",
        lambda t: _best(t, [_pgd_col(t)], "eta0.9_rho0.001"),
    )
    add(
        "Confidence learning helps: eta=0.9, rho=0.001 beats 'without CL' under every attack",
        "Sec. 3.5, Table 5",
        "table5",
        _ablation_cl,
    )
    for key, text in (
        ("figure3a", "RACL is the most robust at every PGD iteration count"),
        ("figure3b", "RACL is the most robust at every PGD budget eps"),
        ("figure3c", "RACL is the most robust at every FGSM budget eps"),
    ):
        built = _sweep_best(sweeps.get(key), racl)
        claims.append(_claim(text, f"Sec. 3.4, Figure 3{key[-1]}", built, paper=False))
    return claims

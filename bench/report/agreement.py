"""Agreement with the paper: rank correlation per table column and a checklist of its claims.

Kendall's tau (``scipy.stats.kendalltau``, tau-b) compares our ordering of the rows of a column
with the paper's, over the rows both have ("n/a" under 3). The claims are the ones the RACL paper
states in Section 3 ("Adversarially Robust Neural Architecture Search with Confidence Learning"),
each checked on our numbers and, as a sanity check of the reading, on the paper's own numbers for
the same rows; a claim is "not run" when the store lacks the cells it needs. Ties count as held.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy.stats import kendalltau

from bench.report.paper import RACL
from bench.report.sweeps import Sweep
from bench.report.table_model import Row, Table

HELD, NOT_HELD, NOT_RUN = "held", "not held", "not run"


@dataclass(frozen=True)
class Tau:
    table: str
    column: str
    tau: float | None
    n: int

    def text(self) -> str:
        return "n/a" if self.tau is None else f"{self.tau:+.2f}"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, where it is made, its verdict on ours and on the paper's numbers."""

    text: str
    where: str
    ours: str
    paper: str
    detail: str


def column_taus(table: Table) -> list[Tau]:
    """Kendall's tau per column over rows with both numbers (Table 3: per target, off-diagonal)."""
    if table.skipped:
        return []
    if table.key == "table3":
        return [_matrix_tau(table)]
    out = []
    for col in table.columns:
        pairs = [
            (c.ours, c.paper)
            for _, c in table.column(col)
            if c.ours is not None and c.paper is not None
        ]
        out.append(Tau(table.key, col, _tau(pairs), len(pairs)))
    return out


def _tau(pairs: list[tuple[float, float]]) -> float | None:
    if len(pairs) < 3:
        return None
    ours, paper = zip(*pairs, strict=True)
    value = kendalltau(ours, paper).statistic
    return None if value is None or math.isnan(value) else float(value)


def _matrix_tau(table: Table) -> Tau:
    """Targets ranked by mean off-diagonal (transfer) accuracy, ours vs the paper's."""
    pairs = []
    for j, _ in enumerate(table.columns):
        cells = [r.cells[j] for i, r in enumerate(table.rows) if i != j]
        both = [c for c in cells if c.ours is not None and c.paper is not None]
        if both:
            pairs.append(
                (sum(c.ours for c in both) / len(both), sum(c.paper for c in both) / len(both))
            )
    return Tau(table.key, "mean transfer accuracy per target", _tau(pairs), len(pairs))


# -- claims ---------------------------------------------------------------------------------

Pick = Callable[[object], float | None]
OURS: Pick = lambda c: c.ours  # noqa: E731
PAPER: Pick = lambda c: c.paper  # noqa: E731


def _first_row(table: Table, paper_row: str) -> Row | None:
    """The first row compared with ``paper_row``, or None."""
    return next((r for r in table.rows if r.paper_row == paper_row), None)


def _pick_pair(
    table: Table, col: str, a: Row, b: Row, pick: Pick
) -> tuple[float | None, float | None]:
    j = table.columns.index(col)
    return pick(a.cells[j]), pick(b.cells[j])


def _above(pairs: list[tuple[str, float, float]]) -> tuple[str, str]:
    """Held when a > b in every (column, a, b); the detail lists the pairs."""
    detail = "; ".join(f"{col}: {a:.1f} vs {b:.1f}" for col, a, b in pairs)
    return (HELD if all(a > b for _, a, b in pairs) else NOT_HELD), detail


def _best(table: Table, cols: list[str], pick: Pick, target: str = RACL) -> tuple[str, str]:
    """Is the row mapped to ``target`` highest (ties allowed) in each of ``cols``?

    Columns without the target and another row are skipped (named in the detail); the claim is
    "not run" when no column can be judged.
    """
    verdicts, notes = [], []
    for col in cols:
        if col not in table.columns:
            notes.append(f"{col}: no such column")
            continue
        cells = [(r, pick(c)) for r, c in table.column(col) if pick(c) is not None]
        mine = [v for r, v in cells if r.paper_row == target]
        others = [(r.label, v) for r, v in cells if r.paper_row != target]
        if not mine or not others:
            notes.append(f"{col}: not comparable")
            continue
        best_other = max(others, key=lambda t: t[1])
        verdicts.append(mine[0] >= best_other[1])
        notes.append(f"{col}: {mine[0]:.1f} vs best other {best_other[0]} {best_other[1]:.1f}")
    if not verdicts:
        return NOT_RUN, f"needs {target} and another row in {', '.join(cols) or 'a column'}"
    return (HELD if all(verdicts) else NOT_HELD), "; ".join(notes)


def _beats(table: Table, cols: list[str], rival: str, pick: Pick) -> tuple[str, str]:
    """Is the RACL row above the ``rival`` paper row in each of ``cols``?"""
    mine, theirs = _first_row(table, RACL), _first_row(table, rival)
    if mine is None or theirs is None:
        return NOT_RUN, f"needs rows RACL and {rival}"
    pairs = []
    for col in cols:
        if col not in table.columns:
            return NOT_RUN, f"no column {col}"
        a, b = _pick_pair(table, col, mine, theirs, pick)
        if a is None or b is None:
            return NOT_RUN, f"{col}: missing value"
        pairs.append((col, a, b))
    return _above(pairs)


def _pgd_col(table: Table) -> str | None:
    cols = [c for c in table.columns if c.startswith("PGD")]
    return cols[0] if cols else None


def _matrix_rows(table: Table, pick: Pick) -> tuple[str, str]:
    """In every source row (other than RACL's), the RACL target is the most robust off-diagonal."""
    if RACL not in [r.paper_row for r in table.rows]:
        return NOT_RUN, "RACL is not in the matrix"
    j = [r.paper_row for r in table.rows].index(RACL)
    verdicts, notes = [], []
    for i, row in enumerate(table.rows):
        if i == j:
            continue
        mine = pick(row.cells[j])
        others = [
            pick(c) for k, c in enumerate(row.cells) if k not in (i, j) and pick(c) is not None
        ]
        if mine is None or not others:
            continue
        verdicts.append(mine >= max(others))
        notes.append(f"{row.label}: {mine:.1f} vs {max(others):.1f}")
    if not verdicts:
        return NOT_RUN, "no source row with RACL and another target"
    return (HELD if all(verdicts) else NOT_HELD), "; ".join(notes)


def _transfer_asymmetry(table: Table, pick: Pick) -> tuple[str, str]:
    """RACL -> AmoebaNet leaves lower accuracy than AmoebaNet -> RACL (stronger examples)."""
    rows = [r.paper_row for r in table.rows]
    if RACL not in rows or "amoebanet" not in rows:
        return NOT_RUN, "needs RACL and AmoebaNet in the matrix"
    r, a = rows.index(RACL), rows.index("amoebanet")
    out_acc, in_acc = pick(table.rows[r].cells[a]), pick(table.rows[a].cells[r])
    if out_acc is None or in_acc is None:
        return NOT_RUN, "missing cell"
    detail = f"RACL->AmoebaNet {out_acc:.1f} vs AmoebaNet->RACL {in_acc:.1f}"
    return (HELD if out_acc < in_acc else NOT_HELD), detail


def _sweep_best(sweep: Sweep | None, racl: Callable[[str], bool]) -> tuple[str, str]:
    """RACL's curve is highest (ties allowed) at every x shared with another model."""
    if sweep is None or not sweep.series:
        return NOT_RUN, "no sweep rows"
    mine = [s for s in sweep.series if racl(s.model)]
    others = [s for s in sweep.series if not racl(s.model)]
    if not mine or not others:
        return NOT_RUN, "needs RACL and another model"
    ours = dict(zip(mine[0].x, mine[0].y, strict=True))
    bad = []
    for x, y in sorted(ours.items()):
        rivals = [dict(zip(s.x, s.y, strict=True)).get(x) for s in others]
        rivals = [v for v in rivals if v is not None]
        if rivals and y < max(rivals):
            bad.append(f"{x:g}: {y:.1f} < {max(rivals):.1f}")
    return (NOT_HELD, "below at " + "; ".join(bad)) if bad else (HELD, f"{len(ours)} points")


def check_claims(
    tables: dict[str, Table], sweeps: dict[str, Sweep], racl: Callable[[str], bool]
) -> list[Claim]:
    """Every claim of the checklist, in the paper's order."""
    t1, t1n = tables.get("table1_with_at"), tables.get("table1_without_at")
    t2, t3, t4, t5 = (tables.get(k) for k in ("table2", "table3", "table4", "table5"))
    claims: list[Claim] = []

    def add(text: str, where: str, table: Table | None, fn: Callable[[Table, Pick], tuple]) -> None:
        if table is None or table.skipped:
            claims.append(Claim(text, where, NOT_RUN, NOT_RUN, "table not filled"))
            return
        ours, detail = fn(table, OURS)
        paper, _ = fn(table, PAPER)
        claims.append(Claim(text, where, ours, paper, detail))

    attacks = lambda t: [c for c in t.columns if c != "Clean"]  # noqa: E731
    add(
        "With AT, RACL is the most robust model under every attack (FGSM, MIM, PGD)",
        "Sec. 3.2, Table 1 left",
        t1,
        lambda t, p: _best(t, attacks(t), p),
    )
    add(
        "With AT, RACL beats its baseline PC-DARTS under FGSM and PGD",
        "Sec. 3.2 (52.67->57.44, 41.92->49.34)",
        t1,
        lambda t, p: _beats(t, ["FGSM", _pgd_col(t) or "PGD"], "pc_darts", p),
    )
    add(
        "Without AT, RACL is the most robust model under MIM and PGD",
        "Sec. 3.2, Table 1 right",
        t1n,
        lambda t, p: _best(t, ["MIM", _pgd_col(t) or "PGD"], p),
    )
    add(
        "Without AT, RACL beats PC-DARTS under MIM (the architecture itself adds robustness)",
        "Sec. 3.2 (4.68 vs 1.21)",
        t1n,
        lambda t, p: _beats(t, ["MIM"], "pc_darts", p),
    )
    add(
        "RACL has the highest accuracy under all three attacks transferred from VGG-19",
        "Sec. 3.3, Table 2",
        t2,
        lambda t, p: _best(t, list(t.columns), p),
    )
    add(
        "In every row (source) of the transfer matrix RACL is the most robust target",
        "Sec. 3.3, Table 3",
        t3,
        _matrix_rows,
    )
    add(
        "RACL's adversarial examples transfer more strongly (RACL->AmoebaNet < AmoebaNet->RACL)",
        "Sec. 3.3",
        t3,
        _transfer_asymmetry,
    )
    add(
        "RACL (PGD-AT) beats the other defences on every dataset",
        "Sec. 3.2, Table 4",
        t4,
        lambda t, p: _best(t, list(t.columns), p),
    )
    add(
        "eta=0.9, rho=0.001 gives the best PGD accuracy of the ablation",
        "Sec. 3.5, Table 5",
        t5,
        lambda t, p: _best(t, [_pgd_col(t) or "PGD"], p, "eta0.9_rho0.001"),
    )
    add(
        "Confidence learning helps: eta=0.9, rho=0.001 beats 'without CL' under every attack",
        "Sec. 3.5, Table 5",
        t5,
        lambda t, p: _ablation_cl(t, p),
    )
    for key, text in (
        ("figure3a", "RACL is the most robust at every PGD iteration count"),
        ("figure3b", "RACL is the most robust at every PGD budget eps"),
        ("figure3c", "RACL is the most robust at every FGSM budget eps"),
    ):
        ours, detail = _sweep_best(sweeps.get(key), racl)
        claims.append(Claim(text, f"Sec. 3.4, Figure 3{key[-1]}", ours, "-", detail))
    return claims


def _ablation_cl(table: Table, pick: Pick) -> tuple[str, str]:
    """eta=0.9, rho=0.001 above 'without CL' in every attack column."""
    best, without = _first_row(table, "eta0.9_rho0.001"), _first_row(table, "without_cl")
    if best is None or without is None:
        return NOT_RUN, "needs rows eta0.9_rho0.001 and without_cl"
    cols = [c for c in table.columns if c != "Clean"]
    pairs = [(c, *_pick_pair(table, c, best, without, pick)) for c in cols]
    if any(a is None or b is None for _, a, b in pairs):
        return NOT_RUN, "missing value"
    return _above(pairs)


def agreement_markdown(taus: list[Tau], claims: list[Claim]) -> str:
    """The agreement section (Markdown)."""
    lines = [
        "## Agreement with the paper",
        "",
        "### Kendall's tau (our ranking vs the paper's)",
        "",
    ]
    lines += ["| Table | Column | tau | rows |", "|---|---|---:|---:|"]
    lines += [f"| {t.table} | {t.column} | {t.text()} | {t.n} |" for t in taus]
    lines += ["", "### Claims of the paper", ""]
    lines += ["| Claim | Where | Ours | Paper's numbers | Detail |", "|---|---|---|---|---|"]
    for c in claims:
        lines.append(
            f"| {c.text} | {c.where} | {c.ours} | {c.paper} | {c.detail.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"

"""Tables 1-5 of the RACL paper rebuilt from the store, cell by cell next to the paper's numbers.

Which store rows fill which table: docs/decisions/report.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.report.capacity import add_capacity
from bench.report.labels import (
    CELLS_LINE,
    attack_line,
    display,
    images_line,
    scope_lines,
    training_name,
)
from bench.report.paper import NAS_MODELS, RACL, TRANSFER_SOURCE, model_order
from bench.report.scope import ReportContext, choose_eps
from bench.report.selection import Measure, Query, ResultIndex
from bench.report.sources import matrix_sources, table2_source
from bench.report.table_model import Cell, Row, Table, measured_cell
from core.enums import EvalKind

PAPER_SECTIONS = {
    "table1_with_at": "table1_with_at",
    "table1_without_at": "table1_without_at",
    "table2": "table2_blackbox_from_vgg19",
    "table3": "table3_transfer_matrix_pgd10",
    "table4": "table4_defenses_pgd",
    "table5": "table5_ablation",
}
TABLE4_DATASETS = ("cifar10", "cifar100", "mnist")


@dataclass(frozen=True)
class ColumnSpec:
    """A table column: its label, the store query and the paper's column name."""

    label: str
    query: Query
    paper_col: str | None


@dataclass
class Collected:
    """Measures gathered per column while filling a table (for the header lines)."""

    by_column: dict[str, list[Measure]] = field(default_factory=dict)

    def add(self, label: str, measure: Measure | None) -> None:
        if measure is not None:
            self.by_column.setdefault(label, []).append(measure)


def _section_value(section: dict, row: str | None, col: str | None) -> float | None:
    """The paper's number in ``section`` at (row, column), None where it has none."""
    values = section.get("rows", {}).get(row) if row else None
    if values is None or col is None or col not in section.get("columns", []):
        return None
    value = values[section["columns"].index(col)]
    return None if value is None else float(value)


def _cell(
    ctx: ReportContext, model: str, query: Query, paper: float | None, also: tuple[str, ...] = ()
) -> tuple[Cell, Measure | None]:
    """Fill one cell; ``also`` names further models whose trust flags concern it (sources)."""
    measure = ctx.index.measure(model, query)
    marks: set[int] = set()
    failed = False
    if measure is None:
        mark = ctx.flags.failed_cell(model, query)
        if mark is not None:
            marks.add(mark)
            failed = True
    else:
        # an indicator's mark goes on the white-box cell whose attack it read (selection.py)
        own = measure.attack_key if str(query.kind) == "whitebox" else None
        for name in (model, *also):
            key = own if name == model else None
            marks.update(ctx.flags.for_model(name, query.training, attack_key=key))
        if str(query.kind) == "whitebox":  # one gradient sample per step on a random model
            mark = ctx.flags.random_plain(model, measure.training, measure.attack_key)
            marks.update([mark] if mark is not None else [])
    return measured_cell(measure, paper, marks, failed), measure


def _order(ctx: ReportContext, models: set[str] | list[str], paper_rows: list[str]) -> list[str]:
    rank = model_order(paper_rows)
    return sorted(models, key=lambda m: (rank.get(ctx.names.paper_row(m), len(rank)), m))


def _is_ablation(ctx: ReportContext, model: str) -> bool:
    variants = list(ctx.paper["table5_ablation"]["rows"])
    return ctx.names.table5_variant(model, variants) is not None


def _finish(ctx: ReportContext, table: Table, collected: Collected, empty_reason: str) -> Table:
    measures = collected.by_column
    table.header.append(images_line(m for ms in measures.values() for m in ms))
    lines = (attack_line(label, ms) for label, ms in measures.items())
    table.header.extend(line for line in lines if line)
    marks = {m for row in table.rows for c in row.cells for m in c.marks}
    table.footnotes = ctx.flags.footnotes(marks)
    if not table.filled:
        table.skipped = empty_reason
    return table


def _model_rows(
    ctx: ReportContext,
    table: Table,
    specs: list[ColumnSpec],
    models: list[str],
    paper_row: Callable[[str], str | None],
) -> Collected:
    section = ctx.paper.get(PAPER_SECTIONS[table.key], {})
    collected = Collected()
    for model in models:
        prow = paper_row(model)
        cells = []
        for spec in specs:
            paper = _section_value(section, prow, spec.paper_col)
            cell, measure = _cell(ctx, model, spec.query, paper)
            cells.append(cell)
            collected.add(spec.label, measure)
        table.rows.append(Row(model, prow, tuple(cells)))
    return collected


def _models_with(ctx: ReportContext, specs: list[ColumnSpec], keep: Callable[[str], bool]) -> set:
    kinds = {s.query.kind for s in specs}
    failed = ctx.flags.failed
    candidates = {m for kind in kinds for m in ctx.index.models(kind) + failed.models(kind)}
    return {
        m
        for m in candidates
        if keep(m) and any(ctx.has(m, s.query) or not failed.rows(m, s.query).empty for s in specs)
    }


def _pgd_spec(
    ctx: ReportContext, kind: str, training: str | None, want: int, source: tuple | None = None
) -> tuple[ColumnSpec, str | None]:
    steps = ctx.steps_for(kind, "pgd", training, want)
    name, ckpt = _source(source)
    query = Query(kind, "pgd", steps, training, name, ctx.scope.eps, ckpt)
    note = None
    if steps != want:
        note = f"PGD{steps} stands in for the paper's PGD{want} (the store has no PGD-{want} rows)"
    return ColumnSpec(f"PGD{steps}", query, f"PGD{want}"), note


def _source(source: tuple[str, str] | None) -> tuple[str | None, str | None]:
    """(source name, source checkpoint) for a Query; (None, None) for white-box columns."""
    return (None, None) if source is None else source


def _attack_specs(
    ctx: ReportContext, kind: str, training: str | None, pgd_steps: int, source: tuple | None = None
) -> tuple[list[ColumnSpec], list[str]]:
    eps = ctx.scope.eps
    name, ckpt = _source(source)
    pgd, note = _pgd_spec(ctx, kind, training, pgd_steps, source)
    specs = [
        ColumnSpec("FGSM", Query(kind, "fgsm", None, training, name, eps, ckpt), "FGSM"),
        ColumnSpec("MIM", Query(kind, "mim", None, training, name, eps, ckpt), "MIM"),
        pgd,
    ]
    return specs, [note] if note else []


def _new_table(
    ctx: ReportContext, key: str, title: str, columns: list[str], row_header: str = "Model"
) -> Table:
    """An empty table headed by the scope lines (dataset, preset, eps, comparability)."""
    section = ctx.paper.get(PAPER_SECTIONS[key], {})
    table = Table(key, title, columns, row_header=row_header)
    table.header = scope_lines(ctx.scope, section.get("dataset"))
    return table


def _labels(specs: list[ColumnSpec]) -> list[str]:
    return [s.label for s in specs]


def table1(ctx: ReportContext, with_at: bool) -> Table:
    """Table 1 (left: with PGD-AT, PGD20; right: natural training, PGD10)."""
    key = "table1_with_at" if with_at else "table1_without_at"
    training = "pgd_at" if with_at else "natural"
    attacks, notes = _attack_specs(ctx, EvalKind.WHITEBOX, training, 20 if with_at else 10)
    specs = [ColumnSpec("Clean", Query(EvalKind.CLEAN, training=training), "clean"), *attacks]
    side = "with" if with_at else "without"
    title = f"Table 1 ({side} adversarial training): white-box accuracy (%)"
    table = _new_table(ctx, key, title, _labels(specs))
    table.header.insert(1, f"Training: {training_name(training)}")
    table.header.extend(notes)
    rows = ctx.paper[key]["rows"]
    models = _order(ctx, _models_with(ctx, specs, lambda m: not _is_ablation(ctx, m)), list(rows))
    collected = _model_rows(ctx, table, specs, models, lambda m: _known(ctx, m, rows))
    add_capacity(ctx.index, table, specs[0].query, ctx.paper.get(PAPER_SECTIONS[key], {}))
    return _finish(ctx, table, collected, f"no clean/white-box rows with training {training}")


def _known(ctx: ReportContext, model: str, rows: dict) -> str | None:
    row = ctx.names.paper_row(model)
    return row if row in rows else None


def table2(ctx: ReportContext) -> Table:
    """Table 2: black-box accuracy of the targets under attacks transferred from VGG-19 (or the
    preset's source: a checkpoint trained otherwise than the targets, ``report/sources.py``)."""
    training = ctx.training_for(EvalKind.TRANSFER, source=TRANSFER_SOURCE)
    source = table2_source(ctx.index.frame, ctx.trainings, training)
    specs, notes = _attack_specs(ctx, EvalKind.TRANSFER, training, 10, source)
    other = source is not None and source[0] != TRANSFER_SOURCE
    name = display(ctx.names.paper_row(source[0])) if other else "VGG-19"
    title = f"Table 2: black-box (transfer from {name}) accuracy (%)"
    table = _new_table(ctx, "table2", title, _labels(specs))
    table.header.insert(1, f"Targets trained with {training_name(training)}")
    if other:
        trained = training_name(ctx.trainings.get(source[1])) or "unknown training"
        table.header.insert(2, f"Source: {name} trained with {trained} (checkpoint {source[1]}), "
                            "standing in for the paper's VGG-19")  # fmt: skip
    table.header.extend(notes)
    rows = ctx.paper["table2_blackbox_from_vgg19"]["rows"]
    keep = lambda m: not _is_ablation(ctx, m)  # noqa: E731
    models = _order(ctx, _models_with(ctx, specs, keep) if source else set(), list(rows))
    collected = _model_rows(ctx, table, specs, models, lambda m: _known(ctx, m, rows))
    reason = "no transfer rows from a source trained otherwise than its targets (VGG-19)"
    return _finish(ctx, table, collected, reason)


def _matrix_models(ctx: ReportContext, sources: dict[str, str]) -> list[str]:
    frame = ctx.index.frame
    mask = (frame["kind"] == EvalKind.TRANSFER) & (frame["attack"] == "pgd")
    mask &= frame["source_checkpoint"].astype(str).isin(set(sources.values()))
    names = set(frame.loc[mask, "model"]) | set(sources)
    names = {m for m in names if not _is_ablation(ctx, m)}
    return _order(ctx, names, list(NAS_MODELS))


def table3(ctx: ReportContext) -> Table:
    """Table 3: transfer PGD-10 matrix; row = source model, column = target model."""
    section = ctx.paper["table3_transfer_matrix_pgd10"]
    training = ctx.training_for(EvalKind.TRANSFER, attack="pgd")
    sources = matrix_sources(ctx.index.frame, ctx.trainings, training)
    models = _matrix_models(ctx, sources)
    steps = ctx.steps_for(EvalKind.TRANSFER, "pgd", training, 10)
    diag_steps = ctx.steps_for(EvalKind.WHITEBOX, "pgd", training, 10)
    title = "Table 3: transferability (PGD) accuracy (%), rows = source, columns = target"
    table = _new_table(ctx, "table3", title, models, row_header="Source \\ Target")
    table.header.insert(1, f"Models trained with {training_name(training)}")
    table.header.append("Diagonal: white-box PGD on the model itself (underlined in the paper)")
    collected = Collected()
    for source in models:
        cells = []
        for target in models:
            paper = _matrix_paper(ctx, section, source, target)
            if source == target:
                query = Query(EvalKind.WHITEBOX, "pgd", diag_steps, training, None, ctx.scope.eps)
                cell, measure = _cell(ctx, target, query, paper)
                collected.add(f"diagonal PGD{diag_steps}", measure)
            else:
                ckpt = sources.get(source, "-")  # a target that is no source: no rows
                query = Query(
                    EvalKind.TRANSFER, "pgd", steps, training, source, ctx.scope.eps, ckpt
                )
                cell, measure = _cell(ctx, target, query, paper, also=(source,))
                collected.add(f"transfer PGD{steps}", measure)
            cells.append(cell)
        table.rows.append(Row(source, ctx.names.paper_row(source), tuple(cells)))
    return _finish(ctx, table, collected, "no transfer-matrix rows (transfer PGD between models)")


def _matrix_paper(ctx: ReportContext, section: dict, source: str, target: str) -> float | None:
    order = section["models"]
    src, tgt = ctx.names.paper_row(source), ctx.names.paper_row(target)
    if src not in order or tgt not in order:
        return None
    return float(section["matrix"][order.index(src)][order.index(tgt)])


def _table4_rows(ctx: ReportContext) -> list[tuple[str, str, str | None]]:
    """(model, training, paper row) for Table 4: RACL with PGD-AT/TRADES, other TRADES models."""
    frame = ctx.preset_rows
    frame = frame[(frame["kind"] == EvalKind.WHITEBOX) & (frame["attack"] == "pgd")]
    pairs = sorted({(m, t) for m, t in zip(frame["model"], frame["training"], strict=True) if t})
    trades_models = {m for m, t in pairs if t == "trades"}
    out = []
    for model, training in pairs:
        racl = ctx.names.is_racl(model)
        if training not in ("pgd_at", "trades") or not (racl or model in trades_models):
            continue
        paper = "trades" if training == "trades" else RACL if racl else "pgd_at"
        out.append((model, training, paper))
    rank = {"racl": 2, "trades": 1, "pgd_at": 0}
    return sorted(out, key=lambda r: (rank.get(r[2] or "", 3), r[0]))


def table4(ctx: ReportContext) -> Table:
    """Table 4: white-box PGD accuracy of the RACL model under PGD-AT vs TRADES, per dataset."""
    rows = _table4_rows(ctx)
    present = sorted(set(ctx.preset_rows["dataset"].dropna()))
    datasets = [d for d in TABLE4_DATASETS if d in present] + [
        d for d in present if d not in TABLE4_DATASETS
    ]
    title = "Table 4: white-box PGD accuracy (%) by defence and dataset"
    table = Table("table4", title, datasets, row_header="Model / training")
    table.header = [
        f"Preset: {ctx.scope.preset or '-'}; datasets: {', '.join(datasets) or '-'}",
        CELLS_LINE,
        "Paper rows: RACL = RACL cells with PGD-AT; PGD-AT and TRADES = those defences on "
        "their own architectures.",
    ]
    if ctx.scope.preset != "paper":
        table.header.append(
            "Demo-scale numbers are not comparable in absolute terms with the paper's."
        )
    collected = Collected()
    section = ctx.paper["table4_defenses_pgd"]
    for model, training, prow in rows:
        cells = []
        for dataset in datasets:
            cell, measure = _table4_cell(ctx, section, model, training, prow, dataset)
            cells.append(cell)
            collected.add(dataset, measure)
        label = f"{model} / {training_name(training)}"
        table.rows.append(Row(label, prow, tuple(cells)))
    return _finish(ctx, table, collected, "no white-box PGD rows of a RACL model (PGD-AT/TRADES)")


def _table4_cell(
    ctx: ReportContext, section: dict, model: str, training: str, prow: str | None, dataset: str
) -> tuple[Cell, Measure | None]:
    rows = ctx.preset_rows[ctx.preset_rows["dataset"] == dataset]
    eps = choose_eps(rows, dataset)
    measure = ResultIndex(rows).measure(
        model, Query(EvalKind.WHITEBOX, "pgd", None, training, None, eps)
    )
    paper = _section_value(section, prow, dataset)
    marks = ctx.flags.for_model(model, training, dataset, measure.attack_key) if measure else ()
    return measured_cell(measure, paper, marks), measure


def table5(ctx: ReportContext) -> Table:
    """Table 5: ablation over confidence learning and the (eta, rho) hyper-parameters."""
    section = ctx.paper["table5_ablation"]
    variants = list(section["rows"])
    training = ctx.training_for(
        EvalKind.WHITEBOX,
        models=[m for m in ctx.index.models(EvalKind.WHITEBOX) if _is_ablation(ctx, m)],
    )
    attacks, notes = _attack_specs(ctx, EvalKind.WHITEBOX, training, 10)
    specs = [ColumnSpec("Clean", Query(EvalKind.CLEAN, training=training), "clean"), *attacks]
    title = "Table 5: ablation of RACL (accuracy %)"
    table = _new_table(ctx, "table5", title, _labels(specs), row_header="Setting")
    table.header.insert(1, f"Training: {training_name(training)}")
    table.header.extend(notes)
    models = _models_with(ctx, specs, lambda m: _is_ablation(ctx, m))
    rank = model_order(variants)
    models = sorted(models, key=lambda m: (rank[ctx.names.table5_variant(m, variants)], m))
    collected = _model_rows(
        ctx, table, specs, models, lambda m: ctx.names.table5_variant(m, variants)
    )
    return _finish(ctx, table, collected, "no ablation models (racl_table5_<variant>) in the store")


def build_tables(ctx: ReportContext) -> list[Table]:
    """Every table in the paper's order (skipped ones carry their reason)."""
    return [
        table1(ctx, with_at=True),
        table1(ctx, with_at=False),
        table2(ctx),
        table3(ctx),
        table4(ctx),
        table5(ctx),
    ]

"""``bench report``: store -> tables (md, tex, csv), figures (png, pdf), agreement, index pages.

Output layout under ``out_dir``::

    tables/<key>.md|.tex|.csv   figures/<key>.png|.pdf   agreement.md   checks.md   index.md
    index.html

The output depends only on the store, so a rebuilt report is byte-identical
(docs/decisions/report.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import figures
from bench.report.agreement import agreement_markdown, check_claims, column_taus
from bench.report.checks import build_checks, checks_markdown
from bench.report.contents import FigureFile, Report
from bench.report.environment import run_infos
from bench.report.index_html import index_html
from bench.report.index_md import index_markdown
from bench.report.labels import dataset_name
from bench.report.loading import load_store
from bench.report.matched import matched_claims
from bench.report.paper import NameMap
from bench.report.render import to_csv, to_latex, to_markdown
from bench.report.scope import ReportContext, choose_scope
from bench.report.selection import Query
from bench.report.sweeps import SWEEPS, Sweep, load_sweep
from bench.report.table_model import Table
from bench.report.tables import build_tables
from core.enums import EvalKind
from core.errors import UserError


@dataclass(frozen=True)
class ReportOptions:
    """What to report: dataset/preset (None = the store's most common) and extra name mappings."""

    dataset: str | None = None
    preset: str | None = None
    model_map: Mapping[str, str] = field(default_factory=dict)
    figures: bool = True
    matched_store: str | Path | None = None  # a `bench run --match` store (report/matched.py)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_text(text, encoding="utf-8", newline="\n")
    except OSError as err:  # a full disk: the CLI's one line names the file
        raise OSError(err.errno, err.strerror, err.filename or str(path)) from None


def write_tables(tables: list[Table], out_dir: Path) -> None:
    for table in tables:
        if table.skipped:
            continue
        base = out_dir / "tables" / table.key
        _write(base.with_suffix(".md"), to_markdown(table))
        _write(base.with_suffix(".tex"), to_latex(table))
        _write(base.with_suffix(".csv"), to_csv(table))


def draw_figures(
    ctx: ReportContext, sweeps: dict[str, Sweep], tables: dict[str, Table], out_dir: Path
) -> tuple[list[FigureFile], list[tuple[str, str]]]:
    """Figure 3a-c and the transfer heat map; returns (drawn, skipped with reasons)."""
    models = [s.model for sw in sweeps.values() for s in sw.series]
    styles = figures.styles_for(models)
    paper_rows = {m: ctx.names.paper_row(m) for m in models}
    label = dataset_name(ctx.scope.dataset)
    drawn, skipped = [], []
    for key, sweep in sweeps.items():
        if not sweep.series:
            skipped.append((key, f"no {sweep.kind} rows for {sweep.attack}"))
            continue
        files = figures.sweep_figure(sweep, styles, out_dir, paper_rows, ctx.paper, label)
        drawn.append(FigureFile(key, figures.TITLES[key], tuple(files)))
    sweep = sweeps.get("figure3a")
    effort = sweep is not None and any(p.backward_passes for s in sweep.series for p in s.points)
    if not effort:
        skipped.append(("figure3a_effort", "no step-sweep rows with their passes (store schema 6)"))
    else:
        query = Query(EvalKind.WHITEBOX, "autoattack", training=sweep.training, eps=ctx.scope.eps)
        found = {s.model: ctx.index.measure(s.model, query) for s in sweep.series}
        autoattack = {m: a for m, a in found.items() if a is not None}
        files = figures.effort_figure(sweep, autoattack, styles, out_dir, label)
        drawn.append(FigureFile("figure3a_effort", figures.TITLES["figure3a_effort"], tuple(files)))
    matrix = tables.get("table3")
    if matrix is None or matrix.skipped:
        skipped.append(("transfer_heatmap", "no transfer-matrix rows"))
    else:
        files = figures.heatmap_figure(matrix, out_dir, label)
        key = "transfer_heatmap"
        drawn.append(FigureFile(key, figures.TITLES[key], tuple(files)))
    return drawn, skipped


def build_report(
    store_path: str | Path, out_dir: str | Path, options: ReportOptions | None = None
) -> Report:
    """Read the store and write the whole report under ``out_dir``; returns what was written."""
    options = options or ReportOptions()
    out_dir = Path(out_dir)
    store = load_store(store_path)
    scope = choose_scope(store.results, options.dataset, options.preset)
    ctx = ReportContext.build(store, scope, NameMap(options.model_map))
    tables = build_tables(ctx)
    by_key = {t.key: t for t in tables}
    sweeps = {key: load_sweep(ctx, key) for key in SWEEPS}
    write_tables(tables, out_dir)
    drawn, skipped_figs = [], []
    if options.figures:
        drawn, skipped_figs = draw_figures(ctx, sweeps, by_key, out_dir / "figures")
    taus = [tau for t in tables for tau in column_taus(t)]
    claims = check_claims(by_key, sweeps, ctx.names.is_racl)
    matched = None
    if options.matched_store is not None:
        if Path(options.matched_store).resolve() == Path(store_path).resolve():
            raise UserError("--matched-store is the --store itself: give the `--match` run's store")
        matched = matched_claims(options.matched_store, scope, ctx.names)
    report = Report(
        Path(store_path),
        scope,
        tables,
        drawn,
        skipped_figs,
        taus,
        claims,
        run_infos(store.runs),
        len(store.failed),
        out_dir,
        build_checks(store, scope),
        matched,
    )
    _write(out_dir / "agreement.md", agreement_markdown(taus, claims, matched))
    _write(out_dir / "checks.md", checks_markdown(report.checks))
    _write(out_dir / "index.md", index_markdown(report))
    _write(out_dir / "index.html", index_html(report))
    return report

"""The report's evaluation checks: the latest verdict of every trust check per model, the failing
checks' details, and the indicators of attack failure of every white-box cell in scope.

Read from the store's ``trust`` and ``indicators`` tables (docs/decisions/trust.md says what
each check and indicator means and when it fails).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape

import pandas as pd

from bench.report.loading import StoreData
from bench.report.scope import Scope, in_preset
from bench.report.table_model import format_eps
from bench.results.names import INDICATORS

VERDICT_KEYS = ["check_name", "model", "dataset", "training"]


@dataclass(frozen=True)
class ChecksSection:
    """Text tables (first row = header) and the failing checks' details."""

    verdicts: list[list[str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    indicators: list[list[str]] = field(default_factory=list)


def latest_verdicts(trust: pd.DataFrame, dataset: str, models: set[str]) -> pd.DataFrame:
    """The latest run's verdict of each (check, model, training) of ``dataset``."""
    frame = trust[(trust["dataset"] == dataset) & trust["model"].isin(models)].copy()
    if frame.empty:
        return frame
    frame["run_id"] = pd.to_numeric(frame["run_id"], errors="coerce").fillna(-1)
    last = frame.groupby(VERDICT_KEYS, dropna=False)["run_id"].transform("max")
    latest = frame[frame["run_id"] == last].drop_duplicates(VERDICT_KEYS, keep="last")
    return latest.sort_values(VERDICT_KEYS, key=lambda s: s.astype(str))


def build_checks(store: StoreData, scope: Scope) -> ChecksSection:
    """The section for the report's dataset and preset."""
    rows = in_preset(store.results, scope.preset)
    rows = rows[rows["dataset"] == scope.dataset]
    models, checkpoints = set(rows["model"].dropna()), set(rows["checkpoint"].dropna())
    latest = latest_verdicts(store.trust, scope.dataset, models)
    return ChecksSection(
        _verdict_table(latest),
        [
            f"{r['check_name']} [{r['model']}/{r['training']}]: {r['detail']}"
            for _, r in latest.iterrows()
            if not int(r["passed"])
        ],
        _indicator_table(store.indicators, checkpoints),
    )


def _verdict_table(latest: pd.DataFrame) -> list[list[str]]:
    """One row per check, one column per model / training: ok, FAIL or - (not run)."""
    if latest.empty:
        return []
    checks = sorted(set(latest["check_name"]), key=lambda c: (c.startswith("indicator:"), c))
    who = latest["model"].astype(str) + " / " + latest["training"].astype(str)
    columns = sorted(set(who))
    verdict = {
        (c, w): "ok" if int(p) else "FAIL"
        for c, w, p in zip(latest["check_name"], who, latest["passed"], strict=True)
    }
    table = [["check", *columns]]
    table += [[c, *(verdict.get((c, w), "-") for w in columns)] for c in checks]
    return table


def _indicator_table(indicators: pd.DataFrame, checkpoints: set[str]) -> list[list[str]]:
    frame = indicators[indicators["checkpoint"].isin(checkpoints)]
    if frame.empty:
        return []
    table = [["model / training", "cell", "images", *INDICATORS]]
    ordered = frame.sort_values(["model", "training", "eps", "label", "key"])
    for _, r in ordered.iterrows():
        counts = json.loads(r["counts_json"] or "{}")
        cells = [_fraction(counts.get(name)) for name in INDICATORS]
        cell = f"{r['label']} @ {format_eps(float(r['eps']))}"
        table.append([f"{r['model']} / {r['training']}", cell, str(r["n"]), *cells])
    return table


def _fraction(value: list[int] | None) -> str:
    return "-" if not value else f"{value[0]}/{value[1]}"


INTRO = (
    "Trust checks and indicators of attack failure (Pintor et al., NeurIPS 2022): a FAIL means "
    "the numbers of that model are likely overestimates; indicator cells read images that "
    "triggered the indicator / images examined (the clean-correct ones among the first images "
    "of the cell)."
)


def checks_markdown(section: ChecksSection) -> str:
    """``## Evaluation checks`` as Markdown."""
    lines = ["## Evaluation checks", "", INTRO, ""]
    if not section.verdicts and not section.indicators:
        return "\n".join([*lines, "No trust checks or indicators in the store.", ""])
    for title, table in (("Trust checks", section.verdicts), ("Indicators", section.indicators)):
        if table:
            lines += [f"### {title}", "", *_pipe(table), ""]
    if section.failures:
        lines += ["### Failing checks", "", *[f"- {f.replace('|', '/')}" for f in section.failures]]
    return "\n".join(lines).rstrip("\n") + "\n"


def _pipe(table: list[list[str]]) -> list[str]:
    head, *body = table
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(row) + " |" for row in body]


def checks_html(section: ChecksSection) -> str:
    """The same section as HTML (tables with captions, failures as a list)."""
    parts = ["<h2>Evaluation checks</h2>", f"<p>{escape(INTRO)}</p>"]
    for title, table in (("Trust checks", section.verdicts), ("Indicators", section.indicators)):
        if not table:
            continue
        head, *body = table
        parts += [f"<table><caption>{escape(title)}</caption><thead><tr>"]
        parts += [f"<th>{escape(h)}</th>" for h in head] + ["</tr></thead><tbody>"]
        for row in body:
            cells = "".join(f'<td class="num">{escape(c)}</td>' for c in row[1:])
            parts.append(f"<tr><th>{escape(row[0])}</th>{cells}</tr>")
        parts.append("</tbody></table>")
    if section.failures:
        parts += ['<ul class="notes">', *[f"<li>{escape(f)}</li>" for f in section.failures]]
        parts.append("</ul>")
    return "\n".join(parts)

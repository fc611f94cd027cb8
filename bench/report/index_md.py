"""The report's ``index.md``: environment, every table inline, figures by relative link,
skipped items with their reason, and the agreement section."""

from __future__ import annotations

from bench.report.agreement import agreement_markdown
from bench.report.checks import checks_markdown
from bench.report.contents import Report
from bench.report.environment import RUN_HEADER, run_cells
from bench.report.labels import dataset_name
from bench.report.render import to_markdown
from bench.report.sweeps import NOTES
from bench.report.table_model import format_eps


def summary_lines(report: Report) -> list[str]:
    """The few lines that say what the report describes."""
    scope = report.scope
    lines = [
        f"Store: `{report.store_path.name}`; dataset {dataset_name(scope.dataset)}; "
        f"preset {scope.preset or '-'}; L-inf eps {format_eps(scope.eps)}.",
        "Each cell reads ours [95 % interval] (paper, ours - paper), accuracy in %. The paper "
        "evaluates CIFAR-10 at eps 8/255 on the full test set; numbers from other datasets or "
        "presets are not comparable in absolute terms.",
    ]
    if report.failed_cells:
        lines.append(f"Failed cells in the store: {report.failed_cells} (marked 'failed').")
    return lines


def environment_markdown(report: Report) -> list[str]:
    lines = ["## Environment", ""]
    if not report.runs:
        return lines + ["No runs recorded in the store.", ""]
    lines.append("| " + " | ".join(RUN_HEADER) + " |")
    lines.append("|" + "---|" * len(RUN_HEADER))
    lines += ["| " + " | ".join(run_cells(r)) + " |" for r in report.runs]
    return lines + [""]


def skipped_lines(report: Report) -> list[str]:
    out = [f"- {t.key}: skipped ({t.skipped})" for t in report.tables if t.skipped]
    out += [f"- {key}: skipped ({why})" for key, why in report.skipped_figures]
    return out


def index_markdown(report: Report) -> str:
    """The whole ``index.md``."""
    lines = ["# racl-bench report", "", *summary_lines(report), ""]
    lines += environment_markdown(report)
    skipped = skipped_lines(report)
    if skipped:
        lines += ["## Not produced", "", *skipped, ""]
    lines += ["## Tables", ""]
    for table in report.tables:
        if table.skipped:
            continue
        files = ", ".join(f"[{ext}](tables/{table.key}.{ext})" for ext in ("md", "tex", "csv"))
        lines += [to_markdown(table), f"Files: {files}", ""]
    if report.figures:
        lines += ["## Figures", ""]
    for fig in report.figures:
        png = f"figures/{fig.key}.png"
        lines += [
            f"### {fig.title}",
            "",
            f"![{fig.title}]({png})",
            "",
            *([NOTES[fig.key], ""] if fig.key in NOTES else []),
            f"Files: [png]({png}), [pdf](figures/{fig.key}.pdf)",
            "",
        ]
    if report.checks is not None:
        lines += [checks_markdown(report.checks)]
    lines.append(agreement_markdown(report.taus, report.claims, report.matched))
    return "\n".join(lines).rstrip("\n") + "\n"

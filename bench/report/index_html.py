"""The report's self-contained ``index.html``: inline CSS, figures embedded as base64 PNG, every
table as an HTML ``<table>`` with a ``<caption>``, trust marks as superscripts, no scripts."""

from __future__ import annotations

import base64
from html import escape

from bench.report.agreement import STATS_LINES
from bench.report.checks import checks_html
from bench.report.contents import Report
from bench.report.environment import RUN_HEADER, run_cells
from bench.report.index_md import skipped_lines, summary_lines
from bench.report.labels import display
from bench.report.matched import MATCHED_HEADER, comparison_rows, matched_intro
from bench.report.table_model import Cell, Table, cell_text

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222;
       line-height: 1.4; padding: 0 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 0.3rem; font-size: 0.85rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 0.3rem 0; }
th, td { border-top: 1px solid #bbb; border-bottom: 1px solid #bbb; padding: 0.2rem 0.5rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead th { border-bottom: 2px solid #333; }
sup.flag { color: #b00; font-weight: 700; }
td.failed { color: #b00; }
ul.header, ul.notes { font-size: 0.8rem; color: #444; margin-top: 0.2rem; }
ul.notes { list-style: none; padding-left: 1rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #444; }
.held { color: #075; } .not-held { color: #b00; } .not-run { color: #777; }
.inconclusive { color: #a60; }
"""


def _cell_html(cell: Cell) -> str:
    text = escape(cell_text(cell))
    cls = "num failed" if cell.failed else "num"
    marks = ",".join(map(str, cell.marks))
    flag = f'<sup class="flag" title="see notes">&dagger;{marks}</sup>' if cell.marks else ""
    return f'<td class="{cls}">{text}{flag}</td>'


def table_html(table: Table) -> str:
    head = [*table.lead_columns, *table.columns]
    lines = [
        f'<table id="{table.key}">',
        f"<caption>{escape(table.title)}</caption>",
        "<thead><tr>",
    ]
    lines += [f"<th>{escape(h)}</th>" for h in head] + ["</tr></thead>", "<tbody>"]
    for row in table.rows:
        cells = "".join(_cell_html(c) for c in row.cells)
        label, prow = escape(row.label), escape(display(row.paper_row))
        lead = "".join(f"<td>{escape(t)}</td>" for t in table.lead_cells(row))
        lines.append(f"<tr><th>{label}</th><td>{prow}</td>{lead}{cells}</tr>")
    lines += ["</tbody>", "</table>", '<ul class="header">']
    lines += [f"<li>{escape(h)}</li>" for h in table.header] + ["</ul>"]
    if table.footnotes:
        lines += ['<ul class="notes">'] + [f"<li>{escape(f)}</li>" for f in table.footnotes]
        lines.append("</ul>")
    return "\n".join(lines)


def _simple_table(caption: str, head: list[str], rows: list[list[str]], ident: str) -> str:
    out = [f'<table id="{ident}">', f"<caption>{escape(caption)}</caption>", "<thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in head] + ["</tr></thead>", "<tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    return "\n".join(out + ["</tbody>", "</table>"])


def _figure_html(key: str, title: str, png_bytes: bytes) -> str:
    data = base64.b64encode(png_bytes).decode("ascii")
    return (
        f'<figure id="{key}"><img alt="{escape(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(title)} (PDF: figures/{key}.pdf)</figcaption></figure>"
    )


def _agreement_html(report: Report) -> str:
    taus = [[t.table, t.column, t.text(), t.ci_text(), str(t.n)] for t in report.taus]
    parts = [
        "<h2>Agreement with the paper</h2>",
        _simple_table(
            "Kendall's tau: our ranking of models vs the paper's (95 % bootstrap interval)",
            ["Table", "Column", "tau", "95 % interval", "rows"],
            taus,
            "kendall-tau",
        ),
    ]
    parts += [f"<p>{escape(line.replace('**', ''))}</p>" for line in STATS_LINES]
    rows = []
    for c in report.claims:
        cls = c.ours.replace(" ", "-")
        rows.append(
            f"<tr><td>{escape(c.text)}</td><td>{escape(c.where)}</td>"
            f'<td class="{cls}">{escape(c.ours)}</td><td>{escape(c.paper)}</td>'
            f"<td>{escape(c.needed)}</td><td>{escape(c.detail)}</td></tr>"
        )
    names = ("Claim", "Where", "Ours", "Paper's numbers", "Images needed", "Detail")
    head = "".join(f"<th>{h}</th>" for h in names)
    parts += [
        '<table id="claims">',
        "<caption>Claims of the paper</caption>",
        f"<thead><tr>{head}</tr></thead>",
        "<tbody>",
        *rows,
        "</tbody>",
        "</table>",
    ]
    if report.matched is not None:
        intro = matched_intro(report.matched)
        parts += [f"<p>{escape(line.replace('`', ''))}</p>" for line in intro]
        rows = comparison_rows(report.claims, report.matched)
        caption = "Claims at matched capacity"
        parts.append(_simple_table(caption, list(MATCHED_HEADER), rows, "claims-matched"))
    return "\n".join(parts)


def index_html(report: Report) -> str:
    """The whole page as a string (figures read from the PNG files already written)."""
    body = ["<h1>racl-bench report</h1>"]
    body += [f"<p>{escape(line.replace('`', ''))}</p>" for line in summary_lines(report)]
    body.append("<h2>Environment</h2>")
    runs = [run_cells(r) for r in report.runs]
    body.append(_simple_table("Runs recorded in the store", list(RUN_HEADER), runs, "runs"))
    skipped = skipped_lines(report)
    if skipped:
        items = "".join(f"<li>{escape(s[2:])}</li>" for s in skipped)
        body += ["<h2>Not produced</h2>", f'<ul id="skipped">{items}</ul>']
    body.append("<h2>Tables</h2>")
    body += [table_html(t) for t in report.tables if not t.skipped]
    if report.figures:
        body.append("<h2>Figures</h2>")
    for fig in report.figures:
        png = next(p for p in fig.files if p.suffix == ".png")
        body.append(_figure_html(fig.key, fig.title, png.read_bytes()))
    if report.checks is not None:
        body.append(checks_html(report.checks))
    body.append(_agreement_html(report))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>racl-bench report</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )

"""The end-of-run summary: a model x attack accuracy table with trust flags, as plain text.

Rows are checkpoints (model / training / dataset), columns are clean accuracy, the white-box
attacks and the transfer attacks found among the rows (sweeps are summarised by their count;
``bench report`` draws them). A trust check (or indicator of attack failure) that failed for a
model shows as ``FAIL(name)`` in its ``trust`` column, followed by the check's detail under the
table; then one line per white-box cell with its indicator counts (triggered/examined images).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bench.results.names import INDICATORS, attack_name
from core.enums import EvalKind

Row = Mapping[str, Any]


def eps_text(eps: float | None) -> str:
    """``8/255`` where eps is a whole number of 255ths (to 1e-6), else ``%g``."""
    if eps is None:
        return ""
    k = eps * 255
    if abs(k - round(k)) < 1e-4 and round(k) != 0:
        return f"{round(k)}/255"
    return f"{eps:g}"


def column_label(row: Row) -> str:
    """Column heading of a result row: ``clean``, ``PGD-20@8/255``, ``FGSM@0.3<-vgg19``."""
    if row["kind"] == EvalKind.CLEAN:
        return "clean"
    label = f"{attack_name(row)}@{eps_text(row['eps'])}"
    if row["kind"] == EvalKind.TRANSFER:
        label += f"<-{row['source']}"
    return label


def _row_label(row: Row) -> str:
    return f"{row['model']}/{row['training']}/{row['dataset']}"


def summary_table(
    rows: Iterable[Row], trust: Iterable[Any] = (), indicators: Iterable[Row] = ()
) -> str:
    """Plain-text accuracy table (percent; ``ERR`` for failed cells), trust details and the
    indicator counts of the white-box cells."""
    rows = list(rows)
    table: dict[str, dict[str, str]] = {}
    columns: dict[str, None] = {}
    sweeps: dict[str, int] = {}
    capacity: dict[str, str] = {}
    for r in sorted(
        rows,
        key=lambda r: (
            r["kind"] != EvalKind.CLEAN,
            r["kind"],
            r.get("attack") or "",
            r.get("eps") or 0.0,
            r.get("steps") or 0,
            -(r.get("n") or 0),
        ),
    ):
        who = _row_label(r)
        table.setdefault(who, {})
        if r.get("params") is not None and who not in capacity:
            capacity[who] = capacity_text(r.get("params"), r.get("flops"))
        if r["kind"] in (EvalKind.STEP_SWEEP, EvalKind.EPS_SWEEP):
            sweeps[who] = sweeps.get(who, 0) + 1
            continue
        col = column_label(r)
        if r["kind"] == EvalKind.CLEAN and col in table[who]:
            continue  # several slices: the largest n (sorted first) is shown
        columns[col] = None
        table[who][col] = "ERR" if r.get("error") else f"{r['accuracy']:.1f}"
    flags: dict[str, list[str]] = {}
    details = []
    for t in trust:
        who = f"{t.model}/{t.training}/{t.dataset}"
        if not t.passed:
            flags.setdefault(who, []).append(t.check)
            details.append(f"  FAIL {t.check} [{who}]: {t.detail}")
    header = ["model/training/dataset", "params/MFLOPs", *columns, "sweeps", "trust"]
    body = []
    for who in sorted(table):
        trust_cell = "FAIL(" + ",".join(flags[who]) + ")" if who in flags else "ok"
        cells = [table[who].get(c, "-") for c in columns]
        body.append([who, capacity.get(who, "-"), *cells, str(sweeps.get(who, 0)), trust_cell])
    text = _format([header, *body]) + ("\n" + "\n".join(details) if details else "")
    return text + effort_table(rows) + indicator_table(indicators)


def effort_table(rows: list[Row]) -> str:
    """The passes each cell spent, ``forward/backward`` per image, beside the accuracy table's
    columns (sweeps left out, as there); '' when no row recorded them."""
    cells: dict[str, dict[str, str]] = {}
    columns: dict[str, None] = {}
    for r in rows:
        sweep = r["kind"] in (EvalKind.STEP_SWEEP, EvalKind.EPS_SWEEP)
        if r.get("forward_passes") is None or r.get("error") or sweep:
            continue
        columns[column_label(r)] = None
        text = f"{r['forward_passes']:.1f}/{r.get('backward_passes') or 0.0:.1f}"
        cells.setdefault(_row_label(r), {})[column_label(r)] = text
    if not cells:
        return ""
    header = ["passes per image (forward/backward)", *columns]
    body = [[who, *(cells[who].get(c, "-") for c in columns)] for who in sorted(cells)]
    return "\n\n" + _format([header, *body])


def capacity_text(params: int | None, flops: float | None) -> str:
    """``"0.35M/52.1"``: parameters in millions and forward MFLOPs per image ('-' unknown)."""
    size = "-" if params is None else f"{params / 1e6:.2f}M"
    return f"{size}/{'-' if flops is None else f'{flops / 1e6:.1f}'}"


def _fraction(value: list[int] | None) -> str:
    return "-" if not value else f"{value[0]}/{value[1]}"


SHORT = {
    "silent_success": "silent",
    "incomplete_optimization": "incomplete",
    "transfer_failure": "transfer",
    "unconstrained_failure": "unconstr.",
    "unavailable_gradients": "no-grad",
    "unstable_predictions": "unstable",
}


def indicator_table(indicators: Iterable[Row]) -> str:
    """Indicators of attack failure per white-box cell (triggered/examined images), or ""."""
    lines = [
        [_row_label(r), f"{attack_name(r)}@{eps_text(r['eps'])}"]
        + [_fraction(r["counts"].get(name)) for name in INDICATORS]
        for r in sorted(indicators, key=lambda r: (_row_label(r), r["eps"], attack_name(r)))
    ]
    if not lines:
        return ""
    header = ["indicators (images)", "cell", *(SHORT[name] for name in INDICATORS)]
    return "\n\n" + _format([header, *lines])


def _format(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for j, line in enumerate(lines):
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)

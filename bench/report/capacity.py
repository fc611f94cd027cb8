"""Capacity beside robustness: each Table 1 row's parameters and FLOPs per image, and a header
line where a compared model's size differs from RACL's by more than 10 % (RobArch's objection).
"""

from __future__ import annotations

import dataclasses

from bench.report.paper import RACL
from bench.report.selection import Query, ResultIndex
from bench.report.table_model import Capacity, Table


def _paper_params(section: dict, paper_row: str | None) -> float | None:
    """The paper's parameter count (millions) of ``paper_row`` in a Table 1 section."""
    columns = section.get("columns", [])
    values = section.get("rows", {}).get(paper_row) if paper_row else None
    if values is None or "params_m" not in columns:
        return None
    value = values[columns.index("params_m")]
    return None if value is None else float(value)


CAPACITY_TOLERANCE = 0.10  # a comparison across more than this relative size gap is flagged


def add_capacity(index: ResultIndex, table: Table, clean: Query, section: dict) -> None:
    """Parameters and FLOPs of each row's evaluated model (from its clean rows) and the paper's
    parameter count; a footnote names every model whose size differs from RACL's by more than
    :data:`CAPACITY_TOLERANCE` (RobArch's objection: robustness compared across capacities)."""
    table.capacity = True
    rows = []
    for row in table.rows:
        measure = index.measure(row.label, clean)
        paper = _paper_params(section, row.paper_row)
        capacity = Capacity(measure and measure.params, measure and measure.flops, paper)
        rows.append(dataclasses.replace(row, capacity=capacity))
    table.rows = rows
    reference = next((r for r in rows if r.paper_row == RACL and r.capacity.params), None)
    if reference is None:
        return
    base = reference.capacity
    apart = []
    for r in rows:
        cap = r.capacity
        if r is reference or not cap.params:
            continue
        ratio = cap.params / base.params
        flops = cap.flops / base.flops if cap.flops and base.flops else None
        if abs(ratio - 1) > CAPACITY_TOLERANCE or (flops and abs(flops - 1) > CAPACITY_TOLERANCE):
            apart.append(f"{r.label} {ratio:.2f}x parameters"
                         + (f", {flops:.2f}x FLOPs" if flops else ""))  # fmt: skip
    sized = [r for r in rows if r.capacity.params]
    if not apart and len(sized) > 1:
        table.header.append(
            f"Capacity matched: every row's size lies within {CAPACITY_TOLERANCE:.0%} of "
            f"{reference.label}'s ({base.params / 1e6:.3f} M parameters), so the comparisons "
            "and claim verdicts of this report are at matched capacity"
        )
    if apart:
        table.header.append(
            f"Capacity differs from {reference.label}'s ({base.params / 1e6:.3f} M parameters) "
            f"by more than {CAPACITY_TOLERANCE:.0%}: {'; '.join(apart)}; a robustness gap "
            "between these rows may come from size, not architecture"
        )

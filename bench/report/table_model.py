"""The report's table value: rows of cells holding our number with its interval, the paper's
and their difference.

Renderers (Markdown, LaTeX, CSV, HTML) all read this one structure, so the four outputs of a
table always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.report.outcomes import SeedResult, Spread, spread

if TYPE_CHECKING:
    from bench.report.selection import Measure


@dataclass(frozen=True)
class Cell:
    """One table cell: our accuracy (percent, first seed) and its 95 % Wilson interval, the
    paper's, images evaluated, footnote marks; ``seeds`` every seed's result (paired tests)."""

    ours: float | None = None
    paper: float | None = None
    n: int | None = None
    marks: tuple[int, ...] = ()
    failed: bool = False
    ci: tuple[float, float] | None = None
    seeds: tuple[SeedResult, ...] = field(default=(), compare=False, repr=False)

    @property
    def diff(self) -> float | None:
        if self.ours is None or self.paper is None:
            return None
        return self.ours - self.paper

    @property
    def spread(self) -> Spread | None:
        """Mean and spread over seeds (None with fewer than two)."""
        return spread(self.seeds)


def measured_cell(
    measure: Measure | None, paper: float | None, marks: Iterable[int] = (), failed: bool = False
) -> Cell:
    """The cell of ``measure`` (None: not in the store) next to the paper's value."""
    marks = tuple(sorted(set(marks)))
    if measure is None:
        return Cell(None, paper, None, marks, failed)
    ci = measure.seeds[0].interval() if measure.seeds else None
    return Cell(measure.accuracy, paper, measure.n, marks, failed, ci, measure.seeds)


@dataclass(frozen=True)
class Capacity:
    """A model's size beside its numbers: parameters and forward FLOPs per image as the store
    recorded them for the evaluated network, and the paper's parameter count (CIFAR scale)."""

    params: int | None = None
    flops: float | None = None
    paper_params_m: float | None = None

    def params_text(self) -> str:
        ours = "-" if self.params is None else f"{self.params / 1e6:.3f}"
        return ours if self.paper_params_m is None else f"{ours} ({self.paper_params_m:g})"

    def flops_text(self) -> str:
        return "-" if self.flops is None else f"{self.flops / 1e6:.1f}"


CAPACITY_COLUMNS = ("Params M (paper)", "MFLOPs/image")


@dataclass(frozen=True)
class Row:
    """A table row: the label we show, the paper row it is compared with, its cells, and the
    model's capacity where the table shows it."""

    label: str
    paper_row: str | None
    cells: tuple[Cell, ...]
    capacity: Capacity | None = None

    def capacity_texts(self) -> list[str]:
        c = self.capacity or Capacity()
        return [c.params_text(), c.flops_text()]


@dataclass
class Table:
    """A report table; ``skipped`` holds the reason when the store cannot fill it."""

    key: str
    title: str
    columns: list[str]
    row_header: str = "Model"
    header: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)
    skipped: str | None = None
    capacity: bool = False  # rows carry a Capacity, shown after the paper row

    @property
    def lead_columns(self) -> list[str]:
        """The columns before the cells: the row header, the paper row, capacity if shown."""
        return [self.row_header, "Paper row", *(CAPACITY_COLUMNS if self.capacity else ())]

    def lead_cells(self, row: Row) -> list[str]:
        """``row``'s capacity texts when the table shows capacity (else nothing)."""
        return row.capacity_texts() if self.capacity else []

    def column(self, name: str) -> list[tuple[Row, Cell]]:
        """(row, cell) pairs of one column, in row order."""
        idx = self.columns.index(name)
        return [(row, row.cells[idx]) for row in self.rows]

    @property
    def filled(self) -> int:
        return sum(c.ours is not None for r in self.rows for c in r.cells)


def format_eps(eps: float | None) -> str:
    """``8/255`` for multiples of 1/255 without a short decimal form, else the decimal (0.3)."""
    if eps is None:
        return "-"
    if abs(eps - round(eps, 3)) < 1e-9:
        return f"{round(eps, 3):g}"
    k = eps * 255
    if abs(k - round(k)) < 1e-4:
        return f"{round(k)}/255"
    return f"{eps:.4g}"


def format_pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_diff(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    text = f"{value:+.{digits}f}"
    return f"{0.0:+.{digits}f}" if float(text) == 0 else text


def format_ci(ci: tuple[float, float] | None) -> str:
    """``[40, 54]``: the interval's ends rounded to whole points (compact, for Markdown/HTML)."""
    return "" if ci is None else f"[{ci[0]:.0f}, {ci[1]:.0f}]"


def ours_text(cell: Cell) -> str:
    """``47.2 [40, 54]``, plus ``; 45.1 ± 2.3 over 3 seeds`` when the cell has several seeds."""
    text = format_pct(cell.ours)
    if cell.ci is not None:
        text += f" {format_ci(cell.ci)}"
    if cell.spread is not None:
        text += f"; {cell.spread.text()}"
    return text


def cell_text(cell: Cell) -> str:
    """``47.2 [40, 54] (49.3, -2.1)``; ``(-)`` without a paper value; ``- (49.3)`` when not run."""
    if cell.ours is None:
        ours = "failed" if cell.failed else "-"
        if cell.paper is None:
            return ours
        return f"{ours} ({format_pct(cell.paper)})"
    if cell.paper is None:
        return f"{ours_text(cell)} (-)"
    return f"{ours_text(cell)} ({format_pct(cell.paper)}, {format_diff(cell.diff)})"

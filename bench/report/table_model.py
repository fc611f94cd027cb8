"""The report's table value: rows of cells holding our number, the paper's and their difference.

Renderers (Markdown, LaTeX, CSV, HTML) all read this one structure, so the four outputs of a
table always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cell:
    """One table cell: our accuracy (percent), the paper's, images evaluated, footnote marks."""

    ours: float | None = None
    paper: float | None = None
    n: int | None = None
    marks: tuple[int, ...] = ()
    failed: bool = False

    @property
    def diff(self) -> float | None:
        if self.ours is None or self.paper is None:
            return None
        return self.ours - self.paper


@dataclass(frozen=True)
class Row:
    """A table row: the label we show, the paper row it is compared with, its cells."""

    label: str
    paper_row: str | None
    cells: tuple[Cell, ...]


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


def cell_text(cell: Cell) -> str:
    """``47.2 (49.3, -2.1)``; ``47.2 (-)`` without a paper value; ``- (49.3)`` when not run."""
    if cell.ours is None:
        ours = "failed" if cell.failed else "-"
        if cell.paper is None:
            return ours
        return f"{ours} ({format_pct(cell.paper)})"
    if cell.paper is None:
        return f"{format_pct(cell.ours)} (-)"
    return f"{format_pct(cell.ours)} ({format_pct(cell.paper)}, {format_diff(cell.diff)})"

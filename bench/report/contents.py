"""What a built report holds (:class:`Report`): the value ``build_report`` returns and the index
pages render. It depends on nothing that renders it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.report.agreement import Claim, Tau
from bench.report.checks import ChecksSection
from bench.report.environment import RunInfo
from bench.report.matched import MatchedClaims
from bench.report.scope import Scope
from bench.report.table_model import Table


@dataclass(frozen=True)
class FigureFile:
    key: str
    title: str
    files: tuple[Path, ...]


@dataclass
class Report:
    """Everything a report holds; the index pages are rendered from it."""

    store_path: Path
    scope: Scope
    tables: list[Table]
    figures: list[FigureFile]
    skipped_figures: list[tuple[str, str]]
    taus: list[Tau]
    claims: list[Claim]
    runs: list[RunInfo]
    failed_cells: int
    out_dir: Path
    checks: ChecksSection | None = None  # trust verdicts and indicators (report/checks.py)
    matched: MatchedClaims | None = None  # the claims at matched capacity (report/matched.py)

    @property
    def files(self) -> list[Path]:
        out = [
            self.out_dir / "tables" / f"{t.key}.{ext}"
            for t in self.tables
            if not t.skipped
            for ext in ("md", "tex", "csv")
        ]
        out += [p for f in self.figures for p in f.files]
        names = ("agreement.md", "checks.md", "index.md", "index.html")
        return out + [self.out_dir / n for n in names]

"""Reports from the results store: the RACL paper's tables and figures next to its numbers, an
agreement checklist, index pages, and a RobustBench-format leaderboard entry.

Public API: :func:`build_report` / :class:`ReportOptions` (``bench report``) and
:func:`build_entry` / :class:`SubmissionMeta` / :func:`write_entry` (``bench submit``).
Nothing is imported eagerly beyond these names' modules; matplotlib loads only to draw figures.
"""

from bench.report.build import ReportOptions, build_report
from bench.report.contents import Report
from bench.report.submission import SubmissionMeta, build_entry, validate_entry, write_entry

__all__ = [
    "Report",
    "ReportOptions",
    "SubmissionMeta",
    "build_entry",
    "build_report",
    "validate_entry",
    "write_entry",
]

"""Footnote marks beside the numbers they concern: failed trust checks and failed cells.

A ``trust`` row names a check over (model, dataset, training); an empty field applies to all. The
latest run's verdict per check counts (a check that failed once and passed on a later run is not
flagged). A result row with ``error`` set is a failed cell: when no successful row answers the
same query the table shows ``failed`` with a footnote quoting the error's first line.
Footnote numbers are given in order of first use, so a report built twice numbers them the same.
"""

from __future__ import annotations

import pandas as pd

from bench.report.lookup import Query, ResultIndex

MAX_DETAIL = 160


def _short(text: object) -> str:
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def latest_failures(trust: pd.DataFrame) -> pd.DataFrame:
    """Failed checks whose latest run (highest run_id) still fails, sorted deterministically."""
    if trust.empty:
        return trust
    keys = ["check_name", "model", "dataset", "training"]
    frame = trust.copy()
    frame["run_id"] = pd.to_numeric(frame["run_id"], errors="coerce").fillna(-1)
    frame["passed"] = pd.to_numeric(frame["passed"], errors="coerce").fillna(0).astype(int)
    filled = frame[keys].astype(object).where(frame[keys].notna(), "")
    frame[keys] = filled.astype(str)
    last_run = frame.groupby(keys)["run_id"].transform("max")
    latest = frame[frame["run_id"] == last_run]
    failing = latest[latest["passed"] == 0]
    failing = failing.drop_duplicates(keys + ["detail"])
    return failing.sort_values(keys + ["detail"], key=lambda s: s.astype(str))


class FlagBook:
    """Hands out footnote numbers for trust failures and failed cells of one scope."""

    def __init__(self, trust: pd.DataFrame, failed: pd.DataFrame, dataset: str) -> None:
        self.failures = latest_failures(trust)
        self.failed = ResultIndex(failed)
        self.dataset = dataset
        self.notes: dict[str, int] = {}

    def _number(self, text: str) -> int:
        if text not in self.notes:
            self.notes[text] = len(self.notes) + 1
        return self.notes[text]

    def text(self, number: int) -> str:
        for text, num in self.notes.items():
            if num == number:
                return text
        raise KeyError(number)

    def for_model(
        self, model: str, training: str | None, dataset: str | None = None
    ) -> tuple[int, ...]:
        """Marks for the failed trust checks that concern ``model`` trained with ``training``."""
        if self.failures.empty:
            return ()
        dataset = dataset or self.dataset
        f = self.failures
        hit = (
            f["model"].isin(["", model])
            & f["dataset"].isin(["", dataset])
            & (f["training"].isin(["", training]) if training else True)
        )
        marks = []
        for _, row in f[hit].iterrows():
            scope = ", ".join(x for x in (row["model"], row["dataset"], row["training"]) if x)
            text = f"trust check '{row['check_name']}' failed ({scope}): {_short(row['detail'])}"
            marks.append(self._number(text))
        return tuple(sorted(set(marks)))

    def failed_cell(self, model: str, query: Query) -> int | None:
        """A mark for a failed cell matching ``query``, or None."""
        rows = self.failed.rows(model, query) if not self.failed.frame.empty else None
        if rows is None or rows.empty:
            return None
        row = rows.sort_values("key", key=lambda s: s.astype(str)).iloc[0]
        what = row["attack"] or row["kind"]
        text = f"cell failed: {model} / {what} ({row['kind']}): {_short(row['error'])}"
        return self._number(text)

    def footnotes(self, marks: set[int]) -> list[str]:
        """``[n] text`` lines for the given marks, in number order."""
        return [f"[{n}] {self.text(n)}" for n in sorted(marks)]

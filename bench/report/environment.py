"""The environment a report's numbers came from, read from the store's ``runs`` table.

Per run: device, torch version, git commit, preset, seed, status, start/finish time (the store's
own timestamps, so a rebuilt report is identical) and the per-stage timings found in
``summary_json`` (a ``timings`` / ``stage_timings`` / ``stages`` mapping of stage -> seconds, or
top-level ``*_s`` numbers).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from datetime import datetime, timezone

import pandas as pd

TIMING_KEYS = ("timings", "stage_timings", "stages", "timing")
MAX_RUNS = 50
TEXT_FIELDS = ("status", "preset", "device", "torch_version", "git_commit", "seed")


@dataclass(frozen=True)
class RunInfo:
    id: int
    status: str
    preset: str
    device: str
    torch_version: str
    git_commit: str
    seed: str
    started: str
    finished: str
    timings: str


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value)


def _time(value: object) -> str:
    try:
        stamp = float(value)
    except (TypeError, ValueError):
        return _text(value)
    if math.isnan(stamp):
        return "-"
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def stage_timings(summary_json: object) -> dict[str, float]:
    """Stage -> seconds from a run's summary JSON (empty when absent or unreadable)."""
    try:
        summary = json.loads(summary_json) if isinstance(summary_json, str) else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(summary, dict):
        return {}
    for key in TIMING_KEYS:
        value = summary.get(key)
        if isinstance(value, dict):
            return {str(k): float(v) for k, v in value.items() if isinstance(v, (int, float))}
    return {
        k[:-2]: float(v)
        for k, v in summary.items()
        if k.endswith("_s") and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def format_timings(timings: dict[str, float]) -> str:
    if not timings:
        return "-"
    return ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items()))


def run_infos(runs: pd.DataFrame) -> list[RunInfo]:
    """The latest ``MAX_RUNS`` runs, oldest first."""
    if runs.empty:
        return []
    runs = runs.sort_values("id").tail(MAX_RUNS)
    out = []
    for _, r in runs.iterrows():
        out.append(
            RunInfo(
                id=int(r["id"]),
                **{name: _text(r[name]) for name in TEXT_FIELDS},
                started=_time(r["started_at"]),
                finished=_time(r["finished_at"]),
                timings=format_timings(stage_timings(r["summary_json"])),
            )
        )
    return out


RUN_HEADER = (
    "Run",
    "Status",
    "Preset",
    "Device",
    "torch",
    "Git commit",
    "Seed",
    "Started",
    "Finished",
    "Timings per stage",
)


def run_cells(info: RunInfo) -> list[str]:
    """The run's fields as table cells, in :data:`RUN_HEADER` order."""
    return [str(getattr(info, f.name)) for f in fields(RunInfo)]

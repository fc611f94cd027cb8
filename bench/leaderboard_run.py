"""The AutoAttack cell a leaderboard entry needs (``bench submit --run-autoattack``).

Plans one white-box cell (``autoattack``, the original AutoAttack of Croce & Hein 2020, version
``standard``) plus its clean cell for the model with :func:`bench.planner.plan` and executes it
with :func:`bench.runner.execute`; ``bench submit`` then reads the entry back from the store.
"""

from __future__ import annotations

from pathlib import Path

from bench.planner import plan
from bench.presets import get_preset
from bench.runner import execute
from bench.store import ResultStore
from core.enums import Dataset, Training


def run_autoattack(
    store_path: str | Path, model: str, dataset: str | None, threat_model: str, preset: str
) -> None:
    """Run (or resume) the AutoAttack and clean cells of ``model`` into the store."""
    norm = threat_model.strip().lower()
    attack = "autoattack" if norm == "linf" else f"autoattack(norm={norm!r})"
    ds = Dataset.parse(dataset) if dataset else None
    with ResultStore(store_path) as store:
        cells = plan([], get_preset(preset), models=[model], attacks=[attack], dataset=ds,
                     store=store, training=Training.PGD_AT, calibrate=False)  # fmt: skip
        execute(cells, store)

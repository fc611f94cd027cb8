"""The AutoAttack cell a leaderboard entry needs (``bench submit --run-autoattack``).

Plans one white-box cell (``autoattack``, the original AutoAttack of Croce & Hein 2020, version
``standard``) plus its clean cell for the model with :func:`bench.plan.planner.plan` and executes it
with :func:`bench.run.runner.execute`; ``bench submit`` then reads the entry back from the store.
The preset names the attack (``PresetConfig.leaderboard_attack``: the rehearsal caps its
iterations).
"""

from __future__ import annotations

from pathlib import Path

from bench.plan.planner import plan
from bench.plan.presets import get_preset
from bench.results.store import ResultStore
from bench.run.runner import execute
from core.enums import Dataset, Training


def run_autoattack(
    store_path: str | Path,
    model: str,
    dataset: str | None,
    threat_model: str,
    preset: str,
    *,
    checkpoint_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    network_ok: bool = False,
) -> list[str]:
    """Run (or resume) the AutoAttack and clean cells of ``model`` into the store (checkpoints
    from ``checkpoint_dir``, default beside the store, trained there when missing); returns
    the failed cells' messages (recorded in the store too)."""
    norm = threat_model.strip().lower()
    config = get_preset(preset)
    attack = config.leaderboard_attack
    if norm != "linf":
        inner = attack[len("autoattack(") : -1] if attack.endswith(")") else ""
        attack = f"autoattack({', '.join(x for x in (f'norm={norm!r}', inner) if x)})"
    ds = Dataset.parse(dataset) if dataset else None
    with ResultStore(store_path, network_ok=network_ok) as store:
        cells = plan([], config, models=[model], attacks=[attack], dataset=ds,
                     store=store, training=Training.PGD_AT, calibrate=False)  # fmt: skip
        summary = execute(cells, store, checkpoint_dir=checkpoint_dir, data_dir=data_dir)
    return list(summary.failures)

"""``bench submit --run-autoattack``: compute the missing AutoAttack cell with the harness.

Plans one ad-hoc white-box cell (``autoattack``, the original AutoAttack of Croce & Hein 2020,
version ``standard``) for the model with :func:`bench.planner.plan` and executes it with
``bench.runner.execute(plan, store)``; the entry is then read back from the store as usual.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UserError


def _runner_execute():
    try:
        from bench import runner
    except ImportError:
        raise UserError(
            "--run-autoattack needs the harness (bench.runner), which is not available; "
            "run 'bench run --attacks autoattack' first"
        ) from None
    execute = getattr(runner, "execute", None)
    if execute is None:
        raise UserError("bench.runner has no execute(plan, store): cannot run AutoAttack here")
    return execute


def run_autoattack(
    store_path: str | Path, model: str, dataset: str | None, threat_model: str, preset: str
) -> None:
    """Run (or resume) the AutoAttack and clean cells of ``model`` into the store."""
    execute = _runner_execute()
    from bench.enums import Dataset, Training
    from bench.planner import plan
    from bench.presets import get_preset
    from bench.store import ResultStore

    norm = threat_model.strip().lower()
    attack = "autoattack" if norm == "linf" else f"autoattack(norm={norm!r})"
    ds = Dataset.parse(dataset) if dataset else None
    with ResultStore(store_path) as store:
        cells = plan([], get_preset(preset), models=[model], attacks=[attack], dataset=ds,
                     store=store, training=Training.PGD_AT, calibrate=False)  # fmt: skip
        execute(cells, store)

"""The AutoAttack cell a leaderboard entry needs (``bench submit --run-autoattack``).

Plans one white-box cell (``autoattack``, the original AutoAttack of Croce & Hein 2020, version
``standard``) plus its clean cell for the model with :func:`bench.plan.planner.plan` and executes it
with :func:`bench.run.runner.execute`; ``bench submit`` then reads the entry back from the store.
The preset names the attack (``PresetConfig.leaderboard_attack``: the rehearsal caps its
iterations). A user's model (``--model-file`` / ``--model``, or a factory the store already
names) is planned as ``bench run --model-file`` plans it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from bench.plan.planner import plan
from bench.plan.presets import get_preset
from bench.results.store import ResultStore
from bench.run.runner import execute
from core.enums import Dataset, Training
from core.errors import UserError

if TYPE_CHECKING:
    from bench.training.user_model import UserModel


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
    user: UserModel | None = None,
    training: str = "pgd_at",
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
        cells = plan([], config, models=[model], attacks=[attack], dataset=ds, store=store,
                     training=Training.parse(training), calibrate=False,
                     user_model=user)  # fmt: skip
        summary = execute(cells, store, checkpoint_dir=checkpoint_dir, data_dir=data_dir)
    return list(summary.failures)


def stored_factory(store_path: str | Path, model: str) -> tuple[str, str | None] | None:
    """(factory text, weights path) of a user's model the store has a checkpoint of, else None
    (the newest such checkpoint; a zoo model has none)."""
    path = Path(store_path)
    if not path.is_file():
        return None
    with sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT config_json FROM checkpoints WHERE model = ? ORDER BY created_at DESC",
            (model,),
        ).fetchall()
    conn.close()
    for (text,) in rows:
        config = json.loads(text or "{}")
        if "factory" in config:
            return str(config["factory"]), config.get("weights") or None
    return None


def user_model_for(
    store_path: str | Path, model: str, factory: str | None, is_file: bool,
    weights: str | None, dataset: str,
) -> UserModel | None:  # fmt: skip
    """The user's model to run: ``factory`` (``--model-file``/``--model``) or the one the store
    names under ``model``; None for a zoo model. A name written ``file:function`` that is
    neither is a one-line error saying what to pass."""
    from bench.training.user_model import prepare_user_model

    if factory is None:
        found = stored_factory(store_path, model)
        if found is None:
            if ":" in model:
                raise UserError(
                    f"{model} is not a zoo model and the store has no checkpoint of it: pass "
                    "--model-file FILE.py:FUNCTION (or --model package.module:FUNCTION) "
                    "and --weights"
                )
            return None
        factory, weights = found
        where = factory.rpartition(":")[0]
        is_file = where.endswith(".py") or Path(where).is_file()
    user, _ = prepare_user_model(factory, is_file=is_file, weights=weights, dataset=dataset)
    if user.name != model:
        raise UserError(f"--model-file names {user.name}, not {model}: give MODEL as {user.name}")
    return user

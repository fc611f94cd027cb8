"""The checkpoint a leaderboard entry was measured on, rebuilt, with its standalone source.

A zoo checkpoint is read from its safetensors file (``checkpoints.path`` in the store, else
``<checkpoint dir>/<hash>.safetensors``) with its sidecar; its ``model.py`` is
:func:`models.export.export_source`. A user's model is its factory with its weights (the store's
``config_json`` names both); its ``model.py`` is the factory's own source file, whose identity
with the evaluated one is checked (the checkpoint hash includes the file's digest).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from core.errors import UserError


@dataclass(frozen=True)
class EvaluatedModel:
    """The model in eval mode, its state dict's source file and its standalone code."""

    model: nn.Module
    kind: str  # "zoo" or "user"
    source: str  # the text of model.py
    builder: str  # the call that builds it inside model.py (the zoo stanza's lambda body)
    weights: Path | None  # the file the weights came from (None: the factory's own)


def checkpoint_row(store_path: str | Path, checkpoint: str) -> dict:
    """The store's ``checkpoints`` row of ``checkpoint`` (read-only), or a UserError."""
    uri = Path(store_path).resolve().as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM checkpoints WHERE hash = ?", (checkpoint,)).fetchone()
    conn.close()
    if row is None:
        raise UserError(f"checkpoint {checkpoint} is not in the store's checkpoints table")
    return dict(row)


def load_evaluated(
    store_path: str | Path, checkpoint: str, dataset: str, checkpoint_dir: str | Path | None
) -> EvaluatedModel:
    """Rebuild the checkpoint ``checkpoint`` of the store (see the module docstring)."""
    row = checkpoint_row(store_path, checkpoint)
    config = json.loads(row.get("config_json") or "{}")
    if "factory" in config:
        return _user(config, checkpoint, dataset)
    return _zoo(row, store_path, checkpoint_dir)


def _zoo(row: dict, store_path: str | Path, checkpoint_dir: str | Path | None) -> EvaluatedModel:
    from bench.training.checkpoint import load_checkpoint
    from models.export import export_source

    folder = Path(checkpoint_dir) if checkpoint_dir else Path(store_path).parent / "checkpoints"
    candidates = [Path(row["path"])] if row.get("path") else []
    candidates.append(folder / f"{row['hash']}.safetensors")
    weights = next((p for p in candidates if p.is_file()), None)
    if weights is None:
        raise UserError(
            f"the weights of checkpoint {row['hash']} ({row['model']}) are not at "
            f"{candidates[-1]}; pass --checkpoint-dir of the bench run that trained them"
        )
    model, meta = load_checkpoint(weights)
    export = export_source(meta["model"], meta["dataset"], meta.get("model_overrides") or {})
    return EvaluatedModel(model, "zoo", export.source, f"{export.builder}()", weights)


def _user(config: dict, checkpoint: str, dataset: str) -> EvaluatedModel:
    from bench.training.user_model import load_user_model, prepare_user_model, source_file

    text = str(config["factory"])
    where = text.rpartition(":")[0]
    is_file = where.endswith(".py") or Path(where).is_file()
    weights = config.get("weights") or None
    user, _ = prepare_user_model(text, is_file=is_file, weights=weights, dataset=dataset)
    if user.identity != checkpoint:
        raise UserError(
            f"{user.name}: its factory file or weights changed since checkpoint {checkpoint} "
            "was evaluated; run bench run again on the current files"
        )
    source = source_file(user.factory)
    if source is None:
        raise UserError(f"{user.name}: the factory's source file cannot be found for model.py")
    model = load_user_model(user, dataset, "cpu")
    call = f"{user.factory.function}({_dataset_kwarg(user, dataset)})"
    return EvaluatedModel(model, "user", Path(source).read_text(encoding="utf-8"), call,
                          user.weights)  # fmt: skip


def _dataset_kwarg(user: object, dataset: str) -> str:
    import inspect

    from models.user import load_factory

    factory = load_factory(user.factory)
    try:
        takes = "dataset" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    return f"dataset={dataset!r}" if takes else ""

"""Which transfer source checkpoints feed Table 2 and Table 3.

Transfer rows are told apart by their SOURCE CHECKPOINT, never by the source's name alone: in
the smoke preset PC-DARTS is both Table 2's (naturally trained) source and a (PGD-AT) row of the
Table 3 matrix. Table 2's source is a checkpoint trained otherwise than its targets (the paper's
naturally trained VGG-19); Table 3's sources are trained like their targets. A checkpoint whose
training the store does not know falls back to the name rule (``vgg19`` is Table 2's).
"""

from __future__ import annotations

import pandas as pd

from bench.report.loading import most_common
from bench.report.paper import TRANSFER_SOURCE
from core.enums import EvalKind


def checkpoint_trainings(frame: pd.DataFrame, checkpoints: pd.DataFrame) -> dict[str, str]:
    """Checkpoint hash -> training, from the checkpoints table and the rows of each checkpoint."""
    known: dict[str, str] = {}
    for table in (checkpoints.rename(columns={"hash": "checkpoint"}), frame):
        pairs = table[["checkpoint", "training"]].dropna()
        known.update(
            {str(c): str(t) for c, t in zip(pairs["checkpoint"], pairs["training"], strict=True)}
        )
    return known


def _transfers(frame: pd.DataFrame, attack: str | None = None) -> pd.DataFrame:
    rows = frame[(frame["kind"] == EvalKind.TRANSFER) & frame["source"].notna()]
    return rows if attack is None else rows[rows["attack"] == attack]


def _is_table2(row: pd.Series, trainings: dict[str, str]) -> bool:
    source_training = trainings.get(str(row["source_checkpoint"]))
    if source_training is None:
        return row["source"] == TRANSFER_SOURCE
    return source_training != row["training"]


def table2_source(
    frame: pd.DataFrame, trainings: dict[str, str], training: str | None
) -> tuple[str, str] | None:
    """(source name, source checkpoint) of Table 2: VGG-19 when present, else the most common
    source trained otherwise than the targets (``training``); None without one."""
    rows = _transfers(frame)
    if training is not None:
        rows = rows[rows["training"] == training]
    rows = rows[[_is_table2(r, trainings) for _, r in rows.iterrows()]] if len(rows) else rows
    if rows.empty:
        return None
    named = rows[rows["source"] == TRANSFER_SOURCE]
    rows = named if not named.empty else rows
    checkpoint = str(most_common(rows["source_checkpoint"].astype(str)))
    name = str(rows[rows["source_checkpoint"].astype(str) == checkpoint]["source"].iloc[0])
    return name, checkpoint


def matrix_sources(
    frame: pd.DataFrame, trainings: dict[str, str], training: str | None
) -> dict[str, str]:
    """Source model name -> source checkpoint of the Table 3 matrix (PGD transfers whose source
    is trained like its targets, ``training``)."""
    rows = _transfers(frame, "pgd")
    if training is not None:
        rows = rows[rows["training"] == training]
    out: dict[str, str] = {}
    for _, r in rows.iterrows():
        if not _is_table2(r, trainings):
            out.setdefault(str(r["source"]), str(r["source_checkpoint"]))
    return out

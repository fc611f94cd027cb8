"""What the results store holds on disk: the schema, the identity of a cell and its key, and
the bit-packed per-sample correctness.

The schema is documented in docs/ARCHITECTURE.md ("Results store schema").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.enums import EvalKind

# 3: the indicators table (attack-failure indicators per white-box cell); 4: the runs' pid and host,
# the leases table, and content-keyed checkpoint hashes (docs/decisions/store.md)
SCHEMA_VERSION = 4

# Evaluation kinds whose meaning changed: the revision joins the cell key, so a cell computed
# under an older meaning is never served as cached. Kinds absent here keep their original keys.
# eps_sweep 2: worst case over iterates as well as budgets (store schema 2).
KIND_REVISIONS = {EvalKind.EPS_SWEEP: 2}

# Rows of an older meaning are renamed on upgrade, kept for the record but out of every report.
RETIRED_KINDS = {1: {EvalKind.EPS_SWEEP: "eps_sweep_last_iterate"}}

IDENTITY_FIELDS = (
    "kind",
    "checkpoint",
    "dataset",
    "data_slice",
    "attack_key",
    "eps",
    "steps",
    "source_checkpoint",
    "seed",
)

RESULT_COLUMNS = (
    "key",
    "run_id",
    "kind",
    "model",
    "checkpoint",
    "dataset",
    "data_slice",
    "n",
    "training",
    "preset",
    "seed",
    "attack",
    "attack_key",
    "eps",
    "steps",
    "step_size",
    "norm",
    "source",
    "source_checkpoint",
    "correct",
    "accuracy",
    "per_sample",
    "elapsed_s",
    "error",
    "created_at",
)

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started_at REAL, finished_at REAL, status TEXT, argv TEXT,
    preset TEXT, device TEXT, torch_version TEXT, git_commit TEXT, seed INTEGER,
    summary_json TEXT, pid INTEGER, host TEXT
);
CREATE TABLE IF NOT EXISTS checkpoints (
    hash TEXT PRIMARY KEY, model TEXT, dataset TEXT, training TEXT, config_json TEXT,
    metrics_json TEXT, path TEXT, created_at REAL
);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, run_id INTEGER, kind TEXT, model TEXT, checkpoint TEXT, dataset TEXT,
    data_slice TEXT, n INTEGER, training TEXT, preset TEXT, seed INTEGER, attack TEXT,
    attack_key TEXT, eps REAL, steps INTEGER, step_size REAL, norm TEXT, source TEXT,
    source_checkpoint TEXT, correct INTEGER, accuracy REAL, per_sample BLOB, elapsed_s REAL,
    error TEXT, created_at REAL
);
CREATE INDEX IF NOT EXISTS results_model ON results (model, dataset, training);
CREATE TABLE IF NOT EXISTS trust (
    run_id INTEGER, check_name TEXT, model TEXT, dataset TEXT, training TEXT, detail TEXT,
    passed INTEGER, created_at REAL
);
CREATE TABLE IF NOT EXISTS indicators (
    key TEXT PRIMARY KEY, run_id INTEGER, model TEXT, checkpoint TEXT, dataset TEXT,
    training TEXT, attack TEXT, attack_key TEXT, label TEXT, eps REAL, data_slice TEXT,
    n INTEGER, revision INTEGER, counts_json TEXT, elapsed_s REAL, created_at REAL
);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY, kind TEXT, pid INTEGER, host TEXT, run_id INTEGER, heartbeat REAL,
    taken_at REAL
);
"""

# Columns added to a table after its first schema: (version, table, column, type).
ADDED_COLUMNS = ((4, "runs", "pid", "INTEGER"), (4, "runs", "host", "TEXT"))

# The indicators table: one row per white-box result cell (``key`` is the cell's key).
INDICATOR_COLUMNS = (
    "key",
    "run_id",
    "model",
    "checkpoint",
    "dataset",
    "training",
    "attack",
    "attack_key",
    "label",
    "eps",
    "data_slice",
    "n",
    "revision",
    "counts_json",
    "elapsed_s",
    "created_at",
)


def _canonical_eps(eps: float | None) -> float | None:
    return None if eps is None else round(float(eps), 6)


def result_key(identity: Mapping[str, Any]) -> str:
    """sha256 (hex) over the canonical JSON of a cell's identity fields (see IDENTITY_FIELDS).

    Missing fields count as null; eps is rounded to 6 decimals so that ``8/255`` typed two ways
    gives one key.
    """
    unknown = set(identity) - set(IDENTITY_FIELDS)
    if unknown:
        raise ValueError(f"not identity fields: {sorted(unknown)}")
    canon = {name: identity.get(name) for name in IDENTITY_FIELDS}
    canon["eps"] = _canonical_eps(canon["eps"])
    revision = KIND_REVISIONS.get(str(canon["kind"]))
    if revision is not None:
        canon["revision"] = revision
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def pack_per_sample(correct: Any) -> bytes:
    """Bit-pack a boolean vector (numpy array, torch tensor or list) with ``numpy.packbits``."""
    if hasattr(correct, "detach"):
        correct = correct.detach().cpu().numpy()
    return np.packbits(np.asarray(correct, dtype=bool).ravel()).tobytes()


def unpack_per_sample(blob: bytes | None, n: int) -> np.ndarray | None:
    """Decode a bit-packed correctness vector of ``n`` samples into a numpy bool array."""
    if blob is None:
        return None
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=n)
    return bits.astype(bool)

"""What the results store holds on disk: the schema, the identity of a cell and its key, and
the bit-packed per-sample correctness.

The schema is documented in docs/ARCHITECTURE.md ("Results store schema").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from core.enums import EvalKind
from core.errors import UserError

# 3: the indicators table (attack-failure indicators per white-box cell); 4: the runs' pid and host,
# the leases table, and content-keyed checkpoint hashes; 5: each result row's model capacity,
# parameters and forward FLOPs per image; 6: each cell's effort, forward and backward passes per
# image (docs/decisions/store.md)
SCHEMA_VERSION = 6

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
    "params",
    "flops",
    "forward_passes",
    "backward_passes",
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
    error TEXT, created_at REAL, params INTEGER, flops REAL, forward_passes REAL,
    backward_passes REAL
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
ADDED_COLUMNS = (
    (4, "runs", "pid", "INTEGER"),
    (4, "runs", "host", "TEXT"),
    (5, "results", "params", "INTEGER"),  # the evaluated model's parameters
    (5, "results", "flops", "REAL"),  # its forward FLOPs per image at the run's input size
    (6, "results", "forward_passes", "REAL"),  # model calls x rows per image the cell spent
    (6, "results", "backward_passes", "REAL"),
)

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


KNOWN_KINDS = frozenset(
    {*EvalKind.values(), *(str(v) for old in RETIRED_KINDS.values() for v in old.values())}
)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def row_fault(row: Mapping[str, Any]) -> str | None:
    """What makes a stored result row impossible (None when it is not): a count, accuracy or
    per-sample vector out of range or of the wrong type, an unknown kind. Such a row was edited
    or damaged; ``bench results``, ``report`` and ``submit`` refuse the store, naming it."""
    n, correct, accuracy = row.get("n"), row.get("correct"), row.get("accuracy")
    if not _whole(n) or n <= 0:
        return f"n is {n!r} (a whole number > 0 expected)"
    if row.get("kind") not in KNOWN_KINDS:
        return f"kind {row.get('kind')!r} is not one racl-bench writes"
    for name in ("eps", "step_size"):
        value = row.get(name)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value < 1e300):
            return f"{name} is {value!r}"
    if row.get("steps") is not None and (not _whole(row["steps"]) or row["steps"] < 0):
        return f"steps is {row['steps']!r}"
    if row.get("params") is not None and (not _whole(row["params"]) or row["params"] < 0):
        return f"params is {row['params']!r}"
    for name in ("flops", "forward_passes", "backward_passes"):
        value = row.get(name)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value < 1e300):
            return f"{name} is {value!r}"
    if row.get("error") is not None:
        return None if isinstance(row["error"], str) else f"error is {row['error']!r}"
    if not _whole(correct) or not 0 <= correct <= n:
        return f"correct is {correct!r} of n = {n}"
    # 1e-4: the runner computes accuracy in float32 (53 % of 500 is stored as 52.9999971...)
    derived = accuracy is None  # a store without it: the report derives it from correct / n
    if not derived and (
        not isinstance(accuracy, int | float) or abs(accuracy - 100.0 * correct / n) > 1e-4
    ):
        return f"accuracy {accuracy!r} is not 100 * correct / n = {100.0 * correct / n:g}"
    bits = row.get("per_sample")
    if bits is not None:
        if not isinstance(bits, bytes | bytearray | memoryview) or len(bits) != (n + 7) // 8:
            return f"per_sample does not hold {n} bits"
        if int(np.unpackbits(np.frombuffer(bytes(bits), np.uint8))[:n].sum()) != correct:
            return f"per_sample counts other than correct = {correct}"
    return None


def check_rows(rows: Iterable[Mapping[str, Any]], path: object) -> None:
    """Raise a one-line UserError naming the first impossible row of ``rows`` (``row_fault``)."""
    for row in rows:
        fault = row_fault(row)
        if fault is not None:
            raise UserError(
                f"results store {path}: row {row.get('key')} ({row.get('model')}, "
                f"{row.get('kind')}) is impossible: {fault}; it was edited or damaged"
            )

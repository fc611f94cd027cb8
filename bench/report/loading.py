"""Read a racl-bench results store (SQLite, schema in docs/ARCHITECTURE.md) into pandas, read-only.

The report reads only from the store: this module is its single door. It opens the file with a
``mode=ro`` URI, never writes, and tolerates stores that lack optional tables (``trust``,
``runs``, ``checkpoints``, ``indicators``) or columns, so a partial store still produces a
partial report. The bit-packed ``per_sample`` column is loaded as bytes and decoded per cell
(``bench.report.outcomes``): intervals need the counts, paired tests and the bootstrap the bits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.results.format import check_rows
from bench.results.opening import check_objects, stored_version
from bench.results.store import RESULT_COLUMNS as STORE_RESULT_COLUMNS
from core.errors import UserError, first_line

RESULT_COLUMNS = tuple(STORE_RESULT_COLUMNS)
RUN_COLUMNS = (
    "id",
    "started_at",
    "finished_at",
    "status",
    "argv",
    "preset",
    "device",
    "torch_version",
    "git_commit",
    "seed",
    "summary_json",
)
TRUST_COLUMNS = ("run_id", "check_name", "model", "dataset", "training", "detail", "passed")
CHECKPOINT_COLUMNS = ("hash", "model", "dataset", "training", "config_json", "metrics_json")
INDICATOR_COLUMNS = ("key", "run_id", "model", "checkpoint", "dataset", "training", "attack_key",
                     "label", "eps", "data_slice", "n", "counts_json")  # fmt: skip


def most_common(values: pd.Series, key: Callable[[Any], Any] | None = str) -> Any:
    """The most frequent non-null value (ties: the first in ``sorted(..., key=key)``), or None."""
    values = values.dropna()
    if values.empty:
        return None
    counts = values.value_counts()
    best = counts[counts == counts.max()].index
    return sorted(best, key=key)[0]


@dataclass(frozen=True)
class StoreData:
    """The store's tables as data frames; ``results`` holds successful cells only."""

    path: Path
    results: pd.DataFrame
    failed: pd.DataFrame
    runs: pd.DataFrame
    trust: pd.DataFrame
    checkpoints: pd.DataFrame
    indicators: pd.DataFrame  # one row per white-box cell; ``counts_json`` as stored


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` read-only; a missing or non-SQLite file raises :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no results store at {path}")
    uri = path.resolve().as_uri()
    try:
        return _probe(sqlite3.connect(f"{uri}?mode=ro", uri=True))
    except sqlite3.OperationalError:
        pass  # e.g. a WAL store in a read-only folder: SQLite cannot create the -shm file
    except sqlite3.DatabaseError as err:
        raise UserError(f"{path} is not a SQLite results store ({err})") from None
    try:
        return _probe(sqlite3.connect(f"{uri}?immutable=1", uri=True))
    except sqlite3.DatabaseError as err:
        raise UserError(f"cannot read results store {path} ({err})") from None


def _probe(conn: sqlite3.Connection) -> sqlite3.Connection:
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


def _read_table(conn: sqlite3.Connection, table: str, wanted: tuple[str, ...]) -> pd.DataFrame:
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    if not present:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in wanted})
    cols = [c for c in wanted if c in present]
    frame = pd.read_sql_query(f"SELECT {', '.join(cols)} FROM {table}", conn)
    for col in wanted:
        if col not in frame.columns:
            frame[col] = None
    return frame[list(wanted)]


def _normalise_results(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for col in ("n", "correct", "steps", "run_id", "seed"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    for col in ("eps", "step_size", "accuracy", "elapsed_s", "params", "flops", "forward_passes",
                "backward_passes"):  # fmt: skip
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    for col in ("kind", "model", "dataset", "training", "preset", "attack", "source", "norm"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    missing_acc = frame["accuracy"].isna() & frame["n"].gt(0) & frame["correct"].notna()
    frame.loc[missing_acc, "accuracy"] = 100.0 * frame["correct"] / frame["n"]
    return frame


def _check_result_rows(conn: sqlite3.Connection, path: str | Path) -> None:
    """Every stored row within range and of its type (``check_rows``), read as SQLite holds it."""
    cursor = conn.execute("SELECT * FROM results")
    names = [d[0] for d in cursor.description]
    check_rows((dict(zip(names, values, strict=True)) for values in cursor), path)


def load_store(path: str | Path) -> StoreData:
    """Load every table the report needs; raises :class:`UserError` if ``results`` is absent."""
    conn = connect_readonly(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "results" not in tables:
            raise UserError(f"{path} has no 'results' table: not a racl-bench results store")
        if "schema_version" in tables:  # a bad version, a trigger or a view: refused
            stored_version(conn, Path(path))  # (it checks the objects first)
        else:
            check_objects(conn, Path(path))
        _check_result_rows(conn, path)
        results = _normalise_results(_read_table(conn, "results", RESULT_COLUMNS))
        runs = _read_table(conn, "runs", RUN_COLUMNS)
        trust = _read_table(conn, "trust", TRUST_COLUMNS)
        checkpoints = _read_table(conn, "checkpoints", CHECKPOINT_COLUMNS)
        indicators = _read_table(conn, "indicators", INDICATOR_COLUMNS)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as err:  # e.g. a zeroed page
        cause = first_line(err.__cause__ or err)
        raise UserError(f"cannot read results store {path}: {cause}") from None
    finally:
        conn.close()
    has_error = results["error"].notna() & (results["error"].astype(str).str.len() > 0)
    ok = results[~has_error & results["accuracy"].notna()].reset_index(drop=True)
    failed = results[has_error].reset_index(drop=True)
    return StoreData(Path(path), ok, failed, runs, trust, checkpoints, indicators)

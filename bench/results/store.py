"""The results store: one SQLite file (stdlib ``sqlite3``, WAL) holding runs, checkpoints, result
cells and trust checks, with the schema documented in ``docs/ARCHITECTURE.md``.

Every result cell is written in its own transaction (``INSERT OR REPLACE`` keyed by ``key``, the
sha256 of the cell's identity, see :func:`result_key`), so a run killed at any moment resumes
with nothing lost and nothing counted twice. Per-sample correctness is stored bit-packed
(``numpy.packbits``) and decoded only on request. A file that is not a results store is refused
with a one-line :class:`~core.errors.UserError` and never overwritten.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.results import opening
from bench.results.filesystems import refuse_network_store
from bench.results.format import (
    ADDED_COLUMNS,
    IDENTITY_FIELDS,
    INDICATOR_COLUMNS,
    KIND_REVISIONS,
    RESULT_COLUMNS,
    RETIRED_KINDS,
    SCHEMA_SQL,
    SCHEMA_VERSION,
    pack_per_sample,
    result_key,
    unpack_per_sample,
)
from core.errors import UserError

__all__ = [
    "IDENTITY_FIELDS",
    "KIND_REVISIONS",
    "RESULT_COLUMNS",
    "SCHEMA_VERSION",
    "ResultStore",
    "pack_per_sample",
    "result_key",
    "unpack_per_sample",
]


RUN_FIELDS = (
    "started_at", "finished_at", "status", "argv", "preset", "device", "torch_version",
    "git_commit", "seed", "summary_json", "pid", "host",
)  # fmt: skip


class ResultStore:
    """SQLite results store (WAL, ``synchronous=NORMAL``, busy timeout) - see module docstring.

    ``readonly`` opens without writing anything (``bench results``, ``bench run --dry-run``);
    opening for writing is refused on a network filesystem unless ``network_ok``, and marks
    the runs of this host whose process is gone ``interrupted``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        timeout_s: float = 60.0,
        readonly: bool = False,
        network_ok: bool = False,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if not readonly and str(path) != ":memory:":
            refuse_network_store(self.path, forced=network_ok)
        self._conn = opening.connect(self.path, readonly=readonly, timeout_s=timeout_s)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._check_integrity()
                self._init_schema()
                self.mark_gone_runs()
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _init_schema(self) -> None:
        with self._transaction():
            version = opening.stored_version(self._conn, self.path)
            if version is not None and version > SCHEMA_VERSION:
                raise UserError(
                    f"{self.path} has store schema version {version}; this racl-bench reads "
                    f"up to {SCHEMA_VERSION}: upgrade racl-bench"
                )
            for statement in SCHEMA_SQL.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            if self._conn.execute("SELECT version FROM schema_version").fetchone() is None:
                self._conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif version is not None and version < SCHEMA_VERSION:
                self._upgrade(version)

    def _upgrade(self, version: int) -> None:
        """Bring a store of an older schema up to date (inside the caller's transaction).

        Rows whose kind changed meaning are renamed (``RETIRED_KINDS``), not deleted: they stay
        readable with ``bench results`` but no report uses them, and their cells are recomputed
        under the new meaning (their keys differ, see ``KIND_REVISIONS``). Columns added since
        (``ADDED_COLUMNS``) are added, empty for the old rows.
        """
        for old in range(version, SCHEMA_VERSION):
            for kind, retired in RETIRED_KINDS.get(old, {}).items():
                self._conn.execute("UPDATE results SET kind = ? WHERE kind = ?", (retired, kind))
        for added, table, column, sql_type in ADDED_COLUMNS:
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if added > version and column not in have:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
        self._conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def _transaction(self) -> opening.Transaction:
        return opening.Transaction(self._conn)

    def _check_integrity(self) -> None:
        """Before writing: ``PRAGMA quick_check`` (a damaged page is refused now, not mid-run)."""
        try:
            verdict = self.integrity_check(quick=True)
        except (sqlite3.DatabaseError, UserError) as err:
            verdict = str(err)
        if verdict != "ok":
            lines = [line for line in verdict.splitlines() if not line.startswith("***")]
            detail = lines[0] if lines else verdict
            raise UserError(f"results store {self.path} is damaged: {detail}")

    def integrity_check(self, *, quick: bool = False) -> str:
        """``PRAGMA integrity_check`` (``quick_check`` when ``quick``; ``"ok"`` when healthy)."""
        pragma = "quick_check" if quick else "integrity_check"
        return str(self._conn.execute(f"PRAGMA {pragma}").fetchone()[0])

    # -- runs ------------------------------------------------------------------------------
    def begin_run(self, meta: Mapping[str, Any]) -> int:
        """Insert a ``runs`` row (status ``running``) and return its id."""
        cols = ("argv", "preset", "device", "torch_version", "git_commit", "seed")
        values = [meta.get(c) for c in cols]
        if isinstance(values[0], (list, tuple)):
            values[0] = json.dumps(list(values[0]))
        with self._transaction():
            cur = self._conn.execute(
                "INSERT INTO runs (started_at, status, argv, preset, device, torch_version,"
                " git_commit, seed, pid, host) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), *values, os.getpid(), socket.gethostname()),
            )
        return int(cur.lastrowid)

    def mark_gone_runs(self) -> list[int]:
        """Runs left ``running`` by a process of this host that is gone -> ``interrupted``."""
        host = socket.gethostname()
        with self._transaction():
            rows = self._conn.execute(
                "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?"
                " AND pid IS NOT NULL",
                (host,),
            ).fetchall()
            gone = [int(r["id"]) for r in rows if not opening.pid_alive(int(r["pid"]))]
            for run_id in gone:
                self._conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE id = ?",
                    (time.time(), run_id),
                )
        return gone

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any]) -> None:
        """Mark a run finished with its status and JSON summary (counts, timings)."""
        with self._transaction():
            self._conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary_json = ? WHERE id = ?",
                (time.time(), status, json.dumps(summary, sort_keys=True, default=str), run_id),
            )

    def copy_run(self, row: Mapping[str, Any]) -> int:
        """Insert another store's ``runs`` row under a new id (``bench results merge``)."""
        cols = [c for c in RUN_FIELDS if c in row]  # our columns only, never the row's names
        with self._transaction():
            cur = self._conn.execute(
                f"INSERT INTO runs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [row[c] for c in cols],
            )
        return int(cur.lastrowid)

    def runs(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    # -- checkpoints -----------------------------------------------------------------------
    def put_checkpoint(
        self,
        hash: str,
        *,
        model: str,
        dataset: str,
        training: str,
        config: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        path: str | Path | None = None,
    ) -> None:
        """Record (or refresh) a trained checkpoint under its hash."""
        with self._transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hash,
                    model,
                    dataset,
                    training,
                    json.dumps(config or {}, sort_keys=True, default=str),
                    json.dumps(metrics or {}, sort_keys=True, default=str),
                    None if path is None else str(path),
                    time.time(),
                ),
            )

    def checkpoints(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT * FROM checkpoints ORDER BY created_at").fetchall()
        return [dict(r) for r in rows]

    # -- results ---------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        """True when a successful row with this key exists (failed rows are retried)."""
        row = self._conn.execute(
            "SELECT 1 FROM results WHERE key = ? AND error IS NULL", (key,)
        ).fetchone()
        return row is not None

    def cached_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that has a successful row (one query per 500 keys)."""
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key FROM results WHERE error IS NULL AND key IN ({marks})"
            found.update(r[0] for r in self._conn.execute(query, chunk))
        return found

    def put_result(self, row: Mapping[str, Any]) -> str:
        """Write one result cell in its own transaction; returns its key.

        ``row`` carries the ``results`` columns; ``key`` is derived from the identity fields when
        absent; ``per_sample`` may be a bool vector (packed here) or packed bytes; ``created_at``
        defaults to now.
        """
        data = {c: row.get(c) for c in RESULT_COLUMNS}
        if data["key"] is None:
            data["key"] = result_key({f: row.get(f) for f in IDENTITY_FIELDS})
        ps = data["per_sample"]
        if ps is not None and not isinstance(ps, (bytes, bytearray, memoryview)):
            data["per_sample"] = pack_per_sample(ps)
        if data["created_at"] is None:
            data["created_at"] = time.time()
        for name in ("training", "dataset", "kind", "norm"):
            if data[name] is not None:
                data[name] = str(data[name])
        marks = ",".join("?" * len(RESULT_COLUMNS))
        with self._transaction():
            self._conn.execute(
                f"INSERT OR REPLACE INTO results ({','.join(RESULT_COLUMNS)}) VALUES ({marks})",
                [data[c] for c in RESULT_COLUMNS],
            )
        return str(data["key"])

    def get(self, key: str, *, decode_per_sample: bool = False) -> dict[str, Any] | None:
        """One result row by key (or None)."""
        row = self._conn.execute("SELECT * FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else _row_dict(row, decode_per_sample)

    def rows(self, *, decode_per_sample: bool = False, **filters: Any) -> list[dict[str, Any]]:
        """Result rows matching column filters (a value, or a list/tuple/set of values).

        ``per_sample`` stays packed bytes unless ``decode_per_sample`` is true, in which case it
        is a numpy bool array of length ``n``. Ordered by model, kind, attack, eps, steps.
        """
        where, params = [], []
        for column, value in filters.items():
            if column not in RESULT_COLUMNS:
                raise UserError(f"unknown results column {column!r}")
            if value is None:
                where.append(f"{column} IS NULL")
            elif isinstance(value, (list, tuple, set, frozenset)):
                values = [str(v) if hasattr(v, "value") else v for v in value]
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
            else:
                where.append(f"{column} = ?")
                params.append(str(value) if hasattr(value, "value") else value)
        query = "SELECT * FROM results"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY model, dataset, training, kind, attack, source, eps, steps, key"
        return [_row_dict(r, decode_per_sample) for r in self._conn.execute(query, params)]

    def delete(self, keys: Iterable[str]) -> int:
        """Delete result rows by key (``--fresh``); returns how many were removed."""
        keys = list(keys)
        removed = 0
        with self._transaction():
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cur = self._conn.execute(f"DELETE FROM results WHERE key IN ({marks})", chunk)
                removed += cur.rowcount
        return removed

    # -- trust -----------------------------------------------------------------------------
    def add_trust(
        self,
        run_id: int | None,
        check_name: str,
        *,
        model: str,
        dataset: str | None,
        training: str | None,
        detail: str,
        passed: bool,
    ) -> None:
        """Store one trust-check verdict."""
        with self._transaction():
            self._conn.execute(
                "INSERT INTO trust VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    check_name,
                    model,
                    None if dataset is None else str(dataset),
                    None if training is None else str(training),
                    detail,
                    int(bool(passed)),
                    time.time(),
                ),
            )

    # -- indicators of attack failure ------------------------------------------------------
    def put_indicators(self, row: Mapping[str, Any]) -> None:
        """Write (or replace) the indicator row of one white-box cell (``counts`` a dict)."""
        data = {c: row.get(c) for c in INDICATOR_COLUMNS}
        data["counts_json"] = json.dumps(row.get("counts") or {}, sort_keys=True)
        data["created_at"] = data["created_at"] or time.time()
        marks = ",".join("?" * len(INDICATOR_COLUMNS))
        with self._transaction():
            self._conn.execute(
                f"INSERT OR REPLACE INTO indicators ({','.join(INDICATOR_COLUMNS)}) "
                f"VALUES ({marks})",
                [data[c] for c in INDICATOR_COLUMNS],
            )

    def indicator_rows(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Indicator rows (``counts`` decoded), all or those of the given cell keys."""
        order = " ORDER BY model, attack_key, key"
        if keys is None:
            found = list(self._conn.execute("SELECT * FROM indicators" + order))
        else:
            keys, found = list(keys), []
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                query = f"SELECT * FROM indicators WHERE key IN ({','.join('?' * len(chunk))})"
                found.extend(self._conn.execute(query + order, chunk))
        rows = []
        for r in found:
            data = dict(r)
            data["counts"] = json.loads(data.pop("counts_json") or "{}")
            rows.append(data)
        return sorted(rows, key=lambda d: (str(d["model"]), str(d["attack_key"]), d["key"]))

    def trust_rows(self, run_id: int | None = None) -> list[dict[str, Any]]:
        query, params = "SELECT * FROM trust", ()
        if run_id is not None:
            query, params = query + " WHERE run_id = ?", (run_id,)
        rows = self._conn.execute(query + " ORDER BY rowid", params).fetchall()
        return [dict(r) for r in rows]


def _row_dict(row: sqlite3.Row, decode_per_sample: bool) -> dict[str, Any]:
    data = dict(row)
    if decode_per_sample and data.get("per_sample") is not None:
        data["per_sample"] = unpack_per_sample(data["per_sample"], int(data["n"]))
    return data

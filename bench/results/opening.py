"""Opening a results store without touching what is not ours.

Before anything is written (the WAL switch included) the file is checked: the SQLite magic, then
the tables of a plain connection that reads only (``schema_version`` must be there, and hold a
whole number). A store is opened read-only with ``file:...?mode=ro``; where that fails because
the folder is not writable (WAL needs its ``-shm`` file) with ``immutable=1``. SQLite errors while
opening become one-line :class:`~core.errors.UserError` s naming the file. Decisions:
docs/decisions/store.md.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from bench.results.format import SCHEMA_VERSION
from core.errors import UserError

_SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreConnection(sqlite3.Connection):
    """A connection whose ``execute`` turns SQLite errors into a UserError naming the store."""

    store_path: str = "?"

    def execute(self, sql: str, parameters: object = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        try:
            return super().execute(sql, parameters)  # type: ignore[arg-type]
        except sqlite3.DatabaseError as err:
            raise translate(err, self.store_path) from None


def translate(err: sqlite3.DatabaseError, path: object) -> Exception:
    """An SQLite error as the CLI reports it: the machine failing (a full disk, an I/O error:
    an ``OSError`` naming the file, exit 1), else a fault of the store given (``UserError``,
    exit 2). docs/decisions/errors.md."""
    name = str(getattr(err, "sqlite_errorname", "") or "")
    if name == "SQLITE_FULL":
        return OSError(errno.ENOSPC, f"SQLite: {err}", str(path))
    if name.startswith("SQLITE_IOERR"):
        return OSError(errno.EIO, f"SQLite: {err}", str(path))
    return UserError(f"results store {path}: {err}")


def check_is_sqlite(path: Path) -> bool:
    """True when ``path`` holds bytes (refused unless an SQLite file); False when absent/empty."""
    if path.is_dir():
        raise UserError(f"results store {path} is a directory, not a file")
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as err:
        raise UserError(f"cannot read results store {path}: {err.strerror or err}") from None
    if head != _SQLITE_MAGIC:
        raise UserError(f"{path} is not a results store (not an SQLite file); refusing to touch it")
    return True


def connect(path: Path, *, readonly: bool, timeout_s: float) -> sqlite3.Connection:
    """A connection to ``path`` (``:memory:`` allowed), ownership checked, nothing written yet."""
    if str(path) == ":memory:":
        return _connect(":memory:", str(path), timeout_s, uri=False)
    exists = check_is_sqlite(path)
    if readonly:
        if not exists:
            raise UserError(f"no results store at {path}")
        conn = _readonly(path, timeout_s)
    else:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(str(path), str(path), timeout_s, uri=False)
    if exists:
        try:
            stored_version(conn, path)
        except BaseException:
            conn.close()
            raise
    return conn


def stored_version(conn: sqlite3.Connection, path: Path) -> int | None:
    """The store's schema version (None for an empty file); a foreign file is a UserError."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if "schema_version" not in tables:
        raise UserError(f"{path} is an SQLite file but not a racl-bench results store")
    check_objects(conn, path)
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        return None
    if not isinstance(row[0], int) or isinstance(row[0], bool):
        raise UserError(f"{path}: store schema version {row[0]!r} is not a whole number")
    if not 1 <= row[0] <= SCHEMA_VERSION:
        raise UserError(
            f"{path} has store schema version {row[0]}; this racl-bench reads versions 1 to "
            f"{SCHEMA_VERSION}" + (": upgrade racl-bench" if row[0] > SCHEMA_VERSION else "")
        )
    return int(row[0])


# Everything a racl-bench store holds (SQLite's own sqlite_* objects aside); tables of older
# schemas are subsets. Anything else (a trigger, a view, a table or index of someone else's)
# could run or change what we read and write: such a store is refused, never used.
OUR_OBJECTS = {
    "table": {"schema_version", "runs", "checkpoints", "results", "trust", "indicators", "leases"},
    "index": {"results_model"},
}


def check_objects(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a store holding a trigger, view, table or index that racl-bench did not create."""
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master ORDER BY type, name"):
        if str(name).startswith("sqlite_"):
            continue
        if name not in OUR_OBJECTS.get(kind, ()):
            raise UserError(
                f"results store {path} holds a {kind} {name!r} that racl-bench did not create; "
                "refusing to use it (a store is data, never code)"
            )


def _readonly(path: Path, timeout_s: float) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    if _unwritable(path) and not Path(f"{path}-wal").exists():  # nobody writes it: no -shm
        return _probe(_connect(f"{uri}?immutable=1", str(path), timeout_s, uri=True))
    try:
        return _probe(_connect(f"{uri}?mode=ro", str(path), timeout_s, uri=True))
    except UserError as err:
        if "unable to open" not in str(err) and "readonly" not in str(err):
            raise
    # a WAL store in a folder we cannot write: SQLite cannot make the -shm file
    return _probe(_connect(f"{uri}?immutable=1", str(path), timeout_s, uri=True))


def _unwritable(path: Path) -> bool:
    """The file or its folder is read-only (by access, or by mode bits: root ignores access)."""
    for item in (path, path.resolve().parent):
        if not os.access(item, os.W_OK) or not item.stat().st_mode & 0o222:
            return True
    return False


def _connect(target: str, shown: str, timeout_s: float, *, uri: bool) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            target, timeout=timeout_s, isolation_level=None, uri=uri, factory=StoreConnection
        )
    except sqlite3.Error as err:
        raise UserError(f"results store {shown}: {err}") from None
    conn.store_path = shown  # type: ignore[attr-defined]
    conn.row_factory = sqlite3.Row
    return conn


def _probe(conn: sqlite3.Connection) -> sqlite3.Connection:
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except UserError:
        conn.close()
        raise
    return conn


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:  # SQLite rolls back itself on a full disk or I/O error
            self._conn.execute("ROLLBACK")

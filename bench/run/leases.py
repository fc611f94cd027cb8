"""Leases: which live process is computing a cell or training a checkpoint of a store.

A lease is a ``leases`` row (key, owner pid and host, heartbeat time) taken in a ``BEGIN
IMMEDIATE`` transaction, so two processes never both hold it. A lease is free when absent, stale
(heartbeat older than ``timeout_s``) or owned by a process of this host that is gone; a holder
refreshes the heartbeat of all its leases from a background thread (own connection) every
``heartbeat_s``. The protocol and its timeout: docs/decisions/store.md, "Concurrent runs".
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from bench.results.opening import pid_alive
from bench.results.store import ResultStore
from core import distributed

if TYPE_CHECKING:
    from bench.plan.units import Cell

T = TypeVar("T")

LEASE_TIMEOUT_S = 120.0  # a heartbeat older than this: the owner is taken for dead
HEARTBEAT_S = 10.0
POLL_S = 0.5


class Leases:
    """This process's leases on ``store`` (re-entrant: a lease we hold is ours to take again)."""

    def __init__(
        self,
        store: ResultStore,
        run_id: int | None = None,
        *,
        timeout_s: float = LEASE_TIMEOUT_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.store, self.run_id = store, run_id
        self.timeout_s, self.heartbeat_s = timeout_s, heartbeat_s
        self.pid, self.host = os.getpid(), socket.gethostname()
        # per key: the owner and heartbeat last seen, and when (monotonic): a heartbeat that has
        # not moved for timeout_s is stale whatever the clocks say (a future one included)
        self._seen: dict[str, tuple[tuple, float]] = {}
        self._told: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one lease -------------------------------------------------------------------------
    def take(self, key: str, kind: str) -> bool:
        """Take the lease on ``key`` when it is free or ours; False while another holds it."""
        conn = self.store._conn
        with self.store._transaction():
            row = conn.execute("SELECT * FROM leases WHERE key = ?", (key,)).fetchone()
            if row is not None and not self._free(row):
                return False
            now = time.time()
            conn.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, kind, self.pid, self.host, self.run_id, now, now),
            )
        return True

    def release(self, keys: Iterable[str]) -> None:
        """Drop our leases on ``keys`` (another's stay)."""
        keys = list(keys)
        with self.store._transaction():
            for key in keys:
                self.store._conn.execute(
                    "DELETE FROM leases WHERE key = ? AND pid = ? AND host = ?",
                    (key, self.pid, self.host),
                )

    def held_by_other(self, key: str) -> bool:
        """Whether a live other process holds ``key`` now."""
        row = self.store._conn.execute("SELECT * FROM leases WHERE key = ?", (key,)).fetchone()
        return row is not None and not self._free(row)

    def wait_free(self, key: str, *, poll_s: float = POLL_S) -> None:
        """Block while a live other process holds ``key`` (at most ``timeout_s`` after its
        heartbeat last moved), saying once who holds it."""
        while self.held_by_other(key):
            self._tell(key)
            time.sleep(poll_s)

    def _tell(self, key: str) -> None:
        if key in self._told:
            return
        self._told.add(key)
        row = self.store._conn.execute("SELECT * FROM leases WHERE key = ?", (key,)).fetchone()
        if row is not None:
            age = time.time() - float(row["heartbeat"] or 0.0)
            beat = f"{age:.0f} s ago" if age >= 0 else f"{-age:.0f} s in the future"
            print(
                f"waiting for {key[:60]}: held by pid {row['pid']} on {row['host']} (heartbeat "
                f"{beat}; taken for dead {self.timeout_s:.0f} s after it last moves)",
                file=sys.stderr,
                flush=True,
            )

    def _free(self, row: sqlite3.Row) -> bool:
        if row["pid"] == self.pid and row["host"] == self.host:
            return True
        beat = float(row["heartbeat"] or 0.0)
        if time.time() - beat > self.timeout_s:
            return True
        mark, now = (row["pid"], row["host"], beat), time.monotonic()
        seen = self._seen.get(row["key"])
        if seen is None or seen[0] != mark:
            self._seen[row["key"]] = (mark, now)
        elif now - seen[1] > self.timeout_s:  # frozen: a dead owner, whatever its clock said
            return True
        return row["host"] == self.host and not pid_alive(int(row["pid"]))

    # -- heartbeat -------------------------------------------------------------------------
    def start(self) -> Leases:
        """Start the heartbeat thread (a no-op for an in-memory store)."""
        if self._thread is None and str(self.store.path) != ":memory:":
            self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the heartbeat and drop every lease of this process."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self.store._transaction():
            self.store._conn.execute(
                "DELETE FROM leases WHERE pid = ? AND host = ?", (self.pid, self.host)
            )

    def _beat(self) -> None:
        conn = sqlite3.connect(str(self.store.path), timeout=60.0, isolation_level=None)
        try:
            while not self._stop.wait(self.heartbeat_s):
                conn.execute(
                    "UPDATE leases SET heartbeat = ? WHERE pid = ? AND host = ?",
                    (time.time(), self.pid, self.host),
                )
        except sqlite3.Error:  # the store went away under us: the leases expire on their own
            pass
        finally:
            conn.close()


class Claims:
    """The executor's side of the leases: a checkpoint is trained by one process at a time, a
    cell computed by one; ``leases`` None (torchrun, an in-memory store) claims everything."""

    def __init__(self, leases: Leases | None) -> None:
        self.leases = leases

    def checkpoint(self, hash: str) -> contextlib.AbstractContextManager[None]:
        """Hold the lease of checkpoint ``hash`` for the block (waiting while another trains)."""
        return self.exclusive(f"checkpoint:{hash}")

    @contextlib.contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        """Hold the lease ``key`` for the block, waiting while a live other process holds it."""
        if self.leases is None:
            yield
            return
        while not self.take(key):
            self.leases.wait_free(key)
        try:
            yield
        finally:
            self.leases.release([key])

    def take(self, key: str) -> bool:
        """Take the lease ``key`` without waiting: False while a live other process holds it
        (always True without leases). Held until released (:meth:`exclusive` on the same key
        takes it again at once and releases it at its end)."""
        return self.leases is None or self.leases.take(key, key.split(":", 1)[0])

    def first_free(self, items: list[T], key: Callable[[T], str]) -> T:
        """The first of ``items`` whose lease ``key(item)`` this process takes without waiting
        (:meth:`take`); the first of all when every one is held (its :meth:`exclusive` then
        waits). How a checkpoint and an indicator row are picked next."""
        return next((item for item in items if self.take(key(item))), items[0])

    def group(self, todo: list[Cell]) -> tuple[list[Cell] | None, list[Cell]]:
        """(cells of ``todo`` to compute now, cells another process has stored since).

        A group is computed by one process (a sweep reads its other budgets from the store), so
        when another holds any of its cells none is taken and the first item is None."""
        if self.leases is None:
            return list(todo), []
        stored = self.leases.store.cached_keys(c.key for c in todo)
        done = [c for c in todo if c.key in stored]
        mine: list[Cell] = []
        for cell in (c for c in todo if c.key not in stored):
            if not self.leases.take(cell.key, "cell"):
                self.release(mine)
                return None, done
            mine.append(cell)
        return mine, done

    def release(self, cells: Iterable[Cell]) -> None:
        """Drop the leases of ``cells``."""
        if self.leases is not None:
            self.leases.release(c.key for c in cells)

    def close(self) -> None:
        """Stop the heartbeat and drop every lease this process holds."""
        if self.leases is not None:
            self.leases.stop()

    def wait(self, cells: Iterable[Cell]) -> None:
        """Block until no live other process holds a lease on any of ``cells``."""
        if self.leases is not None:
            for cell in cells:
                self.leases.wait_free(cell.key)


def start_claims(store: ResultStore | None, run_id: int | None) -> Claims:
    """Claims backed by started leases on a writable file store (none under torchrun: there the
    ranks share the work by the plan, docs/DISTRIBUTED.md)."""
    if distributed.context().enabled or store is None or store.readonly:
        return Claims(None)
    if str(store.path) == ":memory:":
        return Claims(None)
    return Claims(Leases(store, run_id).start())

"""``bench results merge``: several stores into one, by content key (the cluster recipe's last
step: one node-local store per job, merged; docs/DISTRIBUTED.md).

Rules (docs/decisions/store.md, "Merging stores"):

- a result row's key hashes everything it was computed from, so the same key with the same
  verdicts (``n``, ``correct``, the per-sample bits, no error) is one row; a failed row gives way
  to a successful one of the same key (``bench run`` would recompute it);
- the same key with different verdicts is a conflict: refused (the error names the key and both
  stores) unless ``prefer`` settles it (``first``: the earlier store on the command line;
  ``newest``: the later ``created_at``), and every settled conflict is written into the merge's
  run record;
- checkpoints by config hash (a conflict: the same config hash with another content hash),
  indicator rows by cell key (a conflict: other counts), each under the same rule;
- runs and trust rows are copied with new run ids; a run record of the merge itself holds its
  inputs, rule and settled conflicts; leases are not copied;
- an input of an older schema is upgraded on a copy (the input is never written), one of a
  newer schema is refused as ``bench run`` refuses it;
- the output is built in a private temporary folder and moved into place at the end: it never
  exists half-written, and it may be neither an input nor an existing file.

Checkpoint files are not copied: they stay in each job's checkpoint folder, named by config hash.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.results import opening
from bench.results.format import SCHEMA_VERSION
from bench.results.store import ResultStore
from core.errors import UserError

PREFER = ("first", "newest")


@dataclass
class Merged:
    """What a merge did: counts per table, the conflicts it settled, the failed rows replaced."""

    out: Path
    run_id: int
    counts: dict[str, int] = field(default_factory=dict)
    settled: list[dict[str, Any]] = field(default_factory=list)
    replaced_failed: int = 0


@dataclass
class _Kept:
    row: dict[str, Any]
    store: int  # index into the inputs


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_paths(inputs: Sequence[Path], out: Path) -> None:
    """Inputs exist, are distinct results stores; ``out`` is new and none of them."""
    if not inputs:
        raise UserError("bench results merge needs at least one store to read")
    if not str(out).strip():
        raise UserError("--out must name a file")
    for i, path in enumerate(inputs):
        if not path.is_file():
            raise UserError(f"no results store at {path}")
        if not opening.check_is_sqlite(path):
            raise UserError(f"{path} is empty, not a results store")
        for other in inputs[:i]:
            if _same_file(path, other):
                raise UserError(f"{path} is given twice")
        if _same_file(path, out):
            raise UserError(f"--out {out} is one of the stores to merge; choose a new file")
    if out.exists():
        raise UserError(f"--out {out} exists; merge into a new file (it is never overwritten)")
    if not out.parent.is_dir():
        raise UserError(f"--out folder {out.parent} does not exist")


def _open_input(path: Path, scratch: Path) -> ResultStore:
    """``path`` read-only, or a copy upgraded to this schema when it is older."""
    probe = opening.connect(path, readonly=True, timeout_s=60.0)
    try:
        version = opening.stored_version(probe, path)
    finally:
        probe.close()
    if version is not None and version > SCHEMA_VERSION:
        raise UserError(
            f"{path} has store schema version {version}; this racl-bench reads up to "
            f"{SCHEMA_VERSION}: upgrade racl-bench"
        )
    if version == SCHEMA_VERSION:
        return ResultStore(path, readonly=True)
    copy = scratch / f"input-{len(list(scratch.iterdir()))}.db"
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)  # a consistent copy, WAL content included
    finally:
        src.close()
        dst.close()
    return ResultStore(copy)  # opening it for writing upgrades the copy


def _verdict(row: dict[str, Any], table: str) -> tuple:
    if table == "results":
        ps = row.get("per_sample")
        return (row.get("n"), row.get("correct"), None if ps is None else bytes(ps), row["error"])
    if table == "checkpoints":
        metrics = json.loads(row.get("metrics_json") or "{}")
        return (metrics.get("content_hash"), row.get("config_json"))
    return (row.get("n"), row.get("revision"), json.dumps(row.get("counts"), sort_keys=True))


class _Merger:
    def __init__(self, inputs: Sequence[Path], prefer: str | None) -> None:
        self.inputs, self.prefer = list(inputs), prefer
        self.settled: list[dict[str, Any]] = []
        self.conflicts: list[str] = []
        self.replaced_failed = 0

    def add(self, kept: dict[str, _Kept], table: str, key: str, row: dict, store: int) -> None:
        old = kept.get(key)
        if old is None:
            kept[key] = _Kept(row, store)
            return
        if _verdict(old.row, table) == _verdict(row, table):
            return
        if table == "results" and (old.row["error"] is None) != (row["error"] is None):
            self.replaced_failed += 1
            if old.row["error"] is not None:
                kept[key] = _Kept(row, store)
            return
        stores = (str(self.inputs[old.store]), str(self.inputs[store]))
        if self.prefer is None:
            self.conflicts.append(f"{table} key {key} differs between {stores[0]} and {stores[1]}")
            return
        newer = float(row.get("created_at") or 0) > float(old.row.get("created_at") or 0)
        take_new = self.prefer == "newest" and newer
        if take_new:
            kept[key] = _Kept(row, store)
        self.settled.append(
            {
                "table": table,
                "key": key,
                "kept": stores[1] if take_new else stores[0],
                "dropped": stores[0] if take_new else stores[1],
                "rule": self.prefer,
            }
        )


def merge_stores(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    prefer: str | None = None,
    argv: Sequence[str] = (),
    finish: Callable[[ResultStore, int], None] | None = None,
) -> Merged:
    """Merge ``inputs`` into the new store ``out`` (see the module docstring). ``finish(store,
    run_id)`` runs on the merged store before it is moved into place (the CLI recomputes the
    trust checks there). Raises a UserError naming the first conflict when ``prefer`` is None."""
    paths, out = [Path(p) for p in inputs], Path(out)
    if prefer is not None and prefer not in PREFER:
        raise UserError(f"--prefer must be one of {', '.join(PREFER)}, got {prefer!r}")
    check_paths(paths, out)
    merger = _Merger(paths, prefer)
    with tempfile.TemporaryDirectory(prefix="racl-merge-") as tmp:
        scratch = Path(tmp)
        tables: dict[str, dict[str, _Kept]] = {"results": {}, "checkpoints": {}, "indicators": {}}
        runs: list[tuple[int, dict]] = []
        trust: list[tuple[int, dict]] = []
        for i, path in enumerate(paths):
            with _open_input(path, scratch) as store:
                runs += [(i, r) for r in store.runs()]
                trust += [(i, r) for r in store.trust_rows()]
                for r in store.rows():
                    merger.add(tables["results"], "results", r["key"], r, i)
                for r in store.checkpoints():
                    merger.add(tables["checkpoints"], "checkpoints", r["hash"], r, i)
                for r in store.indicator_rows():
                    merger.add(tables["indicators"], "indicators", r["key"], r, i)
        if merger.conflicts:
            more = len(merger.conflicts) - 1
            also = f" (and {more} more)" if more else ""
            raise UserError(
                f"{merger.conflicts[0]}{also}: refusing to merge; --prefer first|newest "
                "settles such conflicts and records them"
            )
        built = scratch / "merged.db"
        with ResultStore(built) as merged:
            run_ids = {(i, r["id"]): merged.copy_run(r) for i, r in runs}
            for kept in tables["checkpoints"].values():
                r = kept.row
                merged.put_checkpoint(
                    r["hash"], model=r["model"], dataset=r["dataset"], training=r["training"],
                    config=json.loads(r["config_json"] or "{}"),
                    metrics=json.loads(r["metrics_json"] or "{}"), path=r["path"],
                )  # fmt: skip
            for kept in tables["results"].values():
                run = run_ids.get((kept.store, kept.row["run_id"]))
                merged.put_result({**kept.row, "run_id": run})
            for kept in tables["indicators"].values():
                row = {**kept.row, "run_id": run_ids.get((kept.store, kept.row["run_id"]))}
                merged.put_indicators(row)
            for i, r in trust:
                merged.add_trust(
                    run_ids.get((i, r["run_id"])), r["check_name"], model=r["model"],
                    dataset=r["dataset"], training=r["training"], detail=r["detail"],
                    passed=bool(r["passed"]),
                )  # fmt: skip
            run_id = merged.begin_run({"argv": list(argv)})
            result = Merged(out, run_id, {k: len(v) for k, v in tables.items()})
            result.settled, result.replaced_failed = merger.settled, merger.replaced_failed
            if finish is not None:
                finish(merged, run_id)
            summary = {
                "merged_from": [str(p) for p in paths],
                "prefer": prefer,
                "counts": result.counts,
                "settled": merger.settled,
                "replaced_failed": merger.replaced_failed,
                "host": socket.gethostname(),
                "at": time.time(),
            }
            merged.finish_run(run_id, "merged", summary)
        _move_into_place(built, out)
    return result


def _move_into_place(built: Path, out: Path) -> None:
    """Copy ``built`` beside ``out`` under a temporary name, flush it, rename it to ``out``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(built, tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        if out.exists():  # appeared meanwhile: never overwrite a file
            raise UserError(f"--out {out} appeared while merging; nothing written")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)

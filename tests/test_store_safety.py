"""The store leaves what is not ours alone, reads read-only media, refuses damaged files in one
line, and closes or recovers its run rows (issue 16; docs/decisions/store.md)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bench.results.opening as store_open
import bench.run.runner as runner_mod
from bench.cli import main
from bench.results.store import SCHEMA_VERSION, ResultStore
from core.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "report_store.sqlite"  # a schema 2 store
ADHOC = ["--preset", "smoke", "--models", "resnet18", "--attacks", "fgsm", "--training", "natural",
         "--dataset", "mnist", "--n", "8", "--threads", "1", "--no-progress"]  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _store(path: Path) -> Path:
    with ResultStore(path) as store:
        store.put_result({"kind": "clean", "model": "m", "checkpoint": "c", "dataset": "mnist",
                          "data_slice": "test[:4]", "n": 4, "correct": 3, "accuracy": 75.0,
                          "per_sample": [1, 1, 1, 0], "seed": 0})  # fmt: skip
    return path


def _one_line_error(capsys, *words: str) -> None:  # noqa: ANN001
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_a_foreign_sqlite_file_is_refused_before_anything_changes(tmp_path, capsys):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (id INTEGER, body TEXT)")
    conn.execute("INSERT INTO notes VALUES (1, 'not a results store')")
    conn.commit()
    conn.close()
    before = _sha(other)
    for readonly in (False, True):
        with pytest.raises(UserError, match="not a racl-bench results store"):
            ResultStore(other, readonly=readonly)
    assert main(["results", "--store", str(other)]) == 2
    _one_line_error(capsys, str(other))
    assert main(["run", *ADHOC, "--store", str(other)]) == 2
    _one_line_error(capsys, "not a racl-bench results store")
    assert _sha(other) == before  # no WAL switch, no schema written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal / -shm left
    conn = sqlite3.connect(other)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    ours = _store(tmp_path / "ours.db")  # the check stays quiet on our own store
    with ResultStore(ours) as store:
        assert len(store.rows()) == 1


def test_a_schema_version_that_is_not_a_number_is_one_line(tmp_path, capsys):
    path = _store(tmp_path / "r.db")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 'abc'")
    conn.commit()
    conn.close()
    before = _sha(path)
    with pytest.raises(UserError, match="schema version 'abc' is not a whole number"):
        ResultStore(path)
    for args in (["results"], ["run", *ADHOC, "--dry-run"], ["run", *ADHOC]):
        assert main([*args, "--store", str(path)]) == 2
        _one_line_error(capsys, str(path), "'abc'")
    out = tmp_path / "report"
    assert main(["report", "--store", str(path), "--out", str(out), "--no-figures"]) == 2
    _one_line_error(capsys, "'abc'")
    assert _sha(path) == before


def _zero_page(path: Path, page: int) -> None:
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    data[(page - 1) * size : page * size] = bytes(size)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("page", [2, 3])
def test_a_zeroed_page_is_one_line_naming_the_file(tmp_path, capsys, page):
    path = _store(tmp_path / "r.db")
    _zero_page(path, page)
    with pytest.raises(UserError, match=str(path)):
        ResultStore(path)
    assert main(["run", *ADHOC, "--store", str(path)]) == 2
    _one_line_error(capsys, str(path))
    out = tmp_path / "report"
    assert main(["report", "--store", str(path), "--out", str(out), "--no-figures"]) == 2
    _one_line_error(capsys, str(path), "malformed")
    assert main(["submit", "m", "--store", str(path), "--out", str(tmp_path / "e.json")]) == 2
    _one_line_error(capsys, str(path), "malformed")


def test_a_healthy_store_passes_the_integrity_check(tmp_path):
    path = _store(tmp_path / "r.db")
    with ResultStore(path) as store:  # quick_check quiet
        assert store.integrity_check(quick=True) == "ok"


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_store_is_read_by_results_report_and_dry_run(tmp_path, capsys, what):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = _store(folder / "r.db")  # WAL, closed: no -shm
    report = folder / "fixture.db"
    shutil.copy(FIXTURE, report)
    before = {p.name: _sha(p) for p in folder.iterdir()}
    for item in [path, report] if what == "file" else [folder]:
        item.chmod(0o444 if what == "file" else 0o555)
    try:
        assert main(["results", "--store", str(path), "--json"]) == 0
        assert '"accuracy": 75.0' in capsys.readouterr().out
        assert main(["run", *ADHOC, "--store", str(path), "--dry-run"]) == 0
        assert "plan (smoke" in capsys.readouterr().out
        out = tmp_path / "report"
        assert main(["report", "--store", str(report), "--out", str(out), "--no-figures"]) == 0
        assert main(["results", "--store", str(report)]) == 0  # an old schema, read as it is
        assert "rows" in capsys.readouterr().out
    finally:
        for item in (folder, path, report):
            item.chmod(0o755 if item.is_dir() else 0o644)
    assert {p.name: _sha(p) for p in folder.iterdir()} == before  # nothing written


def test_a_folder_where_the_shm_cannot_be_made_opens_immutable(tmp_path, monkeypatch):
    """As root a read-only folder does not stop SQLite, so the refusal is made here: the
    ``mode=ro`` open fails as it does for others, and the immutable open reads the store."""
    path = _store(tmp_path / "r.db")  # a writable file: mode=ro comes first
    real = store_open._connect
    opened: list[str] = []

    def connect(target, shown, timeout_s, *, uri):  # noqa: ANN001, ANN202
        opened.append(target)
        if "mode=ro" in target:
            raise UserError(f"results store {shown}: unable to open database file")
        return real(target, shown, timeout_s, uri=uri)

    monkeypatch.setattr(store_open, "_connect", connect)
    with ResultStore(path, readonly=True) as store:
        assert store.rows()[0]["accuracy"] == 75.0
    assert [t.rsplit("?", 1)[1] for t in opened] == ["mode=ro", "immutable=1"]
    monkeypatch.setattr(store_open, "_connect", real)
    with ResultStore(path, readonly=True) as store:  # the fallback stays quiet otherwise
        assert store.rows()


def test_a_failing_run_creates_no_store_file(tmp_path, capsys):
    path = tmp_path / "new" / "r.db"
    for bad in (["--attacks", "nope"], ["--eps", "-1"]):
        assert main(["run", *ADHOC, *bad, "--store", str(path)]) == 2
        capsys.readouterr()
    assert main(["run", "--preset", "smoke", "--models", "resnet18", "--experiment", "table3",
                 "--store", str(path), "--threads", "1"]) == 2  # fmt: skip
    assert "nothing to run" in capsys.readouterr().err
    assert not path.parent.exists()  # neither the file nor its folder


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_whose_process_is_gone_is_marked_interrupted(tmp_path):
    path = _store(tmp_path / "r.db")
    host = socket.gethostname()
    with ResultStore(path) as store:
        ids = [store.begin_run({"argv": ["x"]}) for _ in range(3)]
        store._conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (_dead_pid(), ids[0]))
        store._conn.execute("UPDATE runs SET pid = 1, host = 'elsewhere' WHERE id = ?", (ids[1],))
    with ResultStore(path, readonly=True) as store:  # reading changes nothing
        assert [r["status"] for r in store.runs()] == ["running"] * 3
    with ResultStore(path) as store:
        status = {r["id"]: (r["status"], r["host"]) for r in store.runs()}
    assert status[ids[0]] == ("interrupted", host)  # this host, process gone
    assert status[ids[1]] == ("running", "elsewhere")  # another host: cannot tell
    assert status[ids[2]] == ("running", host)  # this very process: alive


def test_an_old_store_gains_the_run_columns(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    with ResultStore(path) as store:
        run_id = store.begin_run({"argv": ["x"]})
        row = [r for r in store.runs() if r["id"] == run_id][0]
        assert row["pid"] == os.getpid() and row["host"] == socket.gethostname()
        assert len(store.rows()) > 0
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


@pytest.mark.parametrize(
    "raised, status",
    [
        (RuntimeError("disk on fire"), "failed"),
        (KeyboardInterrupt(), "interrupted"),
        ("SIGTERM", "interrupted"),
    ],  # fmt: skip
)
def test_the_run_row_is_closed_on_every_exit_path(tmp_path, monkeypatch, raised, status):
    def boom(self, pending):  # noqa: ANN001, ANN202
        if raised == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        raise raised

    monkeypatch.setattr(runner_mod._Executor, "_run_groups", boom)
    path = tmp_path / "r.db"
    try:
        code = main(["run", *ADHOC, "--store", str(path)])
    except RuntimeError:  # before the CLI's one error path (the errors branch) makes it exit 1
        code = 1
    assert code == (1 if status == "failed" else 130)
    with ResultStore(path) as store:
        (run,) = store.runs()
        assert run["status"] == status and run["finished_at"] is not None
        assert store._conn.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back

"""A store is data, never code; no output may be an input; impossible rows and schemas are named;
SQLite's disk failures exit 1 (issue 33). Each case fired on the code before: a trigger deleted
or falsified rows with exit 0, an output overwrote the store, an edited row printed "178.1 %"."""

from __future__ import annotations

import errno
import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from bench.cli import main
from bench.cli_errors import describe
from bench.results import opening
from bench.results.store import ResultStore
from core.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "report_store.sqlite"
ADHOC = ["run", "--preset", "smoke", "--models", "resnet18", "--attacks", "fgsm",
         "--training", "natural", "--dataset", "mnist", "--n", "8", "--threads", "1",
         "--no-progress"]  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(tmp_path: Path, name: str = "s.db") -> Path:
    path = tmp_path / name
    shutil.copyfile(FIXTURE, path)
    return path


def _one_line(capsys, *words: str) -> str:  # noqa: ANN001
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


HOSTILE = {
    "delete trigger": "CREATE TRIGGER t AFTER INSERT ON results BEGIN DELETE FROM results; END",
    "falsifying trigger": "CREATE TRIGGER t AFTER INSERT ON results BEGIN UPDATE results SET "
    "correct = n, accuracy = 100; END",
    "runs trigger": "CREATE TRIGGER t AFTER INSERT ON runs BEGIN DELETE FROM results; END",
    "view": "CREATE VIEW v AS SELECT * FROM results",
    "foreign table": "CREATE TABLE extra (x)",
    "foreign index": "CREATE INDEX mine ON results (accuracy)",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_store_holding_what_we_did_not_create_is_refused_everywhere(tmp_path, capsys, name):
    store = _copy(tmp_path)
    with sqlite3.connect(store) as conn:
        conn.execute(HOSTILE[name])
    conn.close()
    before = _sha(store)
    assert main([*ADHOC, "--store", str(store)]) == 2
    _one_line(capsys, "did not create", "never code")
    assert main(["results", "--store", str(store)]) == 2
    _one_line(capsys, "did not create")
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "rep")]) == 2
    _one_line(capsys, "did not create")
    for readonly in (True, False):
        with pytest.raises(UserError, match="did not create"):
            ResultStore(store, readonly=readonly)
    assert _sha(store) == before and not (tmp_path / "rep").exists()


def test_our_own_stores_pass_the_object_check(tmp_path):
    with ResultStore(tmp_path / "new.db") as s:  # every table and index of the schema
        assert s.rows() == []
    with ResultStore(_copy(tmp_path), readonly=True) as s:  # an old (schema 2) store
        assert s.rows()


def test_no_output_may_be_an_input(tmp_path, capsys):
    store = _copy(tmp_path)
    before = _sha(store)
    assert main(["submit", "racl_published", "--store", str(store), "--out", str(store)]) == 2
    _one_line(capsys, "would overwrite or hold --store")
    folder = tmp_path / "r2"
    folder.mkdir()
    inside = folder / "index.md"
    shutil.copyfile(store, inside)
    assert main(["report", "--store", str(inside), "--out", str(folder)]) == 2
    _one_line(capsys, "would overwrite or hold --store")
    assert main(["report", "--store", str(store), "--out", ""]) == 2
    _one_line(capsys, "--out is empty")
    assert main(["submit", "racl_published", "--store", str(store), "--out", ""]) == 2
    _one_line(capsys, "--out is empty")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    out = ckpt / "entry.json"
    assert main(["submit", "racl_published", "--store", str(store), "--out", str(out),
                 "--checkpoint-dir", str(ckpt)]) == 2  # fmt: skip
    _one_line(capsys, "--checkpoint-dir")
    assert _sha(store) == before and _sha(inside) == before
    assert sorted(p.name for p in folder.iterdir()) == ["index.md"] and not out.exists()
    # the control: an output elsewhere is written
    assert main(["submit", "racl_published", "--store", str(store), "--out",
                 str(tmp_path / "entry.json")]) == 0  # fmt: skip
    capsys.readouterr()


IMPOSSIBLE = {
    "accuracy 150": ("accuracy = 150.0", "accuracy 150.0"),
    "n 0": ("n = 0", "n is 0"),
    "n -5": ("n = -5", "n is -5"),
    "correct > n": ("correct = n + 1", "correct is"),
    "text in n": ("n = 'many'", "n is 'many'"),
    "text in accuracy": ("accuracy = 'high'", "accuracy 'high'"),
    "unknown kind": ("kind = 'magic'", "kind 'magic'"),
    "bits do not count correct": ("correct = correct - 1, accuracy = 100.0 * (correct - 1) / n",
                                  "per_sample counts"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(IMPOSSIBLE))
def test_an_impossible_row_is_named_and_refused(tmp_path, capsys, name):
    store = _copy(tmp_path)
    change, fault = IMPOSSIBLE[name]
    with sqlite3.connect(store) as conn:
        key = conn.execute(
            "SELECT key FROM results WHERE error IS NULL AND correct > 0 ORDER BY key LIMIT 1"
        ).fetchone()[0]
        conn.execute(f"UPDATE results SET {change} WHERE key = ?", (key,))
    conn.close()
    assert main(["results", "--store", str(store)]) == 2
    _one_line(capsys, key, fault, "impossible")
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "rep")]) == 2
    _one_line(capsys, key, fault)
    assert main(["submit", "racl_published", "--store", str(store), "--out",
                 str(tmp_path / "e.json")]) == 2  # fmt: skip
    _one_line(capsys, key)
    assert not (tmp_path / "e.json").exists()


def test_the_fixture_and_a_fresh_store_have_no_impossible_row(capsys):
    assert main(["results", "--store", str(FIXTURE)]) == 0  # the control of the case above
    capsys.readouterr()


@pytest.mark.parametrize("version", [99, 0, -1])
def test_an_unknown_schema_is_refused_by_every_reader(tmp_path, capsys, version):
    store = _copy(tmp_path)
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (version,))
    conn.close()
    for argv in (["results", "--store", str(store)],
                 ["report", "--store", str(store), "--out", str(tmp_path / "rep")],
                 [*ADHOC, "--store", str(store)]):  # fmt: skip
        assert main(argv) == 2
        _one_line(capsys, f"schema version {version}")


def _sqlite_error(message: str, name: str) -> sqlite3.OperationalError:
    err = sqlite3.OperationalError(message)
    err.sqlite_errorname = name  # what SQLite's module sets on a real one
    return err


def test_sqlite_disk_failures_exit_1_naming_the_file_and_store_faults_exit_2(tmp_path):
    full = opening.translate(_sqlite_error("database or disk is full", "SQLITE_FULL"), "s.db")
    io = opening.translate(_sqlite_error("disk I/O error", "SQLITE_IOERR_WRITE"), "s.db")
    locked = opening.translate(_sqlite_error("database is locked", "SQLITE_BUSY"), "s.db")
    assert isinstance(full, OSError) and full.errno == errno.ENOSPC
    assert describe(full) == ("s.db: SQLite: database or disk is full", 1)
    assert isinstance(io, OSError) and describe(io) == ("s.db: SQLite: disk I/O error", 1)
    assert isinstance(locked, UserError) and describe(locked)[1] == 2
    # a real full disk: SQLite refuses to grow the file past max_page_count
    with ResultStore(tmp_path / "r.db") as s:
        pages = s._conn.execute("PRAGMA page_count").fetchone()[0]
        s._conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(OSError, match="database or disk is full") as err:
            for i in range(200):
                s.put_result({"kind": "clean", "model": f"m{i}", "checkpoint": "c" * 500,
                              "dataset": "mnist", "data_slice": "test[:4]", "n": 4,
                              "correct": 3, "accuracy": 75.0, "per_sample": [1, 1, 1, 0],
                              "seed": i})  # fmt: skip
    assert describe(err.value) == (f"{tmp_path / 'r.db'}: SQLite: database or disk is full", 1)


def test_accuracy_rounded_in_float32_is_possible_and_an_edited_one_is_not():
    import numpy as np

    from bench.results.format import pack_per_sample, row_fault

    bits = np.arange(500) < 265
    row = {"key": "k", "kind": "whitebox", "n": 500, "correct": 265, "error": None,
           "accuracy": 100.0 * float(np.float32(265) / np.float32(500)),  # 52.9999971...
           "per_sample": pack_per_sample(bits)}  # fmt: skip
    assert row["accuracy"] != 53.0 and row_fault(row) is None  # what the runner stores
    assert "accuracy" in row_fault({**row, "accuracy": 53.2})  # one image of 500 is 0.2

"""Results store: schema, keys, per-sample packing, transactions, refusal of foreign files."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from bench.results.store import (
    SCHEMA_VERSION,
    ResultStore,
    pack_per_sample,
    result_key,
    unpack_per_sample,
)
from core.errors import UserError


def _identity(**changes):
    base = {
        "kind": "whitebox",
        "checkpoint": "abc123",
        "dataset": "mnist",
        "data_slice": "test[:64]",
        "attack_key": "pgd(eps=0.3,steps=20)",
        "eps": 0.3,
        "steps": 20,
        "source_checkpoint": None,
        "seed": 0,
    }
    base.update(changes)
    return base


def _row(**changes):
    correct = np.array([True, False, True, True, False], dtype=bool)
    row = {
        **_identity(),
        "model": "darts",
        "training": "pgd_at",
        "preset": "smoke",
        "attack": "pgd",
        "n": len(correct),
        "correct": int(correct.sum()),
        "accuracy": 100.0 * correct.mean(),
        "per_sample": correct,
        "elapsed_s": 0.1,
    }
    row.update(changes)
    return row


def test_result_key_is_stable_and_sensitive():
    assert result_key(_identity()) == result_key(_identity())
    assert result_key(_identity(eps=8 / 255)) == result_key(_identity(eps=0.0313725490196))
    for field, value in [("seed", 1), ("steps", 10), ("checkpoint", "x"), ("kind", "clean")]:
        assert result_key(_identity(**{field: value})) != result_key(_identity())
    with pytest.raises(ValueError):
        result_key({**_identity(), "model": "darts"})


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 131])
def test_per_sample_round_trip(n):
    rng = np.random.default_rng(n)
    bits = rng.random(n) < 0.5
    blob = pack_per_sample(bits)
    assert len(blob) == (n + 7) // 8
    np.testing.assert_array_equal(unpack_per_sample(blob, n), bits)


def test_put_get_rows_and_has(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    key = store.put_result(_row())
    assert key == result_key(_identity())
    assert store.has(key)
    got = store.get(key, decode_per_sample=True)
    assert got["model"] == "darts" and got["correct"] == 3 and got["accuracy"] == 60.0
    np.testing.assert_array_equal(got["per_sample"], [True, False, True, True, False])
    assert isinstance(store.get(key)["per_sample"], bytes)
    # INSERT OR REPLACE: the same key written twice stays one row
    store.put_result(_row(accuracy=40.0, correct=2))
    assert len(store.rows()) == 1 and store.rows()[0]["accuracy"] == 40.0
    store.put_result(_row(model="pc_darts", checkpoint="def"))
    assert [r["model"] for r in store.rows(model=["darts", "pc_darts"])] == ["darts", "pc_darts"]
    assert len(store.rows(model="pc_darts")) == 1
    assert store.rows(source=None) and not store.rows(source="vgg19")
    with pytest.raises(UserError):
        store.rows(nonsense=1)
    store.close()


def test_failed_rows_are_not_cached(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    key = store.put_result(_row(error="RuntimeError: boom", accuracy=None, per_sample=None))
    assert not store.has(key)
    assert store.cached_keys([key]) == set()
    store.put_result(_row())
    assert store.has(key) and store.cached_keys([key, "zz"]) == {key}
    assert store.delete([key]) == 1 and not store.has(key)


def test_runs_checkpoints_trust_and_pragmas(tmp_path):
    path = tmp_path / "r.db"
    store = ResultStore(path)
    run_id = store.begin_run({"argv": ["run", "--preset", "smoke"], "preset": "smoke", "seed": 0})
    store.finish_run(run_id, "ok", {"computed": 3, "timings": {"train_s": 1.5}})
    run = store.runs()[0]
    assert run["status"] == "ok" and '"computed": 3' in run["summary_json"]
    store.put_checkpoint("h1", model="darts", dataset="mnist", training="natural", metrics={})
    assert store.checkpoints()[0]["hash"] == "h1"
    store.add_trust(
        run_id,
        "robust_le_clean",
        model="darts",
        dataset="mnist",
        training="natural",
        detail="ok",
        passed=True,
    )
    assert store.trust_rows(run_id)[0]["passed"] == 1
    assert store.integrity_check() == "ok"
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_reopen_keeps_rows(tmp_path):
    path = tmp_path / "r.db"
    with ResultStore(path) as store:
        key = store.put_result(_row())
    with ResultStore(path) as store:
        assert store.has(key)


def test_foreign_files_are_refused_and_untouched(tmp_path):
    text = tmp_path / "notes.db"
    text.write_bytes(b"hello, this is not sqlite at all\n" * 10)
    before = text.read_bytes()
    with pytest.raises(UserError, match="not a results store"):
        ResultStore(text)
    assert text.read_bytes() == before

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(UserError, match="not a racl-bench results store"):
        ResultStore(other)

    truncated = tmp_path / "trunc.db"
    with ResultStore(truncated) as store:
        store.put_result(_row())
    data = truncated.read_bytes()
    truncated.write_bytes(data[:100])  # SQLite header survives, the rest is gone
    with pytest.raises(UserError):
        ResultStore(truncated).rows()


def test_old_eps_sweep_rows_are_set_aside_on_upgrade(tmp_path):
    """A schema-1 store's eps sweeps were last-iterate verdicts: kept, renamed, never reused."""
    import hashlib
    import json

    path = tmp_path / "v1.db"
    identity = _identity(kind="eps_sweep")
    with ResultStore(path) as store:
        store.put_result(_row(kind="whitebox"))
        canon = {**identity, "eps": round(identity["eps"], 6)}  # the schema-1 key: no revision
        old_key = hashlib.sha256(
            json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        store.put_result(_row(kind="eps_sweep", key=old_key))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 1")
    conn.commit()
    conn.close()

    with ResultStore(path) as store:
        kinds = sorted(r["kind"] for r in store.rows())
        assert kinds == ["eps_sweep_last_iterate", "whitebox"]  # nothing lost
        assert result_key(identity) != old_key  # so the sweep cell is recomputed, not reused
        assert not store.has(result_key(identity))
        assert store.has(result_key(_identity()))  # other kinds keep their keys
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def _older_store(path, version: int, *statements: str):
    """A store of one white-box row made to look like schema ``version`` by ``statements``."""
    with ResultStore(path) as store:
        store.put_result(_row(kind="whitebox"))
    conn = sqlite3.connect(path)
    for statement in (*statements, f"UPDATE schema_version SET version = {version}"):
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path


def test_indicator_rows_round_trip_and_a_schema_2_store_gains_the_table(tmp_path):
    path = _older_store(tmp_path / "v2.db", 2, "DROP TABLE indicators")
    with ResultStore(path) as store:
        assert len(store.rows()) == 1 and store.indicator_rows() == []  # nothing lost
        counts = {"silent_success": [1, 30], "incomplete_optimization": None}
        store.put_indicators(
            {
                "key": "k1",
                "model": "darts",
                "checkpoint": "c",
                "n": 32,
                "revision": 1,
                "label": "PGD-20",
                "eps": 0.3,
                "counts": counts,
            }
        )
        store.put_indicators(
            {
                "key": "k1",
                "model": "darts",
                "checkpoint": "c",
                "n": 16,
                "revision": 1,
                "label": "PGD-20",
                "eps": 0.3,
                "counts": {},
            }
        )
        (row,) = store.indicator_rows(["k1", "other"])
        assert row["n"] == 16 and row["counts"] == {}  # replaced, one row per cell
        assert store.indicator_rows([]) == [] and len(store.indicator_rows()) == 1
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION == 6
    conn.close()


def test_schema_4_store_gains_capacity_columns_old_rows_keep_null(tmp_path):
    added = ("params", "flops", "forward_passes", "backward_passes")  # since schema 4
    path = _older_store(tmp_path / "s.sqlite", 4,
                        *(f"ALTER TABLE results DROP COLUMN {c}" for c in added))  # fmt: skip
    with ResultStore(path) as store:
        (old,) = store.rows()
        assert old["params"] is None and old["flops"] is None and old["forward_passes"] is None
        store.put_result({**_row(kind="clean"), "params": 1234, "flops": 5.6e6,
                          "forward_passes": 1.0, "backward_passes": 0.0})  # fmt: skip
        new = next(r for r in store.rows() if r["kind"] == "clean")
        assert (new["params"], new["flops"], new["forward_passes"]) == (1234, 5.6e6, 1.0)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == 6
    conn.close()

"""``bench results merge`` and the network-filesystem refusal (docs/DISTRIBUTED.md): stores of
separate jobs merge into what one run over all their work writes; a conflict is refused or
settled by a recorded rule; nothing is written on a refusal; a store is not written on NFS."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import pytest

import bench.run.runner as runner_mod
from bench.cli import main
from bench.plan.experiments import get_experiments
from bench.plan.planner import plan
from bench.plan.presets import PresetConfig
from bench.results import filesystems
from bench.results.merge import merge_stores
from bench.results.store import ResultStore
from bench.trust import run_checks
from core.enums import Dataset
from core.errors import UserError

TINY = PresetConfig(
    name="smoke",
    dataset=Dataset.MNIST,
    experiments=("table1", "fig3"),
    n_eval=16,
    n_sweep=16,
    n_trust=8,
    models=("darts",),
    cell_overrides={"init_channels": 2, "layers": 2},
    width_overrides={"width": 2},
    train={
        "natural": {"epochs": 1, "n_train": 64, "batch_size": 32},
        "pgd_at": {"epochs": 1, "n_train": 64, "batch_size": 32, "attack_steps": 1},
    },
    step_checkpoints=(1, 5),
    eps_count=2,
    batch_size=16,
    n_indicator=8,
    n_mono=8,
    n_gap=8,
)


def _job(tmp_path, name, experiments):
    """One job: its own store and checkpoint folder, as on its own node."""
    store = ResultStore(tmp_path / f"{name}.db")
    p = plan(get_experiments(experiments), TINY, store=store, calibrate=False)
    summary = runner_mod.execute(
        p, store, "cpu", progress=False, checkpoint_dir=tmp_path / f"{name}-ckpt"
    )
    assert summary.failed == 0
    store.close()
    return tmp_path / f"{name}.db"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jobs")
    return {
        "a": _job(tmp, "a", ["table1"]),  # the PGD-AT checkpoint is trained here ...
        "b": _job(tmp, "b", ["fig3"]),  # ... and again here: same config, same weights
        "a2": _job(tmp, "a2", ["table1"]),  # all of a's work again
        "both": _job(tmp, "both", ["table1", "fig3"]),  # one run doing everything
    }


def _content(path):
    with ResultStore(path, readonly=True) as s:
        rows = {r["key"]: r for r in s.rows()}
        verdicts = {
            k: (r["n"], r["correct"], bytes(r["per_sample"]), r["error"]) for k, r in rows.items()
        }
        ckpts = {c["hash"]: json.loads(c["metrics_json"])["content_hash"] for c in s.checkpoints()}
        ind = {r["key"]: (r["n"], r["counts"]) for r in s.indicator_rows()}
        checks = {
            (t.check, t.model, t.dataset, t.training, t.detail, t.passed)
            for t in run_checks(s.rows(), s.indicator_rows())
        }
    return verdicts, ckpts, ind, checks


def _latest_trust(path):
    with ResultStore(path, readonly=True) as s:
        rows = s.trust_rows()
    last = max(r["run_id"] for r in rows)
    return {
        (r["check_name"], r["model"], r["dataset"], r["training"], r["detail"], r["passed"])
        for r in rows
        if r["run_id"] == last
    }


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_merged_jobs_equal_one_run_over_all_their_work(jobs, tmp_path, capsys):
    out = tmp_path / "merged.db"
    code, text, _ = _cli(
        capsys, "results", "merge", str(jobs["a"]), str(jobs["b"]), str(jobs["a2"]),
        "--out", str(out),
    )  # fmt: skip
    assert code == 0 and "merged 3 stores" in text
    merged, single = _content(out), _content(jobs["both"])
    assert merged[0] == single[0]  # every key, count and per-sample bit
    assert merged[1] == single[1]  # checkpoints: the same config and content hashes
    assert merged[2] == single[2]  # indicator rows
    assert _latest_trust(out) == _latest_trust(jobs["both"])  # the checks a report reads
    a_keys, b_keys = set(_content(jobs["a"])[0]), set(_content(jobs["b"])[0])
    assert a_keys & b_keys and a_keys - b_keys and b_keys - a_keys  # overlapping and disjoint
    # `bench results --json` and the report's tables are those of the single run
    _, one, _ = _cli(capsys, "results", "--store", str(out), "--json")
    _, two, _ = _cli(capsys, "results", "--store", str(jobs["both"]), "--json")
    assert json.loads(one) == json.loads(two)
    for name, store in (("m", out), ("s", jobs["both"])):
        assert main(["report", "--store", str(store), "--out", str(tmp_path / name)]) in (0, 3)
    capsys.readouterr()
    tables = sorted(p.name for p in (tmp_path / "s").glob("*.md") if p.name != "index.md")
    assert tables
    for name in tables:
        assert (tmp_path / "m" / name).read_text() == (tmp_path / "s" / name).read_text(), name
    with ResultStore(out, readonly=True) as s:
        run = s.runs()[-1]
    record = json.loads(run["summary_json"])
    assert run["status"] == "merged" and record["merged_from"] == [
        str(jobs["a"]), str(jobs["b"]), str(jobs["a2"])
    ] and record["settled"] == []  # fmt: skip


def _tampered(src, dst):
    """A copy of ``src`` whose first white-box row has one verdict flipped (newer)."""
    shutil.copyfile(src, dst)
    conn = sqlite3.connect(dst)
    key, ps, n = conn.execute(
        "SELECT key, per_sample, n FROM results WHERE kind = 'whitebox' ORDER BY key LIMIT 1"
    ).fetchone()
    flipped = bytes([ps[0] ^ 0x80]) + bytes(ps[1:])
    conn.execute(
        "UPDATE results SET per_sample = ?, created_at = created_at + 100 WHERE key = ?",
        (flipped, key),
    )
    conn.commit()
    conn.close()
    return key


def test_a_conflict_is_refused_naming_key_and_stores_or_settled_by_a_recorded_rule(
    jobs, tmp_path, capsys
):
    other = tmp_path / "other.db"
    key = _tampered(jobs["a"], other)
    out = tmp_path / "m.db"
    code, _, err = _cli(capsys, "results", "merge", str(jobs["a"]), str(other), "--out", str(out))
    assert code == 2 and key in err and str(jobs["a"]) in err and str(other) in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert list(tmp_path.glob(".m.db*")) == []  # no temporary file left
    for rule, winner in (("first", jobs["a"]), ("newest", other)):
        out = tmp_path / f"{rule}.db"
        code, text, _ = _cli(capsys, "results", "merge", str(jobs["a"]), str(other),
                             "--out", str(out), "--prefer", rule)  # fmt: skip
        assert code == 0 and f"settled by --prefer {rule}" in text
        with ResultStore(out, readonly=True) as s, ResultStore(winner, readonly=True) as w:
            assert s.get(key)["per_sample"] == w.get(key)["per_sample"]
            record = json.loads(s.runs()[-1]["summary_json"])
        assert record["settled"] == [{
            "table": "results", "key": key, "kept": str(winner), "rule": rule,
            "dropped": str(other if winner == jobs["a"] else jobs["a"]),
        }]  # fmt: skip


def test_a_failed_row_gives_way_to_a_successful_one(jobs, tmp_path):
    failed = tmp_path / "failed.db"
    shutil.copyfile(jobs["a"], failed)
    conn = sqlite3.connect(failed)
    key = conn.execute("SELECT key FROM results ORDER BY key LIMIT 1").fetchone()[0]
    conn.execute("UPDATE results SET error = 'boom', per_sample = NULL WHERE key = ?", (key,))
    conn.commit()
    conn.close()
    done = merge_stores([failed, jobs["a"]], tmp_path / "m.db")
    assert done.replaced_failed == 1 and done.settled == []
    with ResultStore(tmp_path / "m.db", readonly=True) as s:
        assert s.get(key)["error"] is None


def test_bad_outputs_and_inputs_are_refused_with_nothing_written(jobs, tmp_path):
    copy = tmp_path / "copy.db"
    shutil.copyfile(jobs["a"], copy)
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    cases = [
        ([copy, jobs["b"]], copy, "is one of the stores"),
        ([copy, copy], tmp_path / "x.db", "given twice"),
        ([copy], jobs["b"], "exists"),
        ([copy, tmp_path / "none.db"], tmp_path / "y.db", "no results store"),
        ([copy], tmp_path / "no-folder" / "z.db", "does not exist"),
        ([], tmp_path / "w.db", "at least one"),
    ]
    for inputs, out, message in cases:
        with pytest.raises(UserError, match=message):
            merge_stores(inputs, out)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db"]


def test_an_older_store_is_upgraded_on_a_copy_and_a_newer_one_refused(jobs, tmp_path):
    old = tmp_path / "old.db"
    shutil.copyfile(jobs["a"], old)
    conn = sqlite3.connect(old)
    conn.execute("DROP TABLE indicators")  # what a schema-2 store looks like
    conn.execute("UPDATE schema_version SET version = 2")
    conn.commit()
    conn.close()
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    merge_stores([old, jobs["b"]], tmp_path / "m.db")
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before  # the input is not written
    assert set(_content(tmp_path / "m.db")[0]) == set(_content(jobs["a"])[0]) | set(
        _content(jobs["b"])[0]
    )
    new = tmp_path / "new.db"
    shutil.copyfile(jobs["b"], new)
    conn = sqlite3.connect(new)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(UserError, match="schema version 99"):
        merge_stores([jobs["a"], new], tmp_path / "n.db")
    assert not (tmp_path / "n.db").exists()


def _mounts(tmp_path, fs_type, point):
    table = tmp_path / "mounts"
    table.write_text(
        "/dev/sda1 / ext4 rw,relatime 0 0\n"
        "proc /proc proc rw 0 0\n"
        f"server:/export {str(point).replace(' ', chr(92) + '040')} {fs_type} rw 0 0\n"
    )
    return table


@pytest.mark.parametrize("fs_type", ["nfs", "nfs4", "lustre", "gpfs", "cifs", "fuse.sshfs"])
def test_the_detector_fires_on_network_filesystems(tmp_path, fs_type):
    shared = tmp_path / "shared dir"
    table = _mounts(tmp_path, fs_type, shared)
    assert filesystems.filesystem_type(shared / "sub" / "r.db", table) == fs_type
    with pytest.raises(UserError, match="network filesystem .*bench results merge"):
        filesystems.refuse_network_store(shared / "r.db", forced=False, mounts=table)
    assert filesystems.refuse_network_store(shared / "r.db", forced=True, mounts=table) == fs_type


@pytest.mark.parametrize("fs_type", ["ext4", "xfs", "tmpfs", "btrfs", "overlay"])
def test_the_detector_is_quiet_on_local_filesystems(tmp_path, fs_type):
    table = _mounts(tmp_path, fs_type, tmp_path / "local")
    assert filesystems.refuse_network_store(tmp_path / "local" / "r.db", forced=False,
                                            mounts=table) == fs_type  # fmt: skip
    # a path beside the mount is on the root filesystem
    assert filesystems.filesystem_type(tmp_path / "localother" / "r.db", table) == "ext4"


def test_bench_run_refuses_a_store_on_nfs_and_reads_stay_allowed(jobs, tmp_path, monkeypatch,
                                                                 capsys):  # fmt: skip
    shared = tmp_path / "shared"
    shared.mkdir()
    existing = shared / "old.db"
    shutil.copyfile(jobs["a"], existing)
    monkeypatch.setattr(filesystems, "MOUNTS", _mounts(tmp_path, "nfs4", shared))
    store = shared / "r.db"
    args = ["run", "--models", "darts", "--attacks", "fgsm", "--preset", "smoke", "--n", "8",
            "--training", "natural", "--store", str(store), "--no-progress"]  # fmt: skip
    code, _, err = _cli(capsys, *args)
    assert code == 2 and "network filesystem (nfs4)" in err and "bench results merge" in err
    assert not store.exists()
    with pytest.raises(UserError, match="network filesystem"):
        ResultStore(existing)
    assert _cli(capsys, "results", "--store", str(existing))[0] == 0  # reading is allowed
    assert _cli(capsys, "run", *args[1:], "--dry-run")[0] == 0
    code, _, _ = _cli(capsys, *args, "--network-store", "--checkpoint-dir", str(tmp_path / "c"))
    assert code == 0
    with ResultStore(store, readonly=True) as s:
        assert "--network-store" in s.runs()[-1]["argv"]

"""Leases: one live process per cell or checkpoint, stale leases taken over, and two real
``bench run`` processes on one store computing each cell and training each checkpoint once."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.results.store import ResultStore
from bench.run.leases import Leases

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sleeper():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def _foreign(store: ResultStore, key: str, pid: int, host: str, age_s: float = 0.0) -> None:
    beat = time.time() - age_s
    store._conn.execute(
        "INSERT OR REPLACE INTO leases VALUES (?, 'cell', ?, ?, NULL, ?, ?)",
        (key, pid, host, beat, beat),
    )


def test_a_lease_is_ours_until_released(tmp_path, sleeper):
    with ResultStore(tmp_path / "r.db") as store:
        mine = Leases(store, timeout_s=60)
        assert mine.take("k", "cell") and mine.take("k", "cell")  # re-entrant
        other = Leases(store, timeout_s=60)
        other.pid = sleeper  # another live process of this host
        assert not other.take("k", "cell") and other.held_by_other("k")
        mine.release(["k"])
        assert other.take("k", "cell") and not mine.take("k", "cell")
        other.release(["k"])
        assert mine.take("k", "cell")


def test_stale_and_orphaned_leases_are_taken_over(tmp_path, sleeper):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    with ResultStore(tmp_path / "r.db") as store:
        me = Leases(store, timeout_s=60)
        _foreign(store, "alive", sleeper, host)
        _foreign(store, "gone", dead.pid, host)
        _foreign(store, "far", 1, "elsewhere")
        _foreign(store, "far-stale", 1, "elsewhere", age_s=61)
        _foreign(store, "alive-stale", sleeper, host, age_s=61)
        taken = {
            k: me.take(k, "cell") for k in ("alive", "gone", "far", "far-stale", "alive-stale")
        }
    assert taken == {"alive": False, "gone": True, "far": False, "far-stale": True,
                     "alive-stale": True}  # fmt: skip


def test_the_heartbeat_refreshes_and_stop_drops_every_lease(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        leases = Leases(store, heartbeat_s=0.05)
        leases.take("a", "cell")
        leases.take("b", "checkpoint")
        first = store._conn.execute("SELECT heartbeat FROM leases WHERE key='a'").fetchone()[0]
        leases.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            beat = store._conn.execute("SELECT heartbeat FROM leases WHERE key='a'").fetchone()[0]
            if beat > first:
                break
            time.sleep(0.05)
        assert beat > first
        leases.stop()
        assert store._conn.execute("SELECT count(*) FROM leases").fetchone()[0] == 0


RUN = ["run", "--preset", "smoke", "--models", "resnet18,vgg19", "--attacks", "fgsm,pgd20",
       "--training", "natural", "--dataset", "mnist", "--n", "16", "--threads", "1",
       "--no-progress"]  # fmt: skip
SUMMARY = re.compile(r"seed 0: (\d+) computed, (\d+) cached, (\d+) failed")
INDICATORS = re.compile(r"indicators of attack failure: (\d+) cell")


def _start(store: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "bench.cli", *RUN, "--store", str(store)]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.slow  # two real subprocess runs: about 25 s on a busy 2-core machine
def test_two_real_runs_on_one_store_compute_each_cell_once(tmp_path):
    store = tmp_path / "r.db"
    procs = [_start(store), _start(store)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    with ResultStore(store) as s:
        rows, runs = s.rows(), s.runs()
        indicators = s.indicator_rows()
        leases = s._conn.execute("SELECT count(*) FROM leases").fetchone()[0]
    counts = [tuple(int(x) for x in SUMMARY.search(out).groups()) for out, _ in outs]
    assert [r["status"] for r in runs] == ["ok", "ok"] and leases == 0
    assert all(r["error"] is None for r in rows)
    assert sum(c[0] for c in counts) == len(rows)  # computed once between them
    assert all(c[0] + c[1] == len(rows) and c[2] == 0 for c in counts)  # each has the full set
    assert {r["run_id"] for r in rows} <= {r["id"] for r in runs}
    trained = [line for _, err in outs for line in err.splitlines() if "(train" in line]
    assert len(trained) == 2 and len({line.split(": ")[1] for line in trained}) == 2
    done = [int(m.group(1)) for _, err in outs for m in [INDICATORS.search(err)] if m]
    assert sum(done) == len(indicators) == 4  # 2 models x (FGSM, PGD-20)


ADHOC = ["run", "--preset", "smoke", "--models", "resnet18", "--attacks", "fgsm",
         "--training", "natural", "--dataset", "mnist", "--n", "8", "--threads", "1",
         "--no-progress"]  # fmt: skip


@pytest.mark.parametrize("what", ["cell", "checkpoint"])
def test_work_leased_by_a_live_process_waits_and_is_done_when_it_leaves(
    tmp_path, capsys, monkeypatch, what
):
    """Another live process holds the FGSM cell (or the checkpoint) and then dies without
    finishing: this run skips it, comes back, waits, and computes it itself. The holder dies
    when the run starts waiting for that key (an event, not a timer: the order of the run's
    work does not depend on the machine's speed)."""
    from bench.cli import main
    from bench.run.leases import Leases

    assert main([*ADHOC, "--store", str(tmp_path / "first" / "r.db")]) == 0
    with ResultStore(tmp_path / "first" / "r.db") as first:
        fgsm = [r for r in first.rows() if r["attack"] == "fgsm"][0]
        key = fgsm["key"] if what == "cell" else f"checkpoint:{fgsm['checkpoint']}"
    store = tmp_path / "second" / "r.db"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with ResultStore(store) as s:
        _foreign(s, key, other.pid, socket.gethostname())

    def leave() -> None:
        other.kill()
        other.wait()  # reaped: its pid is gone

    waited = []
    tell = Leases._tell

    def waiting(self, k):  # noqa: ANN001, ANN202 - the run says who holds k, then waits
        tell(self, k)
        if k == key and not waited:
            waited.append(k)
            leave()

    monkeypatch.setattr(Leases, "_tell", waiting)
    try:
        assert main([*ADHOC, "--store", str(store)]) == 0
    finally:
        leave()
    assert waited == [key]  # it waited for the other process
    assert f"held by pid {other.pid}" in capsys.readouterr().err
    with ResultStore(store) as s:
        rows = sorted(s.rows(), key=lambda r: r["created_at"])
        assert len(rows) == len(first_rows(tmp_path)) and all(r["error"] is None for r in rows)
        if what == "cell":  # skipped first, come back to: the last of the white-box cells
            assert [r["key"] for r in rows if r["kind"] == "whitebox"][-1] == key


@pytest.mark.parametrize("host", ["this", "other"])
def test_a_frozen_heartbeat_ends_the_wait_even_in_the_future(tmp_path, capsys, host):
    """A lease whose heartbeat lies an hour ahead (clock skew, or a forged row) held by a live
    process of this host: the wait ends once the heartbeat has not moved for the timeout, and
    says who held it. Before, it waited forever."""
    import threading

    from bench.run.leases import Leases

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with ResultStore(tmp_path / "r.db") as s:
            owner = socket.gethostname() if host == "this" else "node-with-a-fast-clock"
            _foreign(s, "cell-x", other.pid, owner)
            s._conn.execute("UPDATE leases SET heartbeat = ?", (time.time() + 3600,))
        done = []

        def wait() -> None:  # its own connection: SQLite's belong to one thread
            with ResultStore(tmp_path / "r.db") as s:
                leases = Leases(s, timeout_s=0.3)
                assert leases.held_by_other("cell-x")  # live, and its heartbeat is new
                leases.wait_free("cell-x", poll_s=0.05)
                done.append(leases.held_by_other("cell-x"))
                done.append(leases.take("cell-x", "cell"))

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        thread.join(timeout=120)  # a bound on a hang, not a race: it returns in ~0.3 s
        assert done == [False, True]
        err = capsys.readouterr().err
        assert f"held by pid {other.pid}" in err and "in the future" in err
    finally:
        other.kill()
        other.wait()


def test_workers_are_capped_at_the_cores(tmp_path, capsys):
    from bench.cli import main

    assert main([*ADHOC, "--store", str(tmp_path / "r.db"), "--workers", "100000"]) == 2
    err = capsys.readouterr().err
    assert "--workers 100000 is above this machine's" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.db").exists()


def first_rows(tmp_path: Path) -> list[dict]:
    with ResultStore(tmp_path / "first" / "r.db") as s:
        return s.rows()

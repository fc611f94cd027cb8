"""``bench run --workers N``: helper processes share one run through the store's leases; a
process trains the next checkpoint and computes the next indicator row that no other holds
instead of waiting for it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import pytest
from test_leases import _foreign

from bench.results.store import ResultStore
from bench.run import workers
from bench.run.leases import Leases
from core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
RUN = ["run", "--preset", "smoke", "--models", "resnet18,vgg19", "--attacks", "fgsm,pgd20",
       "--training", "natural", "--dataset", "mnist", "--n", "16", "--no-progress"]  # fmt: skip
TRAINED = re.compile(r"checkpoint (\S+): (\w+) \(train")


def test_the_role_comes_from_the_environment():
    assert workers.role({}) == workers.WorkerRole() and not workers.role({}).helper
    helper = workers.role({workers.ENV: "2:1:7"})
    assert helper.helper and (helper.index, helper.threads, helper.seed) == (2, 1, 7)
    with pytest.raises(UserError, match="K:THREADS:SEED"):
        workers.role({workers.ENV: "2:one"})


def test_workers_are_checked_and_the_threads_split():
    with pytest.raises(UserError, match=">= 1"):
        workers.check_workers(0, distributed_run=False)
    with pytest.raises(UserError, match="torchrun"):
        workers.check_workers(2, distributed_run=True)
    workers.check_workers(1, distributed_run=True)
    assert [workers.threads_each(n, 4) for n in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]


def test_a_helper_that_ends_abnormally_is_named_and_the_others_are_not():
    """``Helpers.finish``: statuses 0, 1 (failed cells) and 3 (--strict) are normal; any other
    is one warning line naming the worker."""
    procs = [subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
             for code in (0, 1, 3, 5)]  # fmt: skip
    relays = [threading.Thread(target=workers._relay, args=(p, k)) for k, p in enumerate(procs)]
    for relay in relays:
        relay.start()
    said: list[str] = []
    workers.Helpers(procs, relays).finish(said.append)
    assert said == ["warning: worker 4 exited with status 5"]


def _first_run(tmp_path: Path, capsys) -> ResultStore:  # noqa: ANN001
    from bench.cli import main

    path = tmp_path / "first" / "r.db"
    assert main([*RUN, "--threads", "1", "--store", str(path)]) == 0
    capsys.readouterr()
    return ResultStore(path)


@pytest.fixture
def other():
    """A live process of this host standing in for another worker; ``leave()`` ends it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def leave() -> None:
        proc.kill()
        proc.wait()

    proc.leave = leave  # type: ignore[attr-defined]
    yield proc
    leave()


def _run_while_held(tmp_path: Path, key: str, other: subprocess.Popen) -> Path:
    """The run on a new store whose lease ``key`` ``other`` holds until the run has nothing else
    to do and waits for it (``Leases.wait_free`` on ``key``): then ``other`` leaves. No timer, so
    a slow machine cannot let the lease lapse before the run has passed it over."""
    from bench.cli import main

    store = tmp_path / "second" / "r.db"
    with ResultStore(store) as s:
        _foreign(s, key, other.pid, socket.gethostname())
    wait_free = Leases.wait_free

    def leave_when_waited_on(self: Leases, waited: str, **kwargs: float) -> None:
        if waited == key:
            other.leave()  # type: ignore[attr-defined]
        wait_free(self, waited, **kwargs)

    with mock.patch.object(Leases, "wait_free", leave_when_waited_on):
        assert main([*RUN, "--threads", "1", "--store", str(store)]) == 0
    return store


def test_a_held_checkpoint_is_passed_over_for_the_next(tmp_path, capsys, other):
    """Another process trains the first checkpoint: this run trains the second meanwhile and
    comes back to the first when the other is gone (before: it waited on the first)."""
    with _first_run(tmp_path, capsys) as first:
        rows = first.rows()
    by_created = sorted(rows, key=lambda r: r["created_at"])
    first_ckpt = by_created[0]["checkpoint"]  # the plan's first checkpoint
    store = _run_while_held(tmp_path, f"checkpoint:{first_ckpt}", other)
    err = capsys.readouterr().err
    order = [m.group(2) for m in TRAINED.finditer(err)]
    assert len(order) == 2 and order[-1] == first_ckpt  # the other one was trained first
    with ResultStore(store) as s:
        assert len(s.rows()) == len(rows) and all(r["error"] is None for r in s.rows())


def test_a_held_indicator_row_is_passed_over_for_the_next(tmp_path, capsys, other):
    with _first_run(tmp_path, capsys) as first:
        indicators = sorted(first.indicator_rows(), key=lambda r: r["created_at"])
    assert len(indicators) == 4
    held = indicators[0]["key"]  # computed first when nothing is held
    store = _run_while_held(tmp_path, f"indicators:{held}", other)
    with ResultStore(store) as s:
        again = sorted(s.indicator_rows(), key=lambda r: r["created_at"])
    assert len(again) == 4 and again[-1]["key"] == held


@pytest.mark.slow  # a run with a helper process: about 20 s on a busy 2-core machine
def test_a_run_with_two_workers_computes_each_cell_once(tmp_path):
    store = tmp_path / "r.db"
    env = {k: v for k, v in os.environ.items() if k != workers.ENV}
    args = [sys.executable, "-m", "bench.cli", *RUN, "--store", str(store), "--workers", "2",
            "--threads", "2", "--fresh"]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "workers: 2 processes, 1 thread(s) each" in done.stderr
    helper_lines = [line for line in done.stderr.splitlines() if line.startswith("[worker 1] ")]
    assert helper_lines and "Traceback" not in done.stderr
    with ResultStore(store) as s:
        rows, runs = s.rows(), s.runs()
        leases = s._conn.execute("SELECT count(*) FROM leases").fetchone()[0]
        indicators = s.indicator_rows()
    assert len(runs) == 2 and [r["status"] for r in runs] == ["ok", "ok"] and leases == 0
    plan = subprocess.run([*args[:-1], "--dry-run", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert len(rows) == json.loads(plan.stdout)["cells"] and all(r["error"] is None for r in rows)
    assert len(indicators) == 4
    trained = TRAINED.findall(done.stderr)
    assert len(trained) == 2 and len({h for _, h in trained}) == 2  # each trained once
    seed_line = re.search(r"seed 0: (\d+) computed, (\d+) cached, (\d+) failed", done.stdout)
    assert seed_line is not None and int(seed_line.group(3)) == 0
    helper_done = re.search(r"\[worker 1\] (\d+) computed, (\d+) cached", done.stderr)
    assert helper_done is not None
    computed = int(seed_line.group(1)) + int(helper_done.group(1))
    assert computed == len(rows)  # between them, each cell once

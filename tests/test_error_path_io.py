"""The error path through real processes: a closed pipe, a full stdout, a full disk while
writing. Each ends in at most one stderr line and its exit code (docs/decisions/errors.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_STORE = Path(__file__).parent / "fixtures" / "report_store.sqlite"


def _bench(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, **kw)


def test_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """``bench run --dry-run | head``: the reader goes away; no traceback, exit 141 (SIGPIPE)."""
    args = ["run", "--dry-run", "--models", "resnet18", "--attacks", "pgd20", "--store",
            str(tmp_path / "absent.db"), "--threads", "1"]  # fmt: skip
    with open(tmp_path / "err.txt", "wb") as err:
        proc = _bench(args, tmp_path, stdout=subprocess.PIPE, stderr=err)
        proc.stdout.close()  # the reader is gone before anything is written
        assert proc.wait(timeout=120) == 141
    assert (tmp_path / "err.txt").read_text() == ""
    assert not (tmp_path / "absent.db").exists()


def test_a_full_stdout_is_one_line(tmp_path: Path) -> None:
    """``bench zoo --json > /dev/full``: one line naming the fault, exit 1."""
    with open("/dev/full", "wb") as full:
        proc = _bench(["zoo", "--json"], tmp_path, stdout=full, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, err
    assert lines[0].startswith("bench: error: ") and "No space left" in lines[0]


def test_a_full_disk_while_writing_a_report_is_one_line(tmp_path: Path) -> None:
    """Files capped at 200 bytes (RLIMIT_FSIZE, SIGXFSZ ignored): writes fail with EFBIG as on
    a full disk; one line naming the file, exit 1 (a failure while computing)."""
    import resource
    import signal

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    out = tmp_path / "report"
    args = ["report", "--store", str(FIXTURE_STORE), "--out", str(out), "--no-figures"]
    proc = _bench(args, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  preexec_fn=small_files)  # fmt: skip
    _, err = proc.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"bench: error: {out}") and "File too large" in lines[0]

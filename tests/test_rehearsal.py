"""Rehearsal: full-size models, recipe settings, CIFAR-10 read by torchvision's own CIFAR10 class
from small files written here in its on-disk format (no download)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.presets import PRESETS
from bench.training import ensure_trained
from core.data import load_split
from core.enums import Dataset, Training


def write_cifar10(folder: Path, per_batch: int = 8, seed: int = 0) -> None:
    """``cifar-10-batches-py`` as torchvision reads it: pickled dicts of uint8 rows and labels."""
    rng = np.random.default_rng(seed)
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, per_batch).tolist(),
        }
        (root / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta))


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    from core.torchvision_guard import import_torchvision

    cifar = import_torchvision().datasets.cifar
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)  # our files: not the md5s
    monkeypatch.setenv("RACL_BENCH_OFFLINE", "1")
    write_cifar10(tmp_path / "data")
    return tmp_path / "data"


def test_cifar_loads_through_torchvision_from_its_on_disk_format(cifar_dir):
    x, y = load_split("cifar10", "train", cifar_dir)
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (40,)
    raw = pickle.loads((cifar_dir / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    first = torch.from_numpy(raw["data"][0].reshape(3, 32, 32)).float() / 255
    assert torch.equal(x[0], first) and y[0].item() == raw["labels"][0]


@pytest.mark.parametrize("training", [Training.NATURAL, Training.PGD_AT])
def test_full_size_darts_trains_by_its_rehearsal_recipe(cifar_dir, tmp_path, training):
    preset = PRESETS["rehearsal"]
    cfg, extra, recipe = preset.train_config("darts", training, Dataset.CIFAR10)
    assert recipe.startswith("cell-") and preset.overrides_for("darts") == {}  # full size
    small = replace(cfg, n_train=8, batch_size=4, attack_steps=1, n_holdout=4)
    model, meta = ensure_trained("darts", "cifar10", small, model_overrides=extra,
                                 checkpoint_dir=tmp_path / "ck", device="cpu", data_dir=cifar_dir,
                                 progress=False)  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) > 3_000_000  # 36 channels x 20 cells
    assert (
        meta["metrics"]["epochs"][0]["images"] == 8
        and "holdout_pgd" in meta["metrics"]["epochs"][0]
    )
    assert cfg.cutout == (16 if training is Training.NATURAL else 0)

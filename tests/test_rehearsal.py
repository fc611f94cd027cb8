"""Rehearsal: full-size models, recipe settings, CIFAR-10 read by torchvision's own CIFAR10 class
from small files written here in its on-disk format (no download)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.plan.presets import PRESETS
from bench.training.trainer import ensure_trained
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


@pytest.mark.slow  # about 55 s: a full-size ResNet-18 trains on two batches of 128 with PGD-7
def test_the_report_and_submission_stages_run_at_full_size(cifar_dir, tmp_path, monkeypatch):
    """The rehearsal's last two stages on a full-size ResNet-18 (CIFAR-10 through torchvision):
    `bench submit --run-autoattack --preset rehearsal` trains it by its rehearsal recipe, runs
    the original AutoAttack capped at two iterations per member and writes an entry marked as
    no result; `bench report` reads that store."""
    import json

    from bench.cli import main

    data = tmp_path / "data64"  # the rehearsal trains on 256 images and evaluates 32
    write_cifar10(data, per_batch=64)
    monkeypatch.setenv("RACL_BENCH_DATA", str(data))
    store, out = tmp_path / "rehearsal.sqlite", tmp_path / "entry.json"
    args = ["submit", "resnet18", "--store", str(store), "--out", str(out), "--dataset",
            "cifar10", "--run-autoattack", "--preset", "rehearsal"]  # fmt: skip
    assert main(args) == 0
    entry = json.loads(out.read_text())
    assert entry["name"].startswith("REHEARSAL") and "NOT A RESULT" in entry["footnote"]
    assert entry["dataset"] == "cifar10" and entry["eps"] == "8/255"
    sidecars = list((tmp_path / "checkpoints").glob("*.json"))
    assert len(sidecars) == 1
    config = json.loads(sidecars[0].read_text())["training"]
    assert config["attack_steps"] == 7 and config["epochs"] == 1  # the recipe's PGD-7, one epoch
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "index.md").is_file()


def test_a_failed_autoattack_run_says_why_and_writes_no_entry(cifar_dir, tmp_path, monkeypatch,
                                                              capsys):  # fmt: skip
    from bench.cli import main

    data = tmp_path / "data40"  # 200 training images: too few for the rehearsal's 256
    write_cifar10(data, per_batch=40)
    monkeypatch.setenv("RACL_BENCH_DATA", str(data))
    out = tmp_path / "entry.json"
    args = ["submit", "resnet18", "--store", str(tmp_path / "s.sqlite"), "--out", str(out),
            "--dataset", "cifar10", "--run-autoattack", "--preset", "rehearsal"]  # fmt: skip
    assert main(args) == 1 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: the AutoAttack run failed: ")
    assert "number of images must be in [1, 200], got 256" in err[0]

"""``bench run --seeds``: one plan and run per global seed, each with its own checkpoints."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from bench.plan.experiments import get_experiments
from bench.plan.planner import plan
from bench.plan.presets import PRESETS, PresetConfig
from bench.plan.run_request import parse_seeds
from bench.results.store import ResultStore
from core.enums import Dataset
from core.errors import UserError

TINY = PresetConfig(
    name="smoke",
    dataset=Dataset.MNIST,
    experiments=("table1",),
    n_eval=16,
    n_sweep=16,
    n_trust=8,
    models=("resnet18",),
    width_overrides={"width": 2},
    train={"natural": {"epochs": 1, "n_train": 64, "batch_size": 32}},
    batch_size=16,
)


def test_parse_seeds():
    assert parse_seeds(None, None) == [0]
    assert parse_seeds(3, None) == [3]
    assert parse_seeds(None, "0,1, 2") == [0, 1, 2]
    for bad in ("0,0", "-1", "a", ","):
        with pytest.raises(UserError):
            parse_seeds(None, bad)
    with pytest.raises(UserError, match="exclude each other"):
        parse_seeds(1, "0,1")


def test_each_seed_trains_its_own_checkpoints_and_keys_its_own_cells():
    plans = [plan(get_experiments(["table1"]), TINY, seed=s, calibrate=False) for s in (0, 1)]
    hashes = [set(p.refs) for p in plans]
    assert hashes[0] and not hashes[0] & hashes[1]
    assert all(r.cfg.seed == s for s, p in enumerate(plans) for r in p.refs.values())
    keys = [{c.key for c in p.cells} for p in plans]
    assert len(keys[0]) == len(keys[1]) and not keys[0] & keys[1]
    slices = [{c.data_slice for c in p.cells} for p in plans]
    assert slices[0] == slices[1]  # the same test images: seeds pair image by image


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(PRESETS, "smoke", TINY)


def test_cli_runs_every_seed_into_one_store(tmp_path, capsys, tiny_preset):
    store = str(tmp_path / "r.db")
    args = ["run", "--preset", "smoke", "--store", store, "--models", "resnet18",
            "--attacks", "fgsm", "--training", "natural", "--json", "--no-progress",
            "--seeds", "0,1"]  # fmt: skip
    assert main([*args, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert [d["seed"] for d in dry] == [0, 1] and all(d["to_compute"] == 3 for d in dry)
    assert main(args) == 0
    done = json.loads(capsys.readouterr().out)
    assert [d["computed"] for d in done] == [3, 3]
    with ResultStore(store) as opened:
        rows = opened.rows()
        runs = opened.runs()
    assert sorted(r["seed"] for r in rows) == [0, 0, 0, 1, 1, 1]
    assert len({r["checkpoint"] for r in rows if r["kind"] == "clean"}) == 2
    assert [r["seed"] for r in runs] == [0, 1]
    assert main(args) == 0
    assert [d["computed"] for d in json.loads(capsys.readouterr().out)] == [0, 0]

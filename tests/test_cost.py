"""The cost estimate counts FLOPs on the meta device and falls back when counting fails."""

from __future__ import annotations

import pytest

from bench import cost
from bench.cells import ModelRef
from bench.experiments import get_experiments
from bench.planner import plan
from bench.presets import PRESETS
from core.enums import Dataset, Training


def _ref(model: str, overrides: tuple = ()) -> ModelRef:
    return ModelRef(model, Training.NATURAL, Dataset.MNIST, overrides, "h", None)


def test_forward_rate_is_throughput_over_counted_flops():
    flops = cost.forward_flops("resnet18", (("width", 4),), Dataset.MNIST)
    assert flops is not None and 1e6 < flops < 1e8
    rate = cost.forward_rate(_ref("resnet18", (("width", 4),)))
    assert rate == pytest.approx(cost.device_throughput() / flops)
    wider = cost.forward_flops("resnet18", (("width", 8),), Dataset.MNIST)
    assert wider > 2 * flops  # FLOPs grow with the width (about its square)


def test_uncountable_model_falls_back_to_the_default_rate():
    assert cost.forward_flops("no_such_model", (), Dataset.MNIST) is None
    assert cost.forward_rate(_ref("no_such_model")) == cost.DEFAULT_RATE


def test_calibrated_plan_builds_models_on_the_meta_device_only(monkeypatch):
    import torch

    import models

    real = models.create_model
    devices: list[str] = []

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        devices.append(torch.empty(0).device.type)  # the default device while building
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "create_model", spy)
    cost.forward_flops.cache_clear()
    try:
        p = plan(get_experiments(["table1"]), PRESETS["paper"], dataset=Dataset.CIFAR10)
    finally:
        cost.forward_flops.cache_clear()
    assert devices and set(devices) == {"meta"}
    assert len(p.rates) > 5 and all(r != cost.DEFAULT_RATE for r in p.rates.values())
    assert p.estimate()["total_s"] > 0

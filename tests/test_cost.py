"""The cost estimate counts FLOPs on the meta device and falls back when counting fails."""

from __future__ import annotations

import json

import pytest

from bench.plan import cost
from bench.plan.experiments import get_experiments
from bench.plan.planner import plan
from bench.plan.presets import PRESETS
from bench.plan.units import ModelRef
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
    monkeypatch.setattr(cost, "_table", dict)  # count, do not read the committed table
    cost._profile.cache_clear()
    try:
        p = plan(get_experiments(["table1"]), PRESETS["paper"], dataset=Dataset.CIFAR10)
    finally:
        cost._profile.cache_clear()
    assert devices and set(devices) == {"meta"}
    assert len(p.rates) > 5 and all(r != cost.DEFAULT_RATE for r in p.rates.values())
    assert cost.plan_estimate(p)["total_s"] > 0


def test_hook_count_equals_flop_counter_mode():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models import create_model

    for name, overrides in (("darts", {"init_channels": 4, "layers": 3}), ("vgg19", {"width": 8})):
        with torch.device("meta"):
            model = create_model(name, dataset="mnist", **overrides).eval()
        x = torch.empty(1, 1, 28, 28, device="meta")
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        assert cost.count_flops(model, x) == counter.get_total_flops() > 0


def test_committed_table_matches_fresh_counts_and_covers_the_presets():
    table = cost._table()
    for key in [k for k in table if "mnist" in k][:3]:  # small entries: cheap to recount
        name, overrides, dataset = key.split("|")
        items = tuple(tuple(kv) for kv in json.loads(overrides))
        assert list(cost.count_profile(name, items, Dataset.parse(dataset))) == table[key]
    for preset in PRESETS.values():
        p = plan(get_experiments(list(preset.experiments)), preset, calibrate=False)
        for ref in p.refs.values():
            name = "racl_published" if ref.needs_search else ref.model
            assert cost.table_key(name, ref.overrides, ref.dataset) in table, ref.label


def test_cpu_rate_is_bounded_by_operator_overhead():
    small = (("init_channels", 4), ("layers", 3))
    ref = _ref("darts", small)
    flops = cost.forward_flops("darts", small, Dataset.MNIST)
    leaves = cost.leaf_modules("darts", small, Dataset.MNIST)
    if cost.device_throughput() == cost.CUDA_FLOPS:
        pytest.skip("the CPU rule")
    overhead = cost.CPU_LEAF_S * leaves / 128
    assert overhead > flops / cost.CPU_FLOPS  # tiny cell network: overhead-bound
    assert cost.forward_rate(ref) == pytest.approx(1 / overhead)
    assert cost.forward_rate(ref, batch=256) == pytest.approx(2 / overhead)
    assert cost.forward_rate(ref, gpu=True) == pytest.approx(cost.CUDA_FLOPS / flops)


def test_paper_dry_run_lists_recipe_epochs_and_gpu_hours():
    p = plan(get_experiments(["table1"]), PRESETS["paper"], dataset=Dataset.CIFAR10)
    info = cost.plan_json(p)["training_plan"]
    rows = {(r["model"], r["training"]): r for r in info["checkpoints"]}
    assert rows[("darts", "natural")]["epochs"] == 600
    assert rows[("darts", "natural")]["recipe"] == "cell-natural-cifar10"
    assert rows[("darts", "pgd_at")]["epochs"] == 200
    assert info["gpu_hours"] == pytest.approx(sum(r["gpu_hours"] for r in rows.values()), abs=0.01)
    assert info["gpu_hours"] > 10 and "GPU" in info["gpu_assumed"]

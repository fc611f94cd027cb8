"""AutoAttack and the batch-norm-folded copy: a ``version='custom'`` member subset (the gap
check's APGD-CE + APGD-T) calls the model through ``core.fold.call`` (channels_last where the run
asks), the standard version never (RobustBench's path, a leaderboard entry's images), and the
effort counter counts both alike. Also the CPU layout rule of ``bench run``: zoo networks whose
batch norms fold run channels_last, compiled or eager; a user's model and DenseNet do not."""

from __future__ import annotations

import dataclasses

import torch
from test_fold import _random_statistics
from test_fold_eager import _data

from bench.attacks import counting, parse_attack
from bench.attacks.registry import build_attack
from bench.run import compile_policy
from core import fold
from models import create_model

CUSTOM = "autoattack(version='custom',attacks='apgd-ce,apgd-t',targets=2)"


def _model():
    torch.manual_seed(0)
    return _random_statistics(create_model("resnet18", dataset="mnist", width=4)).eval()


def _calls(monkeypatch) -> list[bool]:
    """Record each fold.call (whether it ran channels_last) as AutoAttack makes it."""
    seen: list[bool] = []
    real = fold.call

    def spy(model, x, channels_last=False):
        seen.append(bool(channels_last) and x.is_contiguous(memory_format=torch.channels_last))
        return real(model, x, channels_last)

    monkeypatch.setattr(fold, "call", spy)
    return seen


def test_the_gap_checks_subset_goes_through_the_folded_copy_and_standard_autoattack_does_not(
    monkeypatch,
):
    model = _model()
    x, _ = _data(6)
    with torch.no_grad():
        y = model(x).argmax(1)
    custom = build_attack(parse_attack(CUSTOM, eps=0.1, dataset="mnist"))
    standard = build_attack(parse_attack("autoattack", eps=0.1, dataset="mnist"))
    assert custom.folds and not standard.folds
    assert not build_attack(parse_attack(CUSTOM, eps=0.1), fold=False).folds
    seen = _calls(monkeypatch)
    custom(model, x, y)
    assert seen and not any(seen)  # through the fold, NCHW as the run asks
    seen.clear()
    build_attack(parse_attack(CUSTOM, eps=0.1), channels_last=True)(model, x, y)
    assert seen and all(seen)  # the images channels_last on every call
    assert model.stem[0].weight.is_contiguous()  # the copy carries the layout, not the model
    seen.clear()
    build_attack(parse_attack(CUSTOM, eps=0.1), fold=False)(model, x, y)
    assert not seen  # the reference path calls the model itself
    assert fold.folded(model) is not model  # a model the fold could have taken


def test_a_folding_autoattack_counts_the_same_passes_and_finds_the_same_verdicts():
    model = _model()
    x, _ = _data(8)
    with torch.no_grad():
        y = model(x).argmax(1)  # every image clean-correct: AutoAttack attacks them all
    counter = counting.PassCounter()
    counter.attach(model)
    counts, verdicts = [], []
    for fold_on in (True, False):
        start = counter.snapshot()
        x_adv = build_attack(parse_attack(CUSTOM, eps=0.05), fold=fold_on)(model, x, y)
        counts.append(counter.since(start))
        with torch.no_grad():
            verdicts.append(model(x_adv).argmax(1) == y)
        assert (x_adv - x).abs().max() <= 0.05 + 1e-6
    assert counts[0] == counts[1] and counts[0][1] > 0
    assert torch.equal(verdicts[0], verdicts[1])


def _ref(model: str, factory=None):
    return type("Ref", (), {"model": model, "factory": factory})()


def test_zoo_networks_whose_batch_norms_fold_run_channels_last_on_a_cpu():
    for name in ("darts", "racl_published", "robnet_small", "resnet18", "vgg19"):
        assert compile_policy.channels_last_on_cpu(_ref(name)), name
    assert not compile_policy.channels_last_on_cpu(_ref("densenet121"))
    assert not compile_policy.channels_last_on_cpu(_ref("darts", factory="user.py:net"))
    assert compile_policy.channels_last_on_cpu(_ref("racl_table5_eta0.9_rho0.001"))


def test_run_options_set_channels_last_eager_on_a_cpu_and_leave_cuda_alone():
    from test_compiled import _smoke_plan

    p = _smoke_plan()
    off = compile_policy.run_options("off", "off", p, "cpu")
    assert off["channels_last_checkpoints"] == frozenset(p.refs) and not off["compile"]
    for h in p.refs:
        assert compile_policy.options_for(off, h)["channels_last"] is True
    user = next(iter(p.refs))
    p.refs[user] = dataclasses.replace(p.refs[user], factory="user.py:net")
    kept = compile_policy.run_options("auto", "off", p, "cpu")["channels_last_checkpoints"]
    assert kept == frozenset(p.refs) - {user}
    assert "channels_last" not in compile_policy.options_for({"compile": False}, user)

"""Batch norm folded into convolutions for the compiled attack step (core.fold)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.attacks import AttackSpec, build_attack, parse_attack
from bench.evaluate import clean_correct, whitebox_correct
from bench.plan.presets import PRESETS
from bench.training.config import TrainConfig
from bench.training.trainer import train
from core import compiled, fold
from core.data import eval_tensors, train_loader
from models import create_model


@pytest.fixture(autouse=True)
def fresh_cache():
    compiled.reset()
    yield
    compiled.reset()


def bn_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, 2, 2, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, 2, 2),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


def _random_statistics(model: nn.Module) -> nn.Module:
    """Running statistics and affine terms far from the identity, so a fold that is wrong
    shows (a fresh batch norm is mean 0, var 1, gamma 1, beta 0: nearly nothing to fold)."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 2 + 0.2)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return model.eval()


def _grad_and_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    x = x.detach().requires_grad_(True)
    logits = model(x)
    return torch.autograd.grad(F.cross_entropy(logits, y), x)[0], logits.detach()


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_demo_darts_folds_to_the_same_function():
    torch.manual_seed(3)  # the init where a kink tips (see below)
    model = _random_statistics(
        create_model("darts", dataset="mnist", **dict(PRESETS["demo"].cell_overrides))
    )
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 10
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy_, count = fold.fold_batchnorm(model)
    # every batch norm that follows a convolution in a sequential block: the stem, the
    # ReLU-conv-BN preprocessing and every separable or dilated conv; the factorized
    # reductions' batch norm follows a concatenation and stays
    assert count >= 20 and _count_bn(copy_) == _count_bn(model) - count
    g0, l0 = _grad_and_logits(model, x, y)
    g1, l1 = _grad_and_logits(copy_, x, y)
    assert torch.allclose(l1, l0, rtol=1e-4, atol=1e-5)
    # the same gradient but where rounding tips a ReLU or max-pool kink the other way (seen on
    # about 1 init in 12: a 1 % change of one entry), so compared as a whole
    assert (g1 - g0).norm() <= 1e-3 * g0.norm()
    after = model.state_dict()  # the model itself is untouched
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not p.requires_grad for p in copy_.parameters())  # input gradients only
    assert any(p.requires_grad for p in model.parameters())


def test_only_the_same_function_is_folded():
    class Reordered(nn.Sequential):  # a Sequential whose forward is not the chain
        def forward(self, x):
            return self[1](self[0](x) * 2.0)

    hooked = _random_statistics(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
    hooked[1].register_forward_hook(lambda m, i, o: o + 1.0)
    training = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).train()
    batch_stats = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    for model in (
        _random_statistics(Reordered(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))),
        _random_statistics(nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 4, 3))),  # BN first
        _random_statistics(batch_stats),
        hooked,
        training,
    ):
        assert fold.fold_batchnorm(model)[1] == 0, model
    assert fold.folded(training) is training
    plain = _random_statistics(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
    assert fold.fold_batchnorm(plain)[1] == 1


def test_a_model_with_nothing_to_fold_or_that_cannot_be_copied_is_used_as_it_is():
    class Uncopyable(nn.Sequential):
        def __deepcopy__(self, memo):
            raise TypeError("no copies")

    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()).eval()
    odd = _random_statistics(Uncopyable(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
    assert fold.folded(plain) is plain and fold.folded(odd) is odd


@pytest.mark.parametrize("change", ["in_place", "load_state_dict", "data", "buffer"])
def test_a_changed_model_is_folded_again(change):
    model = _random_statistics(bn_cnn())
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    first = fold.folded(model)
    assert first is not model and fold.folded(model) is first  # one copy while unchanged
    conv = model[0]
    with torch.no_grad():
        if change == "in_place":  # an optimizer step
            conv.weight.add_(0.5)
        elif change == "load_state_dict":  # another checkpoint into the same object
            state = copy.deepcopy(model.state_dict())
            state["0.weight"] += 0.5
            model.load_state_dict(state)
        elif change == "data":
            conv.weight.data = conv.weight.data + 0.5
        else:
            model[1].running_mean.add_(0.5)
    again = fold.folded(model)
    assert again is not first
    assert torch.allclose(again(x), model(x), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(first(x), model(x), rtol=1e-4, atol=1e-5)  # the stale copy


def test_the_compiled_attack_step_uses_the_folded_model(monkeypatch):
    seen = []
    real = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda m, **kw: seen.append(m) or real(m, backend="eager")
    )
    model = _random_statistics(bn_cnn())
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    out = compiled.static_forward(model, x)
    assert len(seen) == 1 and seen[0] is not model and _count_bn(seen[0]) == 0
    assert torch.allclose(out, model(x), rtol=1e-4, atol=1e-5)
    assert model not in compiled._CACHE  # the original was not compiled besides


def test_channels_last_compiled_attacks_fold_once_and_leave_the_model_alone(monkeypatch):
    """channels_last + compile: the folded copy carries the layout; the model is not converted
    back and forth per batch (which would give it new storages, a new signature and a new fold
    and compile every batch). Three input channels: with one, both layouts are the same."""
    real, calls = torch.compile, []
    monkeypatch.setattr(torch, "compile", functools.partial(real, backend="eager"))
    real_fold = fold.fold_batchnorm
    monkeypatch.setattr(fold, "fold_batchnorm", lambda m: calls.append(1) or real_fold(m))
    torch.manual_seed(0)
    model = _random_statistics(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
        )
    )  # fmt: skip
    gen = torch.Generator().manual_seed(4)
    x, y = torch.rand(8, 3, 16, 16, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    spec = AttackSpec("pgd", 0.05, steps=2, step_size=0.02, random_start=False)
    fast = build_attack(spec, channels_last=True)
    fast.compile = True
    outs = [fast(model, x[i : i + 4], y[i : i + 4]) for i in (0, 4, 0)]  # three batches
    assert len(calls) == 1  # one fold for all of them
    assert model[0].weight.is_contiguous()  # the model's own layout is as it was
    assert (
        fold.folded(model, channels_last=True)
        .get_submodule("0")
        .weight.is_contiguous(memory_format=torch.channels_last)
    )
    eager = build_attack(spec)(model, x[:4], y[:4])
    assert torch.allclose(outs[0], eager, atol=1e-6)


def test_compiled_folded_pgd_gives_the_eager_verdicts():
    """A CNN with trained batch norms: compiled (folded) PGD and eager PGD agree per sample
    (one real compile, about 10 s on the 2-core CPU)."""
    model = bn_cnn()
    cfg = TrainConfig.paper("natural", "mnist", n_train=2048, batch_size=64, lr=0.02, epochs=2)
    train(model, train_loader("mnist", 64, n=2048, augment=False), cfg, "cpu", progress=False)
    model.eval()
    x, y = eval_tensors("mnist", 64)
    clean = clean_correct(model, x, y)
    spec = parse_attack("pgd10", eps=0.1, dataset="mnist")
    eager = whitebox_correct(model, x, y, spec, batch_size=32, clean=clean, seed=5)
    fast = whitebox_correct(model, x, y, spec, batch_size=32, clean=clean, seed=5,
                            options={"compile": True})  # fmt: skip
    assert fold._CACHE.get(model)  # the compiled attack made the folded copy
    assert torch.equal(eager, fast)
    assert 0 < int(fast.sum()) < int(clean.sum())


def test_weights_fixed_checks_the_signature_once_per_scope(monkeypatch):
    calls = []
    real = fold._signature
    monkeypatch.setattr(fold, "_signature", lambda tensors: calls.append(1) or real(tensors))
    model = _random_statistics(bn_cnn())
    first = fold.folded(model)
    assert len(calls) == 1
    with fold.weights_fixed(model), fold.weights_fixed(model):  # nested: one check
        assert all(fold.folded(model) is first for _ in range(3))
    assert len(calls) == 2  # the first call in the scope checked, the other two did not
    for _ in range(3):  # outside a scope, every call checks
        fold.folded(model)
    assert len(calls) == 5
    with torch.no_grad():
        model[0].weight.add_(0.5)
    with fold.weights_fixed(model):  # a new scope sees the change
        assert fold.folded(model) is not first


def test_a_model_that_cannot_be_copied_is_not_copied_again_on_every_call(monkeypatch):
    class Uncopyable(nn.Sequential):
        def __deepcopy__(self, memo):
            raise TypeError("no copies")

    calls = []
    real = fold.fold_batchnorm
    monkeypatch.setattr(fold, "fold_batchnorm", lambda m: calls.append(1) or real(m))
    odd = _random_statistics(Uncopyable(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
    assert all(fold.folded(odd) is odd for _ in range(3))
    assert len(calls) == 1

"""The eager attack step through the batch-norm-folded copy (core.fold.call), and what may not
be folded: a user's code (never traced), hooks (run as the model runs them), the reference path.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from test_fold import _count_bn, _random_statistics
from torch import nn

from bench.attacks import AttackSpec, build_attack, counting
from bench.plan.presets import PRESETS
from core import compiled, fold
from models import create_model

SPEC = AttackSpec("pgd", 0.1, steps=4, step_size=0.03, random_start=False)


@pytest.fixture(autouse=True)
def fresh_cache():
    compiled.reset()
    yield
    compiled.reset()


def _data(n: int = 8, channels: int = 1, side: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, channels, side, side, generator=gen), torch.arange(n) % 10


def _input_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(F.cross_entropy(net(x), y), x)[0]


@pytest.mark.parametrize(
    "arch, overrides, unfolded",
    [
        ("resnet18", {"width": 8}, 0),  # bn1(conv1(x)) inside a block's forward: all 20 folded
        ("vgg19", {"width": 8}, 0),
        # the factorized reductions' batch norm follows a concatenation and stays (2 per cell
        # after a reduction cell, 1 per reduction-cell preprocessing)
        ("darts", dict(PRESETS["demo"].cell_overrides), None),
    ],
)
def test_zoo_networks_are_traced_and_every_conv_batch_norm_pair_folds(arch, overrides, unfolded):
    torch.manual_seed(0)
    model = _random_statistics(create_model(arch, dataset="mnist", **overrides))
    copy_, count = fold.fold_batchnorm(model)
    _, sequential_only = fold._fold_sequential(_random_statistics(create_model(
        arch, dataset="mnist", **overrides)))  # fmt: skip
    assert isinstance(copy_, torch.fx.GraphModule) and count >= sequential_only
    assert _count_bn(copy_) == _count_bn(model) - count
    if unfolded is not None:
        assert _count_bn(copy_) == unfolded
    x, y = _data()
    with torch.no_grad():
        assert torch.allclose(copy_(x), model(x), rtol=1e-4, atol=1e-5)
    g0, g1 = _input_gradient(model, x, y), _input_gradient(copy_, x, y)
    assert (g1 - g0).norm() <= 1e-3 * g0.norm()
    if arch == "resnet18":  # the Sequential rule alone reaches only the stem and shortcuts
        assert count == 20 and sequential_only < 10


def test_the_default_attack_is_the_same_loop_on_the_folded_copy_and_the_reference_is_exact():
    """Default: torchattacks' PGD on the folded copy, image for image; ``fold=False``:
    torchattacks' PGD on the model itself, image for image."""
    torch.manual_seed(0)
    model = _random_statistics(create_model("resnet18", dataset="mnist", width=8))
    x, y = _data(16)
    copy_ = fold.folded(model)
    assert copy_ is not model

    def theirs(net):
        return torchattacks.PGD(net, eps=0.1, alpha=0.03, steps=4, random_start=False)(x, y)

    ours, reference = build_attack(SPEC)(model, x, y), build_attack(SPEC, fold=False)(model, x, y)
    assert (ours - theirs(copy_)).abs().max() <= 1e-5
    assert (reference - theirs(model)).abs().max() <= 1e-5
    assert (ours - x).abs().max() <= 0.1 + 1e-6 and ours.min() >= 0 and ours.max() <= 1
    assert all(not p.requires_grad for p in copy_.parameters())
    assert any(p.requires_grad for p in model.parameters())  # restored after the attack


class UserNet(nn.Module):
    """A user's model (not a zoo class) with an attribute-style conv -> batch norm pair and a
    branch computed under ``no_grad``: tracing would drop the ``no_grad`` and open a gradient
    path the model does not have."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.side = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            masked = self.side(x)
        return self.head((self.bn(self.conv(x)) + masked).flatten(1))


def test_only_the_suites_own_model_files_count_as_zoo_code(monkeypatch):
    torch.manual_seed(0)
    zoo = create_model("resnet18", dataset="mnist", width=8)
    assert all(fold._zoo_module(m) for m in zoo.modules())
    assert not fold._zoo_module(UserNet())
    impostor = type("Impostor", (nn.Module,), {"__module__": "models.impostor"})
    monkeypatch.setitem(sys.modules, "models.impostor", types.ModuleType("models.impostor"))
    sys.modules["models.impostor"].__file__ = "/elsewhere/models/impostor.py"
    assert not fold._zoo_module(impostor())  # a user's package also named models


def test_a_users_model_is_not_traced_so_its_no_grad_region_stays(monkeypatch):
    torch.manual_seed(0)
    model = _random_statistics(UserNet())
    x, y = _data()
    assert fold.fold_batchnorm(model)[1] == 0 and fold.folded(model) is model
    own = _input_gradient(model, x, y)
    attack = build_attack(SPEC)
    with attack.frozen(model):
        assert torch.equal(attack.input_gradient(model, x, y), own)
    # the guard fires: a user's class let through to tracing folds it and changes the gradient
    monkeypatch.setattr(fold, "_zoo_module", lambda module: True)
    fold.reset()
    traced, count = fold.fold_batchnorm(model)
    assert count == 1
    assert (_input_gradient(traced, x, y) - own).norm() > 0.1 * own.norm()


def test_the_models_own_forward_hooks_run_on_the_folded_output_and_others_stop_the_fold():
    torch.manual_seed(0)
    model = _random_statistics(create_model("resnet18", dataset="mnist", width=8))
    x, y = _data()
    handle = model.register_forward_hook(lambda m, args, out: -2.0 * out)
    with torch.no_grad():
        expected = model(x)
        assert fold.folded(model) is not model
        assert torch.allclose(fold.call(model, x), expected, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(fold.folded(model)(x), expected, atol=1e-3)  # hook not copied
    handle.remove()
    model.blocks[0].register_forward_hook(lambda m, args, out: out + 1.0)
    fold.reset()
    assert fold.folded(model) is model  # a hook inside the network: not folded
    assert fold.fold_batchnorm(model)[1] == 0


def test_effort_is_counted_alike_with_and_without_the_fold():
    torch.manual_seed(0)
    model = _random_statistics(create_model("resnet18", dataset="mnist", width=8))
    x, y = _data(6)
    counter = counting.PassCounter()
    counter.attach(model)
    counts = []
    for fold_on in (True, False):
        start = counter.snapshot()
        build_attack(SPEC, fold=fold_on)(model, x, y)
        counts.append(counter.since(start))
    assert fold.folded(model) is not model
    assert counts[0] == counts[1] == (4 * 6, 4 * 6)


def test_channels_last_eager_attack_leaves_the_models_layout_alone():
    torch.manual_seed(0)
    model = _random_statistics(create_model("resnet18", dataset="cifar10", width=8))
    x, y = _data(4, channels=3, side=32)
    out = build_attack(SPEC, channels_last=True)(model, x, y)
    assert model.stem[0].weight.is_contiguous()  # the copy carries the layout, not the model
    conv = next(m for m in fold.folded(model, True).modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    reference = build_attack(SPEC, channels_last=True, fold=False)(model, x, y)
    assert model.stem[0].weight.is_contiguous()  # converted for the run, then restored
    assert out.shape == reference.shape and (out - x).abs().max() <= 0.1 + 1e-6


class ReadsItsWeights(nn.Module):
    """A conv -> batch norm pair whose forward also reads the conv's weight: folding would
    change that weight, so the pair must stay."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.conv(x)).flatten(1)) * self.conv.weight.abs().mean()


def test_a_convolution_whose_weights_the_forward_reads_is_not_folded(monkeypatch):
    monkeypatch.setattr(fold, "_zoo_module", lambda module: True)  # traced as a zoo model
    model = _random_statistics(ReadsItsWeights())
    x, _ = _data()
    copy_, count = fold.fold_batchnorm(model)
    assert count == 0
    with torch.no_grad():
        assert torch.allclose(copy_(x), model(x), rtol=1e-5, atol=1e-6)
    # the check fires: without it the pair folds and the forward reads the folded weight
    monkeypatch.setattr(fold, "_attributes_read", lambda graph: [])
    changed, count = fold.fold_batchnorm(model)
    with torch.no_grad():
        assert count == 1 and not torch.allclose(changed(x), model(x), rtol=1e-3, atol=1e-4)


class SharedConv(nn.Module):
    """One convolution called twice, once into a batch norm: folding it would change the other
    call's output too."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv(x.repeat(1, 4, 1, 1))
        return self.head((self.bn(self.conv(first))).flatten(1))


def test_a_convolution_called_twice_is_not_folded(monkeypatch):
    monkeypatch.setattr(fold, "_zoo_module", lambda module: True)
    model = _random_statistics(SharedConv())
    x, _ = _data()
    copy_, count = fold.fold_batchnorm(model)
    with torch.no_grad():
        assert count == 0 and torch.allclose(copy_(x), model(x), rtol=1e-5, atol=1e-6)

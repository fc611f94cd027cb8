"""--compile: compiled attack and training steps match eager; failures fall back to eager."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
import torch._dynamo
from test_best_iterate import small_cnn
from torch import nn

from bench.attacks import parse_attack
from bench.evaluate import clean_correct, whitebox_correct
from bench.run import compile_policy
from bench.training.config import TrainConfig
from bench.training.trainer import train
from core import compiled as machinery
from core.data import eval_tensors, train_loader

N_IMAGES = 90  # three batches of 32 and a short one of 26: padded to 32


@pytest.fixture(autouse=True)
def fresh_cache():
    machinery.reset()
    yield
    machinery.reset()


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
    assert machinery.compiled(model) is model
    assert torch.equal(machinery.static_forward(model, x), model(x))
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: torch.compile failed for Sequential (no backend here); running eager"]


def test_a_compiled_call_that_fails_runs_eager_from_then_on(monkeypatch, capsys):
    class Failing(nn.Module):
        def forward(self, x):
            raise RuntimeError("backend crashed")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: Failing())
    model, x = small_cnn().eval(), torch.rand(3, 1, 28, 28)
    first, again = machinery.static_forward(model, x), machinery.static_forward(model, x[:2])
    assert torch.equal(first, model(x)) and torch.equal(again, model(x[:2]))
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: torch.compile failed for Sequential (backend crashed); running eager"]


def test_a_batch_above_the_graph_runs_in_chunks_of_it(monkeypatch):
    """After a graph of 100 rows, 128 rows run as 100 + 28 padded (no second graph) and 16
    as 16 padded; a first graph below CHUNK_ROWS grows to the larger batch instead."""
    calls: list[int] = []

    class Recording(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            calls.append(len(x))
            return self.net(x)

    monkeypatch.setattr(torch, "compile", lambda model, **kw: Recording(model))
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x = torch.rand(128, 1, 28, 28)
    for n in (100, 128, 16):
        assert torch.allclose(machinery.static_forward(model, x[:n]), model(x[:n]), atol=1e-6)
    assert calls == [100, 100, 100, 100]
    small, calls[:] = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval(), []
    for n in (8, 100, 128):
        assert torch.allclose(machinery.static_forward(small, x[:n]), small(x[:n]), atol=1e-6)
    assert machinery.CHUNK_ROWS > 8 and calls == [8, 100, 100, 100]
    chunked, plain = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    machinery.static_forward(model, chunked).square().sum().backward()  # chunks: 100 + 28
    model(plain).square().sum().backward()
    assert torch.allclose(chunked.grad, plain.grad, atol=1e-6)


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
    ("device", "preset", "eval_s", "on"),
    [
        ("cuda", "paper", 10.0, True),
        ("cuda", "demo", 1e6, False),
        ("cuda", "rehearsal", 1e6, False),
        ("cpu", "paper", 304.0, True),  # 304 * (1 - 1/1.3) = 70.15 s saved > one 70 s compile
        ("cpu", "demo", 303.0, False),  # 69.92 s saved < 70 s
    ],
)
def test_the_auto_rule_compiles_an_architecture_where_it_repays(device, preset, eval_s, on):
    from bench.plan.presets import PRESETS

    on_cuda = PRESETS[preset].compile_on_cuda
    assert compile_policy.worth_compiling(device, on_cuda, eval_s=eval_s) is on


def test_plain_cnns_stay_eager_on_a_cpu_and_compile_on_cuda():
    assert not compile_policy.worth_compiling("cpu", True, 1e6, cell=False)
    assert compile_policy.worth_compiling("cuda", True, 1.0, cell=False)

    class Ref:
        factory = None

        def __init__(self, model: str) -> None:
            self.model = model

    assert compile_policy.is_cell_network(Ref("darts")) and compile_policy.is_cell_network(
        Ref("racl")
    )
    assert not compile_policy.is_cell_network(Ref("resnet18"))
    assert not compile_policy.is_cell_network(Ref("no_such_model"))


def _smoke_plan():
    from bench.plan.experiments import get_experiments
    from bench.plan.planner import plan
    from bench.plan.presets import PRESETS

    smoke = PRESETS["smoke"]
    return plan(get_experiments(smoke.experiments), smoke, calibrate=False)


def test_run_options_of_a_plan():
    p = _smoke_plan()
    auto = compile_policy.run_options(
        "auto", "off", p, "cpu"
    )  # too little work for any architecture
    cells = frozenset(p.refs)  # the smoke plan's models are all cell networks: channels_last
    assert auto == {"compile": False, "train_compile": False, "compile_checkpoints": frozenset(),
                    "channels_last_checkpoints": cells}  # fmt: skip
    options = compile_policy.run_options("on", "bf16", p, "cpu")
    assert options == {"compile": True, "train_compile": True, "amp_dtype": torch.bfloat16,
                       "channels_last_checkpoints": cells}  # fmt: skip
    for h in p.refs:  # compiled cell networks run channels_last on a CPU
        assert compile_policy.options_for(options, h)["channels_last"] is True
    first = next(iter(p.refs.values()))
    p.refs[next(iter(p.refs))] = dataclasses.replace(first, factory="user.py:net")  # a user's
    kept = compile_policy.run_options("on", "off", p, "cpu")["channels_last_checkpoints"]
    assert kept == cells - {next(iter(p.refs))}
    assert compile_policy.run_options("off", "off", p, torch.device("cuda")) == {
        "compile": False,
        "train_compile": False,
    }


def test_auto_compiles_only_the_architectures_whose_work_repays_it():
    p = _smoke_plan()
    by_model = {}
    for h, ref in p.refs.items():
        by_model.setdefault(ref.model, set()).add(h)
    for h in by_model["darts"]:
        p.rates[h] = 1.0  # one image per second: darts's attacks now dominate the estimate
    seconds = compile_policy.eval_seconds_by_architecture(p)
    assert max(seconds, key=seconds.get)[0] == "darts"
    options = compile_policy.run_options("auto", "off", p, "cpu")
    assert options["compile_checkpoints"] == frozenset(by_model["darts"])
    assert options["compile"] and not options["train_compile"]  # training stays eager on a CPU
    for h in by_model["darts"]:
        assert compile_policy.options_for(options, h)["compile"] is True
        assert compile_policy.options_for(options, h)["channels_last"] is True
    for h in by_model["pc_darts"]:  # eager, channels_last all the same on a CPU
        assert compile_policy.options_for(options, h)["compile"] is False
        assert compile_policy.options_for(options, h)["channels_last"] is True
    plain = {"compile": True}
    assert compile_policy.options_for(plain, "any") is plain  # --compile on: every checkpoint


def test_the_run_says_what_it_compiles():
    p = _smoke_plan()
    assert (
        compile_policy.describe_compile(compile_policy.run_options("off", "off", p, "cpu"), p)
        is None
    )
    assert (
        compile_policy.describe_compile(compile_policy.run_options("auto", "off", p, "cpu"), p)
        is None
    )
    on = compile_policy.describe_compile(compile_policy.run_options("on", "off", p, "cpu"), p)
    assert on == "torch.compile: attack steps of every model; training steps compiled"
    darts = {h for h, ref in p.refs.items() if ref.model == "darts"}
    for h in darts:
        p.rates[h] = 1.0  # darts's attacks dominate: auto compiles them alone
    auto = compile_policy.describe_compile(compile_policy.run_options("auto", "off", p, "cpu"), p)
    assert auto == "torch.compile: attack steps of darts; training steps eager"

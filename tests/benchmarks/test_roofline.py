"""A measured roofline of the attack's inner step (pytest-benchmark; figures printed).

For ResNet-18 and DARTS at demo size (MNIST, width 8 / 8 channels x 4 cells; issue 14 measured
8 x 5, the demo's size then) and paper size
(CIFAR-10, width 64 / 36 channels x 20 cells): the analytic FLOPs of one forward plus input
backward (``bench.plan.cost.count_flops`` counts the forward; the input backward of a convolution or
linear layer costs the same multiply-adds again, and no weight gradient is taken, so 2x), the
measured img/s eager and compiled (``bench.run.compile_policy``), the FLOP/s that makes, the attack
step's cost relative to one forward + input backward (goal <= 1.05: the attack adds nothing),
and the attack step as ``bench run --compile on`` runs it (batch norms folded into their
convolutions, then inductor: ``core.fold``, ``core.compiled``) against eager, with compiled +
channels_last and channels_last alone beside it, and the two parts of the compiled gain
measured apart: folding alone (eager) and inductor alone (unfolded).
At demo size it also times PGD-20, ours against torchattacks', interleaved in one run.

Verdicts (with ``--benchmark-enable``): compiled/eager >= 2.5x for demo-size DARTS on a CPU
(issue 14 measured 4.0x at batch 100), where compiled is what ``bench run`` compiles for a cell
network on a CPU (compiled + channels_last) and eager the step that target was set on, the
model itself (``fold=False``; the default eager step attacks the batch-norm-folded copy and is
printed beside it), and the attack step <= 1.10x of forward + input backward (the 1.05 goal
plus the run-to-run noise of a shared 2-core machine). Paper size on a
CPU runs at batch 8 (ResNet-18) and 2 (DARTS), eager only: compiling a full-size network there
takes longer than the whole benchmark.
Run: ``pytest tests/benchmarks/test_roofline.py --benchmark-enable -s``
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from bench.attacks import AttackSpec, build_attack
from bench.plan.cost import count_flops
from bench.plan.presets import PRESETS
from core import compiled, fold
from models import create_model

STEPS = 3  # attack steps per timed call
REPEATS = 5  # best of 5: the 2-core machine is shared
SIZES = {  # name: (model, dataset, overrides, batch on a CPU)
    "resnet18-demo": ("resnet18", "mnist", {"width": 8}, 100),
    "darts-demo": ("darts", "mnist", dict(PRESETS["demo"].cell_overrides), 100),
    "resnet18-paper": ("resnet18", "cifar10", {}, 8),
    "darts-paper": ("darts", "cifar10", {}, 2),
}


def _setup(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    arch, dataset, overrides, batch = SIZES[name]
    torch.manual_seed(0)
    model = create_model(arch, dataset=dataset, **overrides).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _fwd_bwd(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    """``STEPS`` forward + input-backward passes, nothing else (the attack step's floor)."""
    for _ in range(STEPS):
        xr = x.detach().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(forward(xr).float(), y), xr)


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int = REPEATS) -> dict[str, float]:
    """Best-of-``repeats`` seconds of each function, timed in turn so load hits them alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


@pytest.mark.parametrize("name", list(SIZES))
def test_roofline(benchmark, name):
    if benchmark.disabled:
        pytest.skip("timings only: run with --benchmark-enable")
    torch.set_num_threads(1)
    model, x, y = _setup(name)
    flops = 2.0 * count_flops(model, x[:1])  # forward + input backward, per image
    spec = AttackSpec("pgd", 8 / 255, steps=STEPS, step_size=2 / 255, random_start=False)
    attack = build_attack(spec)
    reference = build_attack(spec, fold=False)  # the model itself, not its folded copy
    fns = {"fwd_bwd": lambda: _fwd_bwd(model, x, y), "attack": lambda: attack(model, x, y),
           "attack_reference": lambda: reference(model, x, y)}  # fmt: skip
    cpu_paper = name.endswith("paper") and not torch.cuda.is_available()
    compile_s = None
    if not cpu_paper:
        fast = build_attack(spec)  # what `bench run --compile on` runs
        fast.compile = True
        start = time.perf_counter()
        fast(model, x, y)  # the first call compiles (forward and input backward)
        compile_s = time.perf_counter() - start
        both = build_attack(spec, channels_last=True)
        both.compile = True
        both(model, x, y)  # compiled channels_last: a second graph
        layout = build_attack(spec, channels_last=True)
        fns["fwd_bwd_compiled"] = lambda: _fwd_bwd(compiled.compiled(model), x, y)  # unfolded
        fns["fwd_bwd_folded"] = lambda: _fwd_bwd(fold.folded(model), x, y)  # eager, folded
        fns["attack_compiled"] = lambda: fast(model, x, y)
        fns["attack_compiled_channels_last"] = lambda: both(model, x, y)
        fns["attack_channels_last"] = lambda: layout(model, x, y)
    t = _interleaved(fns)
    rate = {k: STEPS * len(x) / v for k, v in t.items()}
    step_ratio = t["attack"] / t["fwd_bwd"]
    line = (f"\n{name} (batch {len(x)}): {flops / 1e6:.2f} MFLOP/img fwd+input-bwd; eager "
            f"{rate['fwd_bwd']:.1f} img/s = {flops * rate['fwd_bwd'] / 1e9:.2f} GFLOP/s; "
            f"attack step / fwd+bwd {step_ratio:.3f} (goal 1.05)")  # fmt: skip
    info = {"mflop_per_img": round(flops / 1e6, 3), "eager_img_s": round(rate["fwd_bwd"], 2),
            "attack_step_over_fwd_bwd": round(step_ratio, 3)}  # fmt: skip
    if compile_s is not None:
        speedup = t["attack"] / t["attack_compiled"]
        line += (f"; compiled fwd+bwd {rate['fwd_bwd_compiled']:.1f} img/s "
                 f"({flops * rate['fwd_bwd_compiled'] / 1e9:.2f} GFLOP/s); attack step vs "
                 f"eager: compiled {speedup:.2f}x, compiled + channels_last "
                 f"{t['attack'] / t['attack_compiled_channels_last']:.2f}x, channels_last alone "
                 f"{t['attack'] / t['attack_channels_last']:.2f}x; of the compiled gain, "
                 f"batch-norm folding alone (eager) {t['fwd_bwd'] / t['fwd_bwd_folded']:.2f}x, "
                 f"inductor alone (unfolded) {t['fwd_bwd'] / t['fwd_bwd_compiled']:.2f}x; "
                 f"first compile {compile_s:.0f} s")  # fmt: skip
        over_reference = t["attack_reference"] / t["attack_compiled_channels_last"]
        slower = t["attack_reference"] / t["attack"]
        line += (f"; against the eager reference (fold=False, {slower:.2f}x the folded eager "
                 f"step's time): compiled + channels_last {over_reference:.2f}x")  # fmt: skip
        info.update(compiled_speedup=round(speedup, 3), compile_s=round(compile_s, 1),
                    compiled_cl=round(t["attack"] / t["attack_compiled_channels_last"], 3),
                    compiled_cl_over_reference=round(over_reference, 3),
                    fold_alone=round(t["fwd_bwd"] / t["fwd_bwd_folded"], 3),
                    inductor_alone=round(t["fwd_bwd"] / t["fwd_bwd_compiled"], 3))  # fmt: skip
    else:
        line += "; compiled: not measured on a CPU at paper size"
    print(line)
    benchmark.extra_info.update(info)
    benchmark.pedantic(lambda: None, rounds=1)
    assert step_ratio <= 1.10, line
    if name == "darts-demo" and not torch.cuda.is_available():
        # what `bench run --compile on` runs for a cell network on a CPU (compiled +
        # channels_last) against the eager step the 2.5x target was set on (issue 14: the
        # model itself, unfolded); against the folded eager default it is info["compiled_cl"]
        assert info["compiled_cl_over_reference"] >= 2.5, line


@pytest.mark.parametrize("name", ["resnet18-demo", "darts-demo"])
def test_pgd20_against_torchattacks(benchmark, name):
    if benchmark.disabled:
        pytest.skip("timings only: run with --benchmark-enable")
    torch.set_num_threads(1)
    model, x, y = _setup(name)
    x, y = x[:32], y[:32]
    spec = AttackSpec("pgd", 8 / 255, steps=20, step_size=2 / 255, random_start=False)
    ours = build_attack(spec)
    theirs = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=False)
    out = {}
    t = _interleaved({"ours": lambda: out.setdefault("ours", ours(model, x, y)),
                      "theirs": lambda: out.setdefault("theirs", theirs(x, y))}, 3)  # fmt: skip
    ratio = t["theirs"] / t["ours"]
    print(f"\n{name} PGD-20 (batch 32) throughput ours / torchattacks: {ratio:.3f}x")
    benchmark.extra_info["throughput_vs_torchattacks"] = round(ratio, 3)
    benchmark.pedantic(lambda: None, rounds=1)
    assert (out["ours"] - out["theirs"]).abs().max().item() <= 1e-5  # the same attack

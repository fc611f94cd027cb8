"""Speed of our PGD against torchattacks.PGD on the same model and batch (pytest-benchmark).

ResNet-18 (width 16) on an MNIST-shaped batch of 64, PGD-10 at eps 0.06 (step 0.015). Labels
are the model's own clean predictions, so robust accuracy is meaningful for an untrained net. The
side-by-side test interleaves ours (the default: gradients through the batch-norm-folded copy,
``core.fold``), torchattacks, our reference path (``fold=False``), channels_last and bf16 +
channels_last in one run and stores the throughput ratios (variant / torchattacks) in
``extra_info`` (and prints them); the verdict is always computed in float32. Each variant is also
benchmarked on its own.

The same attack, checked two ways: the reference path gives torchattacks' images on the model
(max difference <= 1e-5), and the default gives torchattacks' images on the folded copy (the
same loop; the copy is the model's function up to float rounding, which tips the sign of
near-zero gradient entries, so images on the model itself differ while verdicts agree:
docs/decisions/speed.md, "Eager PGD"); robust accuracies of ours and torchattacks are equal.

The >= 1.1x verdicts judge the eager step ``bench run`` takes for the model on this device
(:func:`as_run`): on a CPU the zoo's networks run channels_last through the folded copy
(``compile_policy.channels_last_on_cpu``), so there the verdict reads the channels_last variant,
whose images are torchattacks' on the channels_last folded copy (checked); the plain folded
(default) ratio is printed beside it. On CUDA it reads the default.

Run: ``pytest tests/benchmarks/test_attack_speed.py --benchmark-enable -s``
"""

from __future__ import annotations

import statistics
import time
import types

import pytest
import torch
import torchattacks

from bench.attacks import AttackSpec, build_attack
from bench.run.compile_policy import channels_last_on_cpu
from core import fold
from models import create_model

EPS, STEP, STEPS, BATCH = 0.06, 0.015, 10, 64  # robust accuracy neither 0 nor 1
GROUP = "pgd10-resnet18w16-mnist-b64"


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = create_model("resnet18", dataset="mnist", width=16).eval()
    x = torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    spec = AttackSpec("pgd", EPS, steps=STEPS, step_size=STEP, random_start=False)
    return model, x, y, spec


def as_run(arch: str) -> bool:
    """Whether ``bench run`` attacks this zoo network channels_last here (on a CPU: the zoo's
    cell networks, ResNets and VGGs, ``compile_policy.channels_last_on_cpu``; on CUDA never):
    the eager step a user of the suite gets, which the speed verdicts judge."""
    ref = types.SimpleNamespace(model=arch, factory=None)
    return not torch.cuda.is_available() and channels_last_on_cpu(ref)


def robust_accuracy(model, x_adv, y) -> float:
    with torch.no_grad():
        return (model.float()(x_adv.float()).argmax(1) == y).float().mean().item()


def theirs(model, x, y):
    return torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=STEPS, random_start=False)(x, y)


@pytest.mark.benchmark(group=GROUP)
def test_pgd10_ours(benchmark, setup):
    model, x, y, spec = setup
    x_adv = benchmark(build_attack(spec), model, x, y)
    benchmark.extra_info["robust_acc"] = robust_accuracy(model, x_adv, y)


@pytest.mark.benchmark(group=GROUP)
def test_pgd10_torchattacks(benchmark, setup):
    model, x, y, _ = setup
    x_adv = benchmark(theirs, model, x, y)
    benchmark.extra_info["robust_acc"] = robust_accuracy(model, x_adv, y)


@pytest.mark.benchmark(group=GROUP)
def test_pgd10_ours_channels_last(benchmark, setup):
    model, x, y, spec = setup
    x_adv = benchmark(build_attack(spec, channels_last=True), model, x, y)
    benchmark.extra_info["robust_acc"] = robust_accuracy(model, x_adv, y)
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6


@pytest.mark.benchmark(group=GROUP)
def test_pgd10_ours_bf16_channels_last(benchmark, setup):
    model, x, y, spec = setup
    attack = build_attack(spec, channels_last=True, amp_dtype=torch.bfloat16)
    x_adv = benchmark(attack, model, x, y)
    acc = robust_accuracy(model, x_adv, y)  # verdict in float32
    benchmark.extra_info["robust_acc"] = acc
    assert x_adv.dtype == torch.float32 and (x_adv - x).abs().max().item() <= EPS + 1e-6


def test_pgd10_side_by_side_ratio(benchmark, setup):
    model, x, y, spec = setup
    variants = {
        "ours": build_attack(spec),
        "theirs": theirs,
        "ours_reference": build_attack(spec, fold=False),
        "ours_channels_last": build_attack(spec, channels_last=True),
        "ours_bf16_channels_last": build_attack(spec, channels_last=True, amp_dtype=torch.bfloat16),
    }
    times = dict.fromkeys(variants, 0.0)
    outputs = {}

    def side_by_side():  # interleaved, so load changes on the machine hit every variant alike
        for name, fn in variants.items():
            start = time.perf_counter()
            outputs[name] = fn(model, x, y)
            times[name] += time.perf_counter() - start

    benchmark.pedantic(side_by_side, rounds=3, iterations=1, warmup_rounds=0)
    ratios = {k: round(times["theirs"] / t, 3) for k, t in times.items() if k != "theirs"}
    accs = {k: robust_accuracy(model, v, y) for k, v in outputs.items()}  # float32 verdicts
    benchmark.extra_info.update(throughput_ratio_vs_torchattacks=ratios, robust_acc=accs)
    print(f"\nPGD-10 throughput vs torchattacks: {ratios}; robust accuracy: {accs}")
    assert (outputs["ours_reference"] - outputs["theirs"]).abs().max().item() <= 1e-5
    on_copy = theirs(fold.folded(model), x, y)  # torchattacks on the copy ours differentiates
    assert fold.folded(model) is not model
    assert (outputs["ours"] - on_copy).abs().max().item() <= 1e-5
    assert accs["ours"] == accs["theirs"] == accs["ours_reference"]
    assert abs(accs["ours_channels_last"] - accs["ours"]) <= 0.05
    layout = as_run("resnet18")  # the eager step bench run takes for this model here
    if layout:  # its images: torchattacks' on the channels_last copy (the default's: above)
        on_run_copy = theirs(fold.folded(model, True), x, y)
        assert (outputs["ours_channels_last"] - on_run_copy).abs().max().item() <= 1e-5
    if not benchmark.disabled:  # a speed verdict only where benchmarks are enabled
        assert ratios["ours_channels_last" if layout else "ours"] >= 1.1, ratios


OTHER_SHAPES = {  # name: (model, dataset, overrides, batch, eps, step); not the benchmark's own
    "resnet18w8-mnist-b128": ("resnet18", "mnist", {"width": 8}, 128, 0.3, 0.1),
    "resnet18w8-cifar-b64": ("resnet18", "cifar10", {"width": 8}, 64, 8 / 255, 2 / 255),
    "darts8x4-mnist-b64": ("darts", "mnist", {"init_channels": 8, "layers": 4}, 64, 0.06, 0.015),
    "darts8x5-cifar-b32": ("darts", "cifar10", {"init_channels": 8, "layers": 5}, 32, 8 / 255,
                           2 / 255),
    "pc_darts8x4-mnist-b256": ("pc_darts", "mnist", {"init_channels": 8, "layers": 4}, 256, 0.1,
                               0.025),
}  # fmt: skip


@pytest.mark.parametrize("name", list(OTHER_SHAPES))
def test_pgd10_other_models_and_shapes(benchmark, name):
    """Ours against torchattacks on cell networks and ResNet at MNIST and CIFAR shapes, batch
    32-256 (the issue-31 check), the batch norms given statistics by one train-mode pass over
    random images; interleaved, medians of 5. Asserted: the eager step bench run takes here
    (:func:`as_run`) >= 1.1x, our images are torchattacks' on the copy ours differentiates
    (folded, in the run's layout), the reference path's torchattacks' on the model. The plain
    folded step's ratio is printed beside it (on a CPU, where the two differ)."""
    if benchmark.disabled:
        pytest.skip("timings only: run with --benchmark-enable")
    arch, dataset, overrides, batch, eps, step = OTHER_SHAPES[name]
    torch.manual_seed(0)
    model = create_model(arch, dataset=dataset, **overrides)
    gen = torch.Generator().manual_seed(1)
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # the running statistics of this one batch
        model.train()(torch.rand(64, *shape, generator=gen))
    model.eval()
    x = torch.rand(batch, *shape, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)
    spec = AttackSpec("pgd", eps, steps=10, step_size=step, random_start=False)
    layout = as_run(arch)
    ours, reference = build_attack(spec, channels_last=layout), build_attack(spec, fold=False)
    plain = build_attack(spec)  # the folded default (ours itself where layout is False)

    def peer(net):
        return torchattacks.PGD(net, eps=eps, alpha=step, steps=10, random_start=False)(x, y)

    assert (ours(model, x, y) - peer(fold.folded(model, layout))).abs().max().item() <= 1e-5
    if layout:
        assert (plain(model, x, y) - peer(fold.folded(model))).abs().max().item() <= 1e-5
    assert (reference(model, x, y) - peer(model)).abs().max().item() <= 1e-5
    runs = {"ours": lambda: ours(model, x, y), "theirs": lambda: peer(model)}
    if layout:
        runs["plain"] = lambda: plain(model, x, y)
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(5):
        for key, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    med = {key: statistics.median(t) for key, t in times.items()}
    ratio = med["theirs"] / med["ours"]
    shown = ""
    if layout:
        plain_ratio = med["theirs"] / med["plain"]
        shown = f" (channels_last; plain folded {plain_ratio:.3f}x)"
        benchmark.extra_info["plain_folded_vs_torchattacks"] = round(plain_ratio, 3)
    print(f"\n{name} PGD-10 throughput ours / torchattacks: {ratio:.3f}x{shown}")
    benchmark.extra_info["throughput_vs_torchattacks"] = round(ratio, 3)
    benchmark.pedantic(lambda: None, rounds=1)
    assert ratio >= 1.1, f"{name}: {ratio:.3f}x"

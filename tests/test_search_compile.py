"""bench search --compile: the supernet's mixed ops compiled one region at a time (Regions)."""

from __future__ import annotations

import functools

import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from torch import nn

from bench.run.compile_policy import search_compile
from core.compiled import Regions
from racl_search.config import make_config
from racl_search.search import run_search
from racl_search.supernet import Supernet, SupernetConfig


def _tiny(seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    # one reduction cell of two nodes, three candidate ops: four graphs (stride 1 and 2, weight
    # and architecture gradients)
    primitives = ("none", "skip_connect", "sep_conv_3x3")
    return Supernet(SupernetConfig(dataset="mnist", init_channels=4, layers=1, steps=2,
                                   multiplier=2, primitives=primitives))  # fmt: skip


def test_compiled_mixed_ops_train_like_eager_ones():
    """Three weight steps and the architecture gradient, compiled (real inductor compiles of
    the mixed ops) against eager: the same losses, architecture gradients and weights up to
    float rounding."""
    nets = {on: _tiny() for on in (False, True)}
    nets[True].compile_regions()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(16, 1, 28, 28, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    shape = nets[False].lipschitz_shape
    alpha0 = torch.rand(2, shape[1], shape[2], generator=gen)
    beta0 = torch.rand(2, shape[1], generator=gen)
    seen = {}
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for on, net in nets.items():
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        losses = []
        for _ in range(3):
            loss = F.cross_entropy(net(x, alpha0, beta0), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        alpha, beta = alpha0.clone().requires_grad_(True), beta0.clone().requires_grad_(True)
        arch_grads = torch.autograd.grad(F.cross_entropy(net(x, alpha, beta), y), (alpha, beta))
        seen[on] = losses, arch_grads, [p.detach().clone() for p in net.parameters()]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # it did compile
    (l0, g0, w0), (l1, g1, w1) = seen[False], seen[True]
    assert l1 == pytest.approx(l0, rel=1e-4)
    for a, b in zip(g0 + tuple(w0), g1 + tuple(w1), strict=True):
        assert torch.allclose(b, a, rtol=1e-3, atol=1e-5 * max(1.0, a.abs().max().item()))


def test_bench_search_compile_runs_the_search_through_the_regions(tmp_path, monkeypatch):
    """The wiring: ``run_search(compile=True)`` sends the training steps' mixed ops through
    dynamo (traced only, no inductor: seconds) and finds the eager search's genotype."""
    from core.data import load_split

    x, y = load_split("mnist", "train")
    x, y = x[:64], y[:64]
    config = make_config("smoke", n_images=32, epochs=2)
    real = torch.compile
    out = {}
    for on in (False, True):
        if on:
            monkeypatch.setattr(torch, "compile", functools.partial(real, backend="eager"))
        torch._dynamo.reset()
        frames = torch._dynamo.utils.counters["frames"]["ok"]
        out[on] = run_search(config, x, y, name=f"c{int(on)}", out_dir=tmp_path / "geno",
                             run_dir=tmp_path / f"run{int(on)}", progress=False,
                             log=lambda line: None, compile=on)  # fmt: skip
        traced = torch._dynamo.utils.counters["frames"]["ok"] - frames
        assert (traced > 0) is on
    assert out[True].genotype == out[False].genotype
    first = (out[on].metadata["final_c"] for on in (False, True))
    assert next(first) == pytest.approx(next(first), rel=1e-4, abs=1e-6)


@pytest.fixture
def eager_backend(monkeypatch):
    """torch.compile traced by dynamo only (no inductor): graph counts in a fraction of a second."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", functools.partial(real, backend="eager"))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin = nn.Linear(width, width)

    def forward(self, x, w):
        return w * torch.relu(self.lin(x))


def test_instances_share_graphs_and_every_variant_compiles(eager_backend):
    regions = Regions("blocks")
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    same = [Block(4) for _ in range(5)]
    for block in same:  # five instances of one shape: one graph
        regions(block, torch.rand(2, 4), torch.tensor(0.5))
    first = torch._dynamo.utils.counters["frames"]["ok"] - frames
    for width in range(5, 17):  # twelve more shapes: beyond dynamo's limit of 8 per code object
        regions(Block(width), torch.rand(2, width), torch.tensor(0.5))
    compiled_frames = torch._dynamo.utils.counters["frames"]["ok"] - frames
    assert first == 1
    assert compiled_frames == 13  # none of the twelve fell back to eager unannounced
    assert not regions.failed


def test_a_failed_region_warns_once_and_every_region_runs_eager(monkeypatch, capsys):
    class Boom(nn.Module):
        def forward(self, *args):
            raise RuntimeError("inductor crashed\nsecond line")

    monkeypatch.setattr(torch, "compile", lambda module, **kw: Boom())
    regions = Regions("the supernet's mixed ops")
    blocks = [Block(3) for _ in range(3)]
    x, w = torch.rand(2, 3), torch.tensor(2.0)
    outs = [regions(b, x, w) for b in blocks]
    assert all(torch.equal(o, b(x, w)) for o, b in zip(outs, blocks, strict=True))
    assert regions.failed
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: torch.compile failed for the supernet's mixed ops (inductor crashed); "
        "running eager"
    ]


def test_a_compile_that_raises_runs_eager_with_one_warning(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no backend")

    monkeypatch.setattr(torch, "compile", broken)
    regions = Regions("blocks")
    block, x, w = Block(3), torch.rand(2, 3), torch.tensor(1.0)
    assert torch.equal(regions(block, x, w), block(x, w))
    assert torch.equal(regions(block, x, w), block(x, w))
    assert capsys.readouterr().err.count("warning: torch.compile failed for blocks") == 1


@pytest.mark.parametrize(
    ("flag", "device", "preset", "on"),
    [
        ("auto", "cuda", "paper", True),
        ("auto", "cuda", "demo", False),
        ("auto", "cpu", "paper", False),
        ("auto", "cpu", "demo", False),
        ("on", "cpu", "smoke", True),
        ("off", "cuda", "paper", False),
    ],
)
def test_the_search_compile_rule(monkeypatch, flag, device, preset, on):
    from core import distributed

    monkeypatch.setattr(distributed, "resolve_device", lambda d: torch.device(d))
    from racl_search.config import COMPILE_ON_CUDA

    assert search_compile(flag, device, COMPILE_ON_CUDA[preset]) is on

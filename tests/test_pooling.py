"""core.pooling: max pooling as opaque operators, the same numbers as nn.MaxPool2d, bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from core import compiled as machinery
from core.pooling import OpaqueMaxPool2d, opaque_pools


@pytest.fixture(autouse=True)
def fresh_cache():
    machinery.reset()
    yield
    machinery.reset()


def _value_and_input_grad(module: nn.Module, x: torch.Tensor, seed: int):
    xr = x.detach().clone().requires_grad_(True)
    out = module(xr)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    (grad,) = torch.autograd.grad((out * weights).sum(), xr)
    return out.detach(), grad


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "ceil_mode"),
    [(3, 1, 1, False), (3, 2, 1, False), (3, 2, 0, True), (5, 3, 2, False), (2, 2, 0, True)],
)
def test_opaque_pool_equals_max_pool_bit_for_bit(kernel, stride, padding, ceil_mode, channels_last):
    gen = torch.Generator().manual_seed(kernel * 10 + stride)
    # ReLU'd noise: many ties at zero, where the index of the maximum decides the gradient
    x = torch.relu(torch.randn(3, 5, 13, 11, generator=gen))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    pool = nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    want_out, want_grad = _value_and_input_grad(pool, x, 1)
    got_out, got_grad = _value_and_input_grad(OpaqueMaxPool2d(pool), x, 1)
    assert torch.equal(got_out, want_out) and torch.equal(got_grad, want_grad)
    assert got_out.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_opaque_pools_swaps_overlapping_windows_in_a_copy():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.MaxPool2d(3, stride=1, padding=1),  # overlapping: swapped
        nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)),  # nested, overlapping
        nn.MaxPool2d(2, 2),  # disjoint windows: inductor's lowering is a plain max, kept
        nn.Flatten(),
        nn.LazyLinear(3),
    ).eval()
    x = torch.rand(4, 1, 12, 12)
    net(x)  # materialise the lazy layer
    swapped = opaque_pools(net)
    assert swapped is not net
    assert type(net[1]) is nn.MaxPool2d and type(net[2][1]) is nn.MaxPool2d  # original kept
    assert type(swapped[1]) is OpaqueMaxPool2d and type(swapped[2][1]) is OpaqueMaxPool2d
    assert type(swapped[3]) is nn.MaxPool2d
    want, got = _value_and_input_grad(net, x, 2), _value_and_input_grad(swapped, x, 2)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2))
    assert opaque_pools(plain) is plain  # nothing to swap: no copy


def _pool_backwards(run) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return sum(e.count for e in prof.key_averages() if e.key == "racl_bench::max_pool2d_backward")


def test_a_compiled_channels_last_cpu_step_runs_max_pools_as_aten_kernels():
    """Two real compiles of a two-layer net: channels_last, its max pool's backward is the
    opaque operator's (ATen's kernel), not inductor's lowering; NCHW keeps the lowering; the
    input gradients are the eager ones."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(), nn.Linear(4 * 7 * 7, 3),
    ).eval()  # fmt: skip
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.rand(6, 1, 14, 14)

    def grads(forward):
        xr = x.clone().requires_grad_(True)
        return torch.autograd.grad(forward(xr).sum(), xr)[0]

    eager = grads(net)
    for channels_last, pools in ((True, 1), (False, 0)):

        def step(xr, channels_last=channels_last):
            return machinery.static_forward(net, xr, channels_last)

        fast = grads(step)  # compiles
        assert _pool_backwards(lambda step=step: grads(step)) == pools, channels_last
        assert torch.allclose(fast, eager, atol=1e-5)
    assert _pool_backwards(lambda: grads(net)) == 0  # eager keeps nn.MaxPool2d

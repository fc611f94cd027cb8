"""Max pooling as opaque operators for a compiled channels_last graph on a CPU.

Inductor lowers ``max_pool2d_with_indices_backward`` of an overlapping window (DARTS's
``max_pool_3x3``, stride 1 or 2) to a gather that tests, for every input position, each window
that covers it. In the compiled channels_last attack step of demo-size DARTS (batch 100, one
thread) that one kernel took 33 ms of a 150 ms step, where ATen's channels_last backward takes
about 7 ms (docs/decisions/speed.md, "Max pooling in the compiled step"). :class:`OpaqueMaxPool2d`
runs ATen's forward and backward as custom operators, which inductor calls as they are: the same
numbers as ``nn.MaxPool2d``, bit for bit, forward and input gradient. :func:`opaque_pools` swaps
them into a copy of a network before ``core.compiled.static_forward`` compiles it channels_last
on a CPU; in NCHW ATen's backward measured slower than inductor's lowering (0.68 s against
0.58 s for three steps), so an NCHW graph keeps the lowering.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def _pool(
    x: Tensor,
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    ceil_mode: bool,
) -> tuple[Tensor, Tensor]:
    """ATen's ``max_pool2d_with_indices`` (values and flat indices of the maxima)."""
    return torch.ops.aten.max_pool2d_with_indices(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )


def _pool_backward(
    grad: Tensor,
    x: Tensor,
    indices: Tensor,
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    ceil_mode: bool,
) -> Tensor:
    """ATen's ``max_pool2d_with_indices_backward``: ``grad`` routed to the maxima."""
    return torch.ops.aten.max_pool2d_with_indices_backward(
        grad, x, kernel_size, stride, padding, dilation, ceil_mode, indices
    )


# Each ATen function is both the operator and its fake (shape) implementation: ATen's meta
# kernels give the fake tensors their shapes and strides.
max_pool2d_with_indices = torch.library.custom_op(
    "racl_bench::max_pool2d_with_indices", _pool, mutates_args=()
)
max_pool2d_with_indices.register_fake(_pool)
max_pool2d_backward = torch.library.custom_op(
    "racl_bench::max_pool2d_backward", _pool_backward, mutates_args=()
)
max_pool2d_backward.register_fake(_pool_backward)


def _setup_context(ctx, inputs, output) -> None:
    x, *args = inputs
    ctx.save_for_backward(x, output[1])
    ctx.args = args


def _backward(ctx, grad, _grad_indices):
    x, indices = ctx.saved_tensors
    return (max_pool2d_backward(grad, x, indices, *ctx.args),) + (None,) * 5


max_pool2d_with_indices.register_autograd(_backward, setup_context=_setup_context)


def _pair(v: int | tuple[int, ...]) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(u) for u in v]


class OpaqueMaxPool2d(nn.Module):
    """``nn.MaxPool2d`` (without ``return_indices``) through the opaque operators above."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.kernel_size = _pair(pool.kernel_size)
        self.stride = _pair(pool.stride or pool.kernel_size)
        self.padding = _pair(pool.padding)
        self.dilation = _pair(pool.dilation)
        self.ceil_mode = bool(pool.ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        args = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        return max_pool2d_with_indices(x, *args)[0]


def _overlapping(module: nn.Module) -> bool:
    """A max pool whose windows overlap (stride below the window): the slow lowering's case."""
    if type(module) is not nn.MaxPool2d or module.return_indices:
        return False
    kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
    return any(s < k for s, k in zip(stride, kernel, strict=True))


def opaque_pools(net: nn.Module) -> nn.Module:
    """``net`` itself when it has no overlapping max pool, else a copy (its own parameters,
    equal to ``net``'s) whose overlapping ``nn.MaxPool2d`` are :class:`OpaqueMaxPool2d`."""
    names = [name for name, m in net.named_modules() if name and _overlapping(m)]
    if not names:
        return net
    out = copy.deepcopy(net)
    for name in names:
        parent, _, leaf = name.rpartition(".")
        owner = out.get_submodule(parent) if parent else out
        setattr(owner, leaf, OpaqueMaxPool2d(out.get_submodule(name)))
    return out

"""An op module as a chain of pieces: linear maps (with their adjoints) and 1-Lipschitz-ish gates.

:func:`pieces` flattens an op from :data:`models.OPS` (or the search net's pool + BatchNorm, the
eval net's stem, preprocessing and classifier parts) into the order its forward applies them.
Linear pieces hold references to the live modules, so their values follow training:

- :class:`ConvPiece` ``conv2d`` without bias (a bias shifts, it does not stretch);
- :class:`ScalePiece` a per-channel diagonal: BatchNorm and ``gamma`` where affine, or the input
  normalisation ``1 / std``. A BatchNorm in train mode divides by the statistics of the batch
  it sees: while the search records them (:func:`record_batch_variance`), the scale uses the
  last recorded batch variance (detached), so the constant bounds the map the search applied;
  in eval mode, or with nothing recorded, the running statistics (a trained network);
- :class:`ReducePiece` FactorizedReduce's two offset 1x1 stride-2 convs (its BatchNorm follows
  as a :class:`ScalePiece`);
- :class:`PoolPiece` average pooling (linear, the same on every channel);
- :class:`FlattenPiece`, :class:`LinearPiece` the classifier.

Gates: :class:`Gate` with a constant factor: ReLU 1, ``none`` 0, max pool ``sqrt`` of the most
windows that share one input pixel (exact; docs/SEARCH.md). Each linear piece can also run G
same-shaped members at once (``stacked``), the members' channels side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from models.datasets import Normalize
from models.operations import FactorizedReduce, Identity, Zero


class ConvPiece:
    """A ``Conv2d`` as a linear map (zero padding only)."""

    channelwise = False

    def __init__(self, conv: nn.Conv2d) -> None:
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"op_bound: only explicit zero padding is supported, got {conv}")
        self.conv = conv

    def key(self) -> tuple:
        c = self.conv
        return ("conv", tuple(c.weight.shape), c.stride, c.padding, c.dilation, c.groups)

    def apply(self, v: Tensor) -> Tensor:
        c = self.conv
        w = c.weight.detach().to(v.dtype)
        return F.conv2d(v, w, None, c.stride, c.padding, c.dilation, c.groups)

    @staticmethod
    def stacked(members: list[ConvPiece], v: Tensor) -> Tensor:
        c = members[0].conv
        w = torch.cat([m.conv.weight.detach() for m in members]).to(v.dtype)
        groups = c.groups * len(members)
        return F.conv2d(v, w, None, c.stride, c.padding, c.dilation, groups)


BATCH_VAR = "racl_batch_var"  # attribute a recording BatchNorm keeps its last batch variance in


def record_batch_variance(module: nn.BatchNorm2d, args: tuple) -> None:
    """Forward pre-hook: keep the biased batch variance a train-mode BatchNorm divides by."""
    if module.training:
        x = args[0].detach()
        setattr(module, BATCH_VAR, x.var(dim=(0, 2, 3), unbiased=False))


def batch_or_running_var(bn: nn.BatchNorm2d) -> Tensor:
    """The variance ``bn`` divides by: the recorded batch variance in train mode, else the
    running one (eval mode, or nothing recorded yet)."""
    batch = getattr(bn, BATCH_VAR, None)
    if bn.training and batch is not None:
        return batch
    return bn.running_var.detach()


class ScalePiece:
    """A per-channel scale: BatchNorm (batch or running statistics) or ``1 / std``."""

    channelwise = False

    def __init__(self, source: nn.BatchNorm2d | Normalize) -> None:
        if isinstance(source, nn.BatchNorm2d) and source.running_var is None:
            raise ValueError("op_bound: a BatchNorm without running statistics is not supported")
        self.source = source

    def key(self) -> tuple:
        return ("scale", int(self.scale().numel()))

    def scale(self) -> Tensor:
        src = self.source
        if isinstance(src, Normalize):
            return src.std.detach().reshape(-1).reciprocal()
        scale = (batch_or_running_var(src) + src.eps).rsqrt()
        return scale * src.weight.detach() if src.weight is not None else scale

    def apply(self, v: Tensor) -> Tensor:
        s = self.scale().to(v.dtype)
        return v * s.view(1, -1, *([1] * (v.dim() - 2)))

    @staticmethod
    def stacked(members: list[ScalePiece], v: Tensor) -> Tensor:
        s = torch.cat([m.scale() for m in members]).to(v.dtype)
        return v * s.view(1, -1, 1, 1)


def shift_one(x: Tensor) -> Tensor:
    """FactorizedReduce's second path: the input moved up-left by one pixel, zero filled."""
    return F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]


class ReducePiece:
    """FactorizedReduce without its ReLU and BatchNorm: ``[W1 S x; W2 S shift(x)]``."""

    channelwise = False

    def __init__(self, module: FactorizedReduce) -> None:
        self.module = module

    def key(self) -> tuple:
        m = self.module
        return ("reduce", tuple(m.conv_1.weight.shape), tuple(m.conv_2.weight.shape))

    def apply(self, v: Tensor) -> Tensor:
        m = self.module
        w1, w2 = m.conv_1.weight.detach().to(v.dtype), m.conv_2.weight.detach().to(v.dtype)
        return torch.cat([F.conv2d(v, w1, stride=2), F.conv2d(shift_one(v), w2, stride=2)], 1)

    @staticmethod
    def stacked(members: list[ReducePiece], v: Tensor) -> Tensor:
        g = len(members)
        w1 = torch.cat([m.module.conv_1.weight.detach() for m in members]).to(v.dtype)
        w2 = torch.cat([m.module.conv_2.weight.detach() for m in members]).to(v.dtype)
        y1 = F.conv2d(v, w1, stride=2, groups=g)
        y2 = F.conv2d(shift_one(v), w2, stride=2, groups=g)
        h, w = y1.shape[-2:]
        both = torch.cat([y1.view(1, g, -1, h, w), y2.view(1, g, -1, h, w)], dim=2)
        return both.view(1, -1, h, w)


class PoolPiece:
    """Average pooling (plain or adaptive): linear and the same on every channel."""

    channelwise = True

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def key(self) -> tuple:
        return ("pool", repr(self.module))

    def apply(self, v: Tensor) -> Tensor:
        return self.module(v)

    @staticmethod
    def stacked(members: list[PoolPiece], v: Tensor) -> Tensor:
        return members[0].module(v)


class FlattenPiece:
    """``x.flatten(1)``: a reshape, norm 1."""

    channelwise = False

    def key(self) -> tuple:
        return ("flatten",)

    def apply(self, v: Tensor) -> Tensor:
        return v.flatten(1)


class LinearPiece:
    """An ``nn.Linear`` without its bias."""

    channelwise = False

    def __init__(self, module: nn.Linear) -> None:
        self.module = module

    def key(self) -> tuple:
        return ("linear", tuple(self.module.weight.shape))

    def apply(self, v: Tensor) -> Tensor:
        return F.linear(v, self.module.weight.detach().to(v.dtype))


LinearMap = ConvPiece | ScalePiece | ReducePiece | PoolPiece | FlattenPiece | LinearPiece


@dataclass(frozen=True)
class Gate:
    """A nonlinear piece with a known Lipschitz factor (ReLU, max pool, ``none``)."""

    kind: str  # "relu" | "zero" | "max_pool"
    module: nn.Module | None = None

    def factor(self, shape: tuple[int, ...]) -> float:
        if self.kind == "relu":
            return 1.0
        if self.kind == "zero":
            return 0.0
        return max_pool_gain(self.module, shape[-2], shape[-1])

    def apply(self, v: Tensor) -> Tensor:
        return v if self.kind == "relu" else self.module(v)


Piece = LinearMap | Gate


def pieces(module: nn.Module) -> list[Piece]:
    """The op's pieces in forward order; unknown modules raise ``ValueError``."""
    if isinstance(module, nn.Sequential):
        return [p for child in module for p in pieces(child)]
    if isinstance(module, nn.ReLU):
        return [Gate("relu")]
    if isinstance(module, nn.Conv2d):
        return [ConvPiece(module)]
    if isinstance(module, nn.BatchNorm2d | Normalize):
        return [ScalePiece(module)]
    if isinstance(module, FactorizedReduce):
        return [Gate("relu"), ReducePiece(module), ScalePiece(module.bn)]
    if isinstance(module, Identity | nn.Identity):
        return []
    if isinstance(module, Zero):
        return [Gate("zero", module)]
    if isinstance(module, nn.MaxPool2d):
        return [Gate("max_pool", module)]
    if isinstance(module, nn.AvgPool2d | nn.AdaptiveAvgPool2d):
        return [PoolPiece(module)]
    if isinstance(module, nn.Flatten):
        return [FlattenPiece()]
    if isinstance(module, nn.Linear):
        return [LinearPiece(module)]
    raise ValueError(f"op_bound: no Lipschitz rule for {type(module).__name__}")


def max_pool_gain(pool: nn.MaxPool2d, height: int, width: int) -> float:
    """L2 Lipschitz constant of a max pool on ``height x width``: sqrt(max windows per pixel).

    Upper bound: each output differs by at most the largest input change in its window, and a
    pixel lies in at most ``n`` windows. Attained: a single raised pixel moves all ``n`` outputs.
    """
    k, s, p, d = (_pair(getattr(pool, name)) for name in ("kernel_size", "stride", "padding",
                                                         "dilation"))  # fmt: skip
    out = pool(torch.zeros(1, 1, height, width)).shape[-2:]
    counts = [
        _max_windows(size, out[axis], k[axis], s[axis], p[axis], d[axis])
        for axis, size in enumerate((height, width))
    ]
    return math.sqrt(counts[0] * counts[1])


def _max_windows(size: int, n_out: int, k: int, s: int, p: int, d: int) -> int:
    """Most pooling windows along one axis that contain one input position."""
    hits = [0] * size
    for o in range(n_out):
        for t in range(k):
            i = o * s - p + t * d
            if 0 <= i < size:
                hits[i] += 1
    return max(hits, default=0)

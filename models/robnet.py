"""RobNet: cells whose 14 edges each carry a two-bit code (Guo et al., "When NAS Meets
Robustness: In Search of Robust Architectures against Adversarial Attacks", CVPR 2020).

Facts from gmh14/RobNets (``models/basic_model.py``, ``models/basic_operations.py``): 4
intermediate nodes, node ``i`` sums an op applied to EVERY earlier state (2 + 3 + 4 + 5 = 14
edges); codes ``00`` zero, ``01`` sep_conv_3x3, ``10`` identity (``FactorizedReduce`` at stride
2), ``11`` sep_conv_3x3 plus an identity / ``FactorizedReduce`` shortcut; every BatchNorm in the
cells is non-affine (only the stem's is affine); the output concatenates the 4 nodes; the stacking
is DARTS's (stem 3C, reductions at 1/3 and 2/3 depth, global pooling, linear). One shared cell
code or one code per cell (RobNet-free).
"""

from __future__ import annotations

import torch
from torch import nn

from core.datasets import DatasetInfo
from genotypes import ROBNET_NODES, RobNetArch
from models.cells import CellSpec, cell_plan, drop_path, preprocess, reduction_layers, stem
from models.datasets import Normalize
from models.operations import FactorizedReduce, Identity, SepConv, Zero, skip_connect

_AFFINE = False


class ResSepConv(nn.Module):
    """``sep_conv_3x3`` plus a shortcut (identity, or ``FactorizedReduce`` at stride 2)."""

    def __init__(self, C: int, stride: int, affine: bool = _AFFINE) -> None:
        super().__init__()
        self.conv = SepConv(C, C, 3, stride, 1, affine)
        self.shortcut = Identity() if stride == 1 else FactorizedReduce(C, C, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)


def robnet_op(code: str, C: int, stride: int) -> nn.Module:
    """The module of one RobNet edge code (``00``, ``01``, ``10``, ``11``)."""
    if code == "00":
        return Zero(stride)
    if code == "01":
        return SepConv(C, C, 3, stride, 1, _AFFINE)
    if code == "10":
        return skip_connect(C, stride, _AFFINE)
    if code == "11":
        return ResSepConv(C, stride)
    raise ValueError(f"unknown RobNet code {code!r}")


class RobNetCell(nn.Module):
    """A densely connected cell: node ``i`` = sum of ops over all ``i + 2`` earlier states."""

    def __init__(self, codes: tuple[str, ...], spec: CellSpec) -> None:
        super().__init__()
        self.preprocess0, self.preprocess1 = preprocess(spec, affine=_AFFINE)
        ops = []
        for node in range(ROBNET_NODES):
            for source in range(node + 2):
                stride = 2 if spec.reduction and source < 2 else 1
                ops.append(robnet_op(codes[len(ops)], spec.C_curr, stride))
        self.ops = nn.ModuleList(ops)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edge = 0
        for _ in range(ROBNET_NODES):
            total = None
            for h in list(states):
                op = self.ops[edge]
                out = op(h)
                if self.training and drop_prob > 0.0 and not isinstance(op, (Identity, Zero)):
                    out = drop_path(out, drop_prob)
                total = out if total is None else total + out
                edge += 1
            states.append(total)
        return torch.cat(states[2:], dim=1)


def _stages(layers: int) -> tuple[list[int], list[list[int]]]:
    """Reduction cell indices and the normal cell indices of the three stages."""
    first, second = reduction_layers(layers)
    reductions = sorted({first, second})
    bounds = [-1, *reductions, layers]
    pairs = zip(bounds, bounds[1:], strict=False)
    stages = [[i for i in range(lo + 1, hi) if i not in reductions] for lo, hi in pairs]
    return reductions, stages


def cell_codes(arch: RobNetArch, layers: int) -> list[tuple[str, ...]]:
    """The codes of each of ``layers`` cells.

    A shared code is repeated. Per-cell codes (RobNet-free) are used as published when ``layers``
    matches; for another depth (small test/demo nets) each reduction cell takes the code of the
    corresponding published reduction cell and each stage's normal cells take evenly spaced codes
    from the same stage of the published net (a scaled-down variant, not a published model).
    """
    if arch.share:
        return [arch.cells[0]] * layers
    if layers == len(arch.cells):
        return list(arch.cells)
    old_red, old_stages = _stages(len(arch.cells))
    new_red, new_stages = _stages(layers)
    codes: list[tuple[str, ...]] = [arch.cells[0]] * layers
    for rank, index in enumerate(new_red):
        codes[index] = arch.cells[old_red[min(rank, len(old_red) - 1)]]
    for old, new in zip(old_stages, new_stages, strict=False):
        for j, index in enumerate(new):
            source = old[j * len(old) // len(new)] if old else old_red[0]
            codes[index] = arch.cells[source]
    return codes


class RobNet(nn.Module):
    """A RobNet of ``layers`` cells of width ``init_channels`` (see the module docstring)."""

    def __init__(
        self,
        arch: RobNetArch,
        dataset: DatasetInfo,
        init_channels: int | None = None,
        layers: int | None = None,
        drop_path_prob: float = 0.0,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        init_channels = init_channels or arch.init_channels
        layers = layers or arch.layers
        self.arch = arch
        self.drop_path_prob = drop_path_prob
        plan = cell_plan(init_channels, layers, ROBNET_NODES, stem_multiplier)
        self.normalize = Normalize(dataset.mean, dataset.std)
        self.stem = stem(dataset.channels, stem_multiplier * init_channels)
        codes = cell_codes(arch, layers)
        self.cells = nn.ModuleList(RobNetCell(codes[spec.index], spec) for spec in plan)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan[-1].C_out, dataset.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(self.normalize(x))
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        return self.classifier(self.global_pooling(s1).flatten(1))

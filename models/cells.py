"""Cell stacking shared by the genotype eval network, RobNet and the search supernet.

The DARTS layout (Liu et al., ICLR 2019, ``cnn/model.py``): a 3x3 conv stem of
``stem_multiplier * C`` channels, then ``layers`` cells; the cells at ``layers // 3`` and
``2 * layers // 3`` halve the resolution and double the channels. Each cell reads the outputs of
the two previous cells through a preprocessing step (``FactorizedReduce`` when the previous cell
reduced, else a 1x1 ``ReLUConvBN``) and outputs ``multiplier * C_curr`` channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.operations import FactorizedReduce, ReLUConvBN


@dataclass(frozen=True)
class CellSpec:
    """Channel bookkeeping of cell ``index``: its inputs' channels and its own width."""

    index: int
    reduction: bool
    reduction_prev: bool
    C_prev_prev: int
    C_prev: int
    C_curr: int
    multiplier: int = 4

    @property
    def C_out(self) -> int:
        """Channels of the cell's output (concat of ``multiplier`` nodes of ``C_curr``)."""
        return self.multiplier * self.C_curr


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells: ``layers // 3`` and ``2 * layers // 3``."""
    return layers // 3, 2 * layers // 3


def cell_plan(
    C: int, layers: int, multiplier: int | tuple[int, int], stem_multiplier: int = 3
) -> list[CellSpec]:
    """Plan the channels of ``layers`` stacked cells after a ``stem_multiplier * C`` stem.

    ``multiplier`` is the number of concatenated nodes; give ``(normal, reduce)`` when the two
    cell types differ (NASNet concatenates 5 nodes in normal cells but 3 in reduction cells).
    """
    if C < 1 or layers < 1 or stem_multiplier < 1:
        raise ValueError(f"cell_plan needs C, layers, stem_multiplier >= 1 (got {C}, {layers})")
    if isinstance(multiplier, int):
        multiplier = (multiplier, multiplier)
    normal_mult, reduce_mult = multiplier
    reductions = reduction_layers(layers)
    C_prev_prev = C_prev = stem_multiplier * C
    C_curr, reduction_prev, plan = C, False, []
    for index in range(layers):
        reduction = index in reductions
        if reduction:
            C_curr *= 2
        mult = reduce_mult if reduction else normal_mult
        spec = CellSpec(index, reduction, reduction_prev, C_prev_prev, C_prev, C_curr, mult)
        plan.append(spec)
        C_prev_prev, C_prev, reduction_prev = C_prev, spec.C_out, reduction
    return plan


def stem(in_channels: int, C_stem: int) -> nn.Module:
    """The CIFAR stem: 3x3 conv (no bias) and an affine BatchNorm; keeps the resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
        nn.BatchNorm2d(C_stem),
    )


def preprocess(spec: CellSpec, affine: bool = True) -> tuple[nn.Module, nn.Module]:
    """The two input adapters of a cell, mapping both previous outputs to ``C_curr`` channels."""
    if spec.reduction_prev:
        pre0: nn.Module = FactorizedReduce(spec.C_prev_prev, spec.C_curr, affine)
    else:
        pre0 = ReLUConvBN(spec.C_prev_prev, spec.C_curr, 1, 1, 0, affine)
    return pre0, ReLUConvBN(spec.C_prev, spec.C_curr, 1, 1, 0, affine)


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples with probability ``p`` and rescale the rest by ``1 / (1 - p)``.

    Drop-path (Larsson et al., FractalNet, ICLR 2017) as used by DARTS. Not in place, on the
    tensor's own device and dtype. ``p <= 0`` returns ``x`` unchanged.
    """
    if p <= 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype)
    return x * mask.bernoulli_(keep) / keep

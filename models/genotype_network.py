"""The evaluation network built from a DARTS-format genotype (DARTS ``NetworkCIFAR`` layout).

Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019 (quark0/darts
``cnn/model.py``): stem, ``layers`` cells with reductions at 1/3 and 2/3 depth, an optional
auxiliary head after the second reduction cell (Szegedy et al., 2015), global average pooling and
a linear classifier. Drop-path (probability ``drop_path_prob``, an attribute a training loop may
change between epochs) applies in training mode to every op that is not an identity. Inputs are
images in ``[0, 1]``; normalisation is the first module. ``forward`` returns one logits tensor;
auxiliary logits are left in ``self.aux_logits`` in training mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.datasets import DatasetInfo
from genotypes import Genotype
from models.cells import CellSpec, cell_plan, drop_path, preprocess, stem
from models.datasets import Normalize
from models.operations import OPS, Identity


class GenotypeCell(nn.Module):
    """One normal or reduction cell: two ops per node, node = sum, output = concat."""

    def __init__(self, genotype: Genotype, spec: CellSpec) -> None:
        super().__init__()
        pairs = genotype.reduce if spec.reduction else genotype.normal
        self.concat = genotype.reduce_concat if spec.reduction else genotype.normal_concat
        self.reduction = spec.reduction
        self.preprocess0, self.preprocess1 = preprocess(spec)
        self.indices = tuple(index for _, index in pairs)
        self.ops = nn.ModuleList(
            OPS[name](spec.C_curr, 2 if spec.reduction and index < 2 else 1, True)
            for name, index in pairs
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total = None
            for position in (2 * node, 2 * node + 1):
                op = self.ops[position]
                h = op(states[self.indices[position]])
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary classifier on the 8x8 maps after the second reduction.

    DARTS pools 8x8 with a 5x5 window at stride 3 to 2x2. Other sizes (7x7 from 28x28 inputs)
    use adaptive average pooling to the same 2x2, so the head has the same parameters.
    """

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        if x.shape[-2:] == (8, 8):
            x = F.avg_pool2d(x, 5, stride=3, padding=0)
        else:
            x = F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.features(x).flatten(1))


class GenotypeNetwork(nn.Module):
    """A CIFAR-style network of stacked genotype cells (see the module docstring)."""

    def __init__(
        self,
        genotype: Genotype,
        dataset: DatasetInfo,
        init_channels: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        self.genotype = genotype
        self.drop_path_prob = drop_path_prob
        self.aux_logits: torch.Tensor | None = None
        multiplier = (len(genotype.normal_concat), len(genotype.reduce_concat))
        plan = cell_plan(init_channels, layers, multiplier, stem_multiplier)
        self.normalize = Normalize(dataset.mean, dataset.std)
        self.stem = stem(dataset.channels, stem_multiplier * init_channels)
        self.cells = nn.ModuleList(GenotypeCell(genotype, spec) for spec in plan)
        self.aux_index = 2 * layers // 3
        self.auxiliary_head = (
            AuxiliaryHead(plan[self.aux_index].C_out, dataset.num_classes) if auxiliary else None
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan[-1].C_out, dataset.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(self.normalize(x))
        self.aux_logits = None
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if index == self.aux_index and self.auxiliary_head is not None and self.training:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1))

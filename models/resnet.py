"""CIFAR ResNet-18 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

The CIFAR variant used in adversarial-training work (e.g. Madry et al., ICLR 2018): a 3x3 stem
without max pooling, four stages of two basic blocks (widths w, 2w, 4w, 8w; w = 64 gives 11.2M
parameters), global average pooling, a linear classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.datasets import DatasetInfo
from models.datasets import Normalize


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut (1x1 conv-BN when the shape changes)."""

    def __init__(self, C_in: int, C_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(C_in, C_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(C_out)
        self.conv2 = nn.Conv2d(C_out, C_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(C_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or C_in != C_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(C_in, C_out, 1, stride=stride, bias=False), nn.BatchNorm2d(C_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 / 28x28 inputs; ``width`` is the first stage's channel count."""

    def __init__(self, dataset: DatasetInfo, width: int = 64) -> None:
        super().__init__()
        self.normalize = Normalize(dataset.mean, dataset.std)
        self.stem = nn.Sequential(
            nn.Conv2d(dataset.channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=False),
        )
        blocks, C_in = [], width
        for stage in range(4):
            C_out = width * 2**stage
            for block in range(2):
                blocks.append(BasicBlock(C_in, C_out, 2 if stage and not block else 1))
                C_in = C_out
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(C_in, dataset.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(self.normalize(x)))
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))

"""CIFAR DenseNet-121 (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017).

DenseNet-BC with blocks of 6, 12, 24, 16 bottleneck layers, growth rate k = 32, compression 0.5;
the CIFAR variant replaces the 7x7 stride-2 stem and max pool by one 3x3 conv of 2k channels
(about 7.0M parameters for 10 classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.datasets import DatasetInfo
from models.datasets import Normalize

BLOCKS = (6, 12, 24, 16)


class Bottleneck(nn.Module):
    """BN-ReLU-1x1 conv (4k) then BN-ReLU-3x3 conv (k); output appended to the input."""

    def __init__(self, C_in: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(C_in)
        self.conv1 = nn.Conv2d(C_in, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (compression) and 2x2 average pooling."""

    def __init__(self, C_in: int, C_out: int) -> None:
        super().__init__(
            nn.BatchNorm2d(C_in),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.AvgPool2d(2),
        )


class DenseNet121(nn.Module):
    """DenseNet-121 for 32x32 / 28x28 inputs; ``width`` is the growth rate k."""

    def __init__(self, dataset: DatasetInfo, width: int = 32, reduction: float = 0.5) -> None:
        super().__init__()
        self.normalize = Normalize(dataset.mean, dataset.std)
        channels = 2 * width
        layers: list[nn.Module] = [nn.Conv2d(dataset.channels, channels, 3, padding=1, bias=False)]
        for index, count in enumerate(BLOCKS):
            for _ in range(count):
                layers.append(Bottleneck(channels, width))
                channels += width
            if index < len(BLOCKS) - 1:
                out = int(channels * reduction)
                layers.append(Transition(channels, out))
                channels = out
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=False)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, dataset.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(self.normalize(x))
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))

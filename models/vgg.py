"""CIFAR VGG-19 with BatchNorm (Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015; BatchNorm after every conv).

The CIFAR variant: sixteen 3x3 conv-BN-ReLU layers in five stages (64, 128, 256, 512, 512
channels at ``width`` 64; convs keep their bias, as in torchvision) each closed by 2x2 max
pooling, then one linear layer 512 -> classes.
Pooling uses ``ceil_mode`` so that 28x28 inputs keep a 1x1 map (28-14-7-4-2-1); 32x32 is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from core.datasets import DatasetInfo
from models.datasets import Normalize

STAGES = ((1, 2), (2, 2), (4, 4), (8, 4), (8, 4))  # (width multiple of 64, conv layers)


class VGG19(nn.Module):
    """VGG-19-BN for 32x32 / 28x28 inputs; ``width`` is the first stage's channel count."""

    def __init__(self, dataset: DatasetInfo, width: int = 64) -> None:
        super().__init__()
        self.normalize = Normalize(dataset.mean, dataset.std)
        layers: list[nn.Module] = []
        C_in = dataset.channels
        for multiple, count in STAGES:
            for _ in range(count):
                C_out = width * multiple
                layers += [
                    nn.Conv2d(C_in, C_out, 3, padding=1),
                    nn.BatchNorm2d(C_out),
                    nn.ReLU(inplace=False),
                ]
                C_in = C_out
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_in, dataset.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(self.normalize(x))).flatten(1))

"""AlexNet (the torchvision "one weird trick" variant) with torchvision's key names, features only."""

from __future__ import annotations

import torch
from torch import nn


class AlexNetFeatures(nn.Module):
    """`features.*` of torchvision's AlexNet; `forward` returns the five ReLU outputs LPIPS compares."""

    channels = (64, 192, 384, 256, 256)
    taps = (1, 4, 7, 9, 11)  # indices of relu1 .. relu5 in `features`

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
        return outs

"""Discriminators."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm


class EdgeConnectDiscriminator(nn.Module):
    """The 70x70 PatchGAN of EdgeConnect (Nazeri et al. 2019) with spectral normalization, used by PUT
    (seed 000, Eq. 5): five 4x4 convolutions, LeakyReLU 0.2, one logit per patch."""

    def __init__(self, in_channels: int = 3, width: int = 64):
        super().__init__()
        w = width
        layers, chans = [], [in_channels, w, 2 * w, 4 * w, 8 * w]
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            layers += [spectral_norm(nn.Conv2d(a, b, 4, stride=2 if i < 3 else 1, padding=1, bias=False)),
                       nn.LeakyReLU(0.2, inplace=True)]  # fmt: skip
        layers.append(spectral_norm(nn.Conv2d(8 * w, 1, 4, stride=1, padding=1, bias=False)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

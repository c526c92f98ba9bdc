"""Gated convolution (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019): a convolution
whose output is multiplied by a learned soft mask, sigmoid(gate), computed by a second convolution. It lets
the network learn where the hole is at every layer instead of being told once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedConv2d(nn.Module):
    """act(features) * sigmoid(gate); both come from one convolution with twice the output channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 activation: str | None = "elu"):  # fmt: skip
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, pad, dilation)
        self.activation = {"elu": F.elu, "relu": F.relu, None: lambda t: t}[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        return self.activation(features) * torch.sigmoid(gate)


class GatedUpConv2d(GatedConv2d):
    """Nearest-neighbour 2x upsampling, then a gated convolution (DeepFill v2's decoder step)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))

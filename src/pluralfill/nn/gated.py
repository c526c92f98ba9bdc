"""Gated convolution (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019): a convolution
whose output is multiplied by a learned soft mask, sigmoid(gate), computed by a second convolution. It lets
the network learn where the hole is at every layer instead of being told once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pluralfill.nn.padding import pad_same


class GatedConv2d(nn.Module):
    """act(features) * sigmoid(gate); both come from one convolution with twice the output channels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        activation: str | None = "elu",
        padding: str = "symmetric",
    ):
        """padding: "symmetric" (PyTorch's) or "tf" (TensorFlow's 'SAME', for weights ported from it)."""
        super().__init__()
        self.tf_padding = padding == "tf"
        pad = 0 if self.tf_padding else dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, pad, dilation)
        self.activation = {"elu": F.elu, "relu": F.relu, None: lambda t: t}[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_padding:
            x = pad_same(x, self.conv.kernel_size, self.conv.stride[0], self.conv.dilation[0])
        features, gate = self.conv(x).chunk(2, dim=1)
        return self.activation(features) * torch.sigmoid(gate)


class GatedUpConv2d(GatedConv2d):
    """Nearest-neighbour 2x upsampling, then a gated convolution (DeepFill v2's decoder step)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))

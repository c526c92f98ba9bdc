"""Weight-normalized convolution and dense layers (Salimans & Kingma 2016) as DSI's official code computes
them: a convolution's kernel is g * V / ||V|| with the norm over (in, kh, kw) of each output channel (and
V / sqrt(max(sum V^2, 1e-12)), TensorFlow's l2_normalize); a dense layer scales x @ V by g / ||V|| (no
epsilon). There is no data-dependent initialisation: the official code has none.

`frozen_weights(module)` computes every kernel once for a block of work that does not train (sampling one
position at a time would otherwise recompute them at each step)."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from pluralfill.nn.padding import pad_same


class WNConv2d(nn.Module):
    """padding "same" (TensorFlow's, see nn.padding) or "valid"; `weight_v` is (out, in, kh, kw)."""

    frozen: torch.Tensor | None = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int] = 3,
        stride: int = 1,
        dilation: int = 1,
        padding: str = "same",
    ):
        super().__init__()
        self.kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        self.stride, self.dilation, self.padding = stride, dilation, padding
        self.weight_v = nn.Parameter(torch.randn(out_channels, in_channels, *self.kernel) * 0.05)
        self.weight_g = nn.Parameter(torch.ones(out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def weight(self) -> torch.Tensor:
        if self.frozen is not None:
            return self.frozen
        v = self.weight_v
        return self.weight_g.view(-1, 1, 1, 1) * (v * v.pow(2).sum((1, 2, 3), keepdim=True).clamp_min(1e-12).rsqrt())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = pad_same(x, self.kernel, self.stride, self.dilation)
        return F.conv2d(x, self.weight(), self.bias, self.stride, 0, self.dilation)


class WNLinear(nn.Module):
    """The official `nin`: a weight-normalized dense layer applied at every position. It takes (B, C, H, W)
    maps (channels on dim 1) or (..., C) vectors; `weight_v` is (out, in)."""

    frozen: torch.Tensor | None = None

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight_v = nn.Parameter(torch.randn(out_features, in_features) * 0.05)
        self.weight_g = nn.Parameter(torch.ones(out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def weight(self) -> torch.Tensor:
        if self.frozen is not None:
            return self.frozen
        return self.weight_v * (self.weight_g / self.weight_v.pow(2).sum(1).sqrt()).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return F.conv2d(x, self.weight()[:, :, None, None], self.bias)
        return F.linear(x, self.weight(), self.bias)


@contextlib.contextmanager
def frozen_weights(module: nn.Module):
    layers = [m for m in module.modules() if isinstance(m, (WNConv2d, WNLinear))]
    try:
        for m in layers:
            m.frozen = m.weight().detach()
        yield module
    finally:
        for m in layers:
            m.frozen = None

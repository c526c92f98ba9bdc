"""TensorFlow's 'SAME' padding, for networks ported from TensorFlow: per dimension the total padding is
max((out - 1) * stride + k_eff - in, 0) with out = ceil(in / stride) and k_eff = (k - 1) * dilation + 1,
and the smaller half goes on top / left. Stride 2 with an odd kernel pads one more at the bottom / right
than PyTorch's symmetric padding would (k = 3: 0 / 1; k = 5: 1 / 2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(before, after) for one dimension."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int | tuple[int, int], stride: int = 1, dilation: int = 1) -> torch.Tensor:
    """Zero-pad (B, C, H, W) so that a VALID convolution gives TensorFlow's 'SAME' output."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    top, bottom = same_padding(x.shape[-2], kh, stride, dilation)
    left, right = same_padding(x.shape[-1], kw, stride, dilation)
    return F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x

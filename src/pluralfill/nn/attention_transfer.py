"""DSI's attention transfer (the official `attention_transfer`, after DeepFill's contextual attention and
PEPSI): positions are matched by their *structure* and what moves are texture features, at two scales.

For each image, with f the structure (D, h, w) and L = h w positions:
    d[p, l] = |P_p - P_l|^2           P_p: the zero-padded 3x3 patch of f around p
    y[p, l] = -tanh((d[p, l] - mean_l) / std_l)           (population std over l)
    fuse:   y[p, l] <- y[p-1, l-1] + y[p, l] + y[p+1, l+1] (raster order), then the same in column-major order
    a[p, :] = softmax(50 y[p, :])
    out1 = the 4x4 patch at p of sum_l a[p, l] B1_l      B1_l: the non-overlapping 4x4 patches of b1 (4h x 4w)
    out2 = likewise with the 2x2 patches of b2 (2h x 2w)
No hole enters: the weights are set by the structure alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _fuse(y: torch.Tensor) -> torch.Tensor:
    """(B, L, L) -> y[p-1, l-1] + y[p, l] + y[p+1, l+1], zero outside (a 3x3 identity kernel)."""
    padded = F.pad(y, (1, 1, 1, 1))
    return padded[:, :-2, :-2] + y + padded[:, 2:, 2:]


def _column_major(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Reorder both axes of a (B, L, L) position matrix from raster (row-major) to column-major order."""
    b = y.shape[0]
    return y.reshape(b, h, w, h, w).permute(0, 2, 1, 4, 3).reshape(b, h * w, h * w)


def attention_scores(f: torch.Tensor, softmax_scale: float = 50.0, fuse: bool = True) -> torch.Tensor:
    """f (B, D, h, w) -> (B, L, L) weights a[p, l] (rows sum to 1)."""
    b, d, h, w = f.shape
    patches = F.unfold(f, 3, padding=1).transpose(1, 2)  # (B, L, 9D)
    sq = patches.pow(2).sum(-1)
    dist = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * patches @ patches.transpose(1, 2)
    mean, var = dist.mean(-1, keepdim=True), dist.var(-1, keepdim=True, correction=0)
    y = -torch.tanh((dist - mean) / var.sqrt())
    if fuse:
        y = _fuse(y)
        y = _column_major(_fuse(_column_major(y, h, w)), w, h)
    return torch.softmax(softmax_scale * y, dim=-1)


def paste(weights: torch.Tensor, values: torch.Tensor, patch: int) -> torch.Tensor:
    """Each output patch p = sum_l weights[p, l] x the patch l of `values` (B, C, patch h, patch w)."""
    size = (int(values.shape[-2]), int(values.shape[-1]))  # ints: a constant when traced for ONNX
    v = F.unfold(values, patch, stride=patch)  # (B, C patch^2, L)
    return F.fold(v @ weights.transpose(1, 2), size, patch, stride=patch)


def attention_transfer(
    f: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor, softmax_scale: float = 50.0, fuse: bool = True
):
    """f (B, D, h, w), b1 (B, C1, 4h, 4w), b2 (B, C2, 2h, 2w) -> (out1 like b1, out2 like b2)."""
    a = attention_scores(f, softmax_scale, fuse)
    return paste(a, b1, 4), paste(a, b2, 2)

"""The one pair of conversions between pictures and model tensors: uint8 HxWx3 RGB <-> float [-1, 1] NCHW."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images) -> torch.Tensor:
    """uint8 (H, W, 3) or (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1]."""
    a = np.asarray(images)
    a = np.ascontiguousarray(a if a.ndim == 4 else a[None])
    t = torch.from_numpy(a if a.flags.writeable else a.copy())  # a PIL image's array is read-only; torch warns on those
    return t.permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) or (3, H, W) in [-1, 1] -> uint8 (N, H, W, 3) or (H, W, 3), rounded."""
    a = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu()
    return a.permute(*range(a.ndim - 3), -2, -1, -3).numpy()

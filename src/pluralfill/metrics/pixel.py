"""Pixel metrics that need no weights: MAE, PSNR and SSIM, batched in torch.

Inputs are uint8 arrays (HxWx3 or NxHxWx3) or float tensors on the 0..255 scale, NxCxHxW.
Each function returns one value per image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

DATA_RANGE = 255.0
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's convert("L")


def as_batch(x) -> torch.Tensor:
    """uint8 HxWx3 / NxHxWx3 arrays or NxCxHxW tensors -> float64 NxCxHxW on the 0..255 scale."""
    if isinstance(x, torch.Tensor):
        return x.to(torch.float64)
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.array(a, dtype=np.float64)).permute(0, 3, 1, 2)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def mae(pred, target) -> torch.Tensor:
    """Mean absolute error as a percentage of the value range (Zhou et al. 2023, Table IV)."""
    p, t = as_batch(pred), as_batch(target)
    return (p - t).abs().mean(dim=(1, 2, 3)) / DATA_RANGE * 100


def psnr(pred, target) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB; identical images give 100 dB rather than infinity."""
    p, t = as_batch(pred), as_batch(target)
    mse = ((p - t) ** 2).mean(dim=(1, 2, 3))
    return torch.where(mse > 0, 10 * torch.log10(DATA_RANGE**2 / mse.clamp_min(1e-20)), torch.full_like(mse, 100.0))


def _gaussian_window(sigma: float, radius: int, dtype, device) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim(pred, target, gray: bool = False, sigma: float = 1.5, win_size: int = 11) -> torch.Tensor:
    """Structural similarity with an 11x11 Gaussian window (sigma 1.5), the mean over channels.

    Matches `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)`: statistics over every full window, borders excluded.
    `gray=True` compares the luma channel only (PUT's protocol).
    """
    p, t = as_batch(pred), as_batch(target)
    if gray:
        p, t = to_gray(p), to_gray(t)
    c = p.shape[1]
    g = _gaussian_window(sigma, win_size // 2, p.dtype, p.device)
    kx, ky = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(x):
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return s.mean(dim=(1, 2, 3))

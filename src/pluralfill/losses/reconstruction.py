"""Pixel L1 and image-gradient L1 (Liu et al. 2022, Eq. 3-4)."""

from __future__ import annotations

import torch


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along height and width."""
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def gradient_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    (ay, ax), (by, bx) = image_gradients(a), image_gradients(b)
    return (ay - by).abs().mean() + (ax - bx).abs().mean()


def pixel_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()

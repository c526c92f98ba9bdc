"""Perceptual (Johnson et al.) and style (Gatys et al.) losses on VGG-19 activations, as EdgeConnect and
PUT (Liu et al. 2022, Eq. 6-7) use them: L1 between activations, and L1 between their Gram matrices."""

from __future__ import annotations

import torch
from torch import nn

from pluralfill.nn.vgg import VGGFeatures

PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def gram(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    f = x.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


class VGGLoss(nn.Module):
    """`forward(a, b)` with images in [-1, 1] -> (perceptual, style). VGG weights are frozen."""

    def __init__(self, vgg: VGGFeatures, perceptual_layers=PERCEPTUAL_LAYERS, style_layers=STYLE_LAYERS):
        super().__init__()
        self.vgg = vgg.requires_grad_(False).eval()
        self.perceptual_layers, self.style_layers = tuple(perceptual_layers), tuple(style_layers)
        self.taps = tuple(dict.fromkeys(self.perceptual_layers + self.style_layers))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        super().train(mode)
        self.vgg.eval()  # never in training mode
        return self

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        norm = lambda x: ((x + 1) / 2 - self.mean) / self.std  # noqa: E731
        fa = dict(zip(self.taps, self.vgg(norm(a), self.taps)))
        fb = dict(zip(self.taps, self.vgg(norm(b), self.taps)))
        perceptual = sum((fa[k] - fb[k]).abs().mean() for k in self.perceptual_layers)
        style = sum((gram(fa[k]) - gram(fb[k])).abs().mean() for k in self.style_layers)
        return perceptual, style

"""LPIPS v0.1 (Zhang et al., CVPR 2018): distance of unit-normalized deep features, weighted per channel
by learned linear heads, averaged over space and summed over layers. Backbones: AlexNet or VGG-16."""

from __future__ import annotations

import os

import torch
from torch import nn

from pluralfill.hub import load_weights
from pluralfill.nn.alexnet import AlexNetFeatures
from pluralfill.nn.vgg import VGGFeatures

VGG_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


class _VGG16Taps(nn.Module):
    channels = (64, 128, 256, 512, 512)

    def __init__(self):
        super().__init__()
        self.body = VGGFeatures("vgg16")

    def forward(self, x):
        return self.body(x, VGG_TAPS)


class _Head(nn.Module):
    """One channel-weighting head; key names follow the LPIPS files (`linK.model.1.weight`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """`forward(a, b)` with images in [-1, 1], NCHW -> one distance per pair (N,)."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in ("alex", "vgg"):
            raise ValueError(f"LPIPS backbone must be 'alex' or 'vgg', got {net!r}")
        self.net_name = net
        self.net = AlexNetFeatures() if net == "alex" else _VGG16Taps()
        for i, c in enumerate(self.net.channels):
            self.add_module(f"lin{i}", _Head(c))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = self.net((a - self.shift) / self.scale)
        fb = self.net((b - self.shift) / self.scale)
        total = 0
        for i, (x, y) in enumerate(zip(fa, fb)):
            d = (_unit(x) - _unit(y)) ** 2
            total = total + getattr(self, f"lin{i}").model(d).mean(dim=(2, 3))
        return total.view(-1)


def load_lpips(
    net: str = "alex",
    backbone_path: str | os.PathLike | None = None,
    heads_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> LPIPS:
    """LPIPS with its ImageNet backbone and v0.1 heads, found as `pluralfill.pretrained.resolve` says."""
    model = LPIPS(net)
    backbone = model.net.body if net == "vgg" else model.net
    load_weights(backbone, "alexnet" if net == "alex" else "vgg16", backbone_path, ignore=("classifier.",))
    heads = nn.ModuleDict({f"lin{i}": getattr(model, f"lin{i}") for i in range(5)})
    load_weights(heads, f"lpips-{net}", heads_path)
    return model.eval().to(device)

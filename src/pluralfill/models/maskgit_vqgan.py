"""The official MaskGIT tokenizer (google-research/maskgit `nets/vqgan_tokenizer.py`): a VQGAN without
attention, f = 16, 1024 codes, the released ImageNet models' architecture.

    encoder: conv3x3 -> per level (R res blocks, 2x2 average pool but at the last) -> R res blocks -> GN, swish, conv1x1
    decoder: conv3x3 -> R res blocks -> per level from the deepest (R res blocks, nearest x2 + conv3x3 but at the
             first) -> GN, swish, conv3x3 -> RGB
    code k is row k of the codebook; the nearest by squared distance, first index on ties

GroupNorm has 32 groups and epsilon 1e-6. Images are [-1, 1] here; the official network reads [0, 1], so the
conversion is done at the edges (`encode`, `decode`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pluralfill.models.vqgan import VQGANConfig


def norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6)


class ResBlock(nn.Module):
    """h = conv(swish(GN(conv(swish(GN(x)))))); y = h + x, or, when the width changes, y = h + conv1x1(h):
    the official block applies its shortcut convolution to h and never adds the input (kept as it is)."""

    def __init__(self, ci: int, co: int):
        super().__init__()
        self.norm1, self.conv1 = norm(ci), nn.Conv2d(ci, co, 3, padding=1, bias=False)
        self.norm2, self.conv2 = norm(co), nn.Conv2d(co, co, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(co, co, 1, bias=False) if ci != co else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.shortcut(h) if self.shortcut is not None else x)


class Encoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        widths = [cfg.channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        blocks, c = [], widths[0]
        for w in widths:
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(c, w))
                c = w
        self.blocks = nn.ModuleList(blocks)
        self.final = nn.ModuleList(ResBlock(c, c) for _ in range(cfg.num_res_blocks))
        self.norm_out, self.conv_out = norm(c), nn.Conv2d(c, cfg.code_dim, 1)
        self.levels, self.per_level = len(widths), cfg.num_res_blocks

    def forward(self, x):
        x = self.conv_in(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            level = i // self.per_level
            if i % self.per_level == self.per_level - 1 and level < self.levels - 1:
                x = F.avg_pool2d(x, 2)
        for block in self.final:
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        widths = [cfg.channels * m for m in cfg.channel_mult]
        c = widths[-1]
        self.conv_in = nn.Conv2d(cfg.code_dim, c, 3, padding=1)
        self.first = nn.ModuleList(ResBlock(c, c) for _ in range(cfg.num_res_blocks))
        blocks, ups = [], []
        for i in reversed(range(len(widths))):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(c, widths[i]))
                c = widths[i]
            if i > 0:
                ups.append(nn.Conv2d(c, c, 3, padding=1))
        self.blocks, self.ups = nn.ModuleList(blocks), nn.ModuleList(ups)
        self.norm_out, self.conv_out = norm(c), nn.Conv2d(c, 3, 3, padding=1)
        self.per_level = cfg.num_res_blocks

    def forward(self, z):
        x = self.conv_in(z)
        for block in self.first:
            x = block(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            level = i // self.per_level
            if i % self.per_level == self.per_level - 1 and level < len(self.ups):
                x = self.ups[level](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(x)))


class MaskGITVQGAN(nn.Module):
    """encode(x in [-1, 1]) -> (B, h, w) codes; decode(codes) -> images in about [-1, 1] (not clipped)."""

    def __init__(self, cfg: VQGANConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or VQGANConfig()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.codebook = nn.Parameter(torch.randn(cfg.num_codes, cfg.code_dim) * 0.02)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output before quantization, (B, D, h, w)."""
        return self.encoder((x + 1) / 2)

    def distance(self, z: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., K): |z|^2 - 2 z.e + |e|^2, in the official order of terms."""
        e = self.codebook
        return z.pow(2).sum(-1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(-1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x).permute(0, 2, 3, 1)
        return self.distance(z).argmin(-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        z = F.embedding(codes, self.codebook).permute(0, 3, 1, 2)
        return self.decoder(z) * 2 - 1

    def forward(self, x):
        raise TypeError("the official MaskGIT tokenizer has no training pass here: encode and decode")

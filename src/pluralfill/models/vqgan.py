"""VQGAN tokenizer (Esser et al. 2021), MaskGIT's first stage: a convolutional encoder that downsamples by
f = 2^(levels - 1) (16 for 256 -> 16x16 tokens), a codebook of 1024 codes, a mirrored decoder.

    tokens = nearest code of quant_conv(encoder(x));  image = decoder(post_quant_conv(codebook[tokens]))
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from pluralfill.models.base import Pretrained
from pluralfill.nn.quantizer import DualCodebook


class VQGANConfig(BaseModel):
    """Both VQGAN tokenizers: ours (`kind="ours"`, trained here) and the official MaskGIT one
    (`kind="official"`, models/maskgit_vqgan.py: no attention, the encoder ends at `code_dim` channels,
    GroupNorm of 32)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["ours", "official"] = "ours"
    resolution: int = 256
    channels: int = 128  # width of the first level (the official code's `filters`)
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # per level; f = 2 ** (len - 1) = 16
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)  # ours only
    z_channels: int = 256  # ours only: the encoder's output before quant_conv
    code_dim: int = 256
    num_codes: int = 1024
    groups: int = 32  # GroupNorm groups
    ema_decay: float = 0.99  # ours only: codebook updates in training

    @model_validator(mode="before")
    @classmethod
    def _official_names(cls, data):
        """Model folders converted before the two configs were one name the official fields as the official code."""
        if isinstance(data, dict) and data.get("kind") == "official":
            renames = {"filters": "channels", "channel_multipliers": "channel_mult", "embedding_dim": "code_dim"}
            data = {renames.get(k, k): v for k, v in data.items()}
            data.setdefault("attn_resolutions", ())
        return data

    @property
    def factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def tokens_per_side(self) -> int:
        return self.resolution // self.factor


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, c), c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm, self.qkv, self.proj = _norm(c, groups), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(y.transpose(-1, -2).reshape(b, c, h, w))


class Encoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        g, widths = cfg.groups, [cfg.channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(3, cfg.channels, 3, padding=1)
        layers, c, res = [], cfg.channels, cfg.resolution
        for i, w in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(c, w, g))
                c = w
                if res in cfg.attn_resolutions:
                    layers.append(AttnBlock(c, g))
            if i < len(widths) - 1:
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                res //= 2
        layers += [ResBlock(c, c, g), AttnBlock(c, g), ResBlock(c, c, g)]
        self.layers = nn.Sequential(*layers)
        self.norm_out, self.conv_out = _norm(c, g), nn.Conv2d(c, cfg.z_channels, 3, padding=1)

    def forward(self, x):
        return self.conv_out(F.silu(self.norm_out(self.layers(self.conv_in(x)))))


class Decoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        g, widths = cfg.groups, [cfg.channels * m for m in cfg.channel_mult][::-1]
        c, res = widths[0], cfg.tokens_per_side
        self.conv_in = nn.Conv2d(cfg.z_channels, c, 3, padding=1)
        layers = [ResBlock(c, c, g), AttnBlock(c, g), ResBlock(c, c, g)]
        for i, w in enumerate(widths):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResBlock(c, w, g))
                c = w
                if res in cfg.attn_resolutions:
                    layers.append(AttnBlock(c, g))
            if i < len(widths) - 1:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
                res *= 2
        self.layers = nn.Sequential(*layers)
        self.norm_out, self.conv_out = _norm(c, g), nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, z):
        return self.conv_out(F.silu(self.norm_out(self.layers(self.conv_in(z)))))


class VQGAN(Pretrained, nn.Module):
    method, config_class = "vqgan", VQGANConfig

    def __init__(self, cfg: VQGANConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or VQGANConfig()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.code_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.code_dim, cfg.z_channels, 1)
        self.quantizer = DualCodebook(cfg.num_codes, cfg.code_dim, split=None, decay=cfg.ema_decay)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> tokens (B, H/f, W/f)."""
        z = self.quant_conv(self.encoder(x))
        b, c, h, w = z.shape
        return self.quantizer.tokens(z.permute(0, 2, 3, 1).reshape(b, h * w, c)).reshape(b, h, w)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        z = self.quantizer.lookup(tokens).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor):
        """Training pass: (reconstruction, commitment loss, tokens)."""
        z = self.quant_conv(self.encoder(x))
        b, c, h, w = z.shape
        zq, tokens, commitment = self.quantizer(z.permute(0, 2, 3, 1).reshape(b, h * w, c))
        rec = self.decoder(self.post_quant_conv(zq.transpose(1, 2).reshape(b, c, h, w)))
        return rec, commitment, tokens.reshape(b, h, w)

"""DSI's texture generator as the official code builds it: gated convolutions encode the masked image to
1/4 resolution, the structure (the top latent's code vectors, 1/8) is brought up to 1/4 and joined, dilated
gated convolutions follow, and the decoder takes the texture features that the attention transfer moved by
structure at 1/4 and 1/2 resolution (nn.attention_transfer). Deterministic: all of DSI's diversity is in
the structure.

A gated layer `G(n)` is the official `gated_conv2d(x, n)`: a convolution to n channels, elu(first half) x
sigmoid(second half), so n / 2 channels come out; TensorFlow's 'SAME' padding (stride 2: 0 top / left, 1
bottom / right). `Up` is nearest 2x upsampling then a gated 3x3 convolution.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.nn.attention_transfer import attention_transfer
from pluralfill.nn.gated import GatedConv2d, GatedUpConv2d
from pluralfill.nn.padding import pad_same


class TextureGeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = 64  # nr_channel_gen_t (cnum)
    code_dim: int = 64
    softmax_scale: float = 50.0  # of the attention transfer


def G(cin: int, n: int, k: int = 3, stride: int = 1, rate: int = 1) -> GatedConv2d:
    return GatedConv2d(cin, n // 2, k, stride, rate, padding="tf")


def Up(cin: int, n: int) -> GatedUpConv2d:
    return GatedUpConv2d(cin, n // 2, 3, padding="tf")


class TextureGenerator(nn.Module):
    """forward(masked, hole, structure (B, code_dim, R/8, R/8)) -> (B, 3, R, R) in [-1, 1]; masked is the
    image with 0 in the hole (1 = missing)."""

    def __init__(self, cfg: TextureGeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or TextureGeneratorConfig()
        c = cfg.width
        self.encoder = nn.Sequential(G(5, c, 5), G(c // 2, 2 * c, 3, 2), G(c, 2 * c))  # -> pl1: c channels, 1/2
        self.down = G(c, 4 * c, 3, 2)  # 1/4
        self.structure_in = nn.Sequential(G(cfg.code_dim, 4 * c), G(2 * c, 4 * c), Up(2 * c, 4 * c))  # 1/8 -> 1/4
        self.middle = nn.Sequential(
            G(4 * c, 4 * c), G(2 * c, 4 * c), *[G(2 * c, 4 * c, 3, 1, r) for r in (2, 4, 8, 16)]
        )  # -> pl2
        self.decoder_in = nn.Sequential(G(2 * c, 4 * c), G(2 * c, 4 * c))
        self.decoder_mid = nn.Sequential(G(4 * c, 4 * c), Up(2 * c, 2 * c))
        self.decoder_out = nn.Sequential(G(2 * c, 2 * c), Up(c, c), G(c // 2, c))
        self.to_rgb = nn.Conv2d(c // 2, 3, 3)
        self.last_attention = None  # (b1, b2, y1, y2) of the last call when `keep_attention` is set
        self.keep_attention = False

    def forward(self, masked: torch.Tensor, hole: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        pl1 = self.encoder(torch.cat([masked, torch.ones_like(hole), hole], dim=1))
        pl2 = self.middle(torch.cat([self.down(pl1), self.structure_in(structure)], dim=1))
        y1, y2 = attention_transfer(structure, pl1, pl2, self.config.softmax_scale)
        if self.keep_attention:
            self.last_attention = (pl1, pl2, y1, y2)
        x = self.decoder_mid(torch.cat([self.decoder_in(pl2), y2], dim=1))
        x = self.decoder_out(torch.cat([x, y1], dim=1))
        return torch.tanh(self.to_rgb(pad_same(x, 3)))

"""DSI's texture generator: given the masked image and a structure (the top latent's code vectors), fill
the hole with texture. Gated convolutions down to the structure's size, the structure joined in, dilated
gated convolutions, structural attention (matching by structure, copying texture features from the
known region), and a gated decoder. Deterministic: all the diversity of DSI is in the structure."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.nn.gated import GatedConv2d as G
from pluralfill.nn.gated import GatedUpConv2d as Up
from pluralfill.nn.patch_attention import structural_attention


class TextureGeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = 64  # seed 001 (A): 64 hidden units for the generator and the discriminator
    code_dim: int = 64
    attention_temperature: float = 0.1


class TextureGenerator(nn.Module):
    """forward(x, known, structure (B, code_dim, R/8, R/8)) -> (B, 3, R, R) in [-1, 1]."""

    def __init__(self, cfg: TextureGeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or TextureGeneratorConfig()
        w = cfg.width
        self.encoder = nn.Sequential(
            G(4, w, 5), G(w, 2 * w, 3, 2), G(2 * w, 2 * w), G(2 * w, 4 * w, 3, 2), G(4 * w, 4 * w), G(4 * w, 4 * w, 3, 2)
        )
        # the codebook's per-channel mean and spread, set from the VQ-VAE when the texture stage starts: code
        # vectors are compared after standardizing, so a compact codebook still gives distinct structures
        self.register_buffer("structure_mean", torch.zeros(cfg.code_dim))
        self.register_buffer("structure_std", torch.ones(cfg.code_dim))
        self.structure_in = nn.Conv2d(cfg.code_dim, 4 * w, 1)
        self.middle = nn.Sequential(G(8 * w, 4 * w), *[G(4 * w, 4 * w, 3, dilation=d) for d in (2, 4, 8)])
        self.attention_out = G(8 * w, 4 * w)
        self.decoder = nn.Sequential(
            G(4 * w, 4 * w), Up(4 * w, 2 * w), G(2 * w, 2 * w), Up(2 * w, w), G(w, w), Up(w, w // 2),
            nn.Conv2d(w // 2, 3, 3, padding=1),
        )  # fmt: skip

    @torch.no_grad()
    def standardize_like(self, codebook: torch.Tensor) -> None:
        """Take the per-channel mean and spread of the VQ-VAE's top codebook (num_codes, code_dim)."""
        self.structure_mean.copy_(codebook.mean(0))
        self.structure_std.copy_(codebook.std(0).clamp(min=1e-6))

    def forward(self, x: torch.Tensor, known: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        hole = 1 - known
        structure = (structure - self.structure_mean.view(1, -1, 1, 1)) / self.structure_std.view(1, -1, 1, 1)
        f = self.encoder(torch.cat([x * known, hole], dim=1))
        f = self.middle(torch.cat([f, self.structure_in(structure)], dim=1))
        attended = structural_attention(f, structure, hole, self.config.attention_temperature)
        f = self.attention_out(torch.cat([f, attended], dim=1))
        return torch.tanh(self.decoder(f))

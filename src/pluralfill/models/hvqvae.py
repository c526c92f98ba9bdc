"""DSI's hierarchical VQ-VAE (seed 001, Table 1; after VQ-VAE-2): a 256x256 image becomes a top latent of
32x32 codes (structure) and a bottom latent of 64x64 codes (texture), each from its own 512 x 64 EMA
codebook, trained with MSE + 0.25 x commitment. ELUs throughout, as in the official code: with ReLUs the
toy model's top codes collapsed to a few and the decoder learned to ignore them, which left DSI's
structure, and so its samples, without diversity.

    bottom features = E_b(x)                        (R/4)
    top codes       = Q_t(E_t(bottom features))     (R/8)
    bottom codes    = Q_b([bottom features, D_t(top vectors)])
    x_hat           = D([bottom vectors, upsample(top vectors)])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.nn.quantizer import DualCodebook


class HVQVAEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: int = 256
    hidden: int = 128
    residual: int = 64
    num_residual_layers: int = 2
    num_codes: int = 512
    code_dim: int = 64
    ema_decay: float = 0.99  # codebook EMA (VQ-VAE-2); Table 1's 0.9997 is the Polyak average of the weights

    @property
    def top_side(self) -> int:
        return self.resolution // 8


class ResidualStack(nn.Module):
    """`layers` x (ELU, 3x3 conv to `residual` channels, ELU, 1x1 conv back) with skips, then ELU."""

    def __init__(self, hidden: int, residual: int, layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ELU(), nn.Conv2d(hidden, residual, 3, padding=1), nn.ELU(), nn.Conv2d(residual, hidden, 1))
            for _ in range(layers)
        )

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return F.elu(x)


class HVQVAE(nn.Module):
    def __init__(self, cfg: HVQVAEConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or HVQVAEConfig()
        h, r, n, d = cfg.hidden, cfg.residual, cfg.num_residual_layers, cfg.code_dim
        self.encoder_bottom = nn.Sequential(
            nn.Conv2d(3, h // 2, 4, 2, 1), nn.ELU(), nn.Conv2d(h // 2, h, 4, 2, 1), nn.ELU(), nn.Conv2d(h, h, 3, padding=1),
            ResidualStack(h, r, n),
        )  # fmt: skip
        self.encoder_top = nn.Sequential(
            nn.Conv2d(h, h // 2, 4, 2, 1), nn.ELU(), nn.Conv2d(h // 2, h, 3, padding=1), ResidualStack(h, r, n)
        )
        self.pre_top = nn.Conv2d(h, d, 1)
        self.quantize_top = DualCodebook(cfg.num_codes, d, split=None, decay=cfg.ema_decay)
        self.decoder_top = nn.Sequential(nn.Conv2d(d, h, 3, padding=1), ResidualStack(h, r, n), nn.ConvTranspose2d(h, d, 4, 2, 1))
        self.pre_bottom = nn.Conv2d(h + d, d, 1)
        self.quantize_bottom = DualCodebook(cfg.num_codes, d, split=None, decay=cfg.ema_decay)
        self.upsample_top = nn.ConvTranspose2d(d, d, 4, 2, 1)
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * d, h, 3, padding=1), ResidualStack(h, r, n),
            nn.ConvTranspose2d(h, h // 2, 4, 2, 1), nn.ELU(), nn.ConvTranspose2d(h // 2, 3, 4, 2, 1),
        )  # fmt: skip

    @staticmethod
    def _quantize(quantizer: DualCodebook, z: torch.Tensor):
        b, d, hh, ww = z.shape
        zq, codes, commitment = quantizer(z.permute(0, 2, 3, 1).reshape(b, hh * ww, d))
        return zq.reshape(b, hh, ww, d).permute(0, 3, 1, 2), codes.reshape(b, hh, ww), commitment

    def top_features(self, x: torch.Tensor, bottom: torch.Tensor | None = None) -> torch.Tensor:
        """(B, code_dim, R/8, R/8): the top latent before quantization."""
        return self.pre_top(self.encoder_top(self.encoder_bottom(x) if bottom is None else bottom))

    def top_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, S, S) top codes -> (B, code_dim, S, S) codebook vectors: the structure the texture generator reads."""
        return self.quantize_top.lookup(codes).permute(0, 3, 1, 2)

    @torch.no_grad()
    def encode_top(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) -> (B, S, S) top codes."""
        z = self.top_features(x)
        return self.quantize_top.tokens(z.permute(0, 2, 3, 1))

    def forward(self, x: torch.Tensor):
        """-> (reconstruction, commitment loss, (top codes, bottom codes))."""
        bottom = self.encoder_bottom(x)
        top_q, top_codes, c_top = self._quantize(self.quantize_top, self.top_features(x, bottom))
        bottom_q, bottom_codes, c_bottom = self._quantize(self.quantize_bottom, self.pre_bottom(torch.cat([bottom, self.decoder_top(top_q)], 1)))
        rec = self.decoder(torch.cat([bottom_q, self.upsample_top(top_q)], 1))
        return rec, c_top + c_bottom, (top_codes, bottom_codes)

"""DSI's hierarchical VQ-VAE (Peng et al. 2021, Table 1; after VQ-VAE-2) as the official code builds it: a 256x256
image becomes a top latent of 32x32 codes (structure) and a bottom latent of 64x64 codes (texture), each
from its own 512 x 64 codebook learned by zero-debiased EMA, trained with MSE + 0.25 x commitment. ELUs
throughout; `resnet` = x + conv1x1(elu(conv3x3(elu(x)))).

    bottom features b = E_b(x)                                   (R/4, C channels)
    z_t = E_t(b);  q_t = Q_t(z_t)                                 (R/8, D)
    z_b = conv1x1([b, D_t(q_t)]);  q_b = Q_b(z_b)                 (R/4, D)
    x_hat = D([q_b, deconv(q_t)])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.nn.quantizer import DebiasedCodebook


class HVQVAEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: int = 256
    hidden: int = 128  # nr_channel_vq
    residual: int = 64  # nr_res_channel_vq
    num_residual_layers: int = 2
    num_codes: int = 512
    code_dim: int = 64
    ema_decay: float = 0.99  # of the codebooks; Table 1's 0.9997 is the moving average of the weights

    @property
    def top_side(self) -> int:
        return self.resolution // 8


class ResidualStack(nn.Module):
    """`layers` x (x + conv1x1(elu(conv3x3(elu(x))))), then ELU."""

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
            nn.Conv2d(3, h // 2, 4, 2, 1),
            nn.ELU(),
            nn.Conv2d(h // 2, h, 4, 2, 1),
            nn.ELU(),
            nn.Conv2d(h, h, 3, padding=1),
            ResidualStack(h, r, n),
        )
        self.encoder_top = nn.Sequential(
            nn.Conv2d(h, h // 2, 4, 2, 1), nn.ELU(), nn.Conv2d(h // 2, h, 3, padding=1), ResidualStack(h, r, n)
        )
        self.pre_top = nn.Conv2d(h, d, 1)
        self.quantize_top = DebiasedCodebook(cfg.num_codes, d, cfg.ema_decay)
        self.decoder_top = nn.Sequential(
            nn.Conv2d(d, h, 3, padding=1), ResidualStack(h, r, n), nn.ConvTranspose2d(h, h, 4, 2, 1)
        )
        self.pre_bottom = nn.Conv2d(2 * h, d, 1)
        self.quantize_bottom = DebiasedCodebook(cfg.num_codes, d, cfg.ema_decay)
        self.upsample_top = nn.ConvTranspose2d(d, d, 4, 2, 1)
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * d, h, 3, padding=1),
            ResidualStack(h, r, n),
            nn.ConvTranspose2d(h, h // 2, 4, 2, 1),
            nn.ELU(),
            nn.ConvTranspose2d(h // 2, 3, 4, 2, 1),
        )

    @staticmethod
    def _quantize(quantizer: DebiasedCodebook, z: torch.Tensor):
        zq, codes, commitment = quantizer(z.permute(0, 2, 3, 1))
        return zq.permute(0, 3, 1, 2), codes, commitment

    def encode(self, x: torch.Tensor) -> dict:
        """The official encoder's outputs: features before quantization (`enc_t`, `enc_b`), the straight-through
        quantized maps (`quant_t`, `quant_b`), codes (`idx_t`, `idx_b`) and the unweighted commitment terms."""
        bottom = self.encoder_bottom(x)
        enc_t = self.pre_top(self.encoder_top(bottom))
        quant_t, idx_t, commit_t = self._quantize(self.quantize_top, enc_t)
        enc_b = self.pre_bottom(torch.cat([bottom, self.decoder_top(quant_t)], 1))
        quant_b, idx_b, commit_b = self._quantize(self.quantize_bottom, enc_b)
        return {
            "enc_t": enc_t,
            "enc_b": enc_b,
            "quant_t": quant_t,
            "quant_b": quant_b,
            "idx_t": idx_t,
            "idx_b": idx_b,
            "commitment": commit_t + commit_b,
        }

    def decode(self, quant_t: torch.Tensor, quant_b: torch.Tensor) -> torch.Tensor:
        """Unclipped image from the two latents (B, D, R/8, R/8) and (B, D, R/4, R/4)."""
        return self.decoder(torch.cat([quant_b, self.upsample_top(quant_t)], 1))

    def top_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, S, S) top codes -> (B, code_dim, S, S) codebook vectors: the structure."""
        return self.quantize_top.lookup(codes).permute(0, 3, 1, 2)

    @torch.no_grad()
    def encode_top(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) -> (B, S, S) top codes."""
        z = self.pre_top(self.encoder_top(self.encoder_bottom(x)))
        return self.quantize_top.tokens(z.permute(0, 2, 3, 1))

    def forward(self, x: torch.Tensor):
        """-> (reconstruction, commitment (top + bottom, unweighted), (top codes, bottom codes))."""
        out = self.encode(x)
        return self.decode(out["quant_t"], out["quant_b"]), out["commitment"], (out["idx_t"], out["idx_b"])

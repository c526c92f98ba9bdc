"""UQ-Transformer (PUT, seed 000 Eq. 9-10, Table 3): a bidirectional transformer over the *un-quantized*
P-VQVAE features of the masked image, predicting for every position a distribution over the e-codes.

    x = emb_proj(features) + pos_emb;  x += attn(ln1(x));  x += mlp(ln2(x))  (n blocks);  logits = head(ln_f(x))

There is no mask token: missing positions carry the features the encoder gives their blacked-out patches.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.nn.transformer import Block, init_weights


class UQTransformerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq_len: int = 1024  # 32 x 32 tokens for 256 x 256 images
    in_dim: int = 256  # P-VQVAE code_dim
    dim: int = 512
    num_layers: int = 30
    num_heads: int = 8
    mlp_ratio: int = 4
    vocab_size: int = 512  # the e-codes
    dropout: float = 0.0


class UQTransformer(nn.Module):
    def __init__(self, cfg: UQTransformerConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or UQTransformerConfig()
        self.emb_proj = nn.Linear(cfg.in_dim, cfg.dim)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)
        self.apply(init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, L, in_dim) features -> (B, L, dim) inputs of the first block."""
        return self.emb_proj(features) + self.pos_emb[:, : features.shape[1]]

    def embed_codes(self, codes: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Inputs for sampled codes: emb_proj(e_k) + pos_emb at their positions. codes (..., in_dim), positions (...)."""
        return self.emb_proj(codes) + self.pos_emb[0, positions]

    def forward_embedded(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, L, in_dim) un-quantized features -> (B, L, vocab_size) logits."""
        return self.forward_embedded(self.embed(features))

"""UQ-Transformer (PUT, Liu et al. 2022, Eq. 9-10, Table 3): a bidirectional transformer over the *un-quantized*
P-VQVAE features of the masked image, predicting for every position a distribution over the e-codes.

    x = emb_proj(features) + pos_emb;  x += attn(ln1(x));  x += mlp(ln2(x))  (n blocks);  logits = head(ln_f(x))

There is no mask token: missing positions carry the features the encoder gives their blacked-out patches.
The TPAMI-2024 transformer (ViT-base) blends a learned mask embedding in by each patch's known fraction r,
x = emb_proj(features) * r + mask_emb * (1 - r) + pos_emb, has no key bias, and uses stochastic depth.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.nn.kv_cache import KeptKV
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
    mask_embedding: bool = False  # TPAMI: a learned embedding for missing pixels, blended by known fraction
    key_bias: bool = True  # TPAMI: False (its fused qkv has q and v biases only)
    drop_path: float = 0.0  # stochastic depth of the last block, rising linearly from 0 (TPAMI: 0.1)
    input: Literal["features", "quantized", "tokens"] = "features"  # Liu et al. 2022, Table 2: PUT, ^qua0, ^tok
    num_input_codes: int = 0  # input=tokens: how many token ids it embeds (e and e')
    guidance_dim: int = (
        0  # conditional TPAMI: guidance features joined to the image's (no emb_proj then: in_dim + guidance_dim = dim)
    )


class UQTransformer(nn.Module):
    def __init__(self, cfg: UQTransformerConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or UQTransformerConfig()
        width = cfg.dim - cfg.guidance_dim  # of the image's part of the input
        if cfg.guidance_dim and width != cfg.in_dim:
            raise ValueError(
                "a guided transformer reads its features as they are: in_dim + guidance_dim must equal dim"
            )
        tokens = cfg.input == "tokens"
        self.emb_proj = nn.Linear(cfg.in_dim, cfg.dim) if not cfg.guidance_dim and not tokens else None
        self.tok_emb = nn.Embedding(cfg.num_input_codes, cfg.dim) if tokens else None
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.seq_len, width))
        self.mask_emb = nn.Parameter(torch.zeros(width)) if cfg.mask_embedding else None
        self.drop = nn.Dropout(cfg.dropout)
        rates = [cfg.drop_path * i / max(1, cfg.num_layers - 1) for i in range(cfg.num_layers)]
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, key_bias=cfg.key_bias, drop_path=rates[i])
            for i in range(cfg.num_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)
        self.apply(init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)

    def embed(self, features: torch.Tensor, known_fraction: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, in_dim) features -> (B, L, dim) inputs of the first block. `known_fraction` (B, L): the
        share of each patch's pixels that are present, for the mask embedding (TPAMI); None: all present."""
        x = self._project(features)
        if self.mask_emb is not None and known_fraction is not None:
            r = known_fraction[..., None].to(x.dtype)
            x = x * r + self.mask_emb * (1 - r)
        return x + self.pos_emb[:, : features.shape[1]]

    def embed_codes(self, codes: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Inputs for sampled codes: emb_proj(e_k) + pos_emb at their positions. codes (..., in_dim), positions
        (...)."""
        return self._project(codes) + self.pos_emb[0, positions]

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self.tok_emb is not None:  # ^tok: x holds token ids
            return self.tok_emb(x.long())
        return self.emb_proj(x) if self.emb_proj is not None else x

    def forward_embedded(
        self, x: torch.Tensor, guidance: torch.Tensor | None = None, cache: KeptKV | None = None
    ) -> torch.Tensor:
        """(B, L, dim) embedded inputs -> (B, L, vocab_size) logits; a guided transformer takes the image's part
        and its guidance. With `cache` in a partial pass: the (B, m, vocab_size) logits of the positions cache.at."""
        if guidance is not None:
            x = torch.cat([x, guidance.to(x.dtype).expand(x.shape[0], -1, -1)], dim=-1)
        x = self.drop(x if cache is None else cache.gather(x))
        for block in self.blocks:
            x = block(x, cache)
        return self.head(self.ln_f(x))

    def forward(self, features: torch.Tensor, known_fraction: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, in_dim) un-quantized features (or (B, L) token ids for ^tok) -> (B, L, vocab_size) logits."""
        return self.forward_embedded(self.embed(features, known_fraction))

"""MaskGIT (Chang et al. 2022; seed 003): a bidirectional transformer over VQGAN tokens with a [MASK]
token, trained by masked visual token modeling (MVTM), and the pair of it and its tokenizer.

    logits = head(ln_f(blocks(tok_emb(tokens with [MASK]) + pos_emb)))
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.errors import PluralfillError
from pluralfill.models.base import Pretrained, parameter_counts
from pluralfill.models.vqgan import VQGAN, VQGANConfig
from pluralfill.nn.transformer import Block, init_weights


class MaskGITTransformerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq_len: int = 256  # 16 x 16 tokens
    vocab_size: int = 1024  # codes; [MASK] is index vocab_size
    dim: int = 768
    num_layers: int = 24
    num_heads: int = 16
    mlp_ratio: int = 4
    dropout: float = 0.1


class MaskGITTransformer(nn.Module):
    def __init__(self, cfg: MaskGITTransformerConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or MaskGITTransformerConfig()
        self.mask_id = cfg.vocab_size
        self.tok_emb = nn.Embedding(cfg.vocab_size + 1, cfg.dim)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, activation="gelu") for _ in range(cfg.num_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)
        self.apply(init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids, [MASK] = vocab_size -> (B, L, vocab_size) logits over the codes."""
        x = self.drop(self.tok_emb(tokens) + self.pos_emb[:, : tokens.shape[1]])
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class MaskGITConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["maskgit"] = "maskgit"
    name: str = "maskgit"
    tokenizer: VQGANConfig = VQGANConfig()
    transformer: MaskGITTransformerConfig = MaskGITTransformerConfig()

    @property
    def resolution(self) -> int:
        return self.tokenizer.resolution


class MaskGIT(Pretrained, nn.Module):
    """The tokenizer and the transformer, saved and loaded together."""

    method, config_class = "maskgit", MaskGITConfig

    def __init__(self, cfg: MaskGITConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or MaskGITConfig()
        if cfg.transformer.vocab_size != cfg.tokenizer.num_codes:
            raise PluralfillError("transformer.vocab_size must equal tokenizer.num_codes")
        if cfg.transformer.seq_len != cfg.tokenizer.tokens_per_side**2:
            raise PluralfillError("transformer.seq_len must equal the tokenizer's tokens per image")
        self.tokenizer = VQGAN(cfg.tokenizer)
        self.transformer = MaskGITTransformer(cfg.transformer)

    def parameter_counts(self) -> dict[str, int]:
        return parameter_counts("tokenizer", self.tokenizer, self.transformer)


def maskgit_tiny_config(name: str = "maskgit-tiny") -> MaskGITConfig:
    """64x64 images, f = 8 (8 x 8 tokens), 256 codes: trains on a CPU in minutes."""
    return MaskGITConfig(
        name=name,
        tokenizer=VQGANConfig(resolution=64, channels=32, channel_mult=(1, 2, 2, 4), num_res_blocks=1,
                              attn_resolutions=(8,), z_channels=64, code_dim=32, num_codes=256),
        transformer=MaskGITTransformerConfig(seq_len=64, vocab_size=256, dim=128, num_layers=4, num_heads=4, dropout=0.1),
    )  # fmt: skip


CONFIGS: dict[str, MaskGITConfig] = {
    "maskgit": MaskGITConfig(name="maskgit"),  # seed 003 / the MaskGIT paper: f = 16, 1024 codes, 768-d, 16 heads
    "maskgit-f8": MaskGITConfig(
        name="maskgit-f8",
        tokenizer=VQGANConfig(channel_mult=(1, 1, 2, 4), attn_resolutions=(32,)),
        transformer=MaskGITTransformerConfig(seq_len=1024),
    ),
    "maskgit-tiny": maskgit_tiny_config(),
}

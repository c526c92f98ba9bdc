"""MaskGIT (Chang et al., CVPR 2022): a bidirectional transformer over VQGAN tokens with a [MASK]
token, trained by masked visual token modeling (MVTM), and the pair of it and its tokenizer.

Two architectures: ours (pre-LN blocks, a head of its own; `maskgit`, `maskgit-tiny`), and the official one
of the released ImageNet models (google-research/maskgit; `maskgit-imagenet-256`, `-512`):

    ours:      logits = head(ln_f(blocks(tok_emb(tokens with [MASK]) + pos_emb)))
    official:  ids = [class K + c, image tokens with [MASK] = -1 (the last row)]
               x = LN(word_emb[ids] + pos_emb);  x = LN(x + attn(x));  x = LN(x + mlp(x))   (post-LN, eps 1e-12)
               logits = LN(gelu(dense(x))) @ word_emb.T + bias,  the first K columns at the image positions
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.errors import PluralfillError
from pluralfill.models.base import Pretrained, parameter_counts
from pluralfill.models.maskgit_vqgan import MaskGITVQGAN
from pluralfill.models.vqgan import VQGAN, VQGANConfig
from pluralfill.nn.kv_cache import KeptKV
from pluralfill.nn.transformer import Block, init_weights


class MaskGITTransformerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["ours"] = "ours"
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

    def forward(
        self, tokens: torch.Tensor, class_label: torch.Tensor | None = None, cache: KeptKV | None = None
    ) -> torch.Tensor:
        """(B, L) token ids, [MASK] = vocab_size -> (B, L, vocab_size) logits over the codes (in a partial pass
        of `cache`, (B, m, vocab_size) at the positions cache.at)."""
        if class_label is not None:
            raise PluralfillError("this MaskGIT is not class-conditional: it takes no class label")
        x = self.drop(self.tok_emb(tokens) + self.pos_emb[:, : tokens.shape[1]])
        x = x if cache is None else cache.gather(x)
        for block in self.blocks:
            x = block(x, cache)
        return self.head(self.ln_f(x))


class MaskGITBertConfig(BaseModel):
    """The official transformer (maskgit/nets/maskgit_transformer.py, BERT-style)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["official"] = "official"
    seq_len: int = 256  # image tokens; the class token makes the sequence one longer
    num_codes: int = 1024
    num_classes: int = 1000
    dim: int = 768
    num_layers: int = 24
    num_heads: int = 16
    intermediate: int = 3072
    dropout: float = 0.1

    @property
    def vocab_size(self) -> int:
        """codes, then classes, then [MASK]."""
        return self.num_codes + self.num_classes + 1


def gelu(x):
    return torch.nn.functional.gelu(x, approximate="tanh")  # jax.nn.gelu's default


class BertLayer(nn.Module):
    """x = LN(x + attn(x)); x = LN(x + fc2(gelu(fc1(x)))): post-LN, epsilon 1e-12."""

    def __init__(self, cfg: MaskGITBertConfig):
        super().__init__()
        d = cfg.dim
        self.num_heads = cfg.num_heads
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
        self.fc1, self.fc2 = nn.Linear(d, cfg.intermediate), nn.Linear(cfg.intermediate, d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cache: KeptKV | None = None):
        b, n, d = x.shape
        q, k, v = (
            f(x).view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)
            for f in (self.query, self.key, self.value)
        )
        if cache is not None:
            k, v = cache.keys_values(k, v)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=self.drop.p if self.training else 0.0)
        x = self.ln1(x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d))))
        return self.ln2(x + self.drop(self.fc2(gelu(self.fc1(x)))))


class MaskGITBert(nn.Module):
    """`forward(tokens (B, L), class_label (B,))` -> (B, L, num_codes) logits of the image positions;
    [MASK] in `tokens` is `mask_id` (the vocabulary's last row, which the official -1 wraps to)."""

    def __init__(self, cfg: MaskGITBertConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or MaskGITBertConfig()
        self.mask_id = cfg.vocab_size - 1
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.seq_len + 1, cfg.dim))
        self.ln_emb = nn.LayerNorm(cfg.dim, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_layers))
        self.head_dense, self.head_ln = nn.Linear(cfg.dim, cfg.dim), nn.LayerNorm(cfg.dim, eps=1e-12)
        self.head_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.apply(init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)

    def forward_ids(self, ids: torch.Tensor, cache: KeptKV | None = None) -> torch.Tensor:
        """(B, 1 + L) ids as the official code lays them out (mask -1 or its row) -> (B, 1 + L, vocab) logits (in a
        partial pass of `cache`, (B, m, vocab) at the image positions cache.at)."""
        ids = torch.where(ids < 0, ids + self.config.vocab_size, ids)
        x = self.drop(self.ln_emb(self.tok_emb(ids) + self.pos_emb[:, : ids.shape[1]]))
        x = x if cache is None else cache.gather(x, offset=1)  # the class token comes first
        for block in self.blocks:
            x = block(x, cache)
        h = self.head_ln(gelu(self.head_dense(x)))
        return h @ self.tok_emb.weight.t() + self.head_bias  # the output layer is tied to the input embedding

    def forward(
        self, tokens: torch.Tensor, class_label: torch.Tensor | None = None, cache: KeptKV | None = None
    ) -> torch.Tensor:
        if class_label is None:
            raise PluralfillError(
                "the official MaskGIT is class-conditional: give a class label (ImageNet index 0-999)"
            )
        label = torch.as_tensor(class_label, device=tokens.device).reshape(-1, 1).expand(tokens.shape[0], 1)
        ids = torch.cat([label + self.config.num_codes, tokens], dim=1)
        logits = self.forward_ids(ids, cache)
        return (
            logits[..., : self.config.num_codes]
            if cache is not None and cache.partial
            else logits[:, 1:, : self.config.num_codes]
        )


class MaskGITConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["maskgit"] = "maskgit"
    name: str = "maskgit"
    tokenizer: VQGANConfig = VQGANConfig()
    transformer: MaskGITTransformerConfig | MaskGITBertConfig = MaskGITTransformerConfig()

    @property
    def official(self) -> bool:
        return isinstance(self.transformer, MaskGITBertConfig)

    @property
    def resolution(self) -> int:
        return self.tokenizer.resolution

    def fit_to(self, tokenizer: VQGANConfig) -> MaskGITConfig:
        """This config over `tokenizer`, with the transformer's codes and sequence length derived from it."""
        t = self.transformer.model_copy(
            update={"vocab_size": tokenizer.num_codes, "seq_len": tokenizer.tokens_per_side**2}
        )
        return self.model_copy(update={"tokenizer": tokenizer, "transformer": t})


class MaskGIT(Pretrained, nn.Module):
    """The tokenizer and the transformer, saved and loaded together."""

    method, config_class = "maskgit", MaskGITConfig

    def __init__(self, cfg: MaskGITConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or MaskGITConfig()
        codes = cfg.transformer.num_codes if cfg.official else cfg.transformer.vocab_size
        if codes != cfg.tokenizer.num_codes:
            raise PluralfillError("the transformer's codes must be the tokenizer's num_codes")
        if cfg.transformer.seq_len != cfg.tokenizer.tokens_per_side**2:
            raise PluralfillError("transformer.seq_len must equal the tokenizer's tokens per image")
        official_tokenizer = cfg.tokenizer.kind == "official"
        self.tokenizer = MaskGITVQGAN(cfg.tokenizer) if official_tokenizer else VQGAN(cfg.tokenizer)
        self.transformer = MaskGITBert(cfg.transformer) if cfg.official else MaskGITTransformer(cfg.transformer)

    def parameter_counts(self) -> dict[str, int]:
        return parameter_counts("tokenizer", self.tokenizer, self.transformer)


def maskgit_tiny_config(name: str = "maskgit-tiny") -> MaskGITConfig:
    """64x64 images, f = 8 (8 x 8 tokens), 256 codes: trains on a CPU in minutes."""
    return MaskGITConfig(
        name=name,
        tokenizer=VQGANConfig(
            resolution=64,
            channels=32,
            channel_mult=(1, 2, 2, 4),
            num_res_blocks=1,
            attn_resolutions=(8,),
            z_channels=64,
            code_dim=32,
            num_codes=256,
        ),
        transformer=MaskGITTransformerConfig(
            seq_len=64, vocab_size=256, dim=128, num_layers=4, num_heads=4, dropout=0.1
        ),
    )


CONFIGS: dict[str, MaskGITConfig] = {
    "maskgit": MaskGITConfig(name="maskgit"),  # Chang et al. 2022: f = 16, 1024 codes, 768-d, 16 heads
    "maskgit-f8": MaskGITConfig(
        name="maskgit-f8",
        tokenizer=VQGANConfig(channel_mult=(1, 1, 2, 4), attn_resolutions=(32,)),
        transformer=MaskGITTransformerConfig(seq_len=1024),
    ),
    "maskgit-tiny": maskgit_tiny_config(),
    # the released models (google-research/maskgit): ImageNet, class-conditional
    "maskgit-imagenet-256": MaskGITConfig(
        name="maskgit-imagenet-256",
        tokenizer=VQGANConfig(kind="official", resolution=256, attn_resolutions=()),
        transformer=MaskGITBertConfig(seq_len=256),
    ),
    "maskgit-imagenet-512": MaskGITConfig(
        name="maskgit-imagenet-512",
        tokenizer=VQGANConfig(kind="official", resolution=512, attn_resolutions=()),
        transformer=MaskGITBertConfig(seq_len=1024),
    ),
    # the sizes of the official tiny fixture (128 px, 8 x 8 tokens, 10 classes)
    "maskgit-official-tiny": MaskGITConfig(
        name="maskgit-official-tiny",
        tokenizer=VQGANConfig(
            kind="official",
            resolution=128,
            channels=32,
            channel_mult=(1, 1, 1, 1, 2),
            num_res_blocks=1,
            attn_resolutions=(),
            code_dim=16,
            num_codes=64,
        ),
        transformer=MaskGITBertConfig(
            seq_len=64, num_codes=64, num_classes=10, dim=64, num_layers=2, num_heads=4, intermediate=256
        ),
    ),
}

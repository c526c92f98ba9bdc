"""DSI's diverse structure generator (seed 001, Table 2; a light PixelSNAIL): a conditional autoregressive
network over the top latent in raster order. The condition is the masked image and its hole, brought down
to the latent's size by a conditioning stack; gated residual blocks with causal convolutions alternate
with causal multi-head attention layers; a stack of position-wise gated blocks gives the logits.

Every layer sees only earlier positions (the input at position p is the code at p - 1), so sampling can
run position by position with caches (`new_cache`, `prefill`, `step`): each causal convolution keeps the map of its
inputs so far, each attention layer its keys and values. That is the incremental sampling seed 001 (C)
asks for; `forward` is the plain path over the whole sequence, used for training and as the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn


class StructureGeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: int = 256  # of the conditioning image
    side: int = 32  # top latent side
    num_codes: int = 512
    hidden: int = 128
    residual: int = 128
    cond_hidden: int = 32
    cond_residual: int = 32
    num_layers: int = 20  # gated residual blocks
    attention_layers: int = 4  # one after every num_layers / attention_layers blocks
    num_heads: int = 8
    kernel: int = 3
    dropout: float = 0.1
    output_layers: int = 20


def _pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution applied to (B, C) vectors of one position."""
    return F.linear(x, conv.weight[:, :, 0, 0], conv.bias)


class CausalConv2d(nn.Conv2d):
    """k x k convolution that sees rows above (k // 2 of them, full width k) and, on its own row, only the
    current column and those to its left."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__(cin, cout, (k // 2 + 1, k))
        self.half = k // 2

    def causal_weight(self) -> torch.Tensor:
        keep = torch.ones_like(self.weight)
        keep[..., -1, self.half + 1 :] = 0
        return self.weight * keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.half
        return F.conv2d(F.pad(x, (p, p, p, 0)), self.causal_weight(), self.bias)

    def new_cache(self, x_like: torch.Tensor, side: int) -> torch.Tensor:
        p = self.half
        return x_like.new_zeros(x_like.shape[0], self.in_channels, side + p, side + 2 * p)

    def step(self, cache: torch.Tensor, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Write the input (B, C) of position (i, j) into the cache and return the output there."""
        p = self.half
        cache[:, :, i + p, j + p] = x
        window = cache[:, :, i : i + p + 1, j : j + 2 * p + 1]
        return torch.einsum("bchw,ochw->bo", window, self.causal_weight()) + self.bias


class GatedResidualBlock(nn.Module):
    """x + GLU(conv1x1(ELU(causal_conv(ELU(x)))) + conv1x1(condition))."""

    def __init__(self, hidden: int, residual: int, cond: int, k: int, dropout: float, causal: bool = True):
        super().__init__()
        self.conv = CausalConv2d(hidden, residual, k) if causal else nn.Conv2d(hidden, residual, 1)
        self.out = nn.Conv2d(residual, 2 * hidden, 1)
        self.cond = nn.Conv2d(cond, 2 * hidden, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, c):
        a, b = (self.out(F.elu(self.conv(F.elu(x)))) + self.cond(c)).chunk(2, dim=1)
        return x + self.drop(a * torch.sigmoid(b))

    def step(self, x, c, cache, i, j):
        t = self.conv.step(cache, F.elu(x), i, j) if isinstance(self.conv, CausalConv2d) else _pointwise(self.conv, F.elu(x))
        a, b = (_pointwise(self.out, F.elu(t)) + _pointwise(self.cond, c)).chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


class CausalAttention(nn.Module):
    """Pre-norm causal multi-head self-attention over the raster sequence, with a residual."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, t: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, heads, L, D / heads)
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = map(self._split, self.qkv(self.norm(x)).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return x + self.proj(y.transpose(1, 2).flatten(2))

    def step(self, x: torch.Tensor, cache: dict, p: int) -> torch.Tensor:
        q, k, v = map(self._split, self.qkv(self.norm(x[:, None])).chunk(3, dim=-1))
        cache["k"][:, :, p], cache["v"][:, :, p] = k[:, :, 0], v[:, :, 0]
        y = F.scaled_dot_product_attention(q, cache["k"][:, :, : p + 1], cache["v"][:, :, : p + 1])
        return x + self.proj(y[:, :, 0].flatten(1))


class ConditioningStack(nn.Module):
    """Masked image + hole (4 channels) -> (cond_hidden, side, side): strided convs, then residual blocks."""

    def __init__(self, cfg: StructureGeneratorConfig):
        super().__init__()
        c, downs = cfg.cond_hidden, int(math.log2(cfg.resolution // cfg.side))
        layers, cin = [], 4
        for _ in range(downs):
            layers += [nn.Conv2d(cin, c, 4, 2, 1), nn.ELU()]
            cin = c
        self.down = nn.Sequential(*layers, nn.Conv2d(cin, c, 3, padding=1))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ELU(), nn.Conv2d(c, cfg.cond_residual, 3, padding=1), nn.ELU(), nn.Conv2d(cfg.cond_residual, c, 1))
            for _ in range(2)
        )

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        x = self.down(torch.cat([image * (1 - hole), hole], dim=1))
        for block in self.blocks:
            x = x + block(x)
        return x


class StructureGenerator(nn.Module):
    def __init__(self, cfg: StructureGeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or StructureGeneratorConfig()
        d, length = cfg.hidden, cfg.side**2
        self.tok_emb = nn.Embedding(cfg.num_codes, d)
        self.start = nn.Parameter(torch.zeros(d))  # the input at position 0
        self.pos_emb = nn.Parameter(torch.randn(length, d) * 0.02)
        self.condition = ConditioningStack(cfg)
        every = max(1, cfg.num_layers // max(1, cfg.attention_layers))
        layers = []
        for i in range(cfg.num_layers):
            layers.append(GatedResidualBlock(d, cfg.residual, cfg.cond_hidden, cfg.kernel, cfg.dropout))
            if cfg.attention_layers and (i + 1) % every == 0 and sum(isinstance(m, CausalAttention) for m in layers) < cfg.attention_layers:
                layers.append(CausalAttention(d, cfg.num_heads, cfg.dropout))
        self.layers = nn.ModuleList(layers)
        self.output = nn.ModuleList(
            GatedResidualBlock(d, cfg.residual, cfg.cond_hidden, 1, cfg.dropout, causal=False) for _ in range(cfg.output_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.num_codes)

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) codes -> (B, L, D): position p holds the code at p - 1 (the start vector at 0)."""
        x = self.tok_emb(tokens[:, :-1])
        x = torch.cat([self.start.expand(tokens.shape[0], 1, -1), x], dim=1)
        return x + self.pos_emb[: tokens.shape[1]]

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) and cond = condition(image, hole) (B, Dc, S, S) -> logits (B, L, num_codes)."""
        s = self.config.side
        x = self.inputs(tokens)
        for layer in self.layers:
            if isinstance(layer, CausalAttention):
                x = layer(x)
            else:
                x = layer(x.transpose(1, 2).unflatten(2, (s, s)), cond).flatten(2).transpose(1, 2)
        x = x.transpose(1, 2).unflatten(2, (s, s))
        for layer in self.output:
            x = layer(x, cond)
        return self.head(self.norm(x.flatten(2).transpose(1, 2)))

    # ------------------------------------------------------------------ incremental sampling

    def new_cache(self, cond: torch.Tensor) -> list:
        """One cache per layer: the input map of a causal conv, the keys and values of an attention."""
        b, s, length = cond.shape[0], self.config.side, self.config.side**2
        caches = []
        for layer in self.layers:
            if isinstance(layer, CausalAttention):
                shape = (b, layer.heads, length, self.config.hidden // layer.heads)
                caches.append({"k": cond.new_zeros(shape), "v": cond.new_zeros(shape)})
            else:
                caches.append(layer.conv.new_cache(cond, s))
        return caches

    def prefill(self, tokens: torch.Tensor, cond: torch.Tensor, caches: list) -> None:
        """Fill the caches from one parallel pass over the sequence with the codes given. Entries of a
        position are right if every code before it is final; stepping from position p rewrites p and on."""
        s, half = self.config.side, self.config.kernel // 2
        x = self.inputs(tokens)
        for layer, cache in zip(self.layers, caches):
            if isinstance(layer, CausalAttention):
                _, k, v = map(layer._split, layer.qkv(layer.norm(x)).chunk(3, dim=-1))
                cache["k"].copy_(k)
                cache["v"].copy_(v)
                x = layer(x)
            else:
                m = x.transpose(1, 2).unflatten(2, (s, s))
                cache[:, :, half:, half : half + s] = F.elu(m)
                x = layer(m, cond).flatten(2).transpose(1, 2)

    def step(self, previous: torch.Tensor | None, p: int, cond: torch.Tensor, caches: list) -> torch.Tensor:
        """Logits (B, num_codes) at position p, given the code at p - 1 (None at p = 0); positions must come in order."""
        s = self.config.side
        i, j = divmod(p, s)
        x = self.start.expand(cond.shape[0], -1) if previous is None else self.tok_emb(previous)
        x = x + self.pos_emb[p]
        c = cond[:, :, i, j]
        for layer, cache in zip(self.layers, caches):
            x = layer.step(x, cache, p) if isinstance(layer, CausalAttention) else layer.step(x, c, cache, i, j)
        for layer in self.output:
            x = layer.step(x, c, None, i, j)
        return self.head(self.norm(x))

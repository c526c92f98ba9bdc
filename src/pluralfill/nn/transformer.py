"""Pre-LN transformer blocks with attention through scaled_dot_product_attention.

Key names follow the official PUT code (`attn.query/key/value/proj`, `mlp.fc1/fc2`, `ln1/ln2`) so its
checkpoints map one to one; MaskGIT uses the same blocks. A `KeptKV` passed through a block keeps its keys and
values (a full pass) or lets it compute a few positions against the kept ones (a partial pass).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pluralfill.errors import PluralfillError
from pluralfill.nn.kv_cache import KeptKV


class GELU2(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation of the official PUT code."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Full bidirectional multi-head attention (no causal mask, no key mask). `key_bias=False`: the key
    projection has no bias (PUT TPAMI; a key bias adds the same score to every key of a query anyway)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, key_bias: bool = True):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise PluralfillError(f"num_heads must divide the width: {num_heads} heads of a {dim}-wide attention")
        self.num_heads, self.dropout = num_heads, dropout
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim, bias=key_bias), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, cache: KeptKV | None = None):
        b, n, d = x.shape
        q, k, v = (
            f(x).view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)
            for f in (self.query, self.key, self.value)
        )
        if cache is not None:
            k, v = cache.keys_values(k, v)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, activation: str = "gelu2"):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.act = GELU2() if activation == "gelu2" else nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.act(self.fc1(x))))


class DropPath(nn.Module):
    """Stochastic depth: in training, a sample's residual branch is dropped with probability p (and the
    kept ones scaled by 1 / (1 - p)); identity in eval mode."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1 - self.p)


class Block(nn.Module):
    """x += drop_path(attn(ln1(x))); x += drop_path(mlp(ln2(x)))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        activation: str = "gelu2",
        key_bias: bool = True,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, num_heads, dropout, key_bias)
        self.ln2, self.mlp = nn.LayerNorm(dim), MLP(dim, mlp_ratio * dim, dropout, activation)
        self.drop = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x, cache: KeptKV | None = None):
        x = x + self.drop_path(self.drop(self.attn(self.ln1(x), cache)))
        return x + self.drop_path(self.mlp(self.ln2(x)))


def init_weights(module: nn.Module) -> None:
    """GPT-style initialisation: N(0, 0.02) linear weights and embeddings, zero biases, unit norms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)

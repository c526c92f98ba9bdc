"""The blocks of DSI's structure generator as its official code builds them (after PixelCNN++ and
PixelSNAIL): shifted weight-normalized convolutions, concat_elu, gated residual blocks that take an
auxiliary stream and a condition, and causal multi-head attention inside the last block of a group.

Each block runs on a whole map (training, the official sampler) or incrementally, a row or one position at
a time: a `ShiftedConv2d` then keeps the zero-padded map of its inputs, a `CausalAttention` its keys and
values, and a step reads only what is already final.

    concat_elu(x)  = elu([x, -x])                          (channels double)
    gated_resnet   = x + c3,   c1 = conv1(ce(x)) [+ aux(ce(a))],  c2 = conv2(ce(c1)) [+ cond(ce(h))],
                     c3 = c2[:C] * sigmoid(c2[C:]) [+ attention(c3)], dropout on c3
    attention(c3)  = proj(concat over heads of softmax_{j < i}(q_i k_j / sqrt(C/8)) v_j),
                     q, k: C/8, v: C/2 per head; strictly causal: position 0 attends to nothing and gets 0
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pluralfill.nn.weight_norm import WNConv2d, WNLinear


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(torch.cat([x, -x], dim=1))


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """A zero row on top, the last row dropped."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """A zero column on the left, the last column dropped."""
    return F.pad(x, (1, 0, 0, 0))[..., :-1]


class ShiftedConv2d(WNConv2d):
    """A weight-normalized kh x kw convolution that sees the kh - 1 rows above and its own row: `down` with
    the kw columns centred (kw odd), `down_right` with them at and left of the output column."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], kind: str = "down"):
        super().__init__(in_channels, out_channels, kernel, padding="valid")
        kh, kw = self.kernel
        self.left = (kw - 1) // 2 if kind == "down" else kw - 1
        self.pad = (self.left, kw - 1 - self.left, kh - 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight(), self.bias)

    # incremental use: the cache is the zero-padded map of the inputs
    def new_cache(self, batch: int, side: int, like: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel
        return like.new_zeros(batch, self.weight_v.shape[1], side + kh - 1, side + kw - 1)

    def fill(self, cache: torch.Tensor, x: torch.Tensor) -> None:
        """Store a whole (B, C, S, S) input map."""
        kh, s = self.kernel[0], x.shape[-1]
        cache[:, :, kh - 1 :, self.left : self.left + s] = x

    def write(self, cache: torch.Tensor, x: torch.Tensor, i: int, j: int) -> None:
        """Store the inputs (B, C, 1, n) of row i, columns j .. j + n - 1."""
        cache[:, :, i + self.kernel[0] - 1, self.left + j : self.left + j + x.shape[-1]] = x[:, :, 0]

    def output(self, cache: torch.Tensor, i: int, j: int, n: int) -> torch.Tensor:
        """The outputs (B, O, 1, n) at row i, columns j .. j + n - 1, from the inputs stored so far."""
        kh, kw = self.kernel
        return F.conv2d(cache[:, :, i : i + kh, j : j + n + kw - 1], self.weight(), self.bias)


def causal_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """The official masked softmax, exp(s - 1e10 (1 - M) - rowmax) M / (rowsum + 1e-10): a row with nothing
    allowed is all zeros."""
    allowed = allowed.to(scores.dtype)
    s = scores - 1e10 * (1 - allowed)
    e = torch.exp(s - s.amax(-1, keepdim=True)) * allowed
    return e / (e.sum(-1, keepdim=True) + 1e-10)


class CausalAttention(nn.Module):
    """Every head's query, key and value projections are one weight-normalized layer each (weight norm is
    per output unit, so stacking the heads' layers changes nothing)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads, self.key_dim, self.value_dim = heads, channels // 8, channels // 2
        self.query = WNLinear(channels, heads * self.key_dim)
        self.key = WNLinear(channels, heads * self.key_dim)
        self.value = WNLinear(channels, heads * self.value_dim)
        self.proj = WNLinear(heads * self.value_dim, channels)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # (B, heads * d, ...) -> (B, heads, L, d)
        return t.flatten(2).unflatten(1, (self.heads, -1)).transpose(-1, -2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        allowed = torch.ones(h * w, h * w, dtype=torch.bool, device=x.device).tril(-1)
        probs = causal_softmax(q @ k.transpose(-1, -2) / math.sqrt(self.key_dim), allowed)
        y = (probs @ v).transpose(-1, -2).reshape(b, -1, h, w)
        return self.proj(y)

    def new_cache(self, batch: int, length: int, like: torch.Tensor) -> dict:
        return {
            "k": like.new_zeros(batch, self.heads, length, self.key_dim),
            "v": like.new_zeros(batch, self.heads, length, self.value_dim),
        }

    def fill(self, cache: dict, x: torch.Tensor) -> None:
        cache["k"].copy_(self._heads(self.key(x)))
        cache["v"].copy_(self._heads(self.value(x)))

    def step(self, cache: dict, x: torch.Tensor, p: int) -> torch.Tensor:
        """x (B, C, 1, 1) at raster position p -> its output; its key and value join the cache."""
        q = self._heads(self.query(x))
        cache["k"][:, :, p], cache["v"][:, :, p] = (
            self._heads(self.key(x))[:, :, 0],
            self._heads(self.value(x))[:, :, 0],
        )
        keys, values = cache["k"][:, :, :p], cache["v"][:, :, :p]
        if p == 0:  # nothing before it: the heads give zeros
            return self.proj(x.new_zeros(x.shape[0], self.heads * self.value_dim, 1, 1))
        probs = causal_softmax(
            q @ keys.transpose(-1, -2) / math.sqrt(self.key_dim), torch.ones(1, p, dtype=torch.bool, device=x.device)
        )
        return self.proj((probs @ values).transpose(-1, -2).reshape(x.shape[0], -1, 1, 1))


class GatedResNet(nn.Module):
    """`conv(in, out, rate)` builds the two convolutions (the dilation applies to the first only);
    `aux_channels`: the channels of the auxiliary input a; `cond_channels`: of the condition h, which
    `forward` takes already through concat_elu (the same for every block, so computed once)."""

    def __init__(
        self,
        channels: int,
        res_channels: int,
        conv,
        rate: int = 1,
        aux_channels: int = 0,
        cond_channels: int = 0,
        heads: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.conv1 = conv(2 * channels, res_channels, rate)
        self.aux = WNLinear(2 * aux_channels, res_channels) if aux_channels else None
        self.conv2 = conv(2 * res_channels, 2 * channels, 1)
        self.cond = WNLinear(2 * cond_channels, 2 * channels) if cond_channels else None
        self.attention = CausalAttention(channels, heads) if heads else None
        self.dropout = dropout

    def _gate(self, c2: torch.Tensor) -> torch.Tensor:
        a, b = c2.chunk(2, dim=1)
        return a * torch.sigmoid(b)

    def forward(
        self, x: torch.Tensor, a: torch.Tensor | None = None, h: torch.Tensor | None = None, cache: dict | None = None
    ):
        """`cache`: also store every input the incremental path reads (prefill)."""
        x_in = concat_elu(x)
        c1 = self.conv1(x_in)
        if self.aux is not None:
            c1 = c1 + self.aux(concat_elu(a))
        c1 = concat_elu(c1)
        c2 = self.conv2(c1)
        if self.cond is not None:
            c2 = c2 + self.cond(h)
        c3 = self._gate(c2)
        if cache is not None:
            self.conv1.fill(cache["conv1"], x_in)
            self.conv2.fill(cache["conv2"], c1)
            if self.attention is not None:
                self.attention.fill(cache["attention"], c3)
        if self.attention is not None:
            c3 = c3 + self.attention(c3)
        return x + F.dropout(c3, self.dropout, self.training)

    def new_cache(self, batch: int, side: int, like: torch.Tensor) -> dict:
        cache = {"conv1": self.conv1.new_cache(batch, side, like), "conv2": self.conv2.new_cache(batch, side, like)}
        if self.attention is not None:
            cache["attention"] = self.attention.new_cache(batch, side * side, like)
        return cache

    def step(
        self, cache: dict, x: torch.Tensor, i: int, j: int, a: torch.Tensor | None = None, h: torch.Tensor | None = None
    ):
        """The block at row i, columns j .. j + n - 1 of x (B, C, 1, n) (attention: n = 1), from the cache."""
        n, side = x.shape[-1], cache["conv1"].shape[-1] - self.conv1.kernel[1] + 1
        self.conv1.write(cache["conv1"], concat_elu(x), i, j)
        c1 = self.conv1.output(cache["conv1"], i, j, n)
        if self.aux is not None:
            c1 = c1 + self.aux(concat_elu(a))
        self.conv2.write(cache["conv2"], concat_elu(c1), i, j)
        c2 = self.conv2.output(cache["conv2"], i, j, n)
        if self.cond is not None:
            c2 = c2 + self.cond(h)
        c3 = self._gate(c2)
        if self.attention is not None:
            c3 = c3 + self.attention.step(cache["attention"], c3, i * side + j)
        return x + c3

"""Masked patch self-attention for inpainting (Zhou et al. 2023, section III-C/D): the hole's features are rebuilt
from weighted sums of p x p feature patches of the known region.

The kinds, chosen by name (Zhou et al. 2023, Table I, and the ablation ladder of benchmarks/mhtma_ablations.py):

- `mhtma`: multi-head temperature masked self-attention. Per head a channel-wise fully connected embedding
  (a 1x1 convolution); queries and keys are unrolled p x p patches, L2-normalized, scored by dot product
  (Eq. 7); keys that touch the hole are pushed to the constant `hole_score` (Eq. 8-9); scores are divided by
  the head's temperature, learned per image by `TemperatureNet` with a Softplus (Eq. 13-14); the weighted
  value patches are rolled back (overlapping patches averaged) and the heads concatenated (Eq. 10-12).
- `atma`: the earlier adaptive multi-temperature attention as Zhou et al. 2023 describes it: convolution-style
  matching (keys normalized, queries not) on the raw features, several learned temperatures from a
  LeakyReLU (which can go negative), one output per temperature, merged by a 1x1 convolution.
- `vanilla`: MHTMA's masked dot-product attention (embedding, both sides L2-normalized, Eq. 7-11) with one
  head and a constant temperature (0.1): what the temperature network and the heads add is measured against it.
- `contextual`: DeepFill's contextual attention: one head, keys normalized, queries not, a constant
  temperature (0.1, i.e. DeepFill's softmax scale 10).

    y, temperatures = attention(x, hole)      # x (B, C, H, W), hole (B, 1, h, w) 1 = missing
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttentionKind = Literal[
    "mhtma", "vanilla", "atma", "contextual", "none"
]  # "none": no attention branch (models/mhtma.py)
TemperatureMode = Literal["learned", "high", "low"]


class TemperatureNet(nn.Module):
    """Seed 002 Fig. 4: four convolutions, global average and global max pooling side by side,
    concatenated, one fully connected layer, then Softplus (Eq. 13) -> one temperature per head per image.
    `activation="leaky_relu"` is ATMA's last layer, which allows negative temperatures."""

    def __init__(
        self,
        channels: int,
        num_heads: int,
        width: int | None = None,
        activation: str = "softplus",
        init_temperature: float = 0.1,
        min_temperature: float = 0.01,
    ):
        super().__init__()
        w = width or channels
        self.convs = nn.Sequential(
            nn.Conv2d(channels, w, 3, 2, 1),
            nn.ELU(),
            nn.Conv2d(w, w, 3, 2, 1),
            nn.ELU(),
            nn.Conv2d(w, w, 3, 1, 1),
            nn.ELU(),
            nn.Conv2d(w, w, 3, 1, 1),
            nn.ELU(),
        )
        self.fc = nn.Linear(2 * w, num_heads)
        self.activation, self.min_temperature = activation, min_temperature
        # heads start spread over [init / 2, init * 2] (log scale) around init_temperature: heads started
        # equal get equal gradients and stay one temperature
        nn.init.normal_(self.fc.weight, std=1e-3)
        spread = (
            [init_temperature * 2 ** (2 * k / (num_heads - 1) - 1) for k in range(num_heads)]
            if num_heads > 1
            else [init_temperature]
        )
        with torch.no_grad():
            for k, t in enumerate(spread):
                t = t - (min_temperature if activation == "softplus" else 0)
                self.fc.bias[k] = math.log(math.expm1(t)) if activation == "softplus" else t  # softplus^-1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.convs(x)
        t = self.fc(torch.cat([f.mean((2, 3)), f.amax((2, 3))], dim=1))
        if self.activation == "softplus":
            # a small floor keeps 1/t finite: without it the temperatures cool to 1e-20 within a few dozen steps of
            # a fast toy run, and the gradient of scores / t overflows
            return F.softplus(t) + self.min_temperature
        return F.leaky_relu(t, 0.2)  # ATMA: may be negative, as Zhou et al. 2023 says; nothing guards it


def hole_keys(hole: torch.Tensor, size: tuple[int, int], patch: int) -> torch.Tensor:
    """Eq. 8: the hole down-sampled to the feature size (a feature pixel is missing if any pixel under it
    is), then 1 for every key patch with any missing pixel. (B, 1, h, w) -> (B, 1, L_keys)."""
    small = F.adaptive_max_pool2d(hole.float(), (int(size[0]), int(size[1])))  # ints: a constant when traced for ONNX
    return F.max_pool2d(small, patch, stride=1).flatten(2)


class PatchAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        kind: AttentionKind = "mhtma",
        num_heads: int = 2,
        patch_size: int = 3,
        hole_score: float = -1e4,
        init_temperature: float = 0.1,
        constant_temperature: float = 0.1,
        min_temperature: float = 0.01,
    ):
        super().__init__()
        if kind in ("contextual", "vanilla"):
            num_heads = 1
        if kind == "none":
            raise ValueError('attention "none" builds no attention layer')
        if kind == "mhtma" and channels % num_heads:
            raise ValueError(f"channels ({channels}) must divide into {num_heads} heads")
        self.kind, self.num_heads, self.patch = kind, num_heads, patch_size
        self.hole_score, self.constant_temperature = hole_score, constant_temperature
        if kind in ("mhtma", "vanilla"):  # one channel-wise FC per head, all heads in one 1x1 convolution
            self.embed = nn.Conv2d(channels, channels, 1)
        if kind == "atma":
            self.merge = nn.Conv2d(channels * num_heads, channels, 1)
        if kind in ("mhtma", "atma"):
            activation = "softplus" if kind == "mhtma" else "leaky_relu"
            self.temperature = TemperatureNet(
                channels,
                num_heads,
                activation=activation,
                init_temperature=init_temperature,
                min_temperature=min_temperature,
            )

    def temperatures(self, x: torch.Tensor) -> torch.Tensor:
        """(B, heads) temperatures for the images of x."""
        if self.kind in ("contextual", "vanilla"):
            return x.new_full((x.shape[0], 1), self.constant_temperature)
        return self.temperature(x)

    def forward(self, x: torch.Tensor, hole: torch.Tensor, mode: TemperatureMode = "learned"):
        """-> (refined features like x, temperatures (B, heads)). mode "high"/"low" gives every head the
        highest/lowest temperature of its image (the branch study of Zhou et al. 2023, Fig. 8)."""
        b, c = x.shape[:2]
        h, w = int(x.shape[2]), int(x.shape[3])  # ints: fold's size stays a constant when traced for ONNX
        heads, p = self.num_heads, self.patch
        tau = self.temperatures(x)
        if mode == "high":
            tau_used = tau.amax(1, keepdim=True).expand_as(tau)
        elif mode == "low":
            tau_used = tau.amin(1, keepdim=True).expand_as(tau)
        else:
            tau_used = tau
        if self.kind in ("mhtma", "vanilla"):
            z = self.embed(x).reshape(b * heads, c // heads, h, w)
        else:  # every head matches the raw features
            z = x.repeat_interleave(heads, dim=0) if heads > 1 else x
        keys = F.unfold(z, p)  # (B*heads, d*p*p, L_keys): only patches inside the map
        queries = F.unfold(z, p, padding=p // 2)  # (B*heads, d*p*p, H*W): zero padded, one per position
        keys_n = F.normalize(keys, dim=1)
        queries_n = F.normalize(queries, dim=1) if self.kind in ("mhtma", "vanilla") else queries
        scores = queries_n.transpose(1, 2) @ keys_n  # (B*heads, H*W, L_keys), Eq. 7
        m = hole_keys(hole, (h, w), p).repeat_interleave(heads, dim=0)  # (B*heads, 1, L_keys)
        scores = scores * (1 - m) + self.hole_score * m  # Eq. 9
        weights = torch.softmax(scores / tau_used.reshape(b * heads, 1, 1), dim=-1)  # Eq. 10
        patches = keys @ weights.transpose(1, 2)  # values are the key patches, Eq. 11
        # roll back: fold the patch of each position onto the map, average where patches overlap
        ones = torch.ones(1, 1, h, w, device=x.device, dtype=patches.dtype)
        overlap = F.fold(F.unfold(ones, p, padding=p // 2), (h, w), p, padding=p // 2)
        y = F.fold(patches, (h, w), p, padding=p // 2) / overlap
        y = y.reshape(b, -1, h, w)  # heads concatenated along channels, Eq. 12
        if self.kind == "atma":
            y = self.merge(y)
        return y, tau

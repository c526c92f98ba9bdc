"""What every token sampler shares: top-K filtering and per-sample Gumbel noise."""

from __future__ import annotations

import torch


def top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the k largest logits of the last dimension, the rest to -inf."""
    if k is None or k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def gumbel_like(shape, generators: list[torch.Generator], device) -> torch.Tensor:
    """Gumbel(0, 1) noise of shape (B, ...), row b drawn from generators[b]."""
    u = torch.stack([torch.rand(shape[1:], generator=g, device=g.device) for g in generators]).to(device)
    return -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))

"""What every token sampler shares: top-K filtering and per-sample Gumbel noise."""

from __future__ import annotations

import torch

from pluralfill.errors import PluralfillError


def top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the k largest logits of the last dimension (exactly k, ties broken as topk breaks them), the
    rest to -inf."""
    if k is None or k <= 0 or k >= logits.shape[-1]:
        return logits
    top = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, top.indices, top.values)


def gumbel_like(shape, generators: list[torch.Generator], device) -> torch.Tensor:
    """Gumbel(0, 1) noise of shape (B, ...), row b drawn from generators[b]."""
    u = torch.stack([torch.rand(shape[1:], generator=g, device=g.device) for g in generators]).to(device)
    return -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))


def multinomial_rows(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """(B, ..., V) probabilities -> (B, ...) codes, row b drawn from generators[b]."""
    flat = probs.reshape(probs.shape[0], -1, probs.shape[-1])
    rows = [torch.multinomial(p.float(), 1, generator=g)[:, 0] for p, g in zip(flat, generators)]
    return torch.stack(rows).reshape(probs.shape[:-1])


def check_sampling(temperature: float, steps: int | None = None, tokens_per_step: int | None = None) -> None:
    """Option values a user typed: a bad one is a clear error before any work."""
    if not temperature > 0:
        raise PluralfillError(f"temperature must be positive, got {temperature}")
    if steps is not None and steps < 1:
        raise PluralfillError(f"steps must be at least 1, got {steps}")
    if tokens_per_step is not None and tokens_per_step < 1:
        raise PluralfillError(f"tokens_per_step must be at least 1, got {tokens_per_step}")

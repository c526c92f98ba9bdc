"""MaskGIT's iterative parallel decoding (Chang et al. 2022; seed 003), for any token model.

At step t of T every unknown position is sampled; the number left masked follows the schedule,
n_masked = floor(n_unknown_at_start * gamma((t + 1) / T)), and the positions kept masked are the least
confident, confidence = log p(sampled) + choice_temperature * (1 - (t + 1) / T) * Gumbel. Known tokens are
never re-masked. The last step keeps every sample.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch

from pluralfill.errors import PluralfillError
from pluralfill.sampling.base import check_sampling, gumbel_like, top_k_filter

SCHEDULES = ("cosine", "linear", "square", "cubic", "arccos", "pow<k>")


def mask_ratio(schedule: str, r: float) -> float:
    """gamma(r): the fraction of the initially unknown tokens still masked after progress r in (0, 1]."""
    if schedule == "cosine":
        return math.cos(r * math.pi / 2)
    if schedule == "linear":
        return 1 - r
    if schedule == "square":
        return 1 - r**2
    if schedule == "cubic":
        return 1 - r**3
    if schedule == "arccos":
        return math.acos(r) / (math.pi / 2)
    m = re.fullmatch(r"pow(\d+(?:\.\d+)?)", schedule)
    if m:
        return 1 - r ** float(m[1])
    raise PluralfillError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")


@torch.no_grad()
def parallel_decode(
    logits_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tokens: torch.Tensor,
    unknown: torch.Tensor,
    generators: list[torch.Generator],
    steps: int = 12,
    schedule: str = "cosine",
    choice_temperature: float = 4.5,
    temperature: float = 1.0,
    top_k: int | None = None,
    trace: list | None = None,
) -> torch.Tensor:
    """Fill the `unknown` positions of `tokens` (B, L) in `steps` passes.

    logits_fn(tokens, unknown) -> (B, L, V): the model's predictions when the positions in `unknown` are
    hidden from it. `trace`, if a list, receives (tokens, unknown) after every step.
    """
    mask_ratio(schedule, 1.0)  # an unknown name fails before any work
    check_sampling(temperature, steps=steps)
    tokens, unknown = tokens.clone(), unknown.clone()
    n_start = unknown.sum(1, keepdim=True)
    for step in range(steps):
        logits = top_k_filter(logits_fn(tokens, unknown).float() / temperature, top_k)
        sampled = (logits + gumbel_like(logits.shape, generators, logits.device)).argmax(-1)
        sampled = torch.where(unknown, sampled, tokens)
        if step == steps - 1:
            tokens, unknown = sampled, torch.zeros_like(unknown)
        else:
            ratio = (step + 1) / steps
            remaining = unknown.sum(1, keepdim=True)
            keep_masked = (n_start * mask_ratio(schedule, ratio)).floor().long()
            keep_masked = torch.maximum(torch.ones_like(keep_masked), torch.minimum(remaining - 1, keep_masked))
            logp = torch.log_softmax(logits, -1).gather(-1, sampled[..., None])[..., 0]
            noise = gumbel_like(logp.shape, generators, logp.device)
            confidence = logp + choice_temperature * (1 - ratio) * noise
            confidence = confidence.masked_fill(~unknown, float("inf"))
            cutoff = confidence.sort(dim=1).values.gather(1, keep_masked.clamp(max=confidence.shape[1] - 1))
            still = (confidence < cutoff) & unknown
            tokens, unknown = torch.where(still, tokens, sampled), still
        if trace is not None:
            trace.append((tokens.clone(), unknown.clone()))
    return tokens

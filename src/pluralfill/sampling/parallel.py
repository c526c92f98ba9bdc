"""MaskGIT's iterative parallel decoding (Chang et al., CVPR 2022), for any token model.

At step t of T (starting at `start_step`) every unknown position is sampled; the number left masked follows
the schedule, n_masked = floor(n_unknown_at_start * gamma((t + 1) / T)), kept between 1 and the unknown
count - 1, and the positions kept masked are the least confident,
confidence = log p(sampled) + choice_temperature * (1 - (t + 1) / T) * Gumbel. Known tokens are never
re-masked. The last step keeps every sample. Ratios, gamma and the count are computed in float32 as the
official (JAX) code computes them: where n * gamma is an integer in exact arithmetic, float32 can floor one
lower, and so does the official decoder.

Schedules gamma(r), clipped to [1e-6, 1] (official `mask_schedule.schedule`; N = unknown count at start):
    cosine cos(pi r / 2)   uniform / linear 1 - r   powE 1 - r^E (square = pow2, cubic = pow3)
    log -log2(r) / log2(N)   exp 1 - 2^(-log2(N) (1 - r))   arccos arccos(r) / (pi / 2) (ours)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import torch

from pluralfill import progress
from pluralfill.errors import PluralfillError
from pluralfill.sampling.base import Randomness, Step, check_sampling, top_k_filter
from pluralfill.sampling.cache import Passes

SCHEDULES = ("cosine", "linear", "uniform", "square", "cubic", "arccos", "log", "exp", "pow<k>")


def mask_ratio(schedule: str, r: float, total: int = 1) -> float:
    """gamma(r): the fraction of the initially unknown tokens still masked after progress r in (0, 1], in
    float32 with correctly rounded functions, as XLA computes it. `total`: how many were unknown at the start
    (the log and exp schedules use it)."""
    f = np.float32

    def fn(g, *args):  # a float32 function value, correctly rounded (through float64)
        return f(g(*(np.float64(a) for a in args)))

    r = f(r)
    with np.errstate(divide="ignore"):
        if schedule == "cosine":
            g = fn(np.cos, f(math.pi / 2) * r)
        elif schedule in ("linear", "uniform"):
            g = f(1) - r
        elif schedule in ("square", "cubic"):
            g = f(1) - fn(np.power, r, 2 if schedule == "square" else 3)
        elif schedule == "arccos":
            g = fn(np.arccos, r) / f(math.pi / 2)
        elif schedule == "log":
            g = -fn(np.log2, r) / fn(np.log2, total)
        elif schedule == "exp":
            g = f(1) - fn(np.exp2, -fn(np.log2, total) * (f(1) - r))
        elif m := re.fullmatch(r"pow(\d+(?:\.\d+)?)", schedule):
            g = f(1) - fn(np.power, r, float(m[1]))
        else:
            raise PluralfillError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    return float(np.clip(f(g), f(1e-6), f(1)))


def halton_order(length: int) -> torch.Tensor:
    """The positions of a square grid of `length` cells in the order the 2-D Halton sequence (bases 2 and 3)
    first visits them: spread over the grid at every prefix (Besnier et al., ICLR 2025, "Halton scheduler")."""
    side = math.isqrt(length)
    if side * side != length:
        raise PluralfillError(f"the Halton order needs a square grid of tokens, got {length}")

    def radical_inverse(i: int, base: int) -> float:
        out, f = 0.0, 1.0 / base
        while i:
            out, i, f = out + f * (i % base), i // base, f / base
        return out

    seen, order, i = set(), [], 1
    while len(order) < length:
        cell = int(radical_inverse(i, 3) * side) * side + int(radical_inverse(i, 2) * side)
        if cell not in seen:
            seen.add(cell)
            order.append(cell)
        i += 1
    return torch.tensor(order)


def masked_count(schedule: str, step: int, steps: int, total: int) -> int:
    """floor(total * gamma((step + 1) / steps)) in float32, as the official decoder counts."""
    ratio = np.float32(step + 1) / np.float32(steps)
    return int(np.floor(np.float32(total) * np.float32(mask_ratio(schedule, ratio, total))))


@torch.no_grad()
def parallel_decode(
    logits_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tokens: torch.Tensor,
    unknown: torch.Tensor,
    randomness: Randomness,
    steps: int = 12,
    schedule: str = "cosine",
    choice_temperature: float = 4.5,
    temperature: float = 1.0,
    top_k: int | None = None,
    trace: list | None = None,
    start_step: int = 0,
    order: str = "confidence",
    cache: Passes | None = None,
) -> torch.Tensor:
    """Fill the `unknown` positions of `tokens` (B, L) in passes start_step, ..., steps - 1.

    logits_fn(tokens, unknown[, cache]) -> (B, L, V): the model's predictions when the positions in `unknown` are
    hidden from it; it is given `cache` (a `nn.kv_cache.KeptKV` for its network) when `cache`, the call's
    `sampling.cache.Passes`, keeps the known tokens' keys and values. `randomness` gives the Gumbel noise of the
    draw ("sample") and of the choice ("choice").
    `order`: which sampled tokens a pass keeps: "confidence" (MaskGIT's: the most likely, with the choice noise) or
    "halton" (the next positions of a Halton order over the grid, whatever their confidence; no choice noise).
    `trace`, if a list, receives a Step after every pass, whose details hold the pass's quantities under the
    official decoder's names: sampled_ids (the draw before known tokens are kept), sampled, and but for the last
    pass selected_probs (+inf at known positions), ratio, mask_ratio (for row 0's unknown count: only the log
    and exp schedules depend on it), mask_len, choice_temperature.
    """
    mask_ratio(schedule, 1.0)  # an unknown name fails before any work
    if order not in ("confidence", "halton"):
        raise PluralfillError(f"order must be confidence or halton, got {order!r}")
    rank = None
    if order == "halton":  # a position's place in the order: earlier places are kept first
        rank = torch.empty(tokens.shape[1], dtype=torch.float32, device=tokens.device)
        rank[halton_order(tokens.shape[1]).to(tokens.device)] = torch.arange(
            tokens.shape[1], dtype=torch.float32, device=tokens.device
        )
    check_sampling(temperature, steps=steps)
    if not 0 <= start_step < steps:
        raise PluralfillError(f"start_step must be in [0, steps), got {start_step} with steps={steps}")
    passes = (cache or Passes()).begin()
    tokens, unknown = tokens.clone(), unknown.clone()
    n_start = [int(n) for n in unknown.sum(1)]
    for step in range(start_step, steps):
        progress.step(step - start_step, steps - start_step)
        logits = top_k_filter(passes(logits_fn, unknown, tokens, unknown).float() / temperature, top_k)
        drawn = (logits + randomness.gumbel(logits.shape, "sample").to(logits.device)).argmax(-1)
        sampled = torch.where(unknown, drawn, tokens)
        details = {"sampled_ids": drawn, "sampled": sampled}
        if step == steps - 1:
            tokens, unknown = sampled, torch.zeros_like(unknown)
        else:
            ratio = float(np.float32(step + 1) / np.float32(steps))
            remaining = unknown.sum(1, keepdim=True)
            keep = torch.tensor([[masked_count(schedule, step, steps, n)] for n in n_start], device=tokens.device)
            keep_masked = torch.maximum(torch.ones_like(keep), torch.minimum(remaining - 1, keep))
            logp = torch.log_softmax(logits, -1).gather(-1, sampled[..., None])[..., 0]
            if rank is None:
                noise = randomness.gumbel(logp.shape, "choice").to(logp.device)
                confidence = logp + choice_temperature * (1 - ratio) * noise
            else:
                confidence = -rank.expand_as(logp)
            confidence = confidence.masked_fill(~unknown, float("inf"))
            cutoff = confidence.sort(dim=1).values.gather(1, keep_masked.clamp(max=confidence.shape[1] - 1))
            still = (confidence < cutoff) & unknown
            if trace is not None:
                details |= {
                    "selected_probs": logp.exp().masked_fill(~unknown, float("inf")),
                    "ratio": ratio,
                    "mask_ratio": mask_ratio(schedule, ratio, n_start[0]),
                    "mask_len": keep_masked[:, 0],
                    "choice_temperature": choice_temperature * (1 - ratio),
                }
            tokens, unknown = torch.where(still, tokens, sampled), still
        if trace is not None:
            trace.append(Step(tokens.clone(), unknown.clone(), details))
    return tokens

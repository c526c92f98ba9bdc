"""What every token sampler shares: the randomness of a call, the trace it records, top-K filtering.

Every sampler (Algorithm 1, the TPAMI sampler, parallel decoding, raster sampling) takes one `Randomness`, whose
row b is sample b's own stream (so a sample is the same whatever it is batched with), and records one kind of
`Step` into `trace` when given a list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from pluralfill.errors import PluralfillError


class Randomness:
    """The random draws of one sampling call: row b from a generator seeded with seeds[b]. A subclass may replay
    fixed draws instead (the parity tests replay the authors' noise)."""

    def __init__(self, seeds: Sequence[int] = (), device: str | torch.device = "cpu", generators=None):
        self.generators = (
            list(generators)
            if generators is not None
            else [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        )

    def __len__(self) -> int:
        return len(self.generators)

    def gumbel(self, shape, kind: str = "sample") -> torch.Tensor:
        """Gumbel(0, 1) noise of shape (B, ...). kind: what it decides ("sample": a code's draw; "choice": which
        tokens a parallel pass keeps)."""
        return gumbel_like(shape, self.generators, self.generators[0].device if self.generators else "cpu")

    def multinomial(self, probs: torch.Tensor, at: torch.Tensor | None = None, length: int | None = None):
        """(B, ..., V) probabilities -> (B, ...) codes. `at` (B, n): the positions of a (B, length) sequence that
        probs (B, n, V) are for, for a subclass that replays draws made over the whole sequence."""
        return multinomial_rows(probs, self.generators)


def randomness(seeds, device) -> Randomness:
    """`seeds` (one per sample) as a Randomness; a Randomness as it is."""
    return seeds if isinstance(seeds, Randomness) else Randomness(seeds, device)


@dataclass
class Step:
    """One step of a sampler, as `trace` records it: the (B, L) codes and the (B, L) positions still missing
    after it, and what else the step computed under the names its authors use (`details`)."""

    tokens: torch.Tensor
    unknown: torch.Tensor
    details: dict = field(default_factory=dict)


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

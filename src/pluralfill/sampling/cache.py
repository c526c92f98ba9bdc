"""How a token sampler runs its network's passes: all of them in full, or with the known tokens' keys and values
kept between full passes. One object for Algorithm 1, the TPAMI sampler and parallel decoding.

    cache="off"     every pass computes every position (the plain sampler)
    cache="known"   passes 0, R, 2R, ... (R = refresh) are full passes that keep every layer's keys and values
                    (`nn.kv_cache.KeptKV`); the passes between compute only the positions missing at the last
                    full pass (those still missing and those committed since) and attend to the kept keys and
                    values of the rest. refresh=1 is the plain sampler, pass for pass.

At a 40% hole a partial pass computes 40% of the positions, so with R passes per refresh the transformer costs
about (1 + 0.4 (R - 1)) / R of the plain sampler's. The known positions' keys and values are as old as the last
full pass, which makes every pass between an approximation (ReCAP, arXiv 2505.19089; LazyMAR, ICCV 2025):
`compare` measures it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from pluralfill.errors import PluralfillError
from pluralfill.nn.kv_cache import KeptKV

CACHES = ("off", "known")
_COMPARE: ContextVar[Callable | None] = ContextVar("compare", default=None)


@contextmanager
def comparing(compare: Callable) -> Iterator[None]:
    """Every `Passes` made inside the block (the inpainters make one per call) measures its partial passes with
    `compare`: how a benchmark watches the cache through the path a user runs."""
    token = _COMPARE.set(compare)
    try:
        yield
    finally:
        _COMPARE.reset(token)


class Passes:
    """The passes of one sampling call. `compare(exact, cached, unknown)`, if given, is called at every partial
    pass with the logits a full pass gives for the same inputs (which it computes as well, for measurement)."""

    def __init__(self, cache: str = "off", refresh: int = 4, compare: Callable | None = None):
        if cache not in CACHES:
            raise PluralfillError(f"cache must be one of {', '.join(CACHES)}, got {cache!r}")
        if refresh < 1:
            raise PluralfillError(f"refresh must be at least 1, got {refresh}")
        self.cache, self.refresh = cache, refresh
        self.compare = compare if compare is not None else _COMPARE.get()
        self.begin()

    def begin(self) -> Passes:
        """Start a sampling call: its first pass is a full one."""
        self.done, self.kept, self.rows = 0, KeptKV(), None
        return self

    def __call__(self, network: Callable, unknown: torch.Tensor, *inputs) -> torch.Tensor:
        """One pass of network(*inputs[, cache=KeptKV]) -> (B, L, V) logits, where `unknown` (B, L) marks the
        positions the sampler may still draw. A partial pass gives zeros at the positions it skipped, all of
        them known."""
        if self.cache == "off":
            out = network(*inputs)
        elif self.done % self.refresh == 0:
            out = network(*inputs, cache=self.kept.full_pass())
            self.rows = missing_rows(unknown)
        else:
            part = network(*inputs, cache=self.kept.partial_pass(self.rows))
            index = self.rows[..., None].expand(-1, -1, part.shape[-1])
            out = part.new_zeros(unknown.shape + part.shape[-1:]).scatter_(1, index, part)
            if self.compare is not None:
                self.compare(network(*inputs), out, unknown)
        self.done += 1
        return out


def missing_rows(unknown: torch.Tensor) -> torch.Tensor:
    """(B, L) bool -> (B, m) the positions where each row is True, m the largest count of the batch; a row with
    fewer repeats its first one (a repeated row computes the same numbers), so that what a sample gets does not
    depend on the others batched with it."""
    count = unknown.sum(1)
    m = max(int(count.max()), 1)
    order = torch.argsort((~unknown).to(torch.uint8), dim=1, stable=True)[:, :m]
    pad = (torch.arange(m, device=unknown.device)[None] >= count[:, None]) & (count[:, None] > 0)
    return torch.where(pad, order[:, :1], order)

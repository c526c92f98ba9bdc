"""The keys and values of a full transformer pass, kept so that later passes recompute only a few positions.

In inpainting most tokens are known and never change between two sampling passes. A *full* pass computes every
position and keeps each attention layer's keys and values; a *partial* pass computes only the rows `at` (the
positions still missing when the full pass ran), and each of its attention layers attends to the kept keys and
values with those rows replaced by its own. The known positions' keys and values are then as stale as the last
full pass: exact at the first partial pass after it in the first layer, an approximation deeper and later
(ReCAP, arXiv 2505.19089, and LazyMAR, ICCV 2025, cache the keys and values of masked generative transformers
in the same way). The sampler decides when to run a full pass again (`sampling.cache.Passes`).

    full pass:     x (B, L, d)  --block 1-->  keeps k1, v1 (B, H, L, dh)  --block 2-->  keeps k2, v2  ...
    partial pass:  x[:, at] (B, m, d)  --block 1: q, k, v of the m rows; k1[:, :, at] = k  -->  ...
"""

from __future__ import annotations

import torch


class KeptKV:
    """The keys and values of one full pass, per attention layer, and the rows a partial pass computes."""

    def __init__(self):
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.at: torch.Tensor | None = None  # (B, m) positions of a partial pass; None in a full pass
        self.offset, self._layer = 0, 0

    @property
    def partial(self) -> bool:
        return self.at is not None

    def full_pass(self) -> KeptKV:
        """The next pass computes every position and keeps its keys and values."""
        self.layers, self.at, self._layer = [], None, 0
        return self

    def partial_pass(self, at: torch.Tensor) -> KeptKV:
        """The next pass computes the positions `at` (B, m) only; duplicate positions in a row are allowed."""
        if not self.layers:
            raise RuntimeError("a partial pass needs the keys and values of a full pass first")
        self.at, self._layer = at, 0
        return self

    def gather(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """The rows of the (B, L', d) block inputs a pass computes: all of them in a full pass, `at` in a partial
        one. `offset`: how many leading positions (a class token) come before the positions `at` counts."""
        self.offset = offset
        if self.at is None:
            return x
        return x.gather(1, (self.at + offset)[..., None].expand(-1, -1, x.shape[-1]))

    def keys_values(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An attention layer's (B, H, n, dh) keys and values -> those it attends to."""
        if self.at is None:
            self.layers.append((k, v))
            return k, v
        kept_k, kept_v = self.layers[self._layer]
        self._layer += 1
        rows = (self.at + self.offset)[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
        # the rows of a partial pass are the same at every partial pass until the next full one, so they can be
        # written over in place
        return kept_k.scatter_(2, rows, k.to(kept_k.dtype)), kept_v.scatter_(2, rows, v.to(kept_v.dtype))

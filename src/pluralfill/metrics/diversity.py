"""Diversity of the N samples of one image: mean pairwise distance over all pairs."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from pluralfill.metrics.pixel import as_batch
from pluralfill.pixels import to_tensor


def pairwise_mean(samples, distance) -> float:
    """Mean of `distance(a, b)` over the unordered pairs of `samples`; NaN for fewer than two."""
    pairs = list(itertools.combinations(range(len(samples)), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([float(distance(samples[i], samples[j])) for i, j in pairs]))


def pixel_diversity(samples) -> float:
    """Mean pairwise L1 distance between samples, as a percentage of the value range (needs no weights)."""
    x = as_batch(np.stack([np.asarray(s) for s in samples]))
    return pairwise_mean(x, lambda a, b: (a - b).abs().mean() / 255 * 100)


@torch.no_grad()
def lpips_diversity(samples, lpips_model) -> float:
    """Mean pairwise LPIPS between samples (the usual diversity score of pluralistic inpainting)."""
    device = next(lpips_model.parameters()).device
    x = to_tensor(np.stack([np.asarray(s) for s in samples])).to(device)
    i, j = zip(*itertools.combinations(range(len(x)), 2)) if len(x) > 1 else ((), ())
    if not i:
        return float("nan")
    return float(lpips_model(x[list(i)], x[list(j)]).mean())

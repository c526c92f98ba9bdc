"""Raster-order sampling of the missing codes of a latent map (DSI's structure, seed 001), with or without
the layer caches. Both paths compute the same logits for every position, so with the same generators
they draw the same codes. The plain path runs the whole network once per missing position; the cached one
runs it once over the sequence (filling the caches with the known codes), then each layer once per
position from the first missing position to the last. Positions after the last missing one are never run."""

from __future__ import annotations

import math

import torch

from pluralfill.sampling.base import check_sampling, gumbel_like, top_k_filter


@torch.no_grad()
def sample_raster(model, cond: torch.Tensor, tokens: torch.Tensor, unknown: torch.Tensor, generators: list[torch.Generator],
                  top_k: int | None = None, temperature: float = 1.0, cache: bool = True,
                  entropy: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Fill the positions where `unknown` (L,) is True, in raster order.

    model: a StructureGenerator. cond: its condition(image, hole) for each of the B rows. tokens: (B, L)
    codes, kept where known. entropy: if given, an (L,) tensor that receives the entropy in bits of row
    0's distribution at each sampled position (before top-K and temperature: the model's own uncertainty).
    """
    check_sampling(temperature)
    tokens = tokens.clone()
    where = torch.nonzero(unknown).flatten()
    if len(where) == 0:
        return tokens
    first, last = int(where[0]), int(where[-1])
    if cache:  # the known codes before the first missing one in one parallel pass, then one position at a time
        caches = model.new_cache(cond)
        model.prefill(tokens, cond, caches)
    for p in range(first, last + 1):
        if cache:
            logits = model.step(tokens[:, p - 1] if p else None, p, cond, caches)
        elif unknown[p]:
            logits = model(tokens, cond)[:, p]
        if not unknown[p]:
            continue
        logits = logits.float()
        if entropy is not None:
            logp = torch.log_softmax(logits[0], dim=-1)
            entropy[p] = -(logp.exp() * logp).sum() / math.log(2)
        scores = top_k_filter(logits / temperature, top_k) + gumbel_like(logits.shape, generators, logits.device)
        tokens[:, p] = scores.argmax(-1)
    return tokens

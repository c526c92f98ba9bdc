"""Raster-order sampling of a latent map of codes (DSI's structure, Peng et al. 2021), with or without the
structure generator's caches. The network reads code *vectors*: positions not yet sampled hold zeros, as in
the official sampler. Both paths compute the same logits at every position, so with the same generators they
draw the same codes. The plain path runs the whole network once per sampled position (the official
`test.py` loop); the cached one runs it once over the map when known codes come first (filling the caches),
then one row of the upper stream per row and one position of the rest per position, up to the last
position sampled."""

from __future__ import annotations

import math

import torch

from pluralfill import progress
from pluralfill.nn.weight_norm import frozen_weights
from pluralfill.sampling.base import Randomness, Step, check_sampling, top_k_filter


@torch.no_grad()
def sample_raster(
    model,
    cond: torch.Tensor,
    codebook: torch.Tensor,
    tokens: torch.Tensor,
    unknown: torch.Tensor,
    randomness: Randomness,
    top_k: int | None = None,
    temperature: float = 1.0,
    cache: bool = True,
    entropy: torch.Tensor | None = None,
    trace: list | None = None,
) -> torch.Tensor:
    """Fill the positions where `unknown` (L,) is True, in raster order; returns (B, L) codes.

    model: a StructureGenerator; cond: its condition for each of the B rows; codebook (K, D): the code
    vectors it reads; tokens (B, L): codes kept where known (ignored where unknown). entropy: if given, an
    (L,) tensor that receives the entropy in bits of row 0's distribution at each sampled position (before
    top-K and temperature: the model's own uncertainty). A code is argmax(top_k(logits / temperature) + G):
    a draw from softmax(top_k(logits) / temperature); at temperature 1 without top-K the official
    `tf.multinomial(log_softmax(logits))`; G is the randomness's Gumbel noise. trace: if a list, receives a
    Step at every sampled position, in sampling order, with details "position" and "logits" (B, K).
    """
    check_sampling(temperature)
    side = model.config.side
    tokens = tokens.clone()
    known = (~unknown).to(codebook.dtype)
    e = (codebook[tokens] * known[None, :, None]).transpose(1, 2).reshape(tokens.shape[0], -1, side, side).contiguous()
    where = torch.nonzero(unknown).flatten()
    if len(where) == 0:
        return tokens
    first, last = int(where[0]), int(where[-1])
    with frozen_weights(model):
        if cache:
            caches = model.new_cache(cond)
            if first > 0:  # the known codes before the first missing one in one plain pass
                model.prefill(caches, e, cond, first)
        for p in range(first, last + 1):
            progress.step(p - first, last + 1 - first)
            i, j = divmod(p, side)
            if cache:
                logits = model.step(caches, i, j)
            elif unknown[p]:
                logits = model(e, cond)[:, :, i, j]
            if unknown[p]:
                logits = logits.float()
                if entropy is not None:
                    logp = torch.log_softmax(logits[0], dim=-1)
                    entropy[p] = -(logp.exp() * logp).sum() / math.log(2)
                g = randomness.gumbel(logits.shape).to(logits.device)
                tokens[:, p] = (top_k_filter(logits / temperature, top_k) + g).argmax(-1)
                if trace is not None:
                    left = unknown.clone()
                    left[: p + 1] = False
                    trace.append(
                        Step(tokens.clone(), left.expand_as(tokens), {"position": p, "logits": logits.clone()})
                    )
                e[:, :, i, j] = codebook[tokens[:, p]]
            if cache:
                model.write(caches, i, j, e[:, :, i, j])
    return tokens

"""PUT's sampler (Liu et al. 2022, Algorithm 1): repeatedly fill the unfilled position the transformer is most
confident about, drawing its code from the top-K, and feed the chosen code's vector back as that
position's input.

Sampling draws through the Gumbel-max trick with one random stream per sample (`Randomness`), so sample i of a
seeded run does not depend on how many other samples were drawn beside it.
"""

from __future__ import annotations

import math

import torch

from pluralfill import progress
from pluralfill.models.uq_transformer import UQTransformer
from pluralfill.sampling.base import Randomness, Step, check_sampling, top_k_filter
from pluralfill.sampling.cache import Passes


@torch.no_grad()
def sample_put(
    transformer: UQTransformer,
    codebook: torch.Tensor,
    features: torch.Tensor,
    tokens: torch.Tensor,
    filled: torch.Tensor,
    randomness: Randomness,
    top_k: int | None = 50,
    temperature: float = 1.0,
    tokens_per_step: int = 1,
    position_by: str = "probability",
    trace: list | None = None,
    known_fraction: torch.Tensor | None = None,
    cache: Passes | None = None,
) -> torch.Tensor:
    """Fill every position where `filled` is False.

        transformer: the UQ-Transformer. codebook: (num_codes, in_dim) table; the sampled code k feeds back
        `codebook[k]`. features: (B, L, in_dim) un-quantized features of the masked images. tokens: (B, L) codes
        of the known positions (others ignored). filled: (B, L) bool, True where the token is known.
        position_by: "probability" (the paper: highest max-probability) or "logit" (the official code:
        highest max-logit). `trace`, if a list, receives a Step per step (details: "positions" (B, k) chosen,
    "codes" drawn there, "valid": where a row had a position left to fill).
        known_fraction: (B, L) share of each patch's pixels present, for a transformer with a mask embedding.
        cache: how the passes run (`sampling.cache.Passes`; default: every pass in full).
        Returns the (B, L) completed tokens.
    """
    check_sampling(temperature, tokens_per_step=tokens_per_step)
    passes = (cache or Passes()).begin()
    x = transformer.embed(features, known_fraction)
    tokens, filled = tokens.clone(), filled.clone()
    b = x.shape[0]
    rows = torch.arange(b, device=x.device)[:, None]
    steps = math.ceil(int((~filled).sum(1).max()) / tokens_per_step)  # the one host sync
    k = min(tokens_per_step, filled.shape[1])
    for done in range(steps):
        progress.step(done, steps)
        logits = passes(transformer.forward_embedded, ~filled, x).float()
        if position_by == "logit":
            score = logits.max(-1).values
        else:
            score = torch.softmax(logits / temperature, -1).max(-1).values
        score = score.masked_fill(filled, float("-inf"))
        top = score.topk(k, dim=1)
        pos, valid = top.indices, top.values > float("-inf")  # rows with fewer gaps than k pick some filled
        picked = top_k_filter(logits[rows, pos] / temperature, top_k)  # (B, k, V)
        new = (picked + randomness.gumbel(picked.shape).to(x.device)).argmax(-1)
        new_x = transformer.embed_codes(codebook[new], pos).to(x.dtype)
        x[rows, pos] = torch.where(valid[..., None], new_x, x[rows, pos])
        tokens[rows, pos] = torch.where(valid, new, tokens[rows, pos])
        filled[rows, pos] = filled[rows, pos] | valid
        if trace is not None:
            trace.append(
                Step(tokens.clone(), ~filled, {"positions": pos.clone(), "codes": new.clone(), "valid": valid.clone()})
            )
    return tokens

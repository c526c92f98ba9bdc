"""The sampler of PUT's TPAMI-2024 models (the official `generate_content`): many tokens per transformer pass,
where Algorithm 1 commits one.

Each pass: logits for every position; keep the top-k codes and take softmax(logits * temperature) (the
temperature multiplies the logits, as the official code has it); draw a code for every position; commit the
n still-missing positions whose largest logit is highest (or every one, n = -1). Committed positions read
emb_proj(e_code) + pos_emb from then on. The count per pass follows the official schedules, for N missing
tokens (the largest count of the batch: rows advance in lock-step, one with fewer gaps commits fewer):

    n > 0        ceil(N / n) passes of n, the last one shorter        n = -1   one pass, everything
    cosine_T     T passes, counts ~ cos(pi s / T) + 1, rescaled to N  linear_T   counts ~ T - s
    average_T    counts ~ N // T                                      cosine-1_T, linear-1_T  reversed

Rescaled counts are rounded with Python's round and the remainder is spread one by one from the second
pass on, as the official code does.
"""

from __future__ import annotations

import math

import torch

from pluralfill import progress
from pluralfill.errors import PluralfillError
from pluralfill.sampling.base import Randomness, Step, check_sampling, top_k_filter
from pluralfill.sampling.cache import Passes

SCHEDULES = ("N (tokens per pass)", "-1 (all at once)", "cosine_T", "linear_T", "average_T", "cosine-1_T", "linear-1_T")


def pass_counts(schedule: int | str, missing: int) -> list[int]:
    """Tokens committed at each pass for `missing` tokens (-1: all remaining)."""
    if isinstance(schedule, str) and schedule.lstrip("-").isdigit():
        schedule = int(schedule)
    if isinstance(schedule, int):
        if schedule == 0:
            raise PluralfillError("tokens_per_step must be a positive count or -1 (all at once)")
        if schedule < 0:
            return [-1]
        counts = [schedule] * math.ceil(missing / schedule)
        counts[-1] -= sum(counts) - missing
        return counts
    kind, _, passes = str(schedule).rpartition("_")
    if kind not in ("cosine", "linear", "average", "cosine-1", "linear-1") or not passes.isdigit() or int(passes) < 1:
        raise PluralfillError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    t = int(passes)
    if kind.startswith("cosine"):
        weights = [math.cos(math.pi * s / t) + 1 for s in range(t)]
    elif kind.startswith("linear"):
        weights = list(range(t, 0, -1))
    else:
        weights = [missing // t] * t
    factor = float(missing) / sum(weights) if sum(weights) else 0.0
    counts = [round(w * factor) for w in weights]
    diff, i = sum(counts) - missing, 0
    while diff != 0:  # the official loop: the remainder goes one by one to passes 1, 2, ..., wrapping
        i = (i + 1) % len(counts)
        counts[i] += 1 if diff < 0 else -1
        diff += 1 if diff < 0 else -1
    return counts[::-1] if kind.endswith("-1") else counts


@torch.no_grad()
def sample_put_tpami(
    transformer,
    codebook: torch.Tensor,
    x: torch.Tensor,
    tokens: torch.Tensor,
    filled: torch.Tensor,
    randomness: Randomness,
    top_k: int | None = 200,
    temperature: float = 1.0,
    schedule: int | str = 20,
    trace: list | None = None,
    cache: Passes | None = None,
) -> torch.Tensor:
    """Fill every position where `filled` is False.

    transformer: the UQ-Transformer; x: (B, L, dim) its embedded inputs (`transformer.embed`); codebook:
    the code vectors a drawn code k feeds back; tokens: (B, L) codes, kept where `filled`; randomness: draws the
    codes of the positions a pass commits (`multinomial`; the official sampler draws one at every position and
    keeps those, which a replay of its draws reproduces); `trace`, if a list,
    receives a Step after every pass; cache: how the passes run (`sampling.cache.Passes`; default: every pass in
    full).
    """
    check_sampling(temperature)
    passes = (cache or Passes()).begin()
    tokens, filled, x = tokens.clone(), filled.clone(), x.clone()
    b, length = tokens.shape
    rows = torch.arange(b, device=x.device)[:, None]
    counts = pass_counts(schedule, int((~filled).sum(1).max()))
    for done, n in enumerate(counts):
        progress.step(done, len(counts))
        logits = passes(transformer.forward_embedded, ~filled, x).float()
        # commit the n missing positions whose largest logit is highest (top-k keeps the largest), or all of them
        best = logits.max(-1).values.masked_fill(filled, float("-inf"))
        last = n == -1 or n >= length
        top = best.topk(int((~filled).sum(1).max()) if last else n, dim=1)
        at, commit = top.indices, top.values > float("-inf")  # a row with fewer gaps than n commits fewer
        # the official sampler draws a code at every position and keeps those it commits: drawn here only there
        chosen = logits.gather(1, at[..., None].expand(-1, -1, logits.shape[-1]))
        sample = randomness.multinomial(torch.softmax(top_k_filter(chosen, top_k) * temperature, -1), at, length)
        if not last:  # committed positions read their code from now on
            new_x = transformer.embed_codes(codebook[sample], at).to(x.dtype)
            x[rows, at] = torch.where(commit[..., None], new_x, x[rows, at])
        tokens[rows, at] = torch.where(commit, sample, tokens[rows, at])
        filled[rows, at] = filled[rows, at] | commit
        if trace is not None:
            trace.append(Step(tokens.clone(), ~filled))
    return tokens

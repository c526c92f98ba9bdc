"""What the samplers' options mean away from the defaults the fixtures were recorded at (temperature 1, the
draws injected past top-k): whole schedules, temperature and top-k, each against the official formula, quoted
with its file and line. Where we deviate from the official code on purpose, the test says how.

Official sources: PUT branch main `image_synthesis/modeling/models/masked_image_inpainting_transformer.py`
(TPAMI, "tr" below) and branch cvpr2022 `image_synthesis/modeling/transformers/transformer_utils.py` /
`..._transformer.py` `sample_largest`; `image_synthesis/modeling/utils/misc.py:7-26` (`logits_top_k`); MaskGIT
`maskgit/libml/parallel_decode.py`; DSI `test.py` (commit f2d4e1f)."""

import math

import pytest
import torch
from conftest import SHARED, Replay
from safetensors.torch import load_file

from pluralfill.sampling.autoregressive import sample_raster
from pluralfill.sampling.base import Randomness
from pluralfill.sampling.parallel import parallel_decode
from pluralfill.sampling.put import sample_put
from pluralfill.sampling.put_tpami import pass_counts, sample_put_tpami

V = 16


def official_top_k(logits, k):
    """misc.py:7-26 `logits_top_k(filter_type='count')`: the k largest kept, every other logit -inf."""
    val, ind = torch.topk(logits, k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, ind, val)


class FixedLogits:
    """A transformer whose logits are the same whatever it reads: the sampler's own arithmetic is all that acts."""

    def __init__(self, logits):  # (B, L, V)
        self.logits = logits

    def embed(self, features, known_fraction=None):
        return features

    def forward_embedded(self, x):
        return self.logits

    def embed_codes(self, vectors, positions):
        return vectors


def _logits(rows=1, length=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, length, V, generator=g) * 1.5).float()


# ------------------------------------------------------------------ PUT TPAMI (generate_content)


@pytest.mark.parametrize(
    "schedule, missing, counts",
    [
        # tr:697-736: counts ~ weights * N / sum(weights), Python round, the remainder spread from pass 1 on
        ("linear_5", 101, [34, 27, 20, 13, 7]),  # int() instead of round() would give [33, 27, 21, 14, 6]
        ("linear_4", 9, [4, 2, 2, 1]),  # rounding overshoots by 1: pass 1 gives it back
        ("cosine_4", 50, [20, 17, 10, 3]),  # weights cos(pi s / 4) + 1 = 2, 1.71, 1, 0.29
        ("cosine-1_4", 50, [3, 10, 17, 20]),  # the reversed schedule
        ("average_3", 10, [3, 4, 3]),  # weights N // T = 3 each; the missing token goes to pass 1
        ("linear-1_3", 8, [1, 3, 4]),  # [4, 2.67, 1.33] -> [4, 3, 1], reversed
        (20, 101, [20, 20, 20, 20, 20, 1]),  # tr: ceil(N / n) passes of n, the last one shortened
        (-1, 101, [-1]),  # tr: "sn == -1": every missing token in one pass
    ],
)
def test_tpami_schedules_are_the_official_counts(schedule, missing, counts):
    assert pass_counts(schedule, missing) == counts


@pytest.mark.parametrize("temperature, top_k", [(0.5, 4), (2.0, 8), (1.0, None)])
def test_tpami_draws_from_softmax_of_the_top_k_logits_times_the_temperature(temperature, top_k):
    """tr:774-776: probs = softmax(logits_top_k(logits, k) * temperature) (the temperature multiplies), one draw
    for every position; then the n missing positions with the largest filtered max-logit commit (tr:790-803)."""
    logits = _logits(2, 6)
    seen = []

    def draw(probs):
        seen.append(probs)
        return probs.argmax(-1)

    filled = torch.zeros(2, 6, dtype=torch.bool)
    tokens = sample_put_tpami(
        FixedLogits(logits),
        torch.zeros(V, 3),
        torch.zeros(2, 6, 3),
        torch.zeros(2, 6, dtype=torch.long),
        filled,
        Replay(multinomial=draw, rows=2),
        top_k=top_k,
        temperature=temperature,
        schedule=2,
    )
    kept = logits if top_k is None else official_top_k(logits, top_k)
    assert len(seen) == 3  # 6 tokens, 2 a pass
    first = kept.max(-1).values.topk(2, dim=1).indices  # committed at pass 1: the draws of that pass
    at = first[..., None].expand(-1, -1, V)
    # drawn where a pass commits (the official sampler draws everywhere and keeps these)
    torch.testing.assert_close(
        seen[0].gather(1, at), torch.softmax(kept * temperature, -1).gather(1, at), rtol=0, atol=0
    )
    assert torch.equal(tokens.gather(1, first), seen[0].argmax(-1).gather(1, first))


# ------------------------------------------------------------------ PUT CVPR (Algorithm 1)


@pytest.mark.parametrize("temperature, top_k", [(0.5, 5), (2.0, None)])
def test_algorithm1_draws_from_softmax_of_the_top_k_logits_over_the_temperature(temperature, top_k):
    """The official `sample_largest` (cvpr2022) draws from softmax(logits_top_k(logits) * t); our temperature
    T divides, so ours at T is the official at t = 1 / T (README: "temperature divides the logits"). Checked
    on 6,000 draws of one missing position against the exact distribution (4 sigma)."""
    rows = 6000
    logits = _logits().expand(rows, 1, V).contiguous()
    tokens = sample_put(
        FixedLogits(logits),
        torch.zeros(V, 3),
        torch.zeros(rows, 1, 3),
        torch.zeros(rows, 1, dtype=torch.long),
        torch.zeros(rows, 1, dtype=torch.bool),
        Randomness(range(rows)),
        top_k=top_k,
        temperature=temperature,
    )
    official_t = 1 / temperature
    kept = logits[0, 0] if top_k is None else official_top_k(logits[0, 0], top_k)
    expected = torch.softmax(kept * official_t, -1)
    freq = torch.bincount(tokens[:, 0], minlength=V).float() / rows
    sigma = (expected * (1 - expected) / rows).sqrt()
    assert ((freq - expected).abs() <= 4 * sigma + 1e-9).all(), (freq, expected)
    if top_k is not None:
        assert freq[expected == 0].sum() == 0  # nothing outside the top-k is ever drawn


# ------------------------------------------------------------------ MaskGIT parallel decoding


@pytest.mark.parametrize("temperature, top_k", [(0.5, 6), (2.0, None)])
def test_parallel_decoding_draw_and_confidence(temperature, top_k):
    """parallel_decode.py: `sampled = categorical(logits)` (= argmax(logits + G1)), confidence = log p(sampled) +
    choice_temperature * (1 - ratio) * G2, the mask_len lowest re-masked. The official code has no temperature
    or top-k for the draw; ours applies both before it: argmax(top_k(logits / T) + G1), p from the same."""
    logits = _logits(2, 10, seed=1)
    g1, g2 = (
        -torch.log(-torch.log(torch.rand(2, 10, V, generator=torch.Generator().manual_seed(2)))),
        torch.randn(2, 10),
    )
    draws = {"sample": iter([g1, g1]), "choice": iter([g2])}
    trace = []
    replay = Replay(gumbel=lambda kind, shape: next(draws[kind]), rows=2)
    parallel_decode(
        lambda tok, hidden: logits,
        torch.zeros(2, 10, dtype=torch.long),
        torch.ones(2, 10, dtype=torch.bool),
        replay,
        steps=2,
        temperature=temperature,
        top_k=top_k,
        trace=trace,
    )
    scaled = logits / temperature
    scaled = scaled if top_k is None else official_top_k(scaled, top_k)
    sampled = (scaled + g1).argmax(-1)
    confidence = torch.log_softmax(scaled, -1).gather(-1, sampled[..., None])[..., 0] + 4.5 * (1 - 0.5) * g2
    keep_masked = math.floor(10 * math.cos(math.pi / 2 * 0.5))  # cosine, step 1 of 2: 7 of 10 stay masked
    remasked = torch.zeros(2, 10, dtype=torch.bool).scatter(
        1, confidence.topk(keep_masked, largest=False).indices, True
    )
    tokens, unknown = trace[0].tokens, trace[0].unknown
    assert torch.equal(unknown, remasked)
    assert torch.equal(tokens[~unknown], sampled[~unknown])


# ------------------------------------------------------------------ DSI raster sampling


@pytest.fixture(scope="module")
def dsi():
    from pluralfill.pretrained.dsi_official import convert

    return convert(SHARED / "fixtures" / "dsi_official_tiny", resolution=64)


@pytest.mark.parametrize("temperature, top_k", [(0.5, 8), (2.0, None)])
def test_dsi_draw_is_the_top_k_logits_over_the_temperature(dsi, temperature, top_k):
    """test.py:155-156: `tf.multinomial(log_softmax(logits))` (no temperature, no top-k there; ours divides the
    logits by T and keeps the top k). Every position of the map drawn with injected Gumbel noise: the code
    written is argmax(top_k(logits / T) + G) of the logits the sampler saw there."""
    io = load_file(SHARED / "fixtures" / "dsi_official_tiny" / "inputs.safetensors")
    image, hole = io["image"].permute(0, 3, 1, 2), io["mask"].permute(0, 3, 1, 2)
    side = dsi.config.structure.side
    noise = torch.stack(
        [
            -torch.log(
                -torch.log(torch.rand(2, dsi.config.structure.num_codes, generator=torch.Generator().manual_seed(p)))
            )
            for p in range(side * side)
        ]
    )
    order = iter(noise)
    trace = []
    with torch.no_grad():
        cond = dsi.structure.condition(image * (1 - hole), hole)
        codes = sample_raster(
            dsi.structure,
            cond,
            dsi.hvqvae.quantize_top.embedding,
            torch.zeros(2, side * side, dtype=torch.long),
            torch.ones(side * side, dtype=torch.bool),
            Replay(gumbel=lambda kind, shape: next(order), rows=2),
            top_k=top_k,
            temperature=temperature,
            trace=trace,
        )
    for step in trace:
        p, logits = step.details["position"], step.details["logits"]
        scaled = logits / temperature
        scaled = scaled if top_k is None else official_top_k(scaled, top_k)
        assert torch.equal(codes[:, p], (scaled + noise[p]).argmax(-1)), p

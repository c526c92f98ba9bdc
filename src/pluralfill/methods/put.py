"""PUT as an Inpainter: encode the known region once, sample N token maps in one batch, decode each with the
masked image as reference. Samplers: Algorithm 1 (`put`, one token per pass; the CVPR-2022 default), the
TPAMI-2024 sampler (`put-tpami`, 20 tokens per pass from the top 200; the default of those models), or
MaskGIT's parallel decoding (`parallel`)."""

from __future__ import annotations

import copy
from typing import Literal

import torch
from pydantic import model_validator

from pluralfill.methods.base import Network
from pluralfill.methods.fixed_resolution import FixedResolutionInpainter, Proxy
from pluralfill.methods.options import (
    Cached,
    FieldProblem,
    ParallelDecoding,
    TokenSampling,
    Windowed,
    known_schedule,
    option,
)
from pluralfill.models.put import PUT
from pluralfill.sampling.base import randomness, top_k_filter
from pluralfill.sampling.cache import Passes
from pluralfill.sampling.parallel import parallel_decode
from pluralfill.sampling.put import sample_put
from pluralfill.sampling.put_tpami import sample_put_tpami
from pluralfill.trace import trace_strip

SAMPLERS = ("put", "put-tpami", "parallel")
# what each generation of the official models samples with, unless told otherwise
DEFAULTS = {
    "cvpr2022": {"sampler": "put", "top_k": 50, "tokens_per_step": 1},
    "tpami2024": {"sampler": "put-tpami", "top_k": 200, "tokens_per_step": 20},
}


class PUTOptions(Windowed, TokenSampling, ParallelDecoding, Cached):
    """Options left at None take the model's generation's defaults (`DEFAULTS`).

    sampler "put": Algorithm 1 (top_k, temperature divides the logits, tokens_per_step, position_by).
    sampler "put-tpami": the TPAMI sampler (top_k, temperature multiplies the logits, tokens_per_step per pass or
    -1 for all at once, or schedule cosine_T / linear_T / average_T for T passes).
    sampler "parallel": MaskGIT's decoding in `steps` passes (schedule, choice_temperature, top_k, temperature).
    """

    sampler: Literal[SAMPLERS] | None = option(
        None,
        "put: one token at a time, the most confident first (CVPR 2022); "
        "put-tpami: the TPAMI schedule; parallel: MaskGIT-style passes",
    )
    tokens_per_step: int | None = option(
        None, "put and put-tpami samplers: how many tokens each pass fixes (-1: all)", ge=-1, le=1024
    )
    position_by: Literal["probability", "logit"] = option(
        "probability", "put sampler: rank the positions by their top probability or their top logit"
    )
    schedule: str | None = option(
        None,
        "parallel: cosine, linear, uniform, square, cubic, arccos, log, exp or pow<k>; "
        "put-tpami: cosine_T, linear_T or average_T (T passes)",
    )

    @model_validator(mode="after")
    def _rules(self):
        if self.tokens_per_step == 0:
            raise FieldProblem("tokens_per_step", "should be a count of at least 1, or -1 (all at once)")
        known_schedule(self.schedule, (self.sampler,) if self.sampler else ("parallel", "put-tpami"))
        return self


class PUTInpainter(FixedResolutionInpainter):
    name, model_class, batches_images, Options = "put", PUT, True, PUTOptions

    def __init__(self, model: PUT, device: str | torch.device = "cpu"):
        super().__init__(model, device)
        self.model.pvqvae.to(memory_format=torch.channels_last)  # ~15% faster convolutions, same numbers
        self.resolution = model.config.pvqvae.resolution

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, **options) -> torch.Tensor:
        """x (1, 3, R, R) in [-1, 1], known (1, 1, R, R) -> (len(seeds), 3, R, R) completions; or x and known
        with one row per seed (samples of different images in one batch). `options`: PUTOptions."""
        return self._sample(self.model.transformer, x, known, seeds, trace, self.options(**options))

    def _token_inputs(self, x, known):
        """What every sampler starts from, computed once per image: (seq, codebook, tokens, known_tokens,
        known_fraction, (h, w)), the sequences (B, L, ...) of the transformer's inputs."""
        pvqvae = self.model.pvqvae
        features = pvqvae.encode(x, known)  # once for all samples of an image
        b, c, h, w = features.shape
        types = pvqvae.token_types(known)
        tokens = pvqvae.tokenize(features, types).reshape(b, h * w)
        seq, codebook = self.model.transformer_inputs(features.permute(0, 2, 3, 1).reshape(b, h * w, c), tokens)
        fraction = pvqvae.known_fraction(known).reshape(b, h * w)
        return seq, codebook, tokens, (types == 1).reshape(b, h * w), fraction, (h, w)

    def _probe(self, x, known, tokens):
        pvqvae, transformer = self.model.pvqvae, self.model.transformer
        seq, _, _, known_tokens, fraction, (h, w) = self._token_inputs(x, known)
        logits = transformer.forward_embedded(transformer.embed(seq, fraction))  # the samplers' first pass
        if tokens is None:  # the whole image's own tokens, for the decode
            tokens = pvqvae.tokenize(pvqvae.encode(x)).reshape(x.shape[0], h, w)
        return {"tokens": tokens, "logits": logits, "hidden": ~known_tokens, "image": pvqvae.decode(tokens, x, known)}

    def _sample(self, transformer, x, known, seeds, trace, o: PUTOptions):
        """`sample` with the transformer the samplers call (a guided one for the conditional model)."""
        defaults = DEFAULTS[self.model.config.generation]
        sampler, schedule, temperature = o.sampler or defaults["sampler"], o.schedule, o.temperature
        top_k = defaults["top_k"] if o.top_k is None else o.top_k
        tokens_per_step = defaults["tokens_per_step"] if o.tokens_per_step is None else o.tokens_per_step
        pvqvae, n = self.model.pvqvae, len(seeds)
        seq, codebook, tokens, known_tokens, fraction, (h, w) = self._token_inputs(x, known)
        b = seq.shape[0]
        seq, tokens = seq.expand(n, *seq.shape[1:]), tokens.expand(n, -1)
        fraction, known_tokens = fraction.expand(n, -1), known_tokens.expand(n, -1)
        draws, passes = randomness(seeds, self.device), Passes(o.cache, o.refresh)
        if sampler == "put":
            out = sample_put(
                transformer,
                codebook,
                seq,
                tokens,
                known_tokens,
                draws,
                top_k=top_k,
                temperature=temperature,
                tokens_per_step=tokens_per_step,
                position_by=o.position_by,
                trace=trace,
                known_fraction=fraction,
                cache=passes,
            )
        elif sampler == "put-tpami":
            out = sample_put_tpami(
                transformer,
                codebook,
                transformer.embed(seq, fraction),
                tokens,
                known_tokens,
                draws,
                top_k=top_k,
                temperature=temperature,
                schedule=schedule or tokens_per_step,
                trace=trace,
                cache=passes,
            )
        elif sampler == "parallel":
            x0 = transformer.embed(seq, fraction)
            positions = torch.arange(h * w, device=x.device)

            def logits_fn(tok, unknown, cache=None):  # hidden and known positions keep their encoder features
                codes = transformer.embed_codes(codebook[tok.clamp(max=codebook.shape[0] - 1)], positions)
                x = torch.where((unknown | known_tokens)[..., None], x0, codes)
                return transformer.forward_embedded(x, cache=cache)

            out = parallel_decode(
                logits_fn,
                tokens,
                ~known_tokens,
                draws,
                steps=o.steps,
                schedule=schedule or "cosine",
                choice_temperature=o.choice_temperature,
                temperature=temperature,
                top_k=top_k,
                trace=trace,
                order=o.order,
                cache=passes,
            )
        return pvqvae.decode(out.reshape(n, h, w), x, known, share_reference=b == 1)

    def draw_probs(self, logits):
        """As the generation's default sampler draws: Algorithm 1 and parallel decoding divide the logits by
        the temperature after top-k, the TPAMI sampler multiplies them (Liu et al. 2024's code)."""
        o, defaults = self.options(), DEFAULTS[self.model.config.generation]
        sampler = o.sampler or defaults["sampler"]
        top_k = defaults["top_k"] if o.top_k is None else o.top_k
        if sampler == "put-tpami":
            return torch.softmax(top_k_filter(logits.float(), top_k) * o.temperature, -1)
        return torch.softmax(top_k_filter(logits.float() / o.temperature, top_k), -1)

    @property
    def onnx_pass(self):
        return None if getattr(self.model.transformer, "guided", False) else "transformer"

    @torch.no_grad()
    def export_networks(self, batch: int = 2) -> dict[str, Network]:
        """The P-VQVAE's encoder (x, known) -> features and decoder (tokens, reference, known) -> image, and the
        transformer's pass (embedded) -> logits."""
        m, (x, known) = self.model, self._example(batch)
        p, t = m.pvqvae, m.transformer
        features = p.encode(x, known)
        side, c = features.shape[-1], features.shape[1]
        tokens = p.tokenize(features).reshape(batch, side, side)
        embedded = t.embed(features.permute(0, 2, 3, 1).reshape(batch, side * side, c)).detach()
        out = {
            "pvqvae_encoder": Network(m, p.encode, {"x": x, "known": known}, "features"),
            "pvqvae_decoder": Network(
                m,
                lambda k, ref, kn: p.decode(k, ref, kn, share_reference=False),
                {"tokens": tokens, "reference": x, "known": known},
                "image",
            ),
        }
        if self.onnx_pass:
            out["transformer"] = Network(m, t.forward_embedded, {"embedded": embedded}, "logits")
        return out

    def with_pass(self, run):
        def forward_embedded(x, guidance=None, cache=None):
            return run(x, cache=cache).to(x.device)

        transformer = Proxy(self.model.transformer, forward_embedded=forward_embedded)
        out = copy.copy(self)
        out.model = Proxy(self.model, transformer=transformer)
        return out

    def trace_strip(self, x, known, trace):
        pvqvae = self.model.pvqvae
        side = self.resolution // pvqvae.config.patch_size
        every = max(1, len(trace) // 12)  # Algorithm 1 takes hundreds of steps: a dozen of them are shown
        states = [
            (step.tokens[:1], step.unknown[:1])
            for i, step in enumerate(trace)
            if (i + 1) % every == 0 or i == len(trace) - 1
        ]

        def decode(tokens):
            return pvqvae.decode(tokens.reshape(1, side, side), x, known)

        return trace_strip(states, decode, side, self.resolution)

"""PUT as an Inpainter: encode the known region once, sample N token maps in one batch with Algorithm 1
(or MaskGIT's parallel decoding), decode each with the masked image as reference."""

from __future__ import annotations

import torch

from pluralfill.errors import PluralfillError
from pluralfill.methods.fixed_resolution import FixedResolutionInpainter
from pluralfill.models.put import PUT
from pluralfill.sampling.parallel import parallel_decode
from pluralfill.sampling.put import sample_put
from pluralfill.trace import trace_strip


class PUTInpainter(FixedResolutionInpainter):
    name, model_class, batches_images = "put", PUT, True

    def __init__(self, model: PUT, device: str | torch.device = "cpu", bf16: bool | None = None):
        super().__init__(model, device)
        self.model.pvqvae.to(memory_format=torch.channels_last)  # ~15% faster convolutions, same numbers
        self.bf16 = self.device.type == "cuda" if bf16 is None else bf16  # autocast on GPUs; fp32 elsewhere
        self.resolution = model.config.pvqvae.resolution

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, sampler: str = "put", top_k: int | None = 50, temperature: float = 1.0,
               tokens_per_step: int = 1, position_by: str = "probability", steps: int = 12, schedule: str = "cosine",
               choice_temperature: float = 4.5) -> torch.Tensor:  # fmt: skip
        """x (1, 3, R, R) in [-1, 1], known (1, 1, R, R) -> (len(seeds), 3, R, R) completions; or x and known
        with one row per seed (samples of different images in one batch).

        sampler "put": Algorithm 1 (top_k, temperature, tokens_per_step, position_by).
        sampler "parallel": MaskGIT's decoding in `steps` passes (schedule, choice_temperature, top_k, temperature).
        """
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self._sample(x, known, seeds, trace, sampler, top_k, temperature, tokens_per_step, position_by,
                                steps, schedule, choice_temperature).float()  # fmt: skip

    def _sample(self, x, known, seeds, trace, sampler, top_k, temperature, tokens_per_step, position_by, steps,
                schedule, choice_temperature):  # fmt: skip
        pvqvae, transformer, n = self.model.pvqvae, self.model.transformer, len(seeds)
        features = pvqvae.encode(x, known)  # once for all samples of an image
        b, c, h, w = features.shape
        types = pvqvae.token_types(known)
        tokens = pvqvae.tokenize(features, types).reshape(b, h * w).expand(n, -1)
        seq = features.permute(0, 2, 3, 1).reshape(b, h * w, c).expand(n, -1, -1)
        known_tokens = (types == 1).reshape(b, h * w).expand(n, -1)
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        codebook = pvqvae.quantizer.embedding
        if sampler == "put":
            out = sample_put(transformer, codebook, seq, tokens, known_tokens, generators, top_k=top_k,
                             temperature=temperature, tokens_per_step=tokens_per_step, position_by=position_by,
                             trace=trace)  # fmt: skip
        elif sampler == "parallel":
            x0 = transformer.embed(seq)
            positions = torch.arange(h * w, device=x.device)

            def logits_fn(tok, unknown):  # hidden and known positions keep their encoder features
                codes = transformer.embed_codes(codebook[tok.clamp(max=codebook.shape[0] - 1)], positions)
                return transformer.forward_embedded(torch.where((unknown | known_tokens)[..., None], x0, codes))

            out = parallel_decode(logits_fn, tokens, ~known_tokens, generators, steps=steps, schedule=schedule,
                                  choice_temperature=choice_temperature, temperature=temperature,
                                  top_k=top_k, trace=trace)  # fmt: skip
        else:
            raise PluralfillError(f"sampler must be 'put' or 'parallel', got {sampler!r}")
        return pvqvae.decode(out.reshape(n, h, w), x, known, share_reference=b == 1)

    def trace_strip(self, x, known, trace):
        pvqvae = self.model.pvqvae
        side = self.resolution // pvqvae.config.patch_size
        types = pvqvae.token_types(known)
        if trace and len(trace[0]) == 3:  # Algorithm 1: (positions, codes, valid) per step; rebuild the states
            tokens = pvqvae.tokenize(pvqvae.encode(x, known), types).reshape(1, -1)
            types = types.reshape(1, -1)
            hidden = types != 1
            states, every = [], max(1, len(trace) // 12)
            for i, (pos, new, valid) in enumerate(trace):
                p = pos[:1][valid[:1]]
                tokens[0, p], hidden[0, p] = new[:1][valid[:1]], False
                if (i + 1) % every == 0 or i == len(trace) - 1:
                    states.append((tokens.clone(), hidden.clone()))
        else:
            states = [(t[:1], u[:1]) for t, u in trace]

        def decode(tokens):
            return pvqvae.decode(tokens.reshape(1, side, side), x, known)

        return trace_strip(states, decode, side, self.resolution)

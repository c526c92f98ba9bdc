"""MaskGIT as an Inpainter (seed 003): tokens of the known region are kept, the token-level hole (grown by
one token, since border tokens saw the hole) is filled by iterative parallel decoding, and the VQGAN decodes."""

from __future__ import annotations

import torch

from pluralfill.geometry import token_hole
from pluralfill.methods.fixed_resolution import FixedResolutionInpainter
from pluralfill.models.maskgit import MaskGIT
from pluralfill.sampling.parallel import parallel_decode
from pluralfill.trace import trace_strip


class MaskGITInpainter(FixedResolutionInpainter):
    name, model_class, batches_images = "maskgit", MaskGIT, True

    def __init__(self, model: MaskGIT, device: str | torch.device = "cpu"):
        super().__init__(model, device)
        self.resolution = model.config.tokenizer.resolution

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, steps: int = 12, schedule: str = "cosine", choice_temperature: float = 4.5,
               temperature: float = 1.0, top_k: int | None = None, dilate: int = 1) -> torch.Tensor:  # fmt: skip
        tokenizer, transformer, n = self.model.tokenizer, self.model.transformer, len(seeds)
        tokens = tokenizer.encode(x * known).reshape(x.shape[0], -1).expand(n, -1)  # the hole as flat grey
        unknown = token_hole(known, self.model.config.tokenizer.factor, dilate).expand(n, -1)  # x: 1 or n rows
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]

        def logits_fn(tok, hidden):
            return transformer(torch.where(hidden, transformer.mask_id, tok))

        out = parallel_decode(logits_fn, tokens, unknown, generators, steps=steps, schedule=schedule,
                              choice_temperature=choice_temperature, temperature=temperature, top_k=top_k, trace=trace)  # fmt: skip
        side = self.model.config.tokenizer.tokens_per_side
        return tokenizer.decode(out.reshape(n, side, side))

    def trace_strip(self, x, known, trace):
        side = self.model.config.tokenizer.tokens_per_side
        states = [(t[:1], u[:1]) for t, u in trace]
        return trace_strip(states, lambda t: self.model.tokenizer.decode(t.reshape(1, side, side)), side, self.resolution)

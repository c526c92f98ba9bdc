"""MaskGIT as an Inpainter (Chang et al. 2022): tokens of the known region are kept, the token-level hole (grown by
one token, since border tokens saw the hole) is filled by iterative parallel decoding, and the VQGAN decodes.

What the tokenizer sees under the hole (`hole_pixels`): "missing" (the default) encodes the image with the hole
flat grey, so no token carries what was under it; "image" encodes the image's own pixels, as the official
editing does (`create_latent_mask_and_input_tokens_for_image_editing` tokenizes the whole image, then masks the
token box). The tokens outside the token hole still see the hole through the encoder's receptive field, so with
"image" an object the user wants gone leaks into its surroundings, and a benchmark's hidden truth leaks into
the fill (measured in benchmarks/RESULTS.md, "MaskGIT: what the tokenizer sees under the hole").

The official ImageNet models are class-conditional: they take `class_label` (an ImageNet index), and edit as
the official inference does with `start_step=2` of 12 and, with `blend="official"`, its composite: the
decoded image over the input through the token hole, resized and blurred (radius R / 16 - 1)."""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np
import torch
from pydantic import create_model, model_validator

from pluralfill.errors import PluralfillError
from pluralfill.geometry import token_hole
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
from pluralfill.models.maskgit import MaskGIT
from pluralfill.sampling.base import randomness
from pluralfill.sampling.cache import Passes
from pluralfill.sampling.parallel import parallel_decode
from pluralfill.trace import trace_strip


class MaskGITOptions(Windowed, ParallelDecoding, TokenSampling, Cached):
    dilate: int = option(1, "grow the hole by this many tokens before sampling", ge=0, le=8)
    start_step: int = option(
        0, "begin the schedule at this pass (the official editing starts at 2 of 12)", ge=0, le=1023
    )
    blend: Literal["paste", "official"] = option(
        "paste", "paste: the fill inside the hole only; official: the decoded image, as MaskGIT's code returns it"
    )
    hole_pixels: Literal["missing", "image"] = option(
        "missing", "what the tokenizer sees in the hole: missing (flat grey) or the image's own pixels"
    )

    @model_validator(mode="after")
    def _rules(self):
        known_schedule(self.schedule)
        if self.start_step >= self.steps:
            raise FieldProblem("start_step", f"should be below steps ({self.steps})")
        return self


def class_conditional(num_classes: int) -> type[MaskGITOptions]:
    """MaskGITOptions with the class to fill with, for a model of `num_classes` classes."""
    return create_model(
        "ClassConditionalOptions",
        __base__=MaskGITOptions,
        class_label=(int | None, option(None, "the ImageNet class to fill with", ge=0, le=num_classes - 1)),
    )


class MaskGITInpainter(FixedResolutionInpainter):
    name, model_class, batches_images, Options = "maskgit", MaskGIT, True, MaskGITOptions

    def __init__(self, model: MaskGIT, device: str | torch.device = "cpu"):
        super().__init__(model, device)
        self.resolution = model.config.tokenizer.resolution
        if model.config.official:  # the official inference edits from step 2 of 12, for a class
            self.default_options = {"start_step": 2}
            self.Options = class_conditional(model.config.transformer.num_classes)

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, **options) -> torch.Tensor:
        """x (1, 3, R, R) in [-1, 1] and known (1, 1, R, R), or one row of each per seed -> (len(seeds), 3, R, R).
        `seeds`: one per sample, or a sampling.base.Randomness. `options`: MaskGITOptions."""
        o = self.options(**options)
        tokenizer, transformer, n = self.model.tokenizer, self.model.transformer, len(seeds)
        label = self._label(getattr(o, "class_label", None))
        seen = x * known if o.hole_pixels == "missing" else x
        tokens = tokenizer.encode(seen).reshape(x.shape[0], -1).expand(n, -1)
        unknown = token_hole(known, self.model.config.tokenizer.factor, o.dilate).expand(n, -1)  # x: 1 or n rows

        def logits_fn(tok, hidden, cache=None):
            return transformer(torch.where(hidden, transformer.mask_id, tok), label, cache=cache)

        out = parallel_decode(
            logits_fn,
            tokens,
            unknown,
            randomness(seeds, self.device),
            steps=o.steps,
            schedule=o.schedule,
            choice_temperature=o.choice_temperature,
            temperature=o.temperature,
            top_k=o.top_k,
            trace=trace,
            start_step=o.start_step,
            order=o.order,
            cache=Passes(o.cache, o.refresh),
        )
        side = self.model.config.tokenizer.tokens_per_side
        y = tokenizer.decode(out.reshape(n, side, side))
        if o.blend == "official":  # over the known pixels only: the hole's own content stays unseen
            y = official_composite(y, torch.where(known.bool(), x, y), unknown.reshape(n, 1, side, side))
        return y

    def _probe(self, x, known, tokens):
        tokenizer, transformer = self.model.tokenizer, self.model.transformer
        masked = tokenizer.encode(x * known).reshape(x.shape[0], -1)
        hidden = token_hole(known, self.model.config.tokenizer.factor, 1)
        label = self._label(0) if self.model.config.official else None  # any class: the cost and the drift are the same
        logits = transformer(torch.where(hidden, transformer.mask_id, masked), label)
        if tokens is None:
            tokens = tokenizer.encode(x).reshape(x.shape[0], -1)
        side = self.model.config.tokenizer.tokens_per_side
        return {
            "tokens": tokens,
            "logits": logits,
            "hidden": hidden,
            "image": tokenizer.decode(tokens.reshape(-1, side, side)),
        }

    def _label(self, class_label):
        """The class of a class-conditional model (its Options bound the value), None for the others."""
        if not self.model.config.official:
            return None
        if class_label is None:
            classes = self.model.config.transformer.num_classes
            raise PluralfillError(
                f"{self.name} is class-conditional: give --class-label N (an ImageNet class, 0-{classes - 1})"
            )
        return torch.tensor([int(class_label)], device=self.device)

    onnx_pass = "transformer"

    @torch.no_grad()
    def export_networks(self, batch: int = 2) -> dict[str, Network]:
        """The tokenizer's encoder (x) -> tokens and decoder (tokens) -> image, and the transformer's pass
        (tokens[, class_label]) -> logits."""
        m, (x, _) = self.model, self._example(batch)
        tok, t, side = m.tokenizer, m.transformer, m.config.tokenizer.tokens_per_side
        tokens = tok.encode(x).reshape(batch, -1)
        inputs = {"tokens": tokens} | (
            {"class_label": torch.zeros(batch, dtype=torch.long)} if m.config.official else {}
        )
        return {
            "tokenizer_encoder": Network(m, lambda v: tok.encode(v).reshape(v.shape[0], -1), {"x": x}, "tokens"),
            "tokenizer_decoder": Network(
                m, lambda k: tok.decode(k.reshape(k.shape[0], side, side)), {"tokens": tokens}, "image"
            ),
            "transformer": Network(m, t, inputs, "logits"),
        }

    def with_pass(self, run):
        def call(tokens, label=None, cache=None):
            extra = () if label is None else (label.expand(tokens.shape[0]),)
            return run(tokens, *extra, cache=cache).to(tokens.device)

        out = copy.copy(self)
        out.model = Proxy(self.model, transformer=Proxy(self.model.transformer, call=call))
        return out

    def trace_strip(self, x, known, trace):
        side = self.model.config.tokenizer.tokens_per_side
        states = [(step.tokens[:1], step.unknown[:1]) for step in trace]
        return trace_strip(
            states, lambda t: self.model.tokenizer.decode(t.reshape(1, side, side)), side, self.resolution
        )


def official_composite(y: torch.Tensor, x: torch.Tensor, token_hole: torch.Tensor) -> torch.Tensor:
    """The official inference's composite: the token hole as an 8-bit picture, resized to the image (Pillow's
    default, bicubic) and blurred (Gaussian, radius R / 16 - 1), blends the output over the input."""
    from PIL import Image, ImageFilter

    r = y.shape[-1]
    masks = []
    for hole in token_hole.float().cpu().numpy()[:, 0]:
        m = Image.fromarray(np.uint8(hole * 255.0)).resize((r, r), Image.Resampling.BICUBIC)
        masks.append(np.float32(m.filter(ImageFilter.GaussianBlur(radius=r // 16 - 1))) / 255.0)
    m = torch.from_numpy(np.stack(masks))[:, None].to(y.device, y.dtype)
    return y * m + (1 - m) * x

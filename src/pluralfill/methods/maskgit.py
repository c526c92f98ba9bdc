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

import numpy as np
import torch

from pluralfill.errors import PluralfillError
from pluralfill.geometry import token_hole
from pluralfill.methods.fixed_resolution import FixedResolutionInpainter
from pluralfill.models.maskgit import MaskGIT
from pluralfill.sampling.parallel import parallel_decode
from pluralfill.trace import trace_strip


class MaskGITInpainter(FixedResolutionInpainter):
    name, model_class, batches_images = "maskgit", MaskGIT, True
    HOLE_PIXELS = ("missing", "image")
    option_choices = {"blend": ("paste", "official"), "hole_pixels": HOLE_PIXELS}
    option_help = {"blend": "paste: the fill inside the hole only; official: the decoded image, as MaskGIT's code returns it",
                   "hole_pixels": "what the tokenizer sees in the hole: missing (zeros) or the image's own pixels",
                   "class_label": "the ImageNet class to fill with (the official class-conditional models only)",
                   "start_step": "begin the schedule at this pass (the official editing starts at 2 of 12)"}
    noise = None  # parallel_decode's noise(kind, shape); None draws it from the seeds (tests inject the official)

    def __init__(self, model: MaskGIT, device: str | torch.device = "cpu"):
        super().__init__(model, device)
        self.resolution = model.config.tokenizer.resolution
        if model.config.official:  # the official inference edits from step 2 of 12
            self.default_options = {"start_step": 2}

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, steps: int = 12, schedule: str = "cosine", choice_temperature: float = 4.5,
               temperature: float = 1.0, top_k: int | None = None, dilate: int = 1, class_label: int | None = None,
               start_step: int = 0, blend: str = "paste", hole_pixels: str = "missing") -> torch.Tensor:  # fmt: skip
        tokenizer, transformer, n = self.model.tokenizer, self.model.transformer, len(seeds)
        label = self._label(class_label)
        if hole_pixels not in self.HOLE_PIXELS:
            raise PluralfillError(f"hole_pixels must be 'missing' (the hole as flat grey) or 'image' (the official editing), got {hole_pixels!r}")
        seen = x * known if hole_pixels == "missing" else x
        tokens = tokenizer.encode(seen).reshape(x.shape[0], -1).expand(n, -1)
        unknown = token_hole(known, self.model.config.tokenizer.factor, dilate).expand(n, -1)  # x: 1 or n rows
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]

        def logits_fn(tok, hidden):
            return transformer(torch.where(hidden, transformer.mask_id, tok), label)

        out = parallel_decode(logits_fn, tokens, unknown, generators, steps=steps, schedule=schedule,
                              choice_temperature=choice_temperature, temperature=temperature, top_k=top_k, trace=trace,
                              start_step=start_step, noise=self.noise)  # fmt: skip
        side = self.model.config.tokenizer.tokens_per_side
        y = tokenizer.decode(out.reshape(n, side, side))
        if blend == "official":  # over the known pixels only: the hole's own content stays unseen
            y = official_composite(y, torch.where(known.bool(), x, y), unknown.reshape(n, 1, side, side))
        elif blend != "paste":
            raise PluralfillError(f"blend must be 'paste' or 'official', got {blend!r}")
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
        return {"tokens": tokens, "logits": logits, "hidden": hidden, "image": tokenizer.decode(tokens.reshape(-1, side, side))}

    def _label(self, class_label):
        if not self.model.config.official:
            if class_label is not None:
                raise PluralfillError(f"{self.name} is not class-conditional: it takes no class_label")
            return None
        classes = self.model.config.transformer.num_classes
        if class_label is None:
            raise PluralfillError(f"{self.name} is class-conditional: give --class-label N (an ImageNet class, 0-{classes - 1})")
        if not 0 <= int(class_label) < classes:
            raise PluralfillError(f"class_label must be in 0-{classes - 1}, got {class_label}")
        return torch.tensor([int(class_label)], device=self.device)

    def trace_strip(self, x, known, trace):
        side = self.model.config.tokenizer.tokens_per_side
        states = [(t[:1], u[:1]) for t, u in trace]
        return trace_strip(states, lambda t: self.model.tokenizer.decode(t.reshape(1, side, side)), side, self.resolution)


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

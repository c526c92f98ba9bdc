"""MHTMA as an Inpainter (Zhou et al. 2023): one pass of the coarse and refinement networks on a square around the
hole. Deterministic unless the model was trained with a noise input; the sketch-guided variant takes the
user's lines (white on black, the size of the image) through the `sketch` option."""

from __future__ import annotations

import numpy as np
import torch

from pluralfill.errors import PluralfillError
from pluralfill.grid import grid_rows, masked_view
from pluralfill.io import hole_from_array
from pluralfill.geometry import Box, shrink
from pluralfill.methods.fixed_resolution import FixedResolutionInpainter
from pluralfill.models.mhtma import MHTMA
from pluralfill.pixels import to_uint8

BRANCHES = ("on", "off", "high", "low")


class MHTMAInpainter(FixedResolutionInpainter):
    model_class = MHTMA
    option_choices = {"attention_branch": BRANCHES}
    option_help = {"attention_branch": "on; off: the convolution branch alone; high / low: the attention at its "
                                       "highest / lowest learned temperature"}  # fmt: skip
    records_extras = True  # "temperatures": the heads' temperatures for the image

    def __init__(self, model: MHTMA, device: str | torch.device = "cpu"):
        super().__init__(model, device)
        self.resolution = model.config.resolution
        self.deterministic = not model.config.noise

    def _fill(self, image, hole, seeds, sketch=None, attention_branch: str = "on", **options):
        if attention_branch not in BRANCHES:
            raise PluralfillError(f"attention_branch must be one of {', '.join(BRANCHES)}, got {attention_branch!r}")
        if sketch is not None:
            sketch = hole_from_array(sketch)
            if sketch.shape != hole.shape:
                raise PluralfillError(f"sketch is {sketch.shape[1]}x{sketch.shape[0]} but the image is {hole.shape[1]}x{hole.shape[0]}")
        return super()._fill(image, hole, seeds, sketch=sketch, attention_branch=attention_branch, **options)

    def check_options(self, options: dict) -> dict:
        if options.get("sketch") is not None and not self.model.config.sketch:
            raise PluralfillError(f"{self.name} is not sketch-guided: train one with model=mhtma-sketch (or mhtma-tiny-sketch)")
        return super().check_options(options)

    def option_names(self) -> list[str]:
        names = super().option_names()
        return names if self.model.config.sketch else [n for n in names if n != "sketch"]

    def crop_options(self, box: Box, options: dict) -> dict:
        if options.get("sketch") is None:
            return options
        return options | {"sketch": shrink(box(options["sketch"]), (self.resolution,) * 2).to(self.device)}

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, sketch=None, attention_branch: str = "on", extras: dict | None = None):
        n, r = len(seeds), self.resolution
        noise = None
        if self.model.config.noise:  # one noise map per sample, from that sample's own seed
            noise = torch.stack([torch.randn(1, r, r, generator=torch.Generator().manual_seed(s)) for s in seeds]).to(self.device)
        if sketch is not None:
            sketch = sketch.expand(n, -1, -1, -1)
        coarse, fine, temperatures = self.model(x.expand(n, -1, -1, -1), known.expand(n, -1, -1, -1), sketch, noise, attention_branch)
        if extras is not None:
            extras["temperatures"] = temperatures[0].tolist()
        if trace is not None:
            trace += [coarse[:1], fine[:1], sketch[:1] if sketch is not None else None]
        return fine

    def _probe(self, x, known, tokens):
        noise = torch.zeros(1, 1, *x.shape[-2:], device=self.device) if self.model.config.noise else None
        sketch = torch.zeros_like(known) if self.model.config.sketch else None
        fine = self.model(x, known, sketch, noise, "on")[1]
        return {"tokens": None, "logits": None, "hidden": None, "image": fine}

    def trace_strip(self, x, known, trace):
        """Input with its hole, (the sketch,) the coarse network's output, the refined output."""
        coarse, fine, sketch = trace
        hole = known[0, 0].cpu().numpy() < 0.5
        tiles = [masked_view(to_uint8(x[0]), hole)]
        if sketch is not None:
            tiles.append(np.repeat((sketch[0, 0].cpu().numpy() * 255).astype(np.uint8)[..., None], 3, axis=2))
        return grid_rows([tiles + [to_uint8(coarse[0]), to_uint8(fine[0])]])

"""MHTMA as an Inpainter (Zhou et al. 2023): one pass of the coarse and refinement networks on a square around the
hole. Deterministic unless the model was trained with a noise input; the sketch-guided variant takes the
user's lines (white on black, the size of the image) through the `sketch` option."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from pluralfill.grid import grid_rows, masked_view
from pluralfill.methods.base import Network
from pluralfill.methods.fixed_resolution import FixedResolutionInpainter
from pluralfill.methods.options import Guide, Windowed, option
from pluralfill.models.mhtma import MHTMA
from pluralfill.pixels import to_uint8


class MHTMAOptions(Windowed):
    attention_branch: Literal["on", "off", "high", "low"] = option(
        "on",
        "on; off: the convolution branch alone; high / low: the attention at its highest / lowest learned temperature",
    )


class MHTMAInpainter(FixedResolutionInpainter):
    model_class, Options = MHTMA, MHTMAOptions
    records_extras = True  # "temperatures": the heads' temperatures for the image

    def __init__(self, model: MHTMA, device: str | torch.device = "cpu"):
        super().__init__(model, device)
        self.resolution = model.config.resolution
        self.deterministic = not model.config.noise
        if model.config.sketch:
            self.guides = (Guide("sketch", "lines", "white lines on black that the fill should follow"),)

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, sketch=None, extras: dict | None = None, **options):
        """x (1, 3, R, R) in [-1, 1], known (1, 1, R, R) -> (len(seeds), 3, R, R); `sketch` (1, 1, R, R) of 0 / 1."""
        n, r, o = len(seeds), self.resolution, self.options(**options)
        noise = None
        if self.model.config.noise:  # one noise map per sample, from that sample's own seed
            noise = torch.stack([torch.randn(1, r, r, generator=torch.Generator().manual_seed(s)) for s in seeds]).to(
                self.device
            )
        if sketch is not None:
            sketch = sketch.expand(n, -1, -1, -1)
        coarse, fine, temperatures = self.model(
            x.expand(n, -1, -1, -1), known.expand(n, -1, -1, -1), sketch, noise, o.attention_branch
        )
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

    @torch.no_grad()
    def export_networks(self, batch: int = 2) -> dict[str, Network]:
        """The coarse and refinement networks in one: (x, known[, sketch][, noise]) -> the refined image."""
        m, (x, known) = self.model, self._example(batch)
        inputs = {"x": x, "known": known}
        if m.config.sketch:
            inputs["sketch"] = torch.zeros_like(known)
        if m.config.noise:
            inputs["noise"] = torch.randn(batch, 1, *x.shape[-2:], generator=torch.Generator().manual_seed(1)).to(
                x.device
            )

        def generator(*a):
            named = dict(zip(inputs, a))
            return m(named["x"], named["known"], named.get("sketch"), named.get("noise"), "on")[1]

        return {"generator": Network(m, generator, inputs, "image")}

    def trace_strip(self, x, known, trace):
        """Input with its hole, (the sketch,) the coarse network's output, the refined output."""
        coarse, fine, sketch = trace
        hole = known[0, 0].cpu().numpy() < 0.5
        tiles = [masked_view(to_uint8(x[0]), hole)]
        if sketch is not None:
            tiles.append(np.repeat((sketch[0, 0].cpu().numpy() * 255).astype(np.uint8)[..., None], 3, axis=2))
        return grid_rows([tiles + [to_uint8(coarse[0]), to_uint8(fine[0])]])

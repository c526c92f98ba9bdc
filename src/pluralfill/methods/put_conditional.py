"""PUT's controllable model as an Inpainter: PUT's sampling with segmentation and sketch guidance.

The official model makes its guidance with Mask2Former (COCO-panoptic segmentation, needs detectron2) and
DexiNed (edges); pluralfill has neither. Pass the maps yourself (`segmentation`: a label map of class ids;
`sketch`: an edge map, 0-255, as DexiNed writes it), each the size of the image, or leave them out: a
missing guidance is the model's learned default, as in the official code's modes 0-2.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pluralfill.errors import PluralfillError
from pluralfill.geometry import Box
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put_conditional import GuidedTransformer, PUTConditional


class PUTConditionalInpainter(PUTInpainter):
    name, model_class, batches_images = "put-conditional", PUTConditional, False

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, segmentation=None, sketch=None, sampler: str | None = None,
               top_k: int | None = None, temperature: float = 1.0, tokens_per_step: int | None = None,
               position_by: str = "probability", steps: int = 12, schedule: str | None = None,
               choice_temperature: float = 4.5) -> torch.Tensor:  # fmt: skip
        """PUTInpainter.sample with guidance: `segmentation` (class ids) and `sketch` (0-255) as (1, 1, R, R)
        tensors, or None for the learned default."""
        guided = GuidedTransformer(self.model.transformer, self.model.guidance(segmentation, sketch, len(seeds)))
        return self.sample_with(guided, x, known, seeds, trace, sampler, top_k, temperature, tokens_per_step, position_by,
                                steps, schedule, choice_temperature)  # fmt: skip

    def crop_options(self, box: Box, options: dict) -> dict:
        """Guidance maps of the whole image, cut to the window and scaled to the model (nearest: class ids
        stay ids)."""
        out = dict(options)
        for key in ("segmentation", "sketch"):
            picture = options.get(key)
            if picture is None:
                continue
            a = np.asarray(picture)
            if a.ndim != 2:
                raise PluralfillError(f"{key} must be one channel (a label map or a grey edge map), got shape {a.shape}")
            t = torch.from_numpy(np.ascontiguousarray(box(a)).astype(np.float32))[None, None]
            out[key] = F.interpolate(t, size=(self.resolution,) * 2, mode="nearest").to(self.device)
        return out

    def _fill(self, image, hole, seeds, segmentation=None, sketch=None, **options):
        for key, picture in (("segmentation", segmentation), ("sketch", sketch)):
            if picture is not None and np.asarray(picture).shape != hole.shape:
                shape = np.asarray(picture).shape
                raise PluralfillError(f"{key} is {shape[1] if len(shape) > 1 else '?'}x{shape[0]} but the image is {hole.shape[1]}x{hole.shape[0]}")
        return super()._fill(image, hole, seeds, segmentation=segmentation, sketch=sketch, **options)

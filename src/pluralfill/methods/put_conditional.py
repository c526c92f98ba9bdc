"""PUT's controllable model as an Inpainter: PUT's sampling with segmentation and sketch guidance.

The official model makes its guidance with Mask2Former (COCO-panoptic segmentation, needs detectron2) and
DexiNed (edges); pluralfill has neither. Pass the maps yourself (`segmentation`: a label map of class ids;
`sketch`: an edge map, 0-255, as DexiNed writes it), each the size of the image, or leave them out: a
missing guidance is the model's learned default, as in the official code's modes 0-2.
"""

from __future__ import annotations

import torch

from pluralfill.methods.options import Guide
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put_conditional import GuidedTransformer, PUTConditional


class PUTConditionalInpainter(PUTInpainter):
    name, model_class, batches_images = "put-conditional", PUTConditional, False
    guides = (
        Guide("segmentation", "labels", "a label map of COCO-panoptic class ids that the fill should follow"),
        Guide("sketch", "grey", "an edge map (0-255, as DexiNed draws it) that the fill should follow"),
    )

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, segmentation=None, sketch=None, **options) -> torch.Tensor:
        """PUTInpainter.sample with guidance: `segmentation` (class ids) and `sketch` (0-255) as (1, 1, R, R)
        tensors, or None for the learned default."""
        guided = GuidedTransformer(self.model.transformer, self.model.guidance(segmentation, sketch, len(seeds)))
        return self._sample(guided, x, known, seeds, trace, self.options(**options))

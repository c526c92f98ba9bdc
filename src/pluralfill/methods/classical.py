"""Classical fills with no weights: OpenCV's Telea and Navier-Stokes, and PatchMatch.

Each works on a crop around the hole, so a small hole in a large photo costs what the hole costs.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from pluralfill.geometry import box_around_hole
from pluralfill.methods.base import Inpainter


class OpenCVInpainter(Inpainter):
    """cv2.inpaint: diffusion from the hole border inward; deterministic."""

    deterministic = True

    def __init__(self, name: str, flag: int, radius: int = 5):
        self.name, self.flag, self.radius = name, flag, radius

    def _fill(self, image, hole, seeds, radius: int | None = None):
        box = box_around_hole(hole, context=0.25, min_context=16)
        out = image.copy()
        filled = cv2.inpaint(np.ascontiguousarray(box(image)), box(hole).astype(np.uint8), radius or self.radius, self.flag)
        out[box.y0 : box.y1, box.x0 : box.x1] = filled
        return [out]


class PatchMatchInpainter(Inpainter):
    """PatchMatch (Barnes et al. 2009) through the `pypatchmatch` package: multi-scale nearest-neighbour
    field search and voting. Each sample runs with its own seed of the randomized search."""

    name = "patchmatch"
    _lock = threading.Lock()  # the native library keeps its seed in a global

    def __init__(self, patch_size: int = 3):
        self.patch_size = patch_size

    def _fill(self, image, hole, seeds, patch_size: int | None = None):
        import patchmatch

        box = box_around_hole(hole, context=1.0, min_context=32)
        crop, crop_hole = np.ascontiguousarray(box(image)), box(hole).astype(np.uint8) * 255
        samples = []
        for seed in seeds:
            with self._lock:
                patchmatch.set_random_seed(seed % 2**32)
                filled = patchmatch.inpaint(crop, crop_hole, patch_size=patch_size or self.patch_size)
            out = image.copy()
            out[box.y0 : box.y1, box.x0 : box.x1] = filled
            samples.append(out)
        return samples


def telea() -> Inpainter:
    return OpenCVInpainter("telea", cv2.INPAINT_TELEA)


def navier_stokes() -> Inpainter:
    return OpenCVInpainter("navier-stokes", cv2.INPAINT_NS)

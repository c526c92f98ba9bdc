"""Classical fills with no weights: OpenCV's Telea and Navier-Stokes, PatchMatch, and pluralistic
PatchMatch.

Each works on a crop around the hole, so a small hole in a large photo costs what the hole costs.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from pluralfill.errors import PluralfillError
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
    field search and voting. Each sample runs with its own seed of the randomized search.

    Pluralistic (`leave_out` > 0): each sample also hides its own random set of source regions, square
    blocks of side `block` x the window's side covering about `leave_out` of the known window, from the
    search (`global_mask`), so samples differ in what they copy while each stays sharp and made of the
    photo's own texture. A band of `block / 2` around the hole is never hidden, so every fill still
    continues its border."""

    _lock = threading.Lock()  # the native library keeps its seed in a global

    def __init__(self, name: str = "patchmatch", patch_size: int = 3, leave_out: float = 0.0, block: float = 0.125):
        self.name, self.patch_size, self.leave_out, self.block = name, patch_size, leave_out, block

    def _fill(self, image, hole, seeds, patch_size: int | None = None, leave_out: float | None = None, block: float | None = None):
        import patchmatch

        patch_size = self.patch_size if patch_size is None else patch_size
        leave_out = self.leave_out if leave_out is None else leave_out
        block = self.block if block is None else block
        if patch_size < 1:
            raise PluralfillError(f"patch_size must be at least 1 (the patch spans 2 x patch_size + 1 px), got {patch_size}")
        if not 0 <= leave_out < 1:
            raise PluralfillError(f"leave_out must be in [0, 1), got {leave_out}")
        if not 0 < block <= 1:
            raise PluralfillError(f"block must be in (0, 1], a fraction of the window's side, got {block}")
        box = box_around_hole(hole, context=1.0, min_context=32)
        crop, crop_hole = np.ascontiguousarray(box(image)), box(hole)
        samples = []
        for seed in seeds:
            hidden = left_out(crop_hole, leave_out, block, seed) if leave_out > 0 else None
            with self._lock:
                patchmatch.set_random_seed(seed % 2**32)
                filled = patchmatch.inpaint(crop, crop_hole.astype(np.uint8) * 255, patch_size=patch_size,
                                            global_mask=None if hidden is None else hidden.astype(np.uint8) * 255)  # fmt: skip
            out = image.copy()
            out[box.y0 : box.y1, box.x0 : box.x1] = filled
            samples.append(out)
        return samples


def left_out(hole: np.ndarray, fraction: float, block: float, seed: int) -> np.ndarray:
    """The known pixels one sample hides from the search: blocks on a grid of random offset, each hidden with
    probability `fraction`, minus a band of half a block around the hole (and the hole itself)."""
    rng = np.random.default_rng(seed)
    h, w = hole.shape
    side = max(4, int(round(block * max(h, w))))
    oy, ox = rng.integers(0, side, 2)
    rows, cols = (h + oy) // side + 1, (w + ox) // side + 1
    grid = rng.random((rows, cols)) < fraction
    hidden = np.kron(grid, np.ones((side, side), bool))[oy : oy + h, ox : ox + w]
    band = max(1, side // 2)
    near = cv2.dilate(hole.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band + 1, 2 * band + 1))) > 0
    return hidden & ~near


# chosen on held-out scenes256 crops (benchmarks/plural_patchmatch.py, benchmarks/RESULTS.md)
PLURAL_LEAVE_OUT, PLURAL_BLOCK = 0.5, 0.0625


def telea() -> Inpainter:
    return OpenCVInpainter("telea", cv2.INPAINT_TELEA)


def navier_stokes() -> Inpainter:
    return OpenCVInpainter("navier-stokes", cv2.INPAINT_NS)


def patchmatch() -> Inpainter:
    return PatchMatchInpainter("patchmatch")


def patchmatch_plural() -> Inpainter:
    return PatchMatchInpainter("patchmatch-plural", leave_out=PLURAL_LEAVE_OUT, block=PLURAL_BLOCK)

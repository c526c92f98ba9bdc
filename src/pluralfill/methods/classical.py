"""Classical fills with no weights: OpenCV's Telea and Navier-Stokes, PatchMatch, and pluralistic
PatchMatch.

Each works on a crop around the hole, so a small hole in a large photo costs what the hole costs.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from pluralfill.geometry import box_around_hole
from pluralfill.methods.base import Inpainter
from pluralfill.methods.options import Options, option


class OpenCVOptions(Options):
    radius: int = option(5, "how far round each pixel the fill looks, in pixels", ge=1, le=64)


class PatchMatchOptions(Options):
    patch_size: int = option(
        3, "the half side of the patches PatchMatch matches (a patch spans 2 x this + 1 px)", ge=1, le=16
    )
    leave_out: float = option(
        0.0, "the share of blocks each sample hides from the search: more varied samples", ge=0, lt=1, step=0.05
    )
    block: float = option(
        0.0625, "the side of a hidden block, as a fraction of the search window", gt=0, le=1, step=0.0625
    )
    view: float = option(
        1.0, "the share of directions round the hole each sample may copy from (1: all)", gt=0, le=1, step=0.05
    )


class OpenCVInpainter(Inpainter):
    """cv2.inpaint: diffusion from the hole border inward; deterministic."""

    deterministic, Options = True, OpenCVOptions

    def __init__(self, name: str, flag: int, radius: int = 5):
        self.name, self.flag, self.default_options = name, flag, {"radius": radius}

    def _fill(self, image, hole, seeds, radius: int):
        box = box_around_hole(hole, context=0.25, min_context=16)
        out = image.copy()
        filled = cv2.inpaint(np.ascontiguousarray(box(image)), box(hole).astype(np.uint8), radius, self.flag)
        out[box.y0 : box.y1, box.x0 : box.x1] = filled
        return [out]


class PatchMatchInpainter(Inpainter):
    """PatchMatch (Barnes et al. 2009) through the `pypatchmatch` package: multi-scale nearest-neighbour
    field search and voting. Each sample runs with its own seed of the randomized search.

    Pluralistic (`view` < 1 or `leave_out` > 0): each sample also hides its own random part of the photo from
    the search (`global_mask`), so samples differ in what they copy while each stays sharp and made of the
    photo's own texture: it sees only a random sector of directions around the hole, `view` of the full
    circle, and inside it loses square blocks (side `block` x the window's side) with probability
    `leave_out`. A band of a quarter block around the hole is never hidden, so every fill still continues
    its border."""

    _lock = threading.Lock()  # the native library keeps its seed in a global
    Options = PatchMatchOptions

    def __init__(
        self,
        name: str = "patchmatch",
        patch_size: int = 3,
        leave_out: float = 0.0,
        block: float = 0.0625,
        view: float = 1.0,
    ):
        self.name = name
        self.default_options = {"patch_size": patch_size, "leave_out": leave_out, "block": block, "view": view}

    def _fill(self, image, hole, seeds, patch_size: int, leave_out: float, block: float, view: float):
        import patchmatch

        box = box_around_hole(hole, context=1.0, min_context=32)
        crop, crop_hole = np.ascontiguousarray(box(image)), box(hole)
        samples = []
        for seed in seeds:
            hidden = left_out(crop_hole, leave_out, block, seed, view) if leave_out > 0 or view < 1 else None
            with self._lock:
                patchmatch.set_random_seed(seed % 2**32)
                filled = patchmatch.inpaint(
                    crop,
                    crop_hole.astype(np.uint8) * 255,
                    patch_size=patch_size,
                    global_mask=None if hidden is None else hidden.astype(np.uint8) * 255,
                )
            out = image.copy()
            out[box.y0 : box.y1, box.x0 : box.x1] = filled
            samples.append(out)
        return samples


def left_out(hole: np.ndarray, fraction: float, block: float, seed: int, view: float = 1.0) -> np.ndarray:
    """The known pixels one sample hides from the search: those outside a random sector of directions seen from
    the hole's centre (`view` of the circle), and blocks on a grid of random offset, each hidden with
    probability `fraction`; never a band of a quarter block around the hole (nor the hole itself)."""
    rng = np.random.default_rng(seed)
    h, w = hole.shape
    side = max(4, int(round(block * max(h, w))))
    oy, ox = rng.integers(0, side, 2)
    rows, cols = (h + oy) // side + 1, (w + ox) // side + 1
    grid = rng.random((rows, cols)) < fraction
    hidden = np.kron(grid, np.ones((side, side), bool))[oy : oy + h, ox : ox + w]
    start = rng.uniform(0, 2 * np.pi)
    if view < 1:
        ys, xs = np.nonzero(hole)
        yy, xx = np.mgrid[:h, :w]
        angle = (np.arctan2(yy - ys.mean(), xx - xs.mean()) - start) % (2 * np.pi)
        hidden |= angle > view * 2 * np.pi
    band = max(1, side // 4)
    near = (
        cv2.dilate(hole.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band + 1, 2 * band + 1))) > 0
    )
    return hidden & ~near


# chosen on held-out scenes256 crops (benchmarks/plural_patchmatch.py, benchmarks/RESULTS.md)
PLURAL_LEAVE_OUT, PLURAL_BLOCK, PLURAL_VIEW = 0.5, 0.0625, 1.0


def telea() -> Inpainter:
    return OpenCVInpainter("telea", cv2.INPAINT_TELEA)


def navier_stokes() -> Inpainter:
    return OpenCVInpainter("navier-stokes", cv2.INPAINT_NS)


def patchmatch() -> Inpainter:
    return PatchMatchInpainter("patchmatch")


def patchmatch_plural() -> Inpainter:
    return PatchMatchInpainter("patchmatch-plural", leave_out=PLURAL_LEAVE_OUT, block=PLURAL_BLOCK, view=PLURAL_VIEW)

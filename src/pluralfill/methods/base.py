"""The Inpainter protocol every method implements, and the work common to all of them:
input checks, the crop around the hole, per-sample seeds and pasting the known pixels back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.io import check_hole, hole_from_array, to_rgb


def sample_seed(seed: int | None, index: int) -> int:
    """The seed of sample `index` of a run seeded with `seed`: sample i is reproducible on its own."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@dataclass(frozen=True)
class Box:
    """A crop window, y0:y1, x0:x1."""

    y0: int
    y1: int
    x0: int
    x1: int

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return a[self.y0 : self.y1, self.x0 : self.x1]


def box_around_hole(hole: np.ndarray, context: float = 1.0, min_context: int = 32) -> Box:
    """The hole's bounding box grown on each side by `context` times its size (at least `min_context` px),
    clipped to the image: the part of a large photo a method needs to see."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    my = max(min_context, int(context * (y1 - y0)))
    mx = max(min_context, int(context * (x1 - x0)))
    return Box(max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx))


def square_window(hole: np.ndarray, min_side: int, context: float = 0.5) -> Box:
    """A square around the hole for a model of fixed input size: the hole's bounding box with `context` of
    its size on each side, at least `min_side`, kept inside the image (narrower where the image is)."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(min_side, int(round(max(y1 - y0, x1 - x0) * (1 + 2 * context))))

    def span(lo, hi, n):
        if side >= n:
            return 0, n
        start = min(max(0, (lo + hi - side) // 2), n - side)
        return start, start + side

    (wy0, wy1), (wx0, wx1) = span(y0, y1, h), span(x0, x1, w)
    return Box(wy0, wy1, wx0, wx1)


class Inpainter:
    """Fill the hole of an image with `num_samples` different completions.

    Subclasses implement `_fill(image, hole, num_samples, seed, **options)` on uint8 RGB / bool arrays and
    return a list of uint8 RGB arrays of the same size. This class checks the inputs and pastes the known
    pixels back so that they stay exactly as given.
    """

    name: str = "inpainter"
    deterministic: bool = False  # every sample the same: one result is returned whatever num_samples is
    fills_from_nothing: bool = False  # can fill an image whose every pixel is missing

    def inpaint(self, image, hole, num_samples: int = 1, seed: int | None = None, composite: bool = True, **options):
        """`image`: Pillow image or uint8 HxWx3 array. `hole`: Pillow image or array, white / True = missing.
        Returns a list of Pillow images (one for deterministic methods)."""
        image = to_rgb(image) if isinstance(image, Image.Image) else np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise PluralfillError(f"image must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        hole = hole_from_array(hole)
        if hole.shape != image.shape[:2]:
            raise PluralfillError(
                f"hole is {hole.shape[1]}x{hole.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}"
            )
        if num_samples < 1:
            raise PluralfillError(f"num_samples must be at least 1, got {num_samples}")
        check_hole(hole, self.fills_from_nothing, self.name)
        n = 1 if self.deterministic else num_samples
        samples = self._fill(image, hole, n, seed, **options)
        if composite:
            samples = [np.where(hole[..., None], s, image) for s in samples]
        return [Image.fromarray(np.ascontiguousarray(s)) for s in samples]

    def _fill(self, image: np.ndarray, hole: np.ndarray, num_samples: int, seed: int | None, **options):
        raise NotImplementedError

    def describe(self) -> dict:
        """What `pluralfill info` prints: method, working resolution, parameters per component."""
        return {"name": self.name, "method": self.name, "resolution": "any", "parameters": {}}

"""Hole geometry: the windows a method works on, growing a hole, pasting a fill back, and holes at the
resolution of a model or a token grid. Arrays are bool HxW (True = missing); tensors are (B, 1, H, W)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """A crop window, y0:y1, x0:x1."""

    y0: int
    y1: int
    x0: int
    x1: int

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return a[self.y0 : self.y1, self.x0 : self.x1]


def _bounds(hole: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(hole)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def box_around_hole(hole: np.ndarray, context: float = 1.0, min_context: int = 32) -> Box:
    """The hole's bounding box grown on each side by `context` times its size (at least `min_context` px),
    clipped to the image: the part of a large photo a method needs to see."""
    h, w = hole.shape
    y0, y1, x0, x1 = _bounds(hole)
    my = max(min_context, int(context * (y1 - y0)))
    mx = max(min_context, int(context * (x1 - x0)))
    return Box(max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx))


def square_window(hole: np.ndarray, min_side: int, context: float = 0.5) -> Box:
    """A square around the hole for a model of fixed input size: the hole's bounding box with `context` of
    its size on each side, at least `min_side`, kept inside the image (narrower where the image is)."""
    h, w = hole.shape
    y0, y1, x0, x1 = _bounds(hole)
    side = max(min_side, int(round(max(y1 - y0, x1 - x0) * (1 + 2 * context))))

    def span(lo, hi, n):
        if side >= n:
            return 0, n
        start = min(max(0, (lo + hi - side) // 2), n - side)
        return start, start + side

    (wy0, wy1), (wx0, wx1) = span(y0, y1, h), span(x0, x1, w)
    return Box(wy0, wy1, wx0, wx1)


def spread(grid: np.ndarray, box: Box, shape: tuple[int, int]) -> np.ndarray:
    """A (h, w) map of values over the window `box` of a photo of `shape` (H, W), each value over the pixels it
    covers (nearest), NaN outside the window: e.g. a token grid's entropy over the photo."""
    out = np.full(shape, np.nan, np.float32)
    rows = np.minimum(np.arange(box.y1 - box.y0) * grid.shape[0] // (box.y1 - box.y0), grid.shape[0] - 1)
    cols = np.minimum(np.arange(box.x1 - box.x0) * grid.shape[1] // (box.x1 - box.x0), grid.shape[1] - 1)
    out[box.y0 : box.y1, box.x0 : box.x1] = grid[rows[:, None], cols[None, :]]
    return out


def distance_to_hole(hole: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest hole pixel (0 inside the hole)."""
    import cv2

    return cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)


def grow(hole: np.ndarray, px: int) -> np.ndarray:
    """The hole and every pixel within `px` of it."""
    return hole if px <= 0 else distance_to_hole(hole) <= px


def paste(image: np.ndarray, fill: np.ndarray, hole: np.ndarray, soft_edge: int = 0) -> np.ndarray:
    """`image` with `fill` over the hole; with soft_edge > 0 the fill also fades out over that many known
    pixels around the hole, hiding the seam (MaskGIT's softened mask edge). Every other pixel is `image`'s."""
    if soft_edge <= 0:
        return np.where(hole[..., None], fill, image)
    distance = distance_to_hole(hole)
    alpha = np.where(distance <= soft_edge, 1 - distance / (soft_edge + 1), 0)[..., None]
    return (alpha * fill + (1 - alpha) * image).round().astype(np.uint8)


def shrink(mask: np.ndarray, size: tuple[int, int]):
    """A bool HxW mask scaled to `size` as a (1, 1, h, w) float tensor: 1 where any pixel it covers is 1."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None]
    m = F.interpolate(m, size=(max(m.shape[2], size[0]), max(m.shape[3], size[1])), mode="nearest")
    return F.adaptive_max_pool2d(m, size)


def token_hole(known, cell: int, dilate: int = 0):
    """(B, 1, R, R) known -> (B, L) bool: the cells of a token grid (cell x cell px each) with any missing
    pixel, grown by `dilate` cells (tokens at the border of the hole saw it)."""
    import torch.nn.functional as F

    hole = F.max_pool2d(1 - known, cell)
    for _ in range(dilate):
        hole = F.max_pool2d(hole, 3, stride=1, padding=1)
    return hole.flatten(1) > 0

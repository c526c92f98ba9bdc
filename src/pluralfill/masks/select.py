"""Select an object by a click or a box, offline: OpenCV's GrabCut (Rother et al., SIGGRAPH 2004) seeded by the
click (a sure-object disc in a window of possible object) or the box, the connected region under the click
kept and its holes filled, then grown or shrunk by a number of pixels. No model is downloaded."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from pluralfill.errors import PluralfillError
from pluralfill.geometry import distance_to_hole

WINDOW = 0.25  # half the side of the window searched around a click, as a share of the photo's shorter side
INNER = 0.5  # the likely-object disc around the click, as a share of that half side (chosen on skimage's astronaut)


def select(
    image: np.ndarray,
    point: tuple[int, int] | None = None,
    box: tuple[int, int, int, int] | None = None,
    grow: int = 0,
    iterations: int = 5,
) -> np.ndarray:
    """A hole (bool HxW, True = selected) over the object at `point` (x, y) or inside `box` (x, y, w, h) of the
    uint8 RGB `image`; `grow` > 0 widens it by that many pixels, < 0 narrows it."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise PluralfillError(f"select needs a uint8 RGB image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if point is None and box is None:
        raise PluralfillError("select needs a point (x, y) on the object or a box (x, y, w, h) around it")
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    if box is not None:
        x, y, bw, bh = map(int, box)
        if bw < 2 or bh < 2 or x < 0 or y < 0 or x + bw > w or y + bh > h:
            raise PluralfillError(f"box {x},{y},{bw},{bh} is not inside the {w}x{h} image")
        mask[y : y + bh, x : x + bw] = cv2.GC_PR_FGD
    if point is not None:
        px, py = map(int, point)
        if not (0 <= px < w and 0 <= py < h):
            raise PluralfillError(f"point {px},{py} is not inside the {w}x{h} image")
        if box is None:
            r = max(8, int(WINDOW * min(h, w)))
            mask[max(0, py - r) : py + r, max(0, px - r) : px + r] = cv2.GC_PR_BGD
            cv2.circle(mask, (px, py), int(INNER * r), int(cv2.GC_PR_FGD), -1)
        cv2.circle(mask, (px, py), max(3, min(h, w) // 60), int(cv2.GC_FGD), -1)
    models = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: the same click gives the same selection
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), mask, None, *models, iterations, cv2.GC_INIT_WITH_MASK)
    chosen = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    labels, count = ndimage.label(chosen)
    if count:
        keep = (
            labels[py, px] if point is not None and labels[py, px] else np.argmax(np.bincount(labels.ravel())[1:]) + 1
        )
        chosen = ndimage.binary_fill_holes(labels == keep)
    if grow > 0:
        chosen = distance_to_hole(chosen) <= grow
    elif grow < 0:
        chosen = distance_to_hole(~chosen) > -grow
    if not chosen.any():
        raise PluralfillError("nothing was selected: click inside the object, or draw a box around it")
    return chosen

"""The shapes masks are made of. Each is a frozen record of its source's parameters with a `draw` method.

Lengths are given in pixels at a 256x256 reference and scaled with the mask size, so a preset means the
same hole coverage at any resolution. `draw(rng, h, w)` returns a bool HxW array (True = hole).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

REFERENCE_SIZE = 256


def _scale(h: int, w: int) -> float:
    return min(h, w) / REFERENCE_SIZE


@dataclass(frozen=True)
class BrushStrokes:
    """DeepFill v2 free-form brush strokes (Yu et al. 2019, `brush_stroke_mask`): a zig-zag polyline whose
    segments alternate direction around `mean_angle`, drawn with a round brush."""

    strokes: tuple[int, int] = (1, 3)  # inclusive
    vertices: tuple[int, int] = (4, 11)  # inclusive
    width: tuple[int, int] = (12, 40)  # brush width in px at 256
    mean_angle: float = 2 * math.pi / 5
    angle_range: float = 2 * math.pi / 15
    radius_fraction: float = 1 / 8  # mean segment length = diagonal * radius_fraction

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        canvas = np.zeros((h, w), np.uint8)
        s = _scale(h, w)
        mean_r = math.hypot(h, w) * self.radius_fraction
        for _ in range(int(rng.integers(self.strokes[0], self.strokes[1] + 1))):
            n = int(rng.integers(self.vertices[0], self.vertices[1] + 1))
            lo = self.mean_angle - rng.uniform(0, self.angle_range)
            hi = self.mean_angle + rng.uniform(0, self.angle_range)
            x, y = float(rng.integers(0, w)), float(rng.integers(0, h))
            points = [(x, y)]
            for i in range(n):
                angle = rng.uniform(lo, hi)
                angle = 2 * math.pi - angle if i % 2 == 0 else angle
                r = float(np.clip(rng.normal(mean_r, mean_r / 2), 0, 2 * mean_r))
                x = float(np.clip(x + r * math.cos(angle), 0, w - 1))
                y = float(np.clip(y + r * math.sin(angle), 0, h - 1))
                points.append((x, y))
            width = max(1, int(round(rng.uniform(*self.width) * s)))
            pts = np.round(points).astype(np.int32)
            cv2.polylines(canvas, [pts], False, 1, thickness=width, lineType=cv2.LINE_8)
            for px, py in pts:
                cv2.circle(canvas, (int(px), int(py)), width // 2, 1, thickness=-1)
        hole = canvas.astype(bool)
        if rng.random() > 0.5:
            hole = hole[:, ::-1]
        if rng.random() > 0.5:
            hole = hole[::-1, :]
        return np.ascontiguousarray(hole)


@dataclass(frozen=True)
class LamaStrokes:
    """LaMa's random irregular mask (`make_random_irregular_mask`): `times` strokes of 1-5 straight
    segments each, random angle, length 10..10+max_len, width 5..5+max_width."""

    min_times: int = 0
    max_times: int = 10
    max_width: int = 20
    max_angle: int = 4
    max_len: int = 60

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        canvas = np.zeros((h, w), np.uint8)
        s = _scale(h, w)
        for i in range(int(rng.integers(self.min_times, self.max_times + 1))):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            for _ in range(1 + int(rng.integers(0, 5))):
                angle = 0.01 + float(rng.integers(0, self.max_angle))
                if i % 2 == 0:
                    angle = 2 * math.pi - angle
                length = (10 + int(rng.integers(0, self.max_len))) * s
                width = max(1, int(round((5 + int(rng.integers(0, self.max_width))) * s)))
                nx = int(np.clip(x + length * math.sin(angle), 0, w))
                ny = int(np.clip(y + length * math.cos(angle), 0, h))
                cv2.line(canvas, (x, y), (nx, ny), 1, thickness=width)
                x, y = nx, ny
        return canvas.astype(bool)


@dataclass(frozen=True)
class Boxes:
    """Random axis-aligned rectangles (LaMa's `make_random_rectangle_mask`)."""

    min_times: int = 0
    max_times: int = 3
    min_size: int = 30  # side in px at 256
    max_size: int = 100
    margin: int = 10

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        hole = np.zeros((h, w), bool)
        s = _scale(h, w)
        margin = int(self.margin * s)
        lo, hi = max(1, int(self.min_size * s)), max(1, int(self.max_size * s))
        for _ in range(int(rng.integers(self.min_times, self.max_times + 1))):
            bw, bh = (int(rng.integers(lo, hi + 1)) for _ in range(2))
            bw, bh = min(bw, w - 2 * margin), min(bh, h - 2 * margin)
            if bw <= 0 or bh <= 0:
                continue
            x0 = int(rng.integers(margin, w - margin - bw + 1))
            y0 = int(rng.integers(margin, h - margin - bh + 1))
            hole[y0 : y0 + bh, x0 : x0 + bw] = True
        return hole


@dataclass(frozen=True)
class Square:
    """One square of fixed side, centred or at a uniformly random position (MHTMA's 96x96 square)."""

    side: int = 96  # px at 256
    centered: bool = False

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        s = _scale(h, w)
        side = max(1, min(int(round(self.side * s)), h, w))
        if self.centered:
            y0, x0 = (h - side) // 2, (w - side) // 2
        else:
            y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        hole = np.zeros((h, w), bool)
        hole[y0 : y0 + side, x0 : x0 + side] = True
        return hole


@dataclass(frozen=True)
class DeepFillBox:
    """DeepFill's training rectangle: a `side` box at a random position, each edge pulled in by up to
    `max_delta / 2` (`random_bbox` + `bbox2mask`)."""

    side: int = 128
    max_delta: int = 32

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        s = _scale(h, w)
        side = max(1, min(int(round(self.side * s)), h, w))
        half_delta = int(self.max_delta * s) // 2
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        dh, dw = int(rng.integers(0, half_delta + 1)), int(rng.integers(0, half_delta + 1))
        hole = np.zeros((h, w), bool)
        hole[y0 + dh : y0 + side - dh, x0 + dw : x0 + side - dw] = True
        return hole


@dataclass(frozen=True)
class KeptStrokes:
    """The training masks of the official PUT code (`generate_stroke_mask` with `keep_ratio`): strokes mark
    the *kept* pixels and are added until they cover a fraction drawn from `keep`; everything else is the hole.
    Each stroke: 5-10 vertices, segments of up to 100 px at any angle (every other one mirrored), width 10-30
    rounded down to even. Missing islands smaller than `min_area` px are filled (kept), as the official
    `fill_small_holes` does."""

    keep: tuple[float, float] = (0.0, 0.5)
    vertices: tuple[int, int] = (5, 10)  # inclusive
    max_length: int = 100  # px at 256
    width: tuple[int, int] = (10, 30)  # inclusive, px at 256
    min_area: int = 64  # px at 256

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        s = _scale(h, w)
        kept = np.zeros((h, w), np.uint8)
        target = rng.uniform(*self.keep)
        while kept.mean() < target:
            y, x = int(rng.integers(h)), int(rng.integers(w))
            for i in range(int(rng.integers(self.vertices[0], self.vertices[1] + 1))):
                angle = int(rng.integers(361)) / 360 * 2 * math.pi
                angle = 2 * math.pi - angle if i % 2 == 0 else angle
                length = int(rng.integers(self.max_length + 1)) * s
                width = max(2, int(int(rng.integers(self.width[0], self.width[1] + 1)) * s) // 2 * 2)
                ny, nx = (
                    int(np.clip(y + length * math.cos(angle), 0, h - 1)),
                    int(np.clip(x + length * math.sin(angle), 0, w - 1)),
                )
                cv2.line(kept, (x, y), (nx, ny), 1, width)
                y, x = ny, nx
        hole = kept == 0
        count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=4)
        small = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] < self.min_area * s * s]
        if small:
            hole[np.isin(labels, small)] = False
        return hole

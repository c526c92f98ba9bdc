"""Contact sheets: the input with its hole, the hole, and every sample side by side."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from pluralfill.geometry import box_around_hole

TILE = 256  # longest side of a tile in px
HOLE_TINT = np.array([255, 0, 255], np.float32)


def masked_view(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The input as a method sees it: known pixels, the hole tinted so it stands out on any photo."""
    out = image.astype(np.float32)
    out[hole] = 0.35 * out[hole] + 0.65 * HOLE_TINT
    return out.round().astype(np.uint8)


def _tile(a, size: tuple[int, int]) -> Image.Image:
    im = a if isinstance(a, Image.Image) else Image.fromarray(np.asarray(a))
    return im.convert("RGB").resize(size, Image.Resampling.LANCZOS if im.width > size[0] else Image.Resampling.NEAREST)


def make_grid(image: np.ndarray, hole: np.ndarray, samples, labels: bool = True, columns: int = 5) -> Image.Image:
    """One PNG-ready image: input with hole, hole, then the samples, `columns` tiles a row.

    When the hole is small in a large image the tiles show the window around it, so the fills can be seen.
    """
    box = box_around_hole(hole, context=1.0, min_context=32)
    zoom = (box.y1 - box.y0) * (box.x1 - box.x0) < hole.size / 4
    if zoom:
        image, hole, samples = box(image), box(hole), [box(np.asarray(s)) for s in samples]
    h, w = hole.shape
    scale = TILE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    tiles = [("input (zoom)" if zoom else "input", masked_view(image, hole)), ("hole", (hole * 255).astype(np.uint8))]
    tiles += [(f"sample {i}", s) for i, s in enumerate(samples)]
    gap, label_h = 4, 16 if labels else 0
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * (size[0] + gap) + gap, rows * (size[1] + gap + label_h) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, a) in enumerate(tiles):
        x = gap + (i % cols) * (size[0] + gap)
        y = gap + (i // cols) * (size[1] + gap + label_h)
        if labels:
            draw.text((x + 2, y + 2), name, fill=(40, 40, 40))
        sheet.paste(_tile(a, size), (x, y + label_h))
    return sheet


def grid_rows(rows: list[list[np.ndarray]], gap: int = 2) -> Image.Image:
    """Equal-sized uint8 tiles in rows (training sample sheets)."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (cols * (w + gap) + gap, len(rows) * (h + gap) + gap), "white")
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            sheet.paste(Image.fromarray(np.asarray(tile)), (gap + j * (w + gap), gap + i * (h + gap)))
    return sheet

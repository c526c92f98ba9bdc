"""Iterative decoding made visible (Chang et al. 2022, Figures 1-2): one column per step, the token map on top
(white = revealed, black = still masked) and the image decoded from the tokens so far below."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from pluralfill.pixels import to_uint8

SHADE = np.array([128, 128, 128], np.float32)


@torch.no_grad()
def trace_strip(states, decode: Callable[[torch.Tensor], torch.Tensor], side: int, resolution: int) -> Image.Image:
    """states: [(tokens (1, L), hidden (1, L) bool), ...]; decode(tokens) -> (1, 3, R, R) in [-1, 1]."""
    gap, label = 2, 14
    sheet = Image.new("RGB", (len(states) * (resolution + gap) + gap, 2 * resolution + 3 * gap + label), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tokens, hidden) in enumerate(states):
        grid = (~hidden).reshape(1, 1, side, side).float()
        big = F.interpolate(grid, size=(resolution, resolution), mode="nearest")[0, 0].cpu().numpy().astype(bool)
        image = to_uint8(decode(tokens)[0]).astype(np.float32)
        image[~big] = 0.5 * image[~big] + 0.5 * SHADE  # masked tokens: whatever is there is not decided yet
        x = gap + i * (resolution + gap)
        draw.text((x + 2, 1), f"step {i + 1}", fill=(40, 40, 40))
        sheet.paste(Image.fromarray((big * 255).astype(np.uint8)).convert("RGB"), (x, label))
        sheet.paste(Image.fromarray(image.round().astype(np.uint8)), (x, label + resolution + gap))
    return sheet

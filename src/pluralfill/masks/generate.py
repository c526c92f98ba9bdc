"""Deterministic mask generation: (preset, size, seed, index) -> the same hole every time."""

from __future__ import annotations

import numpy as np

from pluralfill.errors import PluralfillError
from pluralfill.masks.presets import MaskPreset, get_preset

MAX_TRIES = 2000


def _draw(preset: MaskPreset, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    hole = np.zeros((h, w), bool)
    for part, p in zip(preset.parts, preset.probabilities):
        if p >= 1.0 or rng.random() < p:
            hole |= part.draw(rng, h, w)
    return hole


def parse_ratio(text: str) -> tuple[float, float]:
    """'0.4-0.6' -> (0.4, 0.6): the range (LO, HI] of hole fraction."""
    try:
        lo, hi = (float(x) for x in text.split("-"))
    except ValueError:
        raise PluralfillError(f"--ratio must look like LO-HI, e.g. 0.4-0.6; got {text!r}") from None
    if not 0.0 <= lo < hi <= 1.0:
        raise PluralfillError(f"--ratio needs 0 <= LO < HI <= 1; got {text!r}")
    return lo, hi


def generate_hole(
    preset: str | MaskPreset,
    size: int | tuple[int, int],
    seed: int = 0,
    index: int = 0,
    ratio: tuple[float, float] | None = None,
    max_tries: int = MAX_TRIES,
) -> np.ndarray:
    """Hole number `index` of the stream (`preset`, `size`, `seed`), bool HxW (True = missing).

    With `ratio=(lo, hi)` holes are redrawn until their fraction lies in (lo, hi]; without it the preset's
    own `max_ratio`, if any, applies. Each index has its own random stream, so any one mask can be made
    again on its own.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    h, w = (size, size) if isinstance(size, int) else size
    lo, hi = ratio if ratio is not None else (0.0, preset.max_ratio or 1.0)
    rng = np.random.default_rng([seed, index])
    for _ in range(max_tries):
        hole = _draw(preset, rng, h, w)
        if lo < hole.mean() <= hi:
            return hole
    raise PluralfillError(
        f"preset {preset.name!r} did not give a hole fraction in ({lo:g}, {hi:g}] at {w}x{h} in {max_tries} tries; "
        "pick another preset or range"
    )

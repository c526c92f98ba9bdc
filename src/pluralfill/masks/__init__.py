"""Hole generators: presets from the literature, ratio bins, deterministic streams, mask sets on disk, and the
selection of an object by a click or a box."""

from pluralfill.masks.generate import generate_hole, parse_ratio
from pluralfill.masks.presets import DEMO_PRESET, PRESETS, STANDARD_BINS, MaskPreset, get_preset
from pluralfill.masks.select import select

__all__ = [
    "DEMO_PRESET",
    "PRESETS",
    "STANDARD_BINS",
    "MaskPreset",
    "generate_hole",
    "get_preset",
    "parse_ratio",
    "select",
]

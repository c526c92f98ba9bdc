"""Hole generators: presets from the literature, ratio bins, deterministic streams, and mask sets on disk."""

from pluralfill.masks.generate import generate_hole, parse_ratio
from pluralfill.masks.presets import DEMO_PRESET, PRESETS, STANDARD_BINS, MaskPreset, get_preset

__all__ = ["DEMO_PRESET", "PRESETS", "STANDARD_BINS", "MaskPreset", "generate_hole", "get_preset", "parse_ratio"]

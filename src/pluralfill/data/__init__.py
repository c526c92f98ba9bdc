"""Training data: images from a folder or a file list, holes from a mask preset or a folder of masks."""

from pluralfill.data.datasets import HoleSource, ImageList, StepBatches, fingerprint

__all__ = ["HoleSource", "ImageList", "StepBatches", "fingerprint"]

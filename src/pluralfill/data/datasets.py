"""Datasets keyed by training step, so a resumed run sees exactly the batches it would have seen.

Batch `step` of rank `r` is drawn from `np.random.default_rng([seed, step, r])`: which images, their crops
and flips, and their holes. Nothing depends on loader state, worker count or how often the run stopped.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.io import list_images, read_hole, read_image
from pluralfill.masks import generate_hole
from pluralfill.pixels import to_tensor


class ImageList:
    """Image paths from a folder (searched recursively) or a text file with one path per line
    (relative paths are relative to the file), as CelebA-HQ, FFHQ and Places2 are usually laid out.
    `exclude`: file-name patterns (fnmatch) to leave out, e.g. the crops of held-out source images."""

    def __init__(self, source: str | os.PathLike, exclude: list[str] | tuple[str, ...] = ()):
        source = Path(source)
        if source.is_dir():
            self.paths = sorted(
                p for p in source.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp")
            )
        elif source.is_file():
            lines = [ln.strip() for ln in source.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            self.paths = [p if p.is_absolute() else source.parent / p for p in map(Path, lines)]
        else:
            raise PluralfillError(f"training data not found: {source}")
        self.paths = [p for p in self.paths if not any(fnmatch.fnmatch(p.name, pat) for pat in exclude)]
        if not self.paths:
            raise PluralfillError(f"no images in {source}")

    def __len__(self):
        return len(self.paths)

    def split(self, val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
        """A fixed held-out part for validation (at least one image when val_fraction > 0)."""
        order = np.random.default_rng(seed).permutation(len(self.paths))
        n_val = int(round(len(order) * val_fraction)) if val_fraction > 0 else 0
        n_val = min(max(n_val, 1 if val_fraction > 0 else 0), len(order) - 1)
        return [self.paths[i] for i in sorted(order[n_val:])], [self.paths[i] for i in sorted(order[:n_val])]


class HoleSource:
    """Holes from a preset (`put`, `lama-medium`, ...), a list of presets (one drawn per hole), or a folder
    of mask PNGs (e.g. NVIDIA irregular masks, white = hole unless `invert`), randomly flipped and resized to
    the training resolution; given both, a folder mask with probability `folder_probability`.

    The official PUT recipe also draws: with `zero_probability` a hole over the whole image, and with
    `low_resolution_probability` a hole made blocky by resizing it to `low_resolution` px and back (nearest)."""

    def __init__(
        self,
        preset: str | list[str] | None = "put",
        folder: str | os.PathLike | None = None,
        invert: bool = False,
        ratio: tuple[float, float] | None = None,
        folder_probability: float = 1.0,
        folder_range: tuple[int, int] | None = None,
        zero_probability: float = 0.0,
        low_resolution_probability: float = 0.0,
        low_resolution: int = 32,
        probability: float = 1.0,
    ):
        self.preset, self.invert, self.ratio = preset, invert, ratio
        self.files = list_images(folder) if folder is not None else None
        if self.files is not None and folder_range is not None:  # e.g. the PConv test masks 8000-11999 (ratio 40-60%)
            self.files = self.files[folder_range[0] : folder_range[1]]
        if self.files is not None and not self.files:
            raise PluralfillError(
                f"no mask images in {folder}" + (f" in the range {folder_range}" if folder_range else "")
            )
        if self.files is None and preset is None:
            raise PluralfillError("give a mask preset or a mask folder")
        self.folder_probability = folder_probability if preset is not None else 1.0
        self.zero_probability, self.low_resolution_probability = zero_probability, low_resolution_probability
        self.low_resolution, self.probability = low_resolution, probability

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.probability < 1 and rng.random() >= self.probability:  # no hole this time (PUT's erase mask m')
            return np.zeros((size, size), bool)
        if self.zero_probability and rng.random() < self.zero_probability:
            return np.ones((size, size), bool)
        if self.files is None or (self.folder_probability < 1 and rng.random() >= self.folder_probability):
            preset = self.preset if isinstance(self.preset, str) else self.preset[int(rng.integers(len(self.preset)))]
            hole = generate_hole(preset, size, seed=int(rng.integers(2**31)), index=0, ratio=self.ratio)
        else:
            hole = read_hole(self.files[int(rng.integers(len(self.files)))], invert=self.invert)
            hole = np.asarray(Image.fromarray(hole).resize((size, size), Image.Resampling.NEAREST))
            if rng.random() < 0.5:
                hole = hole[:, ::-1]
            if rng.random() < 0.5:
                hole = hole[::-1]
        if self.low_resolution_probability and rng.random() < self.low_resolution_probability:
            low = Image.fromarray(hole).resize((self.low_resolution,) * 2, Image.Resampling.NEAREST)
            hole = np.asarray(low.resize((size, size), Image.Resampling.NEAREST))
        return np.ascontiguousarray(hole)

    @classmethod
    def from_config(cls, masks, **changes) -> HoleSource:
        """From a training config's `masks` section; `changes` override its settings."""
        settings = dict(
            preset=masks.preset,
            folder=masks.folder,
            invert=masks.invert,
            folder_probability=masks.folder_probability,
            folder_range=masks.folder_range,
            zero_probability=masks.zero_probability,
            low_resolution_probability=masks.low_resolution_probability,
            low_resolution=masks.low_resolution,
        )
        return cls(**(settings | changes))


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of at least half the short side, resized to `size`, randomly mirrored."""
    h, w = image.shape[:2]
    side = int(rng.integers(max(1, min(h, w) // 2), min(h, w) + 1)) if min(h, w) > size else min(h, w)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(image[y : y + side, x : x + side])
    if side != size:
        crop = crop.resize((size, size), Image.Resampling.BICUBIC)
    out = np.asarray(crop)
    return out[:, ::-1] if rng.random() < 0.5 else out


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(h, w)
    crop = Image.fromarray(image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s])
    return np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC) if s != size else crop)


class StepBatches(torch.utils.data.Dataset):
    """Item `step` is the whole batch of that step: images (B, 3, R, R) in [-1, 1] and then (B, 1, R, R)
    known masks (1 = present), one per hole the stage needs (PUT's stage 1 uses m and m'): `holes` is one
    source for all of them, or a list of one source each."""

    def __init__(
        self,
        paths: list[Path],
        holes: HoleSource | list[HoleSource],
        resolution: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        num_holes: int = 1,
        augment: bool = True,
    ):
        self.holes = holes if isinstance(holes, list) else [holes] * num_holes
        self.paths, self.resolution, self.num_holes = paths, resolution, len(self.holes)
        self.batch_size, self.seed, self.rank, self.augment = batch_size, seed, rank, augment

    def __len__(self):
        return 2**62  # indexed by step

    def _read(self, index: int) -> np.ndarray:
        """Image `index`, or the next readable one: a corrupt file among thousands is skipped with a note (once
        each), not a traceback from a loader worker; every file unreadable is one line."""
        for k in range(len(self.paths)):
            path = self.paths[(index + k) % len(self.paths)]
            try:
                return read_image(path)
            except PluralfillError as e:
                if path not in self._noted:
                    self._noted.add(path)
                    os.write(2, f"note: skipping a training image: {e}\n".encode())  # from a loader worker too
        raise PluralfillError(f"none of the {len(self.paths)} training images can be read")

    _noted: ClassVar[set] = set()  # files said to be unreadable, per process

    def __getitem__(self, step: int):
        rng = np.random.default_rng([self.seed, step, self.rank])
        images, knowns = [], []
        for _ in range(self.batch_size):
            image = self._read(int(rng.integers(len(self.paths))))
            image = random_crop(image, self.resolution, rng) if self.augment else center_crop(image, self.resolution)
            images.append(image)
            knowns.append([~source(rng, self.resolution) for source in self.holes])  # none for tokenizers
        x = to_tensor(np.stack(images))
        known = [torch.from_numpy(np.stack([k[i] for k in knowns]))[:, None].float() for i in range(self.num_holes)]
        return x, *known


def fingerprint(paths: list[Path]) -> str:
    """sha256 over the names and bytes of `paths` in sorted order: which data a model card's model saw."""
    import hashlib

    digest = hashlib.sha256()
    for p in sorted(paths, key=lambda p: Path(p).name):
        digest.update(Path(p).name.encode() + b"\0" + Path(p).read_bytes())
    return digest.hexdigest()

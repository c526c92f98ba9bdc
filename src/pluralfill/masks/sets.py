"""Mask sets on disk: a folder of PNG holes (white = missing) and `masks.csv`, which records each file's hole
fraction and how it was made, so any one mask can be made again; and the histogram of a folder's fractions."""

from __future__ import annotations

import csv
import io as _text
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pluralfill import io
from pluralfill.errors import PluralfillError
from pluralfill.masks.generate import generate_hole, parse_ratio
from pluralfill.masks.presets import STANDARD_BINS, get_preset


@dataclass(frozen=True)
class PlannedMask:
    file: str  # path relative to the set's folder
    index: int  # the mask's index in the (preset, seed) stream
    size: tuple[int, int]  # (height, width)
    ratio: tuple[float, float] | None  # the hole fraction is redrawn until it lies in (lo, hi]


def plan_mask_set(
    preset: str,
    size: int = 256,
    num: int = 100,
    ratio: str | None = None,
    bins: bool = False,
    for_images: Path | None = None,
) -> list[PlannedMask]:
    """NUM masks of SIZE px; with `bins`, NUM in each standard bin, one sub-folder each; with `for_images`,
    one mask per image of that folder, named like it and of its size."""
    p = get_preset(preset)
    if bins and (ratio or for_images):
        raise PluralfillError("--bins makes its own folders: give it without --ratio and --for-images")
    if for_images is not None:
        images = io.list_images(for_images)
        if not images:
            raise PluralfillError(f"no images in {for_images}")
        r = parse_ratio(ratio) if ratio else None
        sizes = [io.image_size(q) for q in images]
        for q, (w, h) in zip(images, sizes):
            if w * h > io.DEFAULT_MAX_PIXELS:
                raise PluralfillError(
                    f"{q} is {w}x{h} = {w * h / 1e6:.0f} MP, over the limit of "
                    f"{io.DEFAULT_MAX_PIXELS / 1e6:g} MP for a mask"
                )
        return [PlannedMask(f"{q.stem}.png", i, (h, w), r) for i, (q, (w, h)) in enumerate(zip(images, sizes))]
    ranges = (
        [(f"{lo:g}-{hi:g}/", (lo, hi)) for lo, hi in STANDARD_BINS]
        if bins
        else [("", parse_ratio(ratio) if ratio else None)]
    )
    return [PlannedMask(f"{sub}{p.name}_{i:05d}.png", i, (size, size), r) for sub, r in ranges for i in range(num)]


def write_mask_set(
    plan: list[PlannedMask],
    folder: Path,
    preset: str,
    seed: int = 0,
    overwrite: bool = False,
    advance: Callable[[], None] | None = None,
) -> np.ndarray:
    """Write the planned masks and masks.csv (file, ratio, preset, seed, index); returns the hole fractions.
    Nothing is written if any output exists and `overwrite` is off."""
    p = get_preset(preset)
    io.check_writable([folder / m.file for m in plan] + [folder / "masks.csv"], overwrite)
    rows = []
    for m in plan:
        hole = generate_hole(p, m.size, seed, m.index, ratio=m.ratio)
        io.write_hole(folder / m.file, hole, overwrite)
        rows.append([m.file, f"{hole.mean():.6f}", p.name, seed, m.index])
        if advance is not None:
            advance()
    old = folder / "masks.csv"
    stale = _listed(old) - {m.file for m in plan} if overwrite and old.is_file() else set()
    text = _text.StringIO()
    csv.writer(text, lineterminator="\n").writerows([["file", "ratio", "preset", "seed", "index"], *rows])
    io.write_text(folder / "masks.csv", text.getvalue(), overwrite)
    for name in stale:  # the masks of the set this one replaces: ours to remove, or the folder would lie
        target = (folder / name).resolve()
        if folder.resolve() in target.parents and target.suffix == ".png":
            target.unlink(missing_ok=True)
    return np.array([float(r[1]) for r in rows])


def _listed(table: Path) -> set[str]:
    """The mask files a masks.csv lists."""
    try:
        with open(table, newline="") as f:
            return {row["file"] for row in csv.DictReader(f) if row.get("file")}
    except (OSError, csv.Error, KeyError, UnicodeDecodeError):
        return set()


def ratio_histogram(ratios: np.ndarray) -> list[tuple[str, int, float]]:
    """(bin label, count, share) over: empty, the standard bins, and (0.6, 1]."""
    ratios = np.asarray(ratios)
    edges = (
        [(0.0, 0.0, "0 (empty)")]
        + [(lo, hi, f"({lo:g}, {hi:g}]") for lo, hi in STANDARD_BINS]
        + [(0.6, 1.0, "(0.6, 1]")]
    )
    rows = []
    for lo, hi, label in edges:
        n = int(np.sum(ratios == 0)) if hi == 0 else int(np.sum((ratios > lo) & (ratios <= hi)))
        rows.append((label, n, n / max(1, len(ratios))))
    return rows


def mask_files(folder: Path) -> list[Path]:
    """The mask images of a folder and its sub-folders."""
    if not folder.is_dir():
        raise PluralfillError(f"not a folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if io.is_image_file(p))
    if not files:
        raise PluralfillError(f"no mask images in {folder}")
    return files


def hole_ratios(files: list[Path], invert: bool = False, advance: Callable[[], None] | None = None) -> np.ndarray:
    """The hole fraction of every mask file."""
    ratios = []
    for f in files:
        ratios.append(io.hole_ratio(io.read_hole(f, invert=invert)))
        if advance is not None:
            advance()
    return np.array(ratios)

"""Shared by the benchmark scripts: held-out images of a run, and scoring samples with `pluralfill evaluate`'s code."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from pluralfill.data import ImageList
from pluralfill.data.datasets import center_crop
from pluralfill.io import read_image, write_hole, write_image
from pluralfill.masks import generate_hole
from pluralfill.metrics.evaluate import PIXEL_METRICS, evaluate, find_items


def held_out_images(run: Path, n: int, resolution: int) -> list[np.ndarray]:
    """The validation images of a training run (never trained on), centre-cropped to `resolution`."""
    cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())
    data = cfg["data"]
    exclude = data.get("exclude") or []
    paths = (ImageList(data["val"], exclude=exclude).paths if data.get("val")
             else ImageList(data["train"], exclude=exclude).split(data["val_fraction"], cfg["seed"])[1])  # fmt: skip
    return [center_crop(read_image(p), resolution) for p in paths[:n]]


def holes_for(images, preset: str, ratio: tuple[float, float], seed: int = 0) -> list[np.ndarray]:
    return [generate_hole(preset, im.shape[0], seed, i, ratio=ratio) for i, im in enumerate(images)]


def run_and_score(inpainter, images, holes, num_samples: int, metrics=PIXEL_METRICS, inputs=None, seed: int = 0, **options):
    """Inpaint every image, time it, and score with the evaluate command's code. Returns (values, s/image).
    `inputs`: what the inpainter is given, if not the images themselves (e.g. an object pasted under the hole);
    the scores are always against `images`."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for d in ("gt", "masks", "pred"):
            (tmp / d).mkdir()
        seconds = []
        for i, (image, hole) in enumerate(zip(images, holes)):
            write_image(tmp / "gt" / f"{i:04d}.png", image)
            write_hole(tmp / "masks" / f"{i:04d}.png", hole)
            t = time.perf_counter()
            given = image if inputs is None else inputs[i]
            samples = inpainter.inpaint(given, hole, num_samples=num_samples, seed=seed * 100_003 + i, **options)
            seconds.append(time.perf_counter() - t)
            for k, s in enumerate(samples):
                write_image(tmp / "pred" / f"{i:04d}_sample{k}.png", s)
        items, _ = find_items(tmp / "pred", tmp / "gt", tmp / "masks")
        result = evaluate(items, list(metrics), bins=[])
    return {m: result.values[m].get("all", float("nan")) for m in metrics}, float(np.mean(seconds))

"""Quality of the bundled model against the classical fills on images it never saw.

    python benchmarks/bundled_quality.py [--model put-scenes-small] [--n 100] [--samples 4] [--out DIR]
    python benchmarks/bundled_quality.py --first-stage runs/pvqvae-run [--n 100]   # a P-VQVAE's ceiling only

The held-out images are every scenes256 crop of the source images that the model's training config
excludes (split by source image, never by crop). Holes are `lama-medium` masks drawn in the (0.1, 0.3]
and (0.3, 0.5] bins of the hole ratio. For each bin it prints PSNR, SSIM, MAE (over the whole image, known
pixels pasted back) and pixel diversity (mean pairwise L1 between samples of one image) for the model,
`telea` and `patchmatch`, and writes a picture of examples: input | 3 samples | telea | patchmatch | truth.
A PUT model also gets a "true tokens" row: its decoder given the ground-truth tokens of the hole, the best
any sampler could reach with that first stage; `--first-stage` scores that row alone for a stage-1 run
(before any transformer is trained) beside the classical fills. Reports, never asserts.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
import yaml
from common import held_out_paths, holes_for, run_and_score

import pluralfill
from pluralfill.grid import grid_rows, masked_view
from pluralfill.io import read_image
from pluralfill.methods.fixed_resolution import FixedResolutionInpainter
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.pvqvae import PVQVAE
from pluralfill.train.loop import first_stage

ROOT = Path(__file__).resolve().parents[1]
BINS = {"(0.1, 0.3]": (0.1, 0.3), "(0.3, 0.5]": (0.3, 0.5)}
METRICS = ("psnr", "ssim", "mae", "diversity-pixel")


def held_out(config: Path, n: int) -> tuple[list[np.ndarray], list[str]]:
    """Up to `n` crops of the sources a training config excludes, and the names of their sources."""
    data = yaml.safe_load(config.read_text())["data"]
    paths = held_out_paths(n, config, (ROOT / data["train"]).resolve())
    return [read_image(p) for p in paths], sorted({p.stem.rsplit("_", 1)[0] for p in paths})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=pluralfill.DEFAULT_METHOD, help="the learned model (name or folder)")
    ap.add_argument(
        "--config",
        type=Path,
        default=ROOT / "src" / "pluralfill" / "configs" / "put-scenes-small-pvqvae.yaml",
        help="its training config: the sources it excludes are the held-out set",
    )
    ap.add_argument("--n", type=int, default=100, help="held-out images per bin")
    ap.add_argument("--samples", type=int, default=4, help="samples per image (diversity needs 2 or more)")
    ap.add_argument("--first-stage", help="a P-VQVAE run or folder: score its true-token ceiling instead of --model")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "figures")
    args = ap.parse_args()

    images, sources = held_out(args.config, args.n)
    print(
        f"# {args.first_stage or args.model} vs classical fills: {len(images)} held-out 256x256 crops of "
        f"{len(sources)} sources "
        f"({', '.join(sources)}), {args.samples} samples each, {platform.machine()}, "
        f"{torch.get_num_threads()} threads\n"
    )
    learned = [] if args.first_stage else [args.model]
    methods = {name: pluralfill.load_inpainter(name) for name in (*learned, "telea", "patchmatch")}
    scored = dict(methods)
    if args.first_stage:
        scored[f"{Path(args.first_stage).name}, true tokens"] = TrueTokens(first_stage(args.first_stage, PVQVAE))
    elif isinstance(methods[args.model], PUTInpainter):
        scored[f"{Path(args.model).name}, true tokens"] = TrueTokens(methods[args.model].model.pvqvae)
    table = {}
    for label, ratio in BINS.items():
        holes = holes_for(images, "lama-medium", ratio, seed=1)
        for name, inpainter in scored.items():
            values, seconds = run_and_score(inpainter, images, holes, args.samples, metrics=METRICS)
            table[name, label] = values | {"s/image": seconds}
        if not args.first_stage:
            example(methods, images, holes, args.out / f"bundled_examples_{ratio[0]:g}-{ratio[1]:g}.jpg")

    print("| method | hole | PSNR ↑ | SSIM ↑ | MAE ↓ | diversity ↑ | s/image |")
    print("|---|---|---|---|---|---|---|")
    for (name, label), v in table.items():
        print(
            f"| {Path(name).name} | {label} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['mae']:.3f}% | "
            f"{v.get('diversity-pixel', float('nan')):.3f}% | {v['s/image']:.2f} |"
        )
    if not args.first_stage:
        print(f"\nexamples: {args.out}/bundled_examples_*.jpg")


class TrueTokens(FixedResolutionInpainter):
    """A P-VQVAE's decoder given the tokens of the whole image, known pixels as its reference: the first
    stage's ceiling, which separates what the P-VQVAE loses from what the transformer's guesses lose."""

    deterministic = True

    def __init__(self, pvqvae: PVQVAE, device: str = "cpu"):
        self.model, self.device = pvqvae.to(device).eval(), torch.device(device)
        self.name, self.resolution = "true tokens", pvqvae.config.resolution

    def sample(self, x, known, seeds, trace=None, **options):
        return self.model.decode(self.model.tokenize(self.model.encode(x)), x, known)


def example(methods: dict, images, holes, path: Path, rows: int = 6):
    """input | each method's first sample (three for the learned model) | truth, for a few images."""
    picks = np.linspace(0, len(images) - 1, rows).round().astype(int)
    tiles = []
    for i in picks:
        row = [masked_view(images[i], holes[i])]
        for k, inpainter in enumerate(methods.values()):
            row += [
                np.asarray(s)
                for s in inpainter.inpaint(images[i], holes[i], num_samples=3 if k == 0 else 1, seed=int(i))
            ]
        tiles.append(row + [images[i]])
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_rows(tiles).save(path, quality=90)


if __name__ == "__main__":
    main()

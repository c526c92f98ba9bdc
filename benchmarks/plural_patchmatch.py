"""Pluralistic PatchMatch against telea and plain PatchMatch on held-out scenes256 crops.

    python benchmarks/plural_patchmatch.py [--n 30] [--samples 4] [--settings 0.3:0.0625:0.5,...] [--images all]

Images (`--images`): `held-out`, the scenes256 sources the bundled model's training config excludes (smooth
wallpapers, mostly), or `all`, crops spread over every scenes256 source (photos and wallpapers; a method
without weights has seen none of them). Holes: `lama-medium`
in the (0.1, 0.3] and (0.3, 0.5] bins of the hole ratio. For each method: PSNR, SSIM, MAE over the whole image
(known pixels pasted back; the mean over samples), and the mean pairwise difference between the samples of
one image *inside the hole*, in 0-255 levels. `leave_out:block:view` settings of the pluralistic one are compared
so the default can be chosen (SSIM within 0.01 of telea, samples >= 15/255 apart). Writes a picture: input |
telea | patchmatch | 4 pluralistic samples | truth. Reports, never asserts.
"""

from __future__ import annotations

import argparse
import itertools
import platform
from pathlib import Path

import numpy as np
from bundled_quality import held_out
from common import holes_for, run_and_score

import pluralfill
from pluralfill.grid import grid_rows, masked_view
from pluralfill.methods.classical import PLURAL_BLOCK, PLURAL_LEAVE_OUT, PLURAL_VIEW, PatchMatchInpainter

ROOT = Path(__file__).resolve().parents[1]
BINS = {"(0.1, 0.3]": (0.1, 0.3), "(0.3, 0.5]": (0.3, 0.5)}


def hole_spread(inpainter, images, holes, samples: int, **options) -> float:
    """Mean over images of the mean |a - b| between every two samples, inside the hole (0-255 levels)."""
    spreads = []
    for i, (image, hole) in enumerate(zip(images, holes)):
        outs = [np.asarray(s, np.float32)[hole] for s in inpainter.inpaint(image, hole, samples, seed=i, **options)]
        pairs = list(itertools.combinations(outs, 2))
        spreads.append(np.mean([np.abs(a - b).mean() for a, b in pairs]) if pairs else 0.0)
    return float(np.mean(spreads))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--images", choices=("held-out", "all"), default="held-out")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--settings", default="0.5:0.0625:1,0.3:0.0625:0.5,0.3:0.0625:0.25")
    ap.add_argument(
        "--out", type=Path, default=None, help="the picture (default: figures/plural_patchmatch_IMAGES.jpg)"
    )
    args = ap.parse_args()
    if args.images == "held-out":
        images, sources = held_out(ROOT / "src" / "pluralfill" / "configs" / "put-scenes-small-pvqvae.yaml", args.n)
    else:
        from pluralfill.data import ImageList
        from pluralfill.io import read_image

        paths = ImageList(ROOT.parent / "shared" / "data" / "scenes256" / "train").paths
        paths = paths[:: max(1, len(paths) // args.n)][: args.n]
        images, sources = [read_image(p) for p in paths], sorted({p.stem.rsplit("_", 1)[0] for p in paths})
    methods = {
        "telea": (pluralfill.load_inpainter("telea"), 1),
        "patchmatch": (pluralfill.load_inpainter("patchmatch"), args.samples),
    }
    for setting in args.settings.split(","):
        leave, block, view = map(float, setting.split(":"))
        default = (leave, block, view) == (PLURAL_LEAVE_OUT, PLURAL_BLOCK, PLURAL_VIEW)
        name = f"patchmatch-plural {leave:g}:{block:g}:{view:g}" + (" (default)" if default else "")
        methods[name] = (
            PatchMatchInpainter("patchmatch-plural", leave_out=leave, block=block, view=view),
            args.samples,
        )
    print(
        f"# pluralistic PatchMatch, {len(images)} {args.images} scenes256 crops (sources: {', '.join(sources)}), "
        f"lama-medium holes, {args.samples} samples; {platform.machine()}\n"
    )
    rows = []
    for label, ratio in BINS.items():
        holes = holes_for(images, "lama-medium", ratio, seed=3)
        print(
            f"## hole ratio {label}\n\n| method | PSNR ↑ | SSIM ↑ | MAE ↓ | samples apart in the hole (/255) | s / "
            f"image |"
        )
        print("|---|---|---|---|---|---|")
        for name, (inpainter, samples) in methods.items():
            values, seconds = run_and_score(inpainter, images, holes, samples, metrics=("psnr", "ssim", "mae"))
            spread = hole_spread(inpainter, images, holes, samples) if samples > 1 else 0.0
            print(
                f"| {name} | {values['psnr']:.2f} | {values['ssim']:.4f} | {values['mae']:.3f}% | {spread:.1f} | "
                f"{seconds:.2f} |"
            )
        print()
        if label == "(0.3, 0.5]":
            plural = pluralfill.load_inpainter("patchmatch-plural")
            for i in range(0, min(len(images), 24), 6):
                image, hole = images[i], holes[i]
                rows.append(
                    [
                        masked_view(image, hole),
                        np.asarray(methods["telea"][0].inpaint(image, hole, 1, seed=i)[0]),
                        np.asarray(methods["patchmatch"][0].inpaint(image, hole, 1, seed=i)[0]),
                        *[np.asarray(s) for s in plural.inpaint(image, hole, 4, seed=i)],
                        image,
                    ]
                )
    from PIL import Image

    args.out = args.out or ROOT / "benchmarks" / "figures" / f"plural_patchmatch_{args.images}.jpg"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture = grid_rows(rows)
    (picture if isinstance(picture, Image.Image) else Image.fromarray(picture)).convert("RGB").save(
        args.out, quality=88
    )
    print(f"picture: {args.out.relative_to(ROOT)} (input | telea | patchmatch | 4 pluralistic samples | truth)")


if __name__ == "__main__":
    main()

"""What MaskGIT's tokenizer should see under the hole: the image's own pixels (`hole_pixels=image`, the official
editing: the whole image is tokenized, then the token box is masked) or a flat grey hole (`missing`, ours).

Three inputs on the same held-out crops and holes, scored against the truth in the hole:
    missing          the hole grey: nothing under it reaches the tokens
    image (truth)    the true pixels under the hole: how benchmarks of the official editing score
    image (object)   another crop's pixels under the hole, standing in for the object a user wants removed

The tokens kept around the token hole see the hole through the encoder's receptive field, so with `image` the
truth (or the object) leaks into the fill. A seed draws the holes and the samples; mean and spread over seeds.

    python benchmarks/maskgit_hole_pixels.py --checkpoint runs/maskgit [--n 16] [--seeds 3] [--samples 4]
    python benchmarks/maskgit_hole_pixels.py --checkpoint RUN --quick      # 2 images, 1 seed: the test's run
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch
from common import held_out_images, holes_for, run_and_score

import pluralfill

METRICS = ("psnr", "ssim", "mae")


def measure(checkpoint, n: int, seeds: int, samples: int, preset: str = "lama-medium", device: str = "cpu") -> dict:
    """{condition: {metric: (mean, sd over seeds)}}, with "d_psnr" / "d_ssim": the paired difference to
    `missing` on the same holes and seeds."""
    mg = pluralfill.load_inpainter(checkpoint, device=device)
    images = held_out_images(checkpoint, n, mg.resolution)
    objects = images[1:] + images[:1]  # each image gets its neighbour's pixels under the hole
    rows: dict[str, list[dict]] = {"missing": [], "image (truth)": [], "image (object)": []}
    for seed in range(seeds):
        holes = holes_for(images, preset, (0.2, 0.4), seed=seed)
        pasted = [np.where(h[..., None], o, im) for im, h, o in zip(images, holes, objects)]
        for name, hole_pixels, given in (
            ("missing", "missing", None),
            ("image (truth)", "image", None),
            ("image (object)", "image", pasted),
        ):
            values, _ = run_and_score(
                mg, images, holes, samples, metrics=METRICS, inputs=given, seed=seed, hole_pixels=hole_pixels
            )
            rows[name].append(values)
    for _name, runs in rows.items():
        for r, base in zip(runs, rows["missing"]):
            r |= {"d_psnr": r["psnr"] - base["psnr"], "d_ssim": r["ssim"] - base["ssim"]}
    return {
        name: {
            m: (float(np.mean([r[m] for r in runs])), float(np.std([r[m] for r in runs])))
            for m in (*METRICS, "d_psnr", "d_ssim")
        }
        for name, runs in rows.items()
    }


def table(result: dict) -> str:
    names = (*METRICS, "PSNR vs missing", "SSIM vs missing")
    lines = ["| tokenizer input under the hole | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, values in result.items():
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{m:+.4f} ± {s:.4f}" if k.startswith("d_") else f"{m:.4f} ± {s:.4f}" for k, (m, s) in values.items()
            )
            + " |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a MaskGIT run folder (its held-out split is used)")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--preset", default="lama-medium")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="2 images, 1 seed, 1 sample")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.seeds, args.samples = 2, 1, 1
    print(
        f"# MaskGIT hole_pixels: {args.checkpoint}, {args.n} held-out images, {args.preset} holes in (0.2, 0.4], "
        f"{args.samples} samples, {args.seeds} seeds; {args.device}, {platform.machine()}, {torch.get_num_threads()} "
        f"threads\n"
    )
    print(table(measure(args.checkpoint, args.n, args.seeds, args.samples, args.preset, args.device)))


if __name__ == "__main__":
    main()

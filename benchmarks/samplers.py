"""PUT's two samplers side by side on held-out images: Algorithm 1 (one token per step) and MaskGIT's
parallel decoding (T steps). Quality table and the speed ratio, measured in one run.

    python benchmarks/samplers.py --checkpoint runs/put [--n 16] [--samples 4] [--steps 12]
"""

from __future__ import annotations

import argparse
import platform

import torch
from common import held_out_images, holes_for, run_and_score

import pluralfill


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--checkpoint", required=True, help="a PUT run folder (its config.yaml says which images are held out)"
    )
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--preset", default="lama-medium")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    put = pluralfill.load_inpainter(args.checkpoint, device=args.device)
    images = held_out_images(args.checkpoint, args.n, put.resolution)
    holes = holes_for(images, args.preset, (0.2, 0.4))
    rows = {
        "Algorithm 1 (1 token/step, top-50)": dict(sampler="put"),
        f"parallel ({args.steps} steps, cosine)": dict(sampler="parallel", steps=args.steps),
    }
    print(
        f"# PUT samplers: {put.name}, {len(images)} held-out images at {put.resolution}px, {args.preset} holes "
        f"in (0.2, 0.4], {args.samples} samples each; {args.device}, {platform.machine()}, {torch.get_num_threads()} "
        f"threads\n"
    )
    print("| sampler | PSNR | SSIM | MAE % | diversity % | s / image |")
    print("|---|---|---|---|---|---|")
    times = {}
    for name, options in rows.items():
        v, s = run_and_score(put, images, holes, args.samples, **options)
        times[name] = s
        print(f"| {name} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['mae']:.3f} | {v['diversity-pixel']:.3f} | {s:.3f} |")
    a, b = times.values()
    print(f"\nparallel is {a / b:.1f}x faster per image than Algorithm 1")


if __name__ == "__main__":
    main()

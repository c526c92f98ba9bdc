"""Seed 003 Table 1: MaskGIT's mask schedules on the same held-out images and holes. FID and LPIPS
appear when their weights are in the cache (see the README's Weights section).

    python benchmarks/maskgit_schedules.py --checkpoint runs/maskgit [--n 32] [--samples 4] [--steps 12]
"""

from __future__ import annotations

import argparse
import platform

import torch
from common import held_out_images, holes_for, run_and_score

import pluralfill
from pluralfill.metrics.evaluate import available_metrics


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a MaskGIT run folder")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--schedules", default="cosine,linear,square")
    ap.add_argument("--preset", default="lama-medium")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    metrics = [m for m in available_metrics() if m not in ("p-ids", "u-ids")]
    mg = pluralfill.load_inpainter(args.checkpoint, device=args.device)
    images = held_out_images(args.checkpoint, args.n, mg.resolution)
    holes = holes_for(images, args.preset, (0.2, 0.4))
    print(
        f"# MaskGIT schedules: {mg.name}, {len(images)} held-out images at {mg.resolution}px, {args.preset} holes "
        f"in (0.2, 0.4], {args.samples} samples, {args.steps} steps; {args.device}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads\n"
    )
    if "fid" not in metrics:
        print("(FID and LPIPS left out: their weights are not in the cache)\n")
    print("| schedule | " + " | ".join(metrics) + " | s / image |")
    print("|---" * (len(metrics) + 2) + "|")
    for schedule in args.schedules.split(","):
        v, s = run_and_score(mg, images, holes, args.samples, metrics=metrics, steps=args.steps, schedule=schedule)
        print(f"| {schedule} | " + " | ".join(f"{v[m]:.4f}" for m in metrics) + f" | {s:.3f} |")


if __name__ == "__main__":
    main()

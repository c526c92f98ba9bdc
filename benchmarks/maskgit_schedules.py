"""Seed 003 Table 1: MaskGIT's mask schedules on the same held-out images and holes. FID and LPIPS
appear when their weights are in the cache (see the README's Weights section).

    python benchmarks/maskgit_schedules.py --checkpoint runs/maskgit [--n 32] [--samples 4] [--steps 12]
        [--orders confidence,halton] [--seeds 3]

`--orders`: which tokens a pass keeps, MaskGIT's confidence or the Halton order (Besnier et al., ICLR 2025), each
with every schedule. `--seeds`: new holes and draws per seed, mean ± sd over them.
"""

from __future__ import annotations

import argparse
import platform

import torch
from common import held_out_images, holes_for, mean_spread, run_and_score

import pluralfill
from pluralfill.metrics.evaluate import available_metrics


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a MaskGIT run folder")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--schedules", default="cosine,linear,square")
    ap.add_argument("--orders", default="confidence")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--preset", default="lama-medium")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    metrics = [m for m in available_metrics() if m not in ("p-ids", "u-ids")]
    mg = pluralfill.load_inpainter(args.checkpoint, device=args.device)
    images = held_out_images(args.checkpoint, args.n, mg.resolution)
    print(
        f"# MaskGIT schedules: {mg.name}, {len(images)} held-out images at {mg.resolution}px, {args.preset} holes "
        f"in (0.2, 0.4], {args.samples} samples, {args.steps} steps, {args.seeds} seed(s); {args.device}, "
        f"{platform.machine()}, {torch.get_num_threads()} threads\n"
    )
    if "fid" not in metrics:
        print("(FID and LPIPS left out: their weights are not in the cache)\n")
    print("| order | schedule | " + " | ".join(metrics) + " | s / image |")
    print("|---" * (len(metrics) + 3) + "|")
    for order in args.orders.split(","):
        for schedule in args.schedules.split(","):
            runs = [
                run_and_score(
                    mg,
                    images,
                    holes_for(images, args.preset, (0.2, 0.4), seed=seed),
                    args.samples,
                    metrics=metrics,
                    seed=seed,
                    steps=args.steps,
                    schedule=schedule,
                    order=order,
                )
                for seed in range(args.seeds)
            ]
            cells = [mean_spread([v[m] for v, _ in runs], 4) for m in metrics]
            print(f"| {order} | {schedule} | " + " | ".join(cells) + f" | {sum(s for _, s in runs) / len(runs):.3f} |")


if __name__ == "__main__":
    main()

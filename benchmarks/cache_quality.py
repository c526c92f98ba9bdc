"""What speed costs in quality, on trained models: int8, bf16 and the known-token cache against exact fp32.

    models    put-scenes-small (the bundled PUT, its own sampler settings), and the toy PUT and toy MaskGIT the
              benchmark scripts train (runs/toy/{put,maskgit}/seed0: 200 steps a stage, trained now if missing)
    inputs    held-out crops (sources no model trained on), lama-medium holes of 20-40%, a new set per seed
    numbers   PSNR and SSIM of every sample against the truth, pixel diversity between an input's samples, and for
              the cached runs the TV distance between what each partial pass draws from and what the exact pass
              over the same inputs does (the chance that a coupled draw differs), mean over the passes

Every run draws with the same seeds, so exact and approximate runs differ only by what they approximate. Mean ±
sd over seeds; "vs exact": whether the PSNR gap to exact fp32 is within two standard errors (common.verdict).

    python benchmarks/cache_quality.py [--n 8] [--samples 2] [--seeds 3] [--refresh 4,8]
    python benchmarks/cache_quality.py --quick         # 1 image, 1 seed, the toy runs at 2 steps: the test's run
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import ROOT, held_out_split, holes_for, mean_spread, run_and_score, toy_run, verdict

import pluralfill
from pluralfill import precision as P
from pluralfill.bench import drift_meter
from pluralfill.devices import machine, machine_line
from pluralfill.sampling.cache import comparing


def variants(refresh: list[int]) -> list[tuple[str, str, dict]]:
    """(label, precision, options) of every run, exact fp32 first."""
    precisions = [p for p in ("fp32", "int8", "bf16") if p != "bf16" or P.native_bf16(torch.device("cpu"))]
    return [
        (f"{p}" + (f" cache/{r}" if r else ""), p, {"cache": "known", "refresh": r} if r else {})
        for p in precisions
        for r in [0, *refresh]
    ]


def measure(inpainter, images, holes, samples: int, seed: int, precision: str, options: dict) -> dict:
    """Scores and seconds per image of one run; for a cached run, then the same inputs again with every partial
    pass compared to the exact pass (untimed: the comparison computes both)."""
    run = inpainter.at_precision(precision)
    scores, seconds = run_and_score(
        run, images, holes, samples, ("psnr", "ssim", "diversity-pixel"), seed=seed, **options
    )
    drift, compare = drift_meter(run)
    if options:
        with comparing(compare):
            for i, (image, hole) in enumerate(zip(images, holes)):
                run.inpaint(image, hole, num_samples=samples, seed=seed * 100_003 + i, **options)
    return scores | {"drift": float(np.mean(drift)) if drift else None, "seconds": seconds}


def versus(psnr, exact) -> str:
    said = verdict(psnr, exact)
    return {"reproduced in direction": "higher", "not reproduced": "lower"}.get(said, said)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="held-out images")
    ap.add_argument("--samples", type=int, default=2, help="samples per image")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the holes and the draws")
    ap.add_argument("--refresh", default="4,8", help="the cache's refresh intervals")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "toy", help="where the toy runs are (or go)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    steps = 200
    if args.quick:
        args.n, args.seeds, args.samples, steps = 1, 1, 2, 2
        if not (argv and "--runs" in argv):
            args.runs = Path(tempfile.mkdtemp()) / "runs"
    refresh = [int(r) for r in args.refresh.split(",") if r]
    models = {
        "put-scenes-small (bundled)": pluralfill.load_inpainter("put-scenes-small"),
        "toy PUT (runs/toy/put)": pluralfill.load_inpainter(toy_run("put", args.runs, 0, steps, args.quick) / "best"),
        "toy MaskGIT (runs/toy/maskgit)": pluralfill.load_inpainter(
            toy_run("maskgit", args.runs, 0, steps, args.quick) / "best"
        ),
    }
    print(
        f"# Quality of int8, bf16 and the cache against exact fp32: {args.n} held-out images, {args.samples} samples, "
        f"{args.seeds} seeds; {machine_line(machine())}\n"
    )
    print("| model | run | PSNR (dB) | SSIM | pixel diversity | draws differ per pass | s / image | PSNR vs exact |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for name, inpainter in models.items():
        images = held_out_split(args.n, inpainter.resolution)
        rows = results[name] = {}
        for label, precision, options in variants(refresh):
            per_seed = []
            for s in range(args.seeds):
                holes = holes_for(images, "lama-medium", (0.2, 0.4), seed=s)
                per_seed.append(measure(inpainter, images, holes, args.samples, s, precision, options))
            rows[label] = per_seed
            psnr = [r["psnr"] for r in per_seed]
            drift = [r["drift"] for r in per_seed if r["drift"] is not None]
            print(
                f"| {name} | {label} | {mean_spread(psnr)} | {mean_spread([r['ssim'] for r in per_seed], 3)} | "
                f"{mean_spread([r['diversity-pixel'] for r in per_seed], 4)} | "
                f"{mean_spread([100 * d for d in drift], 2, '%') if drift else '-'} | "
                f"{np.mean([r['seconds'] for r in per_seed]):.2f} | "
                f"{'-' if label == 'fp32' else versus(psnr, [r['psnr'] for r in rows['fp32']])} |",
                flush=True,
            )
    return results


if __name__ == "__main__":
    main()

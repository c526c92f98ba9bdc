"""MHTMA's Table IV at toy size on this CPU: scores by hole-ratio bin, against telea, PatchMatch, the
pluralistic default (patchmatch-plural), and PUT and MaskGIT trained with the same toy budget.

    python benchmarks/mhtma_mask_ratios.py [--steps 200] [--seeds 3] [--n 32] [--runs runs/toy]

The same budget: every network a method trains gets the same steps at batch 16 on 64-px crops of scenes256
without its held-out sources (MHTMA one network, PUT and MaskGIT two: tokenizer, then transformer), once per
seed; the MHTMA runs are the ones benchmarks/mhtma_ablations.py trains for its MHTMA row. Holes: `lama-medium`
redrawn into each bin (0, 0.1] ... (0.4, 0.5], drawn anew per seed; one sample per image (the table scores
quality). Seed k is training seed k and hole draw k; the classical rows vary by the hole draw alone.
Writes figures/mhtma_mask_ratios.png (per-bin curves) and figures/mhtma_mask_ratios_examples.jpg.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch
from common import (
    experiment_parser,
    held_out_split,
    holes_for,
    mean_spread,
    parse_experiment,
    run_and_score,
    toy_run,
    verdict,
)

import pluralfill
from pluralfill.grid import grid_rows, masked_view
from pluralfill.masks import STANDARD_BINS

BINS = STANDARD_BINS[:5]
METRICS = ("mae", "psnr", "ssim")
CLASSICAL = {"telea": "telea", "PatchMatch": "patchmatch", "pluralistic default": pluralfill.DEFAULT_METHOD}
LEARNED = {"PUT": "put", "MaskGIT": "maskgit", "MHTMA": "mhtma"}
# Zhou et al. 2023, Table IV (Places2, 256 px): MHTMA ("ours") per bin; FID left out (no Inception weights here)
PAPER = {
    "mae": (0.5820, 1.217, 2.007, 2.763, 3.415),
    "psnr": (31.16, 27.14, 24.66, 23.03, 22.01),
    "ssim": (0.9647, 0.9282, 0.8838, 0.8408, 0.7999),
}


def label(b) -> str:
    return f"({b[0]:g}, {b[1]:g}]"


def plot(scores: dict, bins, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    x = np.arange(len(bins))
    for ax, m, name in zip(axes, METRICS, ("MAE (%) ↓", "PSNR (dB) ↑", "SSIM ↑")):
        for method, per in scores.items():
            v = np.array([per[m][b] for b in range(len(bins))])  # (bins, seeds)
            ax.errorbar(
                x, v.mean(1), yerr=v.std(1, ddof=1) if v.shape[1] > 1 else None, marker="o", capsize=3, label=method
            )
        ax.set_xticks(x, [label(b) for b in bins], fontsize=8)
        ax.set(xlabel="hole ratio", title=name)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = experiment_parser(__doc__, 200, 32, "training steps of every network")
    ap.add_argument("--bins", type=int, default=len(BINS), help="the first BINS bins only")
    args = parse_experiment(ap, argv, n=1, bins=2)
    bins = BINS[: args.bins]
    images = held_out_split(args.n, 64)
    methods = {name: [pluralfill.load_inpainter(m)] * args.seeds for name, m in CLASSICAL.items()}
    for name, kind in LEARNED.items():
        methods[name] = [
            pluralfill.load_inpainter(toy_run(kind, args.runs, s, args.steps, args.quick) / "best")
            for s in range(args.seeds)
        ]
    scores = {name: {m: [[] for _ in bins] for m in METRICS} for name in methods}
    examples = []
    for b, ratio in enumerate(bins):
        for s in range(args.seeds):
            holes = holes_for(images, "lama-medium", ratio, seed=100 + s)
            if s == 0:
                examples.append([masked_view(images[0], holes[0])])
            for name, models in methods.items():
                values, _ = run_and_score(models[s], images, holes, 1, metrics=METRICS, seed=s)
                for m in METRICS:
                    scores[name][m][b].append(values[m])
                if s == 0:
                    examples[-1].append(np.asarray(models[0].inpaint(images[0], holes[0], seed=0)[0]))
        examples[-1].append(images[0])

    print(
        f"# MHTMA Table IV at toy size: {len(images)} held-out crops at 64 px a bin, lama-medium holes, {args.seeds} "
        f"seeds, "
        f"{args.steps} steps a network; {platform.machine()}, {torch.get_num_threads()} threads\n"
    )
    for m, title, digits, unit, higher in (
        ("mae", "MAE ↓", 3, "%", False),
        ("psnr", "PSNR (dB) ↑", 2, "", True),
        ("ssim", "SSIM ↑", 4, "", True),
    ):
        print(f"## {title} (mean ± sd over seeds)\n")
        print(
            "| ratio | "
            + " | ".join(methods)
            + " | paper MHTMA | MHTMA vs PatchMatch | MHTMA vs PUT | MHTMA vs MaskGIT |"
        )
        print("|---" * (len(methods) + 5) + "|")
        for b, ratio in enumerate(bins):
            cells = [mean_spread(scores[name][m][b], digits, unit) for name in methods]
            verdicts = [
                verdict(scores["MHTMA"][m][b], scores[other][m][b], higher)
                for other in ("PatchMatch", "PUT", "MaskGIT")
            ]
            print(
                f"| {label(ratio)} | " + " | ".join(cells) + f" | {PAPER[m][b]}{unit} | " + " | ".join(verdicts) + " |"
            )
        print()
    args.figures.mkdir(parents=True, exist_ok=True)
    plot(scores, bins, args.figures / "mhtma_mask_ratios.png")
    grid_rows(examples).save(args.figures / "mhtma_mask_ratios_examples.jpg", quality=90)
    print(
        f"wrote {args.figures / 'mhtma_mask_ratios.png'} and {args.figures / 'mhtma_mask_ratios_examples.jpg'} "
        f"(a row per bin: input | {' | '.join(methods)} | original)"
    )
    return scores


if __name__ == "__main__":
    main()

"""PUT (Liu et al. 2022) at toy size on this CPU: diversity against quality as the number of samples grows, and what
top-K of Algorithm 1 does to both.

    python benchmarks/put_diversity.py [--steps 200] [--seeds 3] [--n 12] [--samples 8] [--runs runs/toy]

The models are put-tiny trained with benchmarks/mhtma_mask_ratios.py's budget (the same run folders: P-VQVAE and
UQ-Transformer, `--steps` each, one pair per seed). For every held-out crop (`lama-medium` holes in (0.2, 0.4],
drawn once) and every K, Algorithm 1 draws `--samples` samples; the first N of them give, for N = 1, 2, 4, ...:
best-of-N PSNR (the closest sample to the photo, the usual score of pluralistic methods), mean PSNR over the N,
and diversity (mean pairwise difference over the image, % of 0-255; LPIPS needs weights). Writes
figures/put_diversity.png (best-of-N quality against diversity, a curve per K) and figures/put_topk_samples.jpg.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch
from common import experiment_parser, held_out_split, holes_for, mean_spread, parse_experiment, toy_run

import pluralfill
from pluralfill.grid import grid_rows, masked_view
from pluralfill.metrics.diversity import pixel_diversity
from pluralfill.metrics.pixel import psnr

TOP_K = (1, 10, 50, 256)  # 256: every code of put-tiny's codebook, i.e. no truncation


def scores(samples, image, counts) -> dict:
    """For each N in counts: best-of-N and mean PSNR, and the diversity of the first N samples."""
    p = psnr(np.stack(samples), image).numpy()
    return {
        n: {
            "best": float(p[:n].max()),
            "mean": float(p[:n].mean()),
            "diversity": pixel_diversity(samples[:n]) if n > 1 else 0.0,
        }
        for n in counts
    }


def plot(table: dict, counts, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for k, per in table.items():
        d = [np.mean(per[n]["diversity"]) for n in counts]
        q = [np.mean(per[n]["best"]) for n in counts]
        ax.plot(d, q, marker="o", label=f"top-{k}")
        for n, x, y in zip(counts, d, q):
            ax.annotate(f"N={n}", (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.set(
        xlabel="diversity (mean pairwise difference, % of 0-255)",
        ylabel="best-of-N PSNR (dB)",
        title="PUT (put-tiny): quality vs diversity as samples grow",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = experiment_parser(__doc__, 200, 12, "training steps of each stage (the mask-ratio runs' budget)")
    ap.add_argument("--samples", type=int, default=8, help="samples per image; N runs over the powers of two up to it")
    args = parse_experiment(ap, argv, n=1, samples=2)
    counts = [2**i for i in range(int(np.log2(args.samples)) + 1)]
    models = [
        pluralfill.load_inpainter(toy_run("put", args.runs, s, args.steps, args.quick) / "best")
        for s in range(args.seeds)
    ]
    images = held_out_split(args.n, 64)
    holes = holes_for(images, "lama-medium", (0.2, 0.4), seed=300)
    table = {}  # K -> N -> measure -> per-seed values (each the mean over images)
    for k in TOP_K:
        per_seed = []
        for s, model in enumerate(models):
            per_image = [
                scores(
                    model.inpaint(im, h, num_samples=args.samples, seed=s * 1000 + i, sampler="put", top_k=k),
                    im,
                    counts,
                )
                for i, (im, h) in enumerate(zip(images, holes))
            ]
            per_seed.append(
                {n: {m: np.mean([r[n][m] for r in per_image]) for m in ("best", "mean", "diversity")} for n in counts}
            )
        table[k] = {n: {m: [p[n][m] for p in per_seed] for m in ("best", "mean", "diversity")} for n in counts}

    print(
        f"# PUT at put-tiny (64 px), {args.steps} steps a stage, {args.seeds} seeds, {len(images)} held-out crops, "
        f"lama-medium holes in (0.2, 0.4], Algorithm 1; {platform.machine()}, {torch.get_num_threads()} threads\n"
    )
    print("| top-K | N samples | best-of-N PSNR ↑ | mean PSNR ↑ | diversity ↑ (% of 0-255) |")
    print("|---|---|---|---|---|")
    for k, per in table.items():
        for n in counts:
            print(
                f"| {k} | {n} | {mean_spread(per[n]['best'])} | {mean_spread(per[n]['mean'])} | "
                f"{mean_spread(per[n]['diversity'], 3)} |"
            )
    args.figures.mkdir(parents=True, exist_ok=True)
    plot(table, counts, args.figures / "put_diversity.png")
    rows = [
        [masked_view(images[0], holes[0])]
        + [
            np.asarray(x)
            for x in models[0].inpaint(
                images[0], holes[0], num_samples=min(6, args.samples), seed=0, sampler="put", top_k=k
            )
        ]
        + [images[0]]
        for k in TOP_K
    ]
    grid_rows(rows).save(args.figures / "put_topk_samples.jpg", quality=90)
    print(
        f"\nwrote {args.figures / 'put_diversity.png'} and {args.figures / 'put_topk_samples.jpg'} (a row per K: input "
        f"| samples | original)"
    )
    return table


if __name__ == "__main__":
    main()

"""MHTMA's ablations (Zhou et al. 2023) at toy size on this CPU: Table I (what the attention branch and its learned
temperatures add), Table II (HAL-SN vs WGAN-GP: quality and batches per minute) and Fig. 8 (the learned
temperatures per head, and the refinement's branches switched at inference).

    python benchmarks/mhtma_ablations.py [--steps 200] [--seeds 3] [--n 48] [--runs runs/toy]
    python benchmarks/mhtma_ablations.py --variants atma,contextual     # the seed's own Table I rows too

Every variant is `configs/mhtma-tiny.yaml` with one override, trained with the same budget (steps, batch 16,
64 px, the same holes and data: scenes256 without its held-out sources) once per seed. Scored on held-out crops
(benchmarks/common.py) with `mhtma` holes (the training distribution) drawn once for every row. Writes
figures/mhtma_temperatures.png and figures/mhtma_branches.jpg. Reports, never asserts; a run folder that
exists is reused (delete it to retrain).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch
from common import (
    budget,
    experiment_parser,
    held_out_split,
    holes_for,
    mean_spread,
    parse_experiment,
    run_and_score,
    run_metrics,
    trained,
    verdict,
)

import pluralfill
from pluralfill.grid import grid_rows, masked_view

MHTMA = "MHTMA (2 heads, HAL-SN)"
TABLE_I = {
    "no attention": ["model.attention=none"],
    "vanilla masked self-attention": ["model.attention=vanilla"],
    "single-head temperature": ["model.num_heads=1"],
    MHTMA: [],
}
TABLE_II = {"WGAN-GP": ["loss.gan=wgan-gp"]}  # HAL-SN is the MHTMA row
SEED_ROWS = {"atma": ("w/ ATMA", ["model.attention=atma"]), "contextual": ("w/ CA", ["model.attention=contextual"])}
PAPER_I = {MHTMA: (1.282, 28.82, 0.9167), "w/ ATMA": (1.372, 28.44, 0.9108), "w/ CA": (1.309, 28.71, 0.9132)}
PAPER_II = {"HAL-SN": (1.571, 26.67, 0.9008, 71.8), "WGAN-GP": (1.603, 26.39, 0.8981, 59.0)}
METRICS = ("mae", "psnr", "ssim")
BRANCHES = {
    "convolution branch only": "off",
    "attention: highest temperature": "high",
    "attention: lowest temperature": "low",
    "full model": "on",
}


def batches_per_minute(run: Path) -> float:
    """From the run's own images/s log (the first interval, with start-up, left out)."""
    logged = [r["images_per_s"] for r in run_metrics(run) if "images_per_s" in r]
    return float(np.median(logged[1:] or logged)) / _batch(run) * 60


def _batch(run: Path) -> int:
    import yaml

    return int(yaml.safe_load((run / "config.yaml").read_text())["batch_size"])


def temperatures(model, images, holes) -> np.ndarray:
    """(images, heads): the temperatures the model learned for each held-out image."""
    out = []
    for image, hole in zip(images, holes):
        out.append(model.inpaint(image, hole, seed=0).extras["temperatures"])
    return np.asarray(out, dtype=float)


def plot_temperatures(curves: dict, held: dict, out: Path) -> None:
    """Seed 002 Fig. 6/8 at toy size: each head's temperature over training (left) and on held-out images (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, runs) in enumerate(curves.items()):
        for s, rows in enumerate(runs):
            for k in range(10):
                pts = [(r["step"], r[f"train/temperature_{k}"]) for r in rows if f"train/temperature_{k}" in r]
                if not pts:
                    break
                a.plot(
                    *zip(*pts),
                    color=colours[(2 * i + k) % len(colours)],
                    alpha=0.8,
                    ls=["-", "--", ":"][s % 3],
                    label=f"{name}, head {k}" if s == 0 else None,
                )
    a.set(
        xlabel="training step",
        ylabel="temperature (batch mean)",
        yscale="log",
        title="learned temperatures while training",
    )
    a.legend(fontsize=7)
    labels, values = [], []
    for name, per_seed in held.items():
        for s, t in enumerate(per_seed):
            for k in range(t.shape[1]):
                labels.append(f"{name.split(' (')[0]}\nseed {s} head {k}")
                values.append(t[:, k])
    b.boxplot(values, showfliers=False)
    b.set_xticks(range(1, len(labels) + 1), labels, fontsize=6, rotation=60)
    b.set(ylabel="temperature", yscale="log", title="per held-out image, after training (one attention layer)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = experiment_parser(__doc__, 200, 48, "training steps of every run")
    ap.add_argument("--variants", default="", help="the seed's own Table I rows to add: atma, contextual")
    args = parse_experiment(ap, argv, n=2)
    extra = {SEED_ROWS[v][0]: SEED_ROWS[v][1] for v in filter(None, args.variants.split(","))}
    variants = TABLE_I | extra | TABLE_II
    runs = {
        name: [
            trained(
                "mhtma-tiny.yaml",
                args.runs / name.split(" (")[0].replace(" ", "-").replace("/", "") / f"seed{s}",
                budget(args.steps, args.quick) + change + [f"seed={s}"],
            )
            for s in range(args.seeds)
        ]
        for name, change in variants.items()
    }

    resolution = 64
    images = held_out_split(args.n, resolution)
    holes = holes_for(images, "mhtma", None, seed=1)
    scores = {}  # name -> metric -> per-seed values
    held = {}
    models = {}
    for name, folders in runs.items():
        per = {m: [] for m in METRICS + ("batches/min",)}
        for _s, run in enumerate(folders):
            model = pluralfill.load_inpainter(run / "best")
            values, _ = run_and_score(model, images, holes, 1, metrics=METRICS)
            for m in METRICS:
                per[m].append(values[m])
            per["batches/min"].append(batches_per_minute(run))
            if name in (MHTMA, "single-head temperature"):
                held.setdefault(name, []).append(temperatures(model, images, holes))
            models.setdefault(name, []).append(model)
        scores[name] = per

    print(
        f"# MHTMA ablations at mhtma-tiny ({resolution} px), {args.steps} steps, batch {_batch(runs[MHTMA][0])}, "
        f"{args.seeds} seeds, {len(images)} held-out crops, mhtma holes; {platform.machine()}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("## Table I (mean ± sd over seeds; verdict: PSNR of MHTMA against the row)\n")
    print("| attention | MAE ↓ | PSNR ↑ | SSIM ↑ | paper MAE / PSNR / SSIM | MHTMA vs this row |")
    print("|---|---|---|---|---|---|")
    for name in TABLE_I | extra:
        p = PAPER_I.get(name)
        v = "—" if name == MHTMA else verdict(scores[MHTMA]["psnr"], scores[name]["psnr"])
        print(
            f"| {name} | {mean_spread(scores[name]['mae'], 3, '%')} | {mean_spread(scores[name]['psnr'])} | "
            f"{mean_spread(scores[name]['ssim'], 4)} | {f'{p[0]}% / {p[1]} / {p[2]}' if p else '—'} | {v} |"
        )
    print("\n## Table II (verdict: HAL-SN against WGAN-GP)\n")
    print("| loss | MAE ↓ | PSNR ↑ | SSIM ↑ | batches/min ↑ | paper MAE / PSNR / SSIM / batches/min |")
    print("|---|---|---|---|---|---|")
    for label, name in (("HAL-SN", MHTMA), ("WGAN-GP", "WGAN-GP")):
        p = PAPER_II[label]
        print(
            f"| {label} | {mean_spread(scores[name]['mae'], 3, '%')} | {mean_spread(scores[name]['psnr'])} | "
            f"{mean_spread(scores[name]['ssim'], 4)} | {mean_spread(scores[name]['batches/min'], 1)} | {p[0]}% / "
            f"{p[1]} / {p[2]} / {p[3]} |"
        )
    print(
        f"\nquality: {verdict(scores[MHTMA]['psnr'], scores['WGAN-GP']['psnr'])} (PSNR); "
        f"speed: {verdict(scores[MHTMA]['batches/min'], scores['WGAN-GP']['batches/min'])} (batches/min)"
    )

    # Fig. 8: the branches of the refinement switched at inference, every seed of the MHTMA row
    branch = {label: [] for label in BRANCHES}
    for model in models[MHTMA]:
        for label, mode in BRANCHES.items():
            branch[label].append(
                run_and_score(model, images, holes, 1, metrics=("psnr",), attention_branch=mode)[0]["psnr"]
            )
    print("\n## Fig. 8: the refinement's branches at inference (MHTMA row, PSNR)\n")
    print("| branch | PSNR ↑ |")
    print("|---|---|")
    for label, values in branch.items():
        print(f"| {label} | {mean_spread(values)} |")
    held_means = {name: mean_spread([t.mean() for t in ts], 4) for name, ts in held.items()}
    print(
        "\nheld-out temperatures (mean over images and heads): " + "; ".join(f"{k}: {v}" for k, v in held_means.items())
    )

    args.figures.mkdir(parents=True, exist_ok=True)
    plot_temperatures(
        {name: [run_metrics(r) for r in runs[name]] for name in held}, held, args.figures / "mhtma_temperatures.png"
    )
    model = models[MHTMA][0]
    rows = []
    for image, hole in list(zip(images, holes))[:4]:
        rows.append(
            [masked_view(image, hole)]
            + [np.asarray(model.inpaint(image, hole, seed=0, attention_branch=m)[0]) for m in BRANCHES.values()]
            + [image]
        )
    grid_rows(rows).save(args.figures / "mhtma_branches.jpg", quality=90)
    print(
        f"\nwrote {args.figures / 'mhtma_temperatures.png'} and {args.figures / 'mhtma_branches.jpg'} "
        "(input | convolution branch | highest temperature | lowest temperature | full | original)"
    )
    return {"scores": scores, "branches": branch, "temperatures": {k: [t.tolist() for t in v] for k, v in held.items()}}


if __name__ == "__main__":
    main()

"""Does a sketch steer the sketch-guided MHTMA (Zhou et al. 2023, IV-F)? Two measures on held-out crops with a centred
square hole, each with and without the sketch:

- the photo's own sketch (its edges, extracted as in training) inside the hole: how many of its line pixels the
  fill reproduces as an edge within 2 px (line recall), and the fill's PSNR;
- a drawn line (horizontal, then vertical) across the hole: how much the fill changes within 3 px of the line
  and elsewhere in the hole, against the fill without lines.

    python benchmarks/sketch_steering.py [--steps 150] [--seeds 3] [--n 16] [--runs runs/toy]
    python benchmarks/sketch_steering.py --checkpoint runs/mhtma-sketch --size 128     # a model of your own

Without --checkpoint, `configs/mhtma-tiny-sketch.yaml` is trained once per seed with the toy budget (scenes256
without its held-out sources). Writes figures/mhtma_sketch_steering.jpg.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch
from common import budget, experiment_parser, held_out_split, mean_spread, parse_experiment, trained, verdict

import pluralfill
from pluralfill.geometry import grow
from pluralfill.grid import grid_rows, masked_view
from pluralfill.masks.sketch import classical_edges, extract_sketch
from pluralfill.metrics.pixel import psnr

EDGE = 0.65  # the training sketches' threshold on the same edge detector


def line_recall(fill: np.ndarray, lines: np.ndarray, within: int = 2) -> float:
    """The share of `lines` pixels with an edge of `fill` within `within` px."""
    if not lines.any():
        return float("nan")
    return float(grow(classical_edges(fill) > EDGE, within)[lines].mean())


def drawn_lines(s: int) -> dict[str, np.ndarray]:
    out = {}
    for name, (y0, y1, x0, x1) in {
        "horizontal": (s // 2, s // 2 + 1, s // 8, 7 * s // 8),
        "vertical": (s // 8, 7 * s // 8, s // 2, s // 2 + 1),
    }.items():
        out[name] = np.zeros((s, s), bool)
        out[name][y0:y1, x0:x1] = True
    return out


def measure(model, images, s: int):
    """Per-image means of every measure, and the picture rows."""
    hole = np.zeros((s, s), bool)
    hole[s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = True
    m = {k: [] for k in ("recall without", "recall with", "psnr without", "psnr with", "near", "far")}
    rows = []
    for image in images:
        own = extract_sketch(image).lines & hole
        plain = np.asarray(model.inpaint(image, hole, seed=0)[0])
        guided = np.asarray(model.inpaint(image, hole, seed=0, sketch=own)[0])
        m["recall without"].append(line_recall(plain, own))
        m["recall with"].append(line_recall(guided, own))
        m["psnr without"].append(float(psnr(plain, image)))
        m["psnr with"].append(float(psnr(guided, image)))
        row = [masked_view(image, hole), plain, masked_view(image, own), guided]
        for line in drawn_lines(s).values():
            drawn = np.asarray(model.inpaint(image, hole, seed=0, sketch=line)[0])
            change = np.abs(drawn.astype(np.float32) - plain).mean(-1)
            band = grow(line, 3) & hole
            m["near"].append(change[band].mean())
            m["far"].append(change[hole & ~band].mean())
            row += [masked_view(image, line & hole), drawn]
        rows.append(row + [image])
    return {k: float(np.nanmean(v)) for k, v in m.items()}, rows


def main(argv=None):
    ap = experiment_parser(__doc__, 150, 16, "training steps of each toy run")
    ap.add_argument(
        "--checkpoint", help="a sketch-guided MHTMA of your own (run folder); default: train the toy one per seed"
    )
    ap.add_argument("--size", type=int, default=64, help="image side the test runs at")
    args = parse_experiment(ap, argv, n=1)
    if args.checkpoint:
        folders = [Path(args.checkpoint)]
    else:
        folders = [
            trained(
                "mhtma-tiny-sketch.yaml",
                args.runs / "mhtma-sketch" / f"seed{s}",
                budget(args.steps, args.quick) + [f"seed={s}"],
            )
            for s in range(args.seeds)
        ]
    images = held_out_split(args.n, args.size)
    per_seed, rows = [], None
    for folder in folders:
        values, picture = measure(pluralfill.load_inpainter(folder), images, args.size)
        per_seed.append(values)
        rows = rows or picture
    col = {k: [v[k] for v in per_seed] for k in per_seed[0]}

    print(
        f"# Sketch steering: {len(folders)} model(s), {len(images)} held-out crops at {args.size} px, a centred square "
        f"hole "
        f"(25%); {platform.machine()}, {torch.get_num_threads()} threads\n"
    )
    print("| measure | without the sketch | with the sketch | verdict (with vs without) |")
    print("|---|---|---|---|")
    print(
        f"| line recall: the photo's sketch reproduced within 2 px ↑ | {mean_spread(col['recall without'], 3)} | "
        f"{mean_spread(col['recall with'], 3)} | {verdict(col['recall with'], col['recall without'])} |"
    )
    print(
        f"| PSNR of the fill, the photo's sketch given ↑ | {mean_spread(col['psnr without'])} | "
        f"{mean_spread(col['psnr with'])} | "
        f"{verdict(col['psnr with'], col['psnr without'])} |"
    )
    print(
        f"\ndrawn lines: mean change of the fill (0-255) within 3 px of the line {mean_spread(col['near'])}, elsewhere "
        f"in the hole "
        f"{mean_spread(col['far'])} (near vs elsewhere: {verdict(col['near'], col['far'])}; the paper: the fill "
        f"follows the line)"
    )
    args.figures.mkdir(parents=True, exist_ok=True)
    out = args.figures / "mhtma_sketch_steering.jpg"
    grid_rows(rows).save(out, quality=90)
    print(
        f"wrote {out}: input | no sketch | the photo's sketch | fill | horizontal line | fill | vertical line | fill | "
        f"original"
    )
    return col


if __name__ == "__main__":
    main()

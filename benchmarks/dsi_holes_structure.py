"""DSI (Peng et al. 2021) at toy size on this CPU: (1) diversity and quality with centre holes vs random holes, for
structure generators trained with centre masks and with random masks (its supplement, F(3): "the models
trained with random masks seem to have higher diversity, even for the same incomplete image"); (2) the
structure/texture split: the texture generator painting from sampled structure vs from the truth's own
structure (what a perfect structure generator would give).

    python benchmarks/dsi_holes_structure.py [--steps 150] [--seeds 3] [--n 16] [--samples 4] [--runs runs/toy]

Diversity comes from the structure generator alone (the texture pass is deterministic, F), so each seed trains
the two structure generators anew (`center` masks; `deepfill` masks: DSI's random rectangles and strokes), over
one hierarchical VQ-VAE and one texture generator (trained with random masks) that every seed shares. Test
holes, drawn once for every row: `center` (25%) and `deepfill` in (0.1, 0.5]. Quality: PSNR, SSIM, MAE averaged
over samples; diversity: the mean pairwise difference of the samples over the image, known pixels included
(LPIPS needs weights).
Writes figures/dsi_holes_structure.jpg.
"""

from __future__ import annotations

import copy
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
    trained,
    verdict,
)

import pluralfill
from pluralfill.grid import grid_rows, masked_view
from pluralfill.methods.dsi import DSIInpainter
from pluralfill.models.dsi import DSI

METRICS = ("psnr", "ssim", "mae", "diversity-pixel")
TEST_HOLES = {"centre": ("center", None), "random": ("deepfill", (0.1, 0.5))}
TRAIN_MASKS = {"random": "deepfill", "centre": "center"}


class TrueStructure(DSIInpainter):
    """The texture generator given the top-latent codes of the whole image: the structure a perfect structure
    generator would sample, which separates what the structure stage loses from what the texture stage loses."""

    deterministic = True

    def sample(self, x, known, seeds, trace=None, **options):
        m, side = self.model, self.model.config.structure.side
        codes = m.hvqvae.encode_top(x).reshape(-1, side, side)
        return m.texture(x * known, 1 - known, m.hvqvae.top_vectors(codes))


def with_structure(inpainter: DSIInpainter, structure_run: Path) -> DSIInpainter:
    """The same VQ-VAE and texture generator with the structure generator of another run (over the same VQ-VAE)."""
    model = copy.deepcopy(inpainter.model)
    model.structure = DSI.from_pretrained(structure_run / "best").structure
    return DSIInpainter(model, inpainter.device)


def main(argv=None):
    ap = experiment_parser(__doc__, 150, 16, "training steps of each structure generator")
    ap.add_argument("--vq-steps", type=int, default=200, help="training steps of the shared VQ-VAE")
    ap.add_argument("--texture-steps", type=int, default=300, help="training steps of the shared texture generator")
    ap.add_argument("--samples", type=int, default=4)
    args = parse_experiment(ap, argv, vq_steps=2, texture_steps=2, n=1, samples=2)
    root = args.runs / "dsi-masks"
    vq = trained("dsi-tiny-hvqvae.yaml", root / "hvqvae", budget(args.vq_steps, args.quick))
    structures = {
        (kind, s): trained(
            "dsi-tiny-structure.yaml",
            root / f"structure-{kind}" / f"seed{s}",
            budget(args.steps, args.quick) + [f"seed={s}", f"first_stage={vq}", f"masks.preset={preset}"],
        )
        for kind, preset in TRAIN_MASKS.items()
        for s in range(args.seeds)
    }
    texture = trained(
        "dsi-tiny-texture.yaml",
        root / "texture",
        budget(args.texture_steps, args.quick) + [f"first_stage={structures['random', 0]}"],
    )
    base = pluralfill.load_inpainter(texture / "best")
    truth = TrueStructure(base.model, base.device)

    images = held_out_split(args.n, 64)
    holes = {name: holes_for(images, preset, ratio, seed=7) for name, (preset, ratio) in TEST_HOLES.items()}
    scores = {}  # (trained with, test holes) -> metric -> per-seed values
    for s in range(args.seeds):
        for kind in TRAIN_MASKS:
            model = with_structure(base, structures[kind, s])
            for test, hs in holes.items():
                values, _ = run_and_score(model, images, hs, args.samples, metrics=METRICS, seed=s)
                for m in METRICS:
                    scores.setdefault((kind, test), {k: [] for k in METRICS})[m].append(values[m])
    for test, hs in holes.items():
        values, _ = run_and_score(truth, images, hs, 1, metrics=METRICS[:3])
        scores["truth", test] = {m: [values[m]] for m in METRICS[:3]}

    print(
        f"# DSI at dsi-tiny (64 px, 8x8 top latent): {len(images)} held-out crops, {args.samples} samples each, "
        f"{args.seeds} seeds; "
        f"structure {args.steps} steps, shared VQ-VAE {args.vq_steps}, texture {args.texture_steps}; "
        f"{platform.machine()}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| structure | test holes | PSNR ↑ | SSIM ↑ | MAE ↓ | diversity ↑ (% of 0-255) |")
    print("|---|---|---|---|---|---|")
    for (kind, test), per in scores.items():
        who = "from the truth (one pass)" if kind == "truth" else f"sampled, trained on {kind} masks"
        div = mean_spread(per["diversity-pixel"], 3, "%") if "diversity-pixel" in per else "— (deterministic)"
        print(
            f"| {who} | {test} | {mean_spread(per['psnr'])} | {mean_spread(per['ssim'], 4)} | "
            f"{mean_spread(per['mae'], 3, '%')} | {div} |"
        )
    for test in holes:
        print(
            f"\n{test} holes: diversity, random-mask training vs centre-mask training: "
            f"{verdict(scores['random', test]['diversity-pixel'], scores['centre', test]['diversity-pixel'])} (the "
            f"supplement: random higher); "
            f"quality (PSNR) of sampled structure vs the truth's: {mean_spread(scores['random', test]['psnr'])} vs "
            f"{scores['truth', test]['psnr'][0]:.2f}"
        )
    print(
        f"random-mask training, diversity on centre vs random holes: "
        f"{mean_spread(scores['random', 'centre']['diversity-pixel'], 3, '%')} "
        f"vs {mean_spread(scores['random', 'random']['diversity-pixel'], 3, '%')}"
    )

    rows = []
    models = {kind: with_structure(base, structures[kind, 0]) for kind in TRAIN_MASKS}
    for _test, hs in holes.items():
        for i in range(min(2, len(images))):
            row = [masked_view(images[i], hs[i])]
            for kind in TRAIN_MASKS:
                row += [np.asarray(x) for x in models[kind].inpaint(images[i], hs[i], num_samples=args.samples, seed=i)]
            rows.append(row + [np.asarray(truth.inpaint(images[i], hs[i])[0]), images[i]])
    args.figures.mkdir(parents=True, exist_ok=True)
    grid_rows(rows).save(args.figures / "dsi_holes_structure.jpg", quality=90)
    print(
        f"\nwrote {args.figures / 'dsi_holes_structure.jpg'}: input | {args.samples} samples (random-mask structure) | "
        f"{args.samples} samples "
        "(centre-mask structure) | texture from the truth's structure | original; centre holes, then random"
    )
    return scores


if __name__ == "__main__":
    main()

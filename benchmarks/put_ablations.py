"""The ablations of PUT (Liu et al. 2022, Table 2) at toy size on this CPU: every variant trained with the same budget,
data, seed and holes, each one override of configs/put-tiny-*.yaml.

    python benchmarks/put_ablations.py [--steps 800] [--n 48] [--samples 3] [--runs runs/ablations]

Stage-1 variants (P-VQVAE, P-VQVAE^conv, ^one, ^no.ref) are scored by their true-token ceiling: the decoder
given the tokens of the whole image, known pixels as reference (what any transformer could reach at best).
Transformer variants (UQ-Transformer, ^qua0, ^tok), all over the plain P-VQVAE, by their samples (Algorithm 1,
top-50). Held-out images: the runs' validation crops, centre-cropped to 64 px; lama-medium holes in (0.1, 0.5].
Reports, never asserts; a run folder that exists is reused (delete it to retrain).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch
from bundled_quality import TrueTokens
from common import SCENES, held_out_images, holes_for, run_and_score

import pluralfill
from pluralfill.models.pvqvae import PVQVAE
from pluralfill.registry import load_config, train
from pluralfill.train.loop import first_stage

ROOT = Path(__file__).resolve().parents[1]
STAGE1 = {
    "P-VQVAE": [],
    "P-VQVAE^conv": ["model.pvqvae.encoder=conv"],
    "P-VQVAE^one": ["model.pvqvae.codebook=one"],
    "P-VQVAE^no.ref": ["model.pvqvae.reference=false"],
}
STAGE2 = {
    "UQ-Transformer": [],
    "UQ-Transformer^qua0": ["model.transformer.input=quantized"],
    "UQ-Transformer^tok": ["model.transformer.input=tokens"],
}
METRICS = ("psnr", "ssim", "mae", "diversity-pixel")


def trained(config: str, run: Path, overrides: list[str]) -> Path:
    """The run folder, trained now unless it is already there."""
    if not (run / "best" / "config.json").is_file():
        train(
            load_config(
                ROOT / "src" / "pluralfill" / "configs" / config, [f"data.train={SCENES}", f"run_dir={run}", *overrides]
            )
        )
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=800, help="training steps of every stage of every variant")
    ap.add_argument("--n", type=int, default=48, help="held-out images")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablations")
    args = ap.parse_args()
    data = ROOT.parent / "shared" / "data" / "scenes256" / "train"
    budget = [f"steps={args.steps}", "val_every=200", "sample_every=400", "checkpoint_every=400", f"data.train={data}"]

    rows = []
    base = None
    for name, change in STAGE1.items():
        run = trained("put-tiny-pvqvae.yaml", args.runs / name.replace("^", "-"), budget + change)
        base = base or run
        rows.append((name, TrueTokens(first_stage(str(run), PVQVAE))))
    for name, change in STAGE2.items():
        run = trained(
            "put-tiny-transformer.yaml", args.runs / name.replace("^", "-"), budget + change + [f"first_stage={base}"]
        )
        rows.append((name, pluralfill.load_inpainter(run)))

    images = held_out_images(base, args.n, 64)
    holes = holes_for(images, "lama-medium", (0.1, 0.5), seed=1)
    print(
        f"# PUT ablations at put-tiny (64 px), {args.steps} steps a stage, {len(images)} held-out crops, lama-medium "
        f"holes in (0.1, 0.5], {args.samples} samples; {platform.machine()}, {torch.get_num_threads()} threads\n"
    )
    print("| variant | scored by | PSNR ↑ | SSIM ↑ | MAE ↓ | diversity ↑ |")
    print("|---|---|---|---|---|---|")
    for name, inpainter in rows:
        ceiling = isinstance(inpainter, TrueTokens)
        values, _ = run_and_score(
            inpainter,
            images,
            holes,
            1 if ceiling else args.samples,
            metrics=METRICS,
            **({} if ceiling else {"sampler": "put", "top_k": 50}),
        )
        diversity = "—" if ceiling else f"{values['diversity-pixel']:.3f}%"
        print(
            f"| {name} | {'true tokens' if ceiling else 'samples'} | {values['psnr']:.2f} | {values['ssim']:.4f} | "
            f"{values['mae']:.3f}% | {diversity} |"
        )


if __name__ == "__main__":
    main()

"""How far bf16 and int8 drift from fp32, per model: the quality bounds of pluralfill.precision, measured with the
same probe `--precision auto` runs (one network pass with the hole hidden, and the codec's decode of the same
tokens), on the models a user has:

    fixtures    the official tiny checkpoints of PUT CVPR, PUT TPAMI, MaskGIT and DSI, converted (random weights)
    trained     the bundled put-scenes-small (trained on scenes256), and runs/maskgit if this machine has it
    full size   put-ffhq, put-tpami-ffhq-256, maskgit-imagenet-256, mhtma from their named configs
                (random weights: the official sizes, not the official numbers)

Inputs: the last images of scenes256/train (the bundled model's validation tail; one image for the full-size
models), `lama-medium` holes of 20-40%, a new set of holes per seed; mean and spread (sd) over seeds, and the
worst input.

    python benchmarks/precision_quality.py [--n 4] [--seeds 3] [--full-size]
    python benchmarks/precision_quality.py --quick        # the fixtures and 1 image, 1 seed: the test's run
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import pluralfill
from pluralfill import precision as P
from pluralfill.io import read_image
from pluralfill.masks import generate_hole
from pluralfill.pixels import to_tensor
from pluralfill.registry import find_converter

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
CONVERSIONS = {  # converter, files, options
    "PUT CVPR (fixture)": (
        "put-official",
        [FIXTURES / "put_official_tiny" / "transformer_official_format.pth"],
        {"num_heads": 4},
    ),
    "PUT TPAMI (fixture)": (
        "put-official",
        [FIXTURES / "put_tpami_official_tiny" / "transformer_official_format.pth"],
        {"num_heads": 4},
    ),
    "MaskGIT (fixture)": (
        "maskgit-official",
        [
            FIXTURES / "maskgit_official_tiny" / "tokenizer_imagenet128_checkpoint",
            FIXTURES / "maskgit_official_tiny" / "maskgit_imagenet128_checkpoint",
        ],
        {},
    ),
    "DSI (fixture)": ("dsi-official", [FIXTURES / "dsi_official_tiny"], {"resolution": 64}),
}
# dsi is left out at full size: without bf16 units its bf16 convolutions run emulated, over 20 minutes a probe
# set on a 2-core CPU; its fixture row (the same networks, small) stands for it
FULL_SIZE = ("put-ffhq", "put-tpami-ffhq-256", "maskgit-imagenet-256", "mhtma")


def images(n: int) -> list[np.ndarray]:
    paths = sorted((SHARED / "data" / "scenes256" / "train").glob("*.jpg")) or sorted(
        (SHARED / "data" / "scenes256" / "train").iterdir()
    )
    return [read_image(p) for p in paths[-n:]]


def models(quick: bool, full_size: bool, tmp: Path) -> dict:
    """name -> fp32 inpainter."""
    out = {}
    for name, (converter, files, options) in CONVERSIONS.items():
        model = find_converter(converter).convert(*files, config=None, **options)
        model.save_pretrained(tmp / converter / name.split()[1])
        out[name] = pluralfill.load_inpainter(tmp / converter / name.split()[1])
    if quick:
        return out
    out["put-scenes-small (trained)"] = pluralfill.load_inpainter("put-scenes-small")
    if (Path("runs") / "maskgit" / "best" / "config.json").is_file():
        out["toy MaskGIT runs/maskgit (trained)"] = pluralfill.load_inpainter("runs/maskgit")
    if full_size:
        from pluralfill.registry import named_configs

        for name in FULL_SIZE:
            spec, cfg = named_configs()[name]
            torch.manual_seed(0)
            out[f"{name} (random, full size)"] = spec.inpainter(spec.model(cfg).eval())
    return out


def measure(inpainter, pictures, seeds: int) -> dict:
    """{precision: {"psnr": (mean, sd, worst), "agreement" and "tv": (mean, sd, worst) or None, "holds": share}}"""
    r = inpainter.resolution
    precisions = [p for p in ("bf16", "int8") if p != "int8" or P.linear_share(inpainter.model) > 0]
    rows = {p: {"psnr": [], "agreement": [], "tv": [], "holds": []} for p in precisions}
    for seed in range(seeds):
        per = {p: {"psnr": [], "agreement": [], "tv": [], "holds": []} for p in precisions}
        for i, picture in enumerate(pictures):
            x = F.interpolate(to_tensor(picture), size=(r, r), mode="bicubic", align_corners=False).clamp(-1, 1)
            hole = generate_hole("lama-medium", r, seed, i, ratio=(0.2, 0.4))
            known = torch.from_numpy(~hole).float()[None, None]
            for v in P.measure(inpainter.at_precision, x, known, ["fp32", *precisions])[1:]:
                per[v.precision]["psnr"].append(min(v.psnr_db, 99.0))  # identical decodes count as 99 dB
                per[v.precision]["agreement"].append(v.agreement)
                per[v.precision]["tv"].append(v.tv)
                per[v.precision]["holds"].append(v.holds)
        for p in precisions:
            for k in rows[p]:
                rows[p][k].append(per[p][k])
    out = {}
    for p, got in rows.items():
        psnr = np.array(got["psnr"])
        out[p] = {"psnr": (psnr.mean(1).mean(), psnr.mean(1).std(), psnr.min()), "holds": float(np.mean(got["holds"]))}
        for key, worst in (("agreement", np.min), ("tv", np.max)):
            if got[key][0][0] is None:
                out[p][key] = None
            else:
                a = np.array(got[key], dtype=float)
                out[p][key] = (a.mean(1).mean(), a.mean(1).std(), worst(a))
    return out


def table(results: dict) -> str:
    lines = [
        "| model | precision | decoded PSNR vs fp32 (dB) | worst | draws differ (TV) | worst | greedy same | held |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, per in results.items():
        for p, m in per.items():
            b = P.BOUNDS[p]
            psnr = f"{m['psnr'][0]:.1f} ± {m['psnr'][1]:.1f}" if m["psnr"][0] < 99 else "identical"
            tokens = (
                "n/a" if m["agreement"] is None else f"{100 * m['agreement'][0]:.1f} ± {100 * m['agreement'][1]:.1f}%"
            )
            tv = "n/a" if m["tv"] is None else f"{100 * m['tv'][0]:.2f} ± {100 * m['tv'][1]:.2f}%"
            worst = "n/a" if m["tv"] is None else f"{100 * m['tv'][2]:.2f}%"
            lines.append(
                f"| {name} | {p} (≥ {b.psnr_db:g} dB, TV ≤ {b.tv:g}) | {psnr} | {m['psnr'][2]:.1f} | "
                f"{tv} | {worst} | {tokens} | "
                f"{100 * m['holds']:.0f}% of inputs |"
            )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="images")
    ap.add_argument("--seeds", type=int, default=3, help="hole sets")
    ap.add_argument(
        "--full-size", action="store_true", help="also the named configs at the official sizes (random weights)"
    )
    ap.add_argument("--quick", action="store_true", help="the fixtures only, 1 image, 1 seed")
    a = ap.parse_args(argv)
    n, seeds = (1, 1) if a.quick else (a.n, a.seeds)
    pictures = images(n)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, inpainter in models(a.quick, a.full_size, Path(tmp)).items():
            # full size: one image (x seeds), bf16 there is emulated on CPUs without bf16 units and slow
            results[name] = measure(inpainter, pictures[:1] if "full size" in name else pictures, seeds)
            print(table({name: results[name]}).split("\n", 2)[2], flush=True)  # each model's rows as it finishes
    text = table(results)
    print(f"\n{n} image(s) x {seeds} seed(s), torch {torch.__version__}, {torch.get_num_threads()} threads\n\n{text}")
    return results


if __name__ == "__main__":
    main()

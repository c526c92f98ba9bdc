"""Speed of the classical fills at 256x256 with a 25% hole (the foundation issue asks < 2 s for patchmatch).

    python benchmarks/classical.py [--images DIR] [--n 10] [--repeats 3]

Prints median and worst seconds per image over real photos, the centre 128x128 hole (25%), and a
`lama-medium` hole drawn in (0.2, 0.3]. Reports, never asserts.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

import pluralfill
from pluralfill.io import list_images, read_image
from pluralfill.masks import generate_hole

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes256" / "train"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--n", type=int, default=10, help="images to time")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    paths = list_images(args.images)
    paths = paths[:: max(1, len(paths) // args.n)][: args.n]
    images = [read_image(p) for p in paths]
    holes = {
        "center 25%": [generate_hole("center", 256)] * len(images),
        "lama-medium (0.2,0.3]": [
            generate_hole("lama-medium", 256, 0, i, ratio=(0.2, 0.3)) for i in range(len(images))
        ],
    }
    print(
        f"# classical fills, {len(images)} images 256x256, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| method | hole | median s/image | worst s/image |")
    print("|---|---|---|---|")
    for name in ("patchmatch", "telea", "navier-stokes"):
        inpainter = pluralfill.load_inpainter(name)
        inpainter.inpaint(images[0], holes["center 25%"][0], seed=0)  # warm-up
        for label, hs in holes.items():
            times = []
            for img, hole in zip(images, hs):
                best = float("inf")
                for r in range(args.repeats):
                    t = time.perf_counter()
                    inpainter.inpaint(img, hole, seed=r)
                    best = min(best, time.perf_counter() - t)
                times.append(best)
            print(f"| {name} | {label} | {statistics.median(times):.3f} | {max(times):.3f} |")


if __name__ == "__main__":
    main()

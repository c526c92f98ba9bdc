"""Does a drawn line steer the sketch-guided MHTMA? For held-out images with a square hole, fill once with
no lines, once with a horizontal and once with a vertical line across the hole, and measure how much the
fill changes near the line (within 3 px) and elsewhere in the hole. Writes a picture of every case.

    python benchmarks/sketch_steering.py --checkpoint runs/mhtma-sketch [--n 6] [--out sketch_steering.png]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import held_out_images

import pluralfill
from pluralfill.grid import grid_rows, masked_view
from pluralfill.geometry import grow


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a mhtma-sketch run folder")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--size", type=int, default=128, help="image side the test runs at")
    ap.add_argument("--out", default="sketch_steering.png")
    args = ap.parse_args()

    model = pluralfill.load_inpainter(args.checkpoint)
    s = args.size
    hole = np.zeros((s, s), bool)
    hole[s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = True
    lines = {}
    for name, (y0, y1, x0, x1) in {"horizontal": (s // 2, s // 2 + 2, s // 8, 7 * s // 8),
                                   "vertical": (s // 8, 7 * s // 8, s // 2, s // 2 + 2)}.items():  # fmt: skip
        lines[name] = np.zeros((s, s), bool)
        lines[name][y0:y1, x0:x1] = True
    rows, near, far = [], [], []
    for image in held_out_images(args.checkpoint, args.n, s):
        plain = np.asarray(model.inpaint(image, hole, seed=0)[0]).astype(np.float32)
        row = [masked_view(image, hole), plain.astype(np.uint8)]
        for line in lines.values():
            guided = np.asarray(model.inpaint(image, hole, seed=0, sketch=line)[0]).astype(np.float32)
            change = np.abs(guided - plain).mean(-1)
            band = grow(line, 3) & hole
            near.append(change[band].mean())
            far.append(change[hole & ~band].mean())
            row += [masked_view(image, line & hole), guided.astype(np.uint8)]
        rows.append(row + [image])
    grid_rows(rows).save(args.out)
    print(f"{len(near)} guided fills of {args.n} held-out images at {s} px ({model.name})")
    print(f"mean change of the fill within 3 px of the line: {np.mean(near):.2f} / 255")
    print(f"mean change elsewhere in the hole:               {np.mean(far):.2f} / 255")
    print(f"wrote {args.out}: input | no lines | horizontal line, fill | vertical line, fill | original")


if __name__ == "__main__":
    main()

"""Evaluate a folder of inpainted results against ground truth, one column per hole-ratio bin
(Zhou et al. 2023, Table IV): rows are metrics, columns are bins."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pluralfill.errors import PluralfillError
from pluralfill.io import atomic_write, list_images, read_hole, read_image
from pluralfill.masks.presets import STANDARD_BINS
from pluralfill.metrics import diversity, pixel
from pluralfill.shards import Shard

PIXEL_METRICS = ("mae", "psnr", "ssim", "diversity-pixel")
WEIGHT_METRICS = ("lpips", "diversity-lpips", "fid", "p-ids", "u-ids")
ALL_METRICS = PIXEL_METRICS + WEIGHT_METRICS
# direction of "better", shown beside each row
ARROWS = {
    "mae": "↓",
    "psnr": "↑",
    "ssim": "↑",
    "lpips": "↓",
    "fid": "↓",
    "p-ids": "↑",
    "u-ids": "↑",
    "diversity-pixel": "↑",
    "diversity-lpips": "↑",
}
_SAMPLE = re.compile(r"^(?P<stem>.+)_sample(?P<k>\d+)$")


@dataclass
class Item:
    name: str
    target: Path
    mask: Path
    samples: list[Path] = field(default_factory=list)


def choose_metrics(
    metrics: str | None, bins: str | None, gray: bool, protocol: str | None, lpips_net: str, weights: dict
):
    """`evaluate`'s --metrics / --bins / --gray / --protocol -> (metrics in table order, bins, gray, the
    protocol or None, the metrics skipped for want of cached weights)."""
    chosen_protocol, skipped = None, []
    if protocol is not None:
        from pluralfill.metrics.protocols import get_protocol

        chosen_protocol = get_protocol(protocol)
        if metrics is not None or bins is not None:
            raise PluralfillError("--protocol sets the metrics and bins: give neither --metrics nor --bins with it")
        chosen = list(chosen_protocol.metrics)
        bins = ",".join(f"{lo:g}-{hi:g}" for lo, hi in chosen_protocol.bins) or "none"
        gray = chosen_protocol.gray_ssim
    elif metrics is None:
        chosen = available_metrics(lpips_net, weights)
        skipped = [m for m in ALL_METRICS if m not in chosen]
    else:
        chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    chosen = [m for m in ALL_METRICS if m in chosen] + [m for m in chosen if m not in ALL_METRICS]
    return chosen, bins, gray, chosen_protocol, skipped


def available_metrics(lpips_net: str = "alex", weights: dict | None = None) -> list[str]:
    """The pixel metrics, and those whose weights were given (`weights`: lpips_backbone, lpips_heads,
    inception paths) or are in the cache: what runs without a download."""
    from pluralfill.hub import is_available

    weights = weights or {}
    chosen = list(PIXEL_METRICS)
    backbone = "alexnet" if lpips_net == "alex" else "vgg16"
    if is_available(backbone, weights.get("lpips_backbone")) and is_available(
        f"lpips-{lpips_net}", weights.get("lpips_heads")
    ):
        chosen += ["lpips", "diversity-lpips"]
    if is_available("inception-fid", weights.get("inception")):
        chosen += ["fid", "p-ids", "u-ids"]
    return chosen


def parse_bins(text: str | None) -> list[tuple[float, float]]:
    """'standard' (default), 'none', or 'LO-HI,LO-HI,...'."""
    if text in (None, "", "standard"):
        return list(STANDARD_BINS)
    if text == "none":
        return []
    from pluralfill.masks.generate import parse_ratio

    return [parse_ratio(part.strip()) for part in text.split(",")]


def bin_label(lo: float, hi: float) -> str:
    return f"({lo:g}, {hi:g}]"


def find_items(pred_dir, gt_dir, mask_dir) -> tuple[list[Item], list[str]]:
    """Pair predictions (`name.png` or `name_sample{k}.png`) with `gt_dir/name.*` and `mask_dir/name.*`
    (or `name_mask*.png`). Returns the items and the names that were skipped, with why."""
    targets = {p.stem: p for p in list_images(gt_dir)}
    masks: dict[str, Path] = {}
    for p in list_images(mask_dir):
        stem = p.stem.split("_mask")[0] if "_mask" in p.stem else p.stem
        masks.setdefault(stem, p)
    samples: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for p in list_images(pred_dir):
        m = _SAMPLE.match(p.stem)
        stem, k = (m["stem"], int(m["k"])) if m else (p.stem, 0)
        samples[stem].append((k, p))
    items, skipped = [], []
    for stem in sorted(samples):
        if stem not in targets:
            skipped.append(f"{stem}: no ground truth in {gt_dir}")
        elif stem not in masks:
            skipped.append(f"{stem}: no mask in {mask_dir}")
        else:
            items.append(Item(stem, targets[stem], masks[stem], [p for _, p in sorted(samples[stem])]))
    if not items:
        raise PluralfillError(f"no prediction in {pred_dir} has both a ground truth and a mask")
    unscored = sorted(set(targets) - set(samples))
    if unscored:  # the table covers fewer images than the ground truth holds: say so
        shown = ", ".join(unscored[:5]) + (" ..." if len(unscored) > 5 else "")
        skipped.append(
            f"{len(unscored)} of {len(targets)} ground-truth image(s) with no prediction in {pred_dir}: "
            f"{shown} (the scores cover the other {len(targets) - len(unscored)})"
        )
    return items, skipped


@dataclass
class Evaluation:
    bins: list[str]
    counts: dict[str, int]
    values: dict[str, dict[str, float]]  # metric -> bin -> value
    metrics: list[str]

    def table(self, fmt: str = "md") -> str:
        cols = self.bins
        if fmt == "json":  # NaN is not JSON: a value that could not be computed is null
            values = {m: {b: self.values[m].get(b) for b in cols} for m in self.metrics}
            values = {
                m: {b: None if v is None or math.isnan(v) else v for b, v in bv.items()} for m, bv in values.items()
            }
            return json.dumps({"bins": cols, "images": self.counts, "metrics": values}, indent=2)

        def cell(m, b):
            v = self.values[m].get(b, math.nan)
            if math.isnan(v):
                return "" if fmt == "csv" else "n/a"
            if fmt == "csv":
                return f"{v:.6g}"
            return f"{v:.4f}%" if m in ("mae", "diversity-pixel") else f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"

        rows = [["images", *[str(self.counts[b]) for b in cols]]]
        rows += [[m if fmt == "csv" else f"{m} {ARROWS[m]}", *[cell(m, b) for b in cols]] for m in self.metrics]
        if fmt == "csv":
            return "\n".join(",".join(f'"{c}"' if "," in c else c for c in r) for r in [["metric", *cols], *rows])
        lines = ["| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def plot_curves(evaluations: dict[str, Evaluation], path) -> None:
    """Metric-vs-hole-ratio curves, one panel per metric, one line per evaluated folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(evaluations.values()))
    binned = [b for b in first.bins if b != "all"]
    if not binned:
        raise PluralfillError("--plot needs ratio bins (not --bins none)")
    centres = [np.mean([float(x) for x in b.strip("(]").split(",")]) for b in binned]
    n = len(first.metrics)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    for ax, m in zip(axes[0], first.metrics):
        for name, ev in evaluations.items():
            ax.plot(centres, [ev.values[m].get(b, math.nan) for b in binned], marker="o", label=name)
        ax.set_title(f"{m} {ARROWS[m]}")
        ax.set_xlabel("hole ratio")
        ax.grid(alpha=0.3)
    if len(evaluations) > 1:
        axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=120), overwrite=True)
    plt.close(fig)


def _provenance_lines(prov: dict) -> list[str]:
    return [
        f"{k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in prov.items() if v not in (None, "")
    ]


def tables(evaluations: dict[str, Evaluation], fmt: str, provenance: dict[str, dict] | None = None) -> str:
    """One table per evaluated folder (md), a `method` column (csv), or a dict by folder (json); with
    `provenance` (folder -> how its numbers were made) under each table, in `#` lines (csv) or a key (json)."""
    provenance = provenance or {}
    if fmt == "json":
        data = {
            k: json.loads(v.table("json")) | ({"provenance": provenance[k]} if k in provenance else {})
            for k, v in evaluations.items()
        }
        return json.dumps(next(iter(data.values())) if len(data) == 1 else data, indent=2)
    if fmt == "csv":
        lines = [f"# {name}: {line}" for name, prov in provenance.items() for line in _provenance_lines(prov)]
        if len(evaluations) == 1:
            return "\n".join(lines + [next(iter(evaluations.values())).table("csv")])
        for i, (name, ev) in enumerate(evaluations.items()):
            rows = ev.table("csv").splitlines()
            lines += (["method," + rows[0]] if i == 0 else []) + [f"{name},{r}" for r in rows[1:]]
        return "\n".join(lines)
    parts = []
    for name, ev in evaluations.items():
        head = f"**{name}**\n\n" if len(evaluations) > 1 else ""
        prov = "\n".join(f"- {line}" for line in _provenance_lines(provenance[name])) if name in provenance else ""
        parts.append(head + ev.table("md") + (f"\n\n{prov}" if prov else ""))
    return "\n\n".join(parts)


@dataclass
class ItemScores:
    """What one image contributes: its hole ratio, its per-image scores and its Inception features."""

    ratio: float
    scores: dict[str, float]
    real: np.ndarray | None = None
    fake: np.ndarray | None = None


class Scorer:
    """Scores one item at a time with the networks loaded once (on `device`): the part of an evaluation that
    can be split across processes."""

    def __init__(
        self,
        metrics: list[str],
        invert_mask: bool = False,
        gray: bool = False,
        device: str = "cpu",
        lpips_net: str = "alex",
        weights: dict | None = None,
        precision: str = "fp32",
    ):
        import torch

        from pluralfill import precision as precisions

        weights = weights or {}
        if precision not in ("fp32", "bf16"):  # LPIPS and Inception are convolutional: int8 (Linear) changes nothing
            raise PluralfillError(
                f"evaluate runs its networks in fp32 or bf16, not {precision}: int8 quantizes Linear layers, and LPIPS "
                f"/ Inception have none to speak of"
            )
        precisions.check(precision, device)
        self.autocast = lambda: precisions.autocast(torch.device(device), precision)
        unknown = [m for m in metrics if m not in ALL_METRICS]
        if unknown:
            raise PluralfillError(f"unknown metric {unknown[0]!r}; choose from {', '.join(ALL_METRICS)}")
        self.metrics, self.invert_mask, self.gray, self.device = list(metrics), invert_mask, gray, device
        self.lpips = self.inception = None
        if {"lpips", "diversity-lpips"} & set(metrics):
            from pluralfill.metrics.lpips import load_lpips

            self.lpips = load_lpips(lpips_net, weights.get("lpips_backbone"), weights.get("lpips_heads"), device)
        if {"fid", "p-ids", "u-ids"} & set(metrics):
            from pluralfill.metrics.fid import load_inception

            self.inception = load_inception(weights.get("inception"), device)

    def __call__(self, item: Item) -> ItemScores:
        metrics = self.metrics
        target = read_image(item.target)
        hole = read_hole(item.mask, (target.shape[1], target.shape[0]), invert=self.invert_mask)
        preds = [read_image(p) for p in item.samples]
        for p, path in zip(preds, item.samples):
            if p.shape != target.shape:
                raise PluralfillError(
                    f"{path} is {p.shape[1]}x{p.shape[0]} but its ground truth is {target.shape[1]}x{target.shape[0]}"
                )
        scores: dict[str, float] = {}
        stack, truth = np.stack(preds), target[None].repeat(len(preds), 0)
        if "mae" in metrics:
            scores["mae"] = float(pixel.mae(stack, truth).mean())
        if "psnr" in metrics:
            scores["psnr"] = float(pixel.psnr(stack, truth).mean())
        if "ssim" in metrics:
            scores["ssim"] = float(pixel.ssim(stack, truth, gray=self.gray).mean())
        if "diversity-pixel" in metrics and len(preds) > 1:
            scores["diversity-pixel"] = diversity.pixel_diversity(preds)
        if self.lpips is not None:
            import torch

            from pluralfill.pixels import to_tensor

            with torch.no_grad(), self.autocast():
                x, y = to_tensor(stack).to(self.device), to_tensor(target).to(self.device)
                if "lpips" in metrics:
                    scores["lpips"] = float(self.lpips(x, y.expand_as(x)).mean())
            if "diversity-lpips" in metrics and len(preds) > 1:
                with self.autocast():
                    scores["diversity-lpips"] = diversity.lpips_diversity(preds, self.lpips)
        out = ItemScores(float(hole.mean()), scores)
        if self.inception is not None:
            from pluralfill.metrics.fid import inception_features

            with self.autocast():
                out.real, out.fake = (
                    inception_features(self.inception, [target]),
                    inception_features(self.inception, preds),
                )
        return out


def aggregate(results: list[ItemScores], metrics: list[str], bins: list[tuple[float, float]]) -> Evaluation:
    """Per-image scores averaged per bin (and "all"), FID / IDS per bin over all samples, in item order."""
    labels = [bin_label(lo, hi) for lo, hi in bins] + ["all"]
    per_bin: dict[str, dict[str, list[float]]] = {b: defaultdict(list) for b in labels}
    feats: dict[str, dict[str, list[np.ndarray]]] = {b: {"real": [], "fake": []} for b in labels}
    for r in results:
        for b in [bin_label(lo, hi) for lo, hi in bins if lo < r.ratio <= hi] + ["all"]:
            for m, v in r.scores.items():
                per_bin[b][m].append(v)
            per_bin[b]["_count"].append(1)
            if r.real is not None:
                feats[b]["real"].append(r.real)
                feats[b]["fake"].append(r.fake)
    values: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for b in labels:
        for m in metrics:
            if m in per_bin[b]:
                values[m][b] = float(np.mean(per_bin[b][m]))
        if len(feats[b]["real"]) >= 2:
            from pluralfill.metrics.fid import fid_from_features, ids_from_features

            real, fake = np.concatenate(feats[b]["real"]), np.concatenate(feats[b]["fake"])
            if "fid" in metrics:
                values["fid"][b] = fid_from_features(real, fake)
            if {"p-ids", "u-ids"} & set(metrics):
                # IDS pairs each real image with one of its samples: the first
                first = np.concatenate([f[:1] for f in feats[b]["fake"]])
                scores = dict(zip(("p-ids", "u-ids"), ids_from_features(real, first)))
                for m in ("p-ids", "u-ids"):
                    if m in values:
                        values[m][b] = scores[m]
    counts = {b: len(per_bin[b]["_count"]) for b in labels}
    return Evaluation(labels, counts, values, list(metrics))


def evaluate(
    items: list[Item],
    metrics: list[str],
    bins: list[tuple[float, float]],
    invert_mask: bool = False,
    gray: bool = False,
    device: str = "cpu",
    lpips_net: str = "alex",
    weights: dict | None = None,
    progress=None,
    shard=None,
    precision: str = "fp32",
) -> Evaluation:
    """Compute `metrics` per image, average them per bin, and FID / IDS per bin over all samples. `shard`
    (pluralfill.shards): this process scores its slice of the items, the results are gathered, and every
    process gets the evaluation of them all (the same numbers as one process)."""
    score, shard = Scorer(metrics, invert_mask, gray, device, lpips_net, weights, precision), shard or Shard()
    results = []
    for item in shard.take(items):
        try:
            results.append(score(item))
        except PluralfillError as e:  # every process must reach the gather: the error travels with the results
            results.append(str(e))
            break
        if progress is not None:
            progress()
    results = shard.gather(results)
    problem = next((r for r in results if isinstance(r, str)), None)
    if problem is not None:
        raise PluralfillError(problem)
    return aggregate(results, metrics, bins)

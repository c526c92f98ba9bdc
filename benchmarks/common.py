"""Shared by the benchmark scripts: the held-out split of scenes256, training a named config once, scoring
samples with `pluralfill evaluate`'s code, and mean ± spread over seeds.

The held-out split is by source image (never by crop): the 8 sources the bundled model's training config
excludes. Every experiment trains with `data.exclude` set to them (`budget(...)`) and is scored on their crops."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from pluralfill.data import ImageList
from pluralfill.data.datasets import center_crop
from pluralfill.io import read_image, write_hole, write_image
from pluralfill.masks import generate_hole
from pluralfill.metrics.evaluate import PIXEL_METRICS, evaluate, find_items

ROOT = Path(__file__).resolve().parents[1]
SCENES = ROOT.parent / "shared" / "data" / "scenes256" / "train"
HELD_OUT_CONFIG = ROOT / "src" / "pluralfill" / "configs" / "put-scenes-small-pvqvae.yaml"


def held_out_sources(config: Path = HELD_OUT_CONFIG) -> list[str]:
    """The file-name patterns of the held-out sources (what a training config excludes)."""
    return list(yaml.safe_load(Path(config).read_text())["data"]["exclude"])


def held_out_paths(n: int, config: Path = HELD_OUT_CONFIG, folder: Path = SCENES) -> list[Path]:
    """Up to `n` crops of the sources `config` excludes, spread evenly over them."""
    trained = set(ImageList(folder, exclude=held_out_sources(config)).paths)  # the same pattern rule as training
    paths = [p for p in ImageList(folder).paths if p not in trained]
    return paths[:: max(1, len(paths) // n)][:n]


def held_out_split(n: int, resolution: int = 256) -> list[np.ndarray]:
    """`held_out_paths`' images, centre-cropped to `resolution`."""
    return [center_crop(read_image(p), resolution) for p in held_out_paths(n)]


def budget(steps: int, quick: bool = False) -> list[str]:
    """Overrides every experiment's training runs share: scenes256 without the held-out sources, `steps` steps;
    `quick`: 2 images a batch, no data workers (the --quick modes the tests run)."""
    every = max(1, steps)
    out = [
        f"data.train={SCENES}",
        f"data.exclude=[{', '.join(held_out_sources())}]",
        f"steps={steps}",
        f"val_every={every}",
        f"sample_every={every}",
        f"checkpoint_every={every}",
        "log_every=1" if quick else "log_every=10",
    ]
    return out + (["batch_size=2", "data.num_workers=0"] if quick else ["data.num_workers=1"])


def trained(config: str, run: Path, overrides: list[str]) -> Path:
    """The run folder of `configs/<config>` with `overrides`, trained now unless it is already there
    (delete it to retrain)."""
    from pluralfill.registry import load_config, train

    run = Path(run)
    if not (run / "best" / "config.json").is_file():
        train(
            load_config(
                ROOT / "src" / "pluralfill" / "configs" / config, [f"data.train={SCENES}", f"run_dir={run}", *overrides]
            )
        )
    return run


def mean_spread(values, digits: int = 2, unit: str = "") -> str:
    """ "mean ± sample standard deviation" over seeds (± 0 for one value)."""
    v = np.asarray(values, dtype=float)
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}f}{unit} ± {sd:.{digits}f}{unit}"


def held_out_images(run: Path, n: int, resolution: int) -> list[np.ndarray]:
    """The validation images of a training run (never trained on), centre-cropped to `resolution`."""
    cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())
    data = cfg["data"]
    exclude = data.get("exclude") or []
    paths = (
        ImageList(data["val"], exclude=exclude).paths
        if data.get("val")
        else ImageList(data["train"], exclude=exclude).split(data["val_fraction"], cfg["seed"])[1]
    )
    return [center_crop(read_image(p), resolution) for p in paths[:n]]


def holes_for(images, preset: str, ratio: tuple[float, float], seed: int = 0) -> list[np.ndarray]:
    return [generate_hole(preset, im.shape[0], seed, i, ratio=ratio) for i, im in enumerate(images)]


def run_and_score(
    inpainter, images, holes, num_samples: int, metrics=PIXEL_METRICS, inputs=None, seed: int = 0, **options
):
    """Inpaint every image, time it, and score with the evaluate command's code. Returns (values, s/image).
    `inputs`: what the inpainter is given, if not the images themselves (e.g. an object pasted under the hole);
    the scores are always against `images`."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for d in ("gt", "masks", "pred"):
            (tmp / d).mkdir()
        seconds = []
        for i, (image, hole) in enumerate(zip(images, holes)):
            write_image(tmp / "gt" / f"{i:04d}.png", image)
            write_hole(tmp / "masks" / f"{i:04d}.png", hole)
            t = time.perf_counter()
            given = image if inputs is None else inputs[i]
            samples = inpainter.inpaint(given, hole, num_samples=num_samples, seed=seed * 100_003 + i, **options)
            seconds.append(time.perf_counter() - t)
            for k, s in enumerate(samples):
                write_image(tmp / "pred" / f"{i:04d}_sample{k}.png", s)
        items, _ = find_items(tmp / "pred", tmp / "gt", tmp / "masks")
        result = evaluate(items, list(metrics), bins=[])
    return {m: result.values[m].get("all", float("nan")) for m in metrics}, float(np.mean(seconds))


def verdict(ours, theirs, higher_is_better: bool = True) -> str:
    """Does `ours` (the row the paper favours) beat `theirs`, over seeds? Within noise when the gap of the means is
    under two standard errors of that gap; otherwise reproduced in direction, or not (the other row wins)."""
    a, b = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    gap = (a.mean() - b.mean()) * (1 if higher_is_better else -1)
    noise = 2 * np.sqrt((a.var(ddof=1) / len(a) if len(a) > 1 else 0) + (b.var(ddof=1) / len(b) if len(b) > 1 else 0))
    if abs(gap) <= noise:
        return "within noise"
    return "reproduced in direction" if gap > 0 else "not reproduced"


def run_metrics(run: Path) -> list[dict]:
    """The rows of a run's metrics.csv, as floats (empty cells dropped)."""
    import csv

    with open(Path(run) / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def toy_run(method: str, runs: Path, seed: int, steps: int, quick: bool = False) -> Path:
    """The run folder of a toy model (`put`, `maskgit`, `mhtma`) trained with `budget(steps)` and `seed`,
    every stage the same number of steps; trained now unless it is already there. `mhtma` is the run
    benchmarks/mhtma_ablations.py trains for its MHTMA row (same folder, same settings)."""
    common = budget(steps, quick) + [f"seed={seed}"]
    if method == "mhtma":
        return trained("mhtma-tiny.yaml", runs / "MHTMA" / f"seed{seed}", common)
    first, second = {
        "put": ("put-tiny-pvqvae.yaml", "put-tiny-transformer.yaml"),
        "maskgit": ("maskgit-tiny-tokenizer.yaml", "maskgit-tiny-transformer.yaml"),
    }[method]
    tokenizer = trained(first, runs / method / f"seed{seed}" / "stage1", common)
    return trained(second, runs / method / f"seed{seed}" / "stage2", common + [f"first_stage={tokenizer}"])


def experiment_parser(doc: str, steps: int, n: int, steps_help: str):
    """The options every experiment script shares: --steps --seeds --n --runs --figures --quick."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=steps, help=steps_help)
    ap.add_argument("--seeds", type=int, default=3, help="training seeds (each a full set of runs)")
    ap.add_argument("--n", type=int, default=n, help="held-out images")
    ap.add_argument(
        "--runs", type=Path, default=ROOT / "runs" / "toy", help="where the runs go (a run that is there is reused)"
    )
    ap.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "figures")
    ap.add_argument("--quick", action="store_true", help="2 steps, 2 seeds, a few images: the test's run")
    return ap


def parse_experiment(ap, argv=None, **quick):
    """Parsed options; with --quick: 2 steps and 2 seeds, `quick`'s settings, and a temporary runs folder
    unless --runs is given."""
    args = ap.parse_args(argv)
    if args.quick:
        for key, value in {"steps": 2, "seeds": 2, **quick}.items():
            setattr(args, key, value)
        if not (argv and "--runs" in argv):
            args.runs = Path(tempfile.mkdtemp()) / "runs"
    return args

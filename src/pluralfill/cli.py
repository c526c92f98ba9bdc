"""The `pluralfill` command. It parses, calls the library and prints; the work lives elsewhere."""

from __future__ import annotations

import csv
import io as _stringio
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pluralfill import DEFAULT_METHOD, __version__
from pluralfill import io as pio
from pluralfill.errors import PluralfillError

app = typer.Typer(
    help="Pluralistic image inpainting: several different, plausible fills of a hole.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
masks_app = typer.Typer(help="Generate hole masks from presets and inspect mask folders.", no_args_is_help=True)
app.add_typer(masks_app, name="masks")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # one message, one line


MaxPixels = Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
InvertMask = Annotated[bool, typer.Option("--invert-mask", help="Masks are white where pixels are KNOWN (PUT's files).")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip


def _version(value: bool):
    if value:
        out.print(f"pluralfill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
):
    pass


# ------------------------------------------------------------------------------------------------ inpaint


def _run_jobs(jobs, inpainter, outdir: Path, num_samples, seed, grid, invert, resize, max_pixels, overwrite,
              composite, options) -> int:  # fmt: skip
    """Inpaint every job; a failing image is reported and skipped. Returns the number that failed."""
    n_out = 1 if inpainter.deterministic else num_samples
    planned = [outdir / f"{j.name}_sample{k}.png" for j in jobs for k in range(n_out)]
    planned += [outdir / f"{j.name}_grid.png" for j in jobs] if grid else []
    planned += [outdir / f"{j.name}_trace.png" for j in jobs] if options.get("trace") else []
    planned += [outdir / f"{j.name}_entropy.png" for j in jobs] if options.get("entropy") else []
    pio.check_writable(planned, overwrite)
    if inpainter.deterministic and num_samples > 1:
        err.print(f"note: {inpainter.name} is deterministic: writing 1 sample per image, not {num_samples}")
    # learned methods that batch across images fill several images per pass (one sample per row)
    group = max(1, inpainter.batch_size // n_out) if getattr(inpainter, "batches_images", False) else 1
    if options.get("trace") or options.get("entropy") or options.get("sketch") is not None:
        group = 1
    failed = 0

    def report(job, e):
        nonlocal failed
        if len(jobs) == 1:
            raise e
        err.print(f"error: {job.image.name}: {e}", markup=False, highlight=False, soft_wrap=True)
        failed += 1

    def read(job):
        image = pio.read_image(job.image, max_pixels)
        size = (image.shape[1], image.shape[0])
        hole = pio.read_hole(job.mask, size, invert, resize, max_pixels)
        job_options = dict(options)
        if isinstance(options.get("sketch"), Path):  # white lines, read at each image's size
            job_options["sketch"] = pio.read_hole(options["sketch"], size, False, resize, max_pixels, what="sketch")
        return image, hole, job_options

    def write(job, image, hole, samples):
        for k, s in enumerate(samples):
            pio.write_image(outdir / f"{job.name}_sample{k}.png", s, overwrite)
        for extra in ("trace", "entropy"):  # pictures of how the samples were made
            if options.get(extra) and getattr(inpainter, f"last_{extra}", None) is not None:
                pio.write_image(outdir / f"{job.name}_{extra}.png", getattr(inpainter, f"last_{extra}"), overwrite)
        if grid:
            from pluralfill.grid import make_grid

            pio.write_image(outdir / f"{job.name}_grid.png", make_grid(image, hole, samples), overwrite)

    with _progress() as bar:
        task = bar.add_task(f"{inpainter.name}", total=len(jobs))
        for start in range(0, len(jobs), group):
            ready = []
            for job in jobs[start : start + group]:
                try:
                    ready.append((job, *read(job)))
                except PluralfillError as e:
                    report(job, e)
                    bar.advance(task)
            results = None
            if len(ready) > 1:
                try:
                    results = inpainter.inpaint_many([r[1] for r in ready], [r[2] for r in ready], num_samples, seed,
                                                     composite=composite, **options)  # fmt: skip
                except PluralfillError:
                    pass  # one image of the group is at fault: take them one by one to say which
            if results is not None:
                for (job, image, hole, _), samples in zip(ready, results):
                    try:
                        write(job, image, hole, samples)
                    except PluralfillError as e:
                        report(job, e)
                    bar.advance(task)
                continue
            for job, image, hole, job_options in ready:
                try:
                    write(job, image, hole, inpainter.inpaint(image, hole, num_samples, seed, composite=composite, **job_options))
                except PluralfillError as e:
                    report(job, e)
                bar.advance(task)
    return failed


def _parse_options(pairs: list[str]) -> dict:
    """`key=value` method options; values are read as JSON where they parse (numbers, true/false)."""
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise PluralfillError(f"--option expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            options[k.replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            options[k.replace("-", "_")] = v
    return options


@app.command()
def inpaint(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    mask: Annotated[Optional[Path], typer.Option("--mask", "-m", help="One mask for every image.")] = None,
    mask_dir: Annotated[Optional[Path], typer.Option("--mask-dir", help="Folder of masks named like the images.")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="Method name (see `pluralfill info`).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Checkpoint folder of a learned method.")] = None,
    num_samples: Annotated[int, typer.Option("-n", "--num-samples", min=1, help="Samples per image.")] = 1,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed: the same seed gives the same samples.")] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Also write NAME_grid.png: input, hole and all samples.")] = False,
    invert_mask: InvertMask = False,
    resize_mask: Annotated[bool, typer.Option("--resize-mask", help="Resize masks to their image (nearest).")] = False,
    no_composite: Annotated[bool, typer.Option("--no-composite", help="Keep the method's known pixels as it made them.")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, mps ...")] = "cpu",
    sampler: Annotated[Optional[str], typer.Option("--sampler", help="PUT: 'put' (Algorithm 1) or 'parallel' (MaskGIT decoding).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Parallel decoding passes (maskgit; put with --sampler parallel).")] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help="Mask schedule: cosine, linear, square, cubic, arccos, pow<k>.")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Sample each token from the k most likely codes.")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Divides the logits before sampling.")] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Also write NAME_trace.png: the tokens and image at every step.")] = False,
    entropy: Annotated[bool, typer.Option("--entropy", help="dsi: also write NAME_entropy.png, the entropy of the structure distribution at every position.")] = False,
    sketch: Annotated[Optional[Path], typer.Option("--sketch", help="mhtma-sketch: white lines on black, the image's size, to steer the fill.")] = None,
    attention_branch: Annotated[Optional[str], typer.Option("--attention-branch", help="mhtma: on, off (convolution branch only), high or low (every head at the image's highest / lowest temperature).")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="Method option key=value (repeatable).")] = None,
    max_pixels: MaxPixels = pio.DEFAULT_MAX_PIXELS,
    overwrite: Overwrite = False,
):
    """Fill the holes of IMAGES; writes NAME_sample{k}.png per sample into the output folder.

    Masks are white where pixels are missing. Without --mask or --mask-dir, each image pairs with
    NAME_mask*.png beside it (LaMa layout).
    """
    from pluralfill.methods import load_inpainter

    if mask is not None and mask_dir is not None:
        raise PluralfillError("give either --mask or --mask-dir, not both")
    jobs, unpaired = pio.find_jobs(images, mask, mask_dir)
    if unpaired:
        names = ", ".join(p.name for p in unpaired[:10]) + (" ..." if len(unpaired) > 10 else "")
        err.print(f"skipped {len(unpaired)} image(s) with no mask: {names}", highlight=False)
    if not jobs:
        raise PluralfillError("no image has a mask: pass --mask, --mask-dir, or put NAME_mask.png beside NAME.png")
    if output.exists() and not output.is_dir():
        raise PluralfillError(f"output must be a folder, but {output} is a file")
    inpainter = load_inpainter(checkpoint or method or DEFAULT_METHOD, device=device)
    loaded = getattr(getattr(inpainter, "model", None), "method", inpainter.name)
    if checkpoint is not None and method is not None and method != loaded:
        raise PluralfillError(f"--method {method} but {checkpoint} holds a {loaded} model")
    options = _parse_options(option or [])
    flags = {"sampler": sampler, "steps": steps, "schedule": schedule, "top_k": top_k, "temperature": temperature,
             "sketch": sketch, "attention_branch": attention_branch}  # fmt: skip
    options |= {k: v for k, v in flags.items() if v is not None} | ({"trace": True} if trace else {})
    options |= {"entropy": True} if entropy else {}
    inpainter.check_options(options)
    failed = _run_jobs(jobs, inpainter, output, num_samples, seed, grid, invert_mask, resize_mask, max_pixels,
                       overwrite, not no_composite, options)  # fmt: skip
    done = len(jobs) - failed
    err.print(f"inpainted {done} image(s) with {inpainter.name} into {output}/", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("pluralfill-demo"),
    method: Annotated[str, typer.Option("--method", help="Method to show.")] = DEFAULT_METHOD,
    num_samples: Annotated[int, typer.Option("-n", "--num-samples", min=1)] = 8,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    overwrite: Overwrite = False,
):
    """Inpaint the bundled photo with a generated hole; writes a grid of input, hole and the samples."""
    from importlib.resources import files

    from pluralfill.grid import make_grid
    from pluralfill.masks import generate_hole
    from pluralfill.methods import load_inpainter

    with files("pluralfill.assets").joinpath("coffee.jpg").open("rb") as f:
        from PIL import Image

        image = pio.to_rgb(Image.open(f))
    hole = generate_hole("mhtma", image.shape[:2], seed=7)
    paths = [output / "coffee.png", output / "coffee_hole.png", output / "coffee_grid.png"]
    pio.check_writable(paths, overwrite)
    inpainter = load_inpainter(method)
    with err.status(f"{inpainter.name}: {num_samples} samples"):
        samples = inpainter.inpaint(image, hole, num_samples, seed)
    pio.write_image(paths[0], image, overwrite)
    pio.write_hole(paths[1], hole, overwrite)
    pio.write_image(paths[2], make_grid(image, hole, samples), overwrite)
    out.print(f"wrote {paths[2]} ({len(samples)} samples of {inpainter.name}, hole {hole.mean():.0%} of the image)")


# ------------------------------------------------------------------------------------------------ sketch


@app.command()
def sketch(
    image: Annotated[Path, typer.Argument(help="A photo.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The sketch: white one-pixel lines on black (PNG).")],
    threshold: Annotated[float, typer.Option("--threshold", help="Edge strength above which a pixel is a line.")] = 0.65,
    min_area: Annotated[int, typer.Option("--min-area", min=0, help="Drop 8-connected pieces under this many px (at 256 px; scaled with the image).")] = 100,
    pidinet: Annotated[Optional[Path], typer.Option("--pidinet", help="PiDiNet weights (table5_pidinet.pth); default: the classical edge detector.")] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    max_pixels: MaxPixels = pio.DEFAULT_MAX_PIXELS,
    overwrite: Overwrite = False,
):
    """Extract the sketch of a photo (seed 002, IV-F) and show how: writes OUTPUT and OUTPUT_steps.png
    (photo | edge map | thresholded | area opened | skeleton). Draw on it and pass it to `inpaint --sketch`."""
    from pluralfill.grid import grid_rows
    from pluralfill.masks.sketch import extract_sketch

    if not 0 < threshold < 1:
        raise PluralfillError(f"--threshold must be between 0 and 1, got {threshold}")
    steps_path = output.with_name(f"{output.stem}_steps.png")
    pio.check_writable([output, steps_path], overwrite)
    photo = pio.read_image(image, max_pixels)
    detector = None
    if pidinet is not None:
        from pluralfill.nn.pidinet import load_pidinet

        detector = load_pidinet(pidinet, device)
    result = extract_sketch(photo, threshold, min_area, detector)
    pio.write_hole(output, result.lines, overwrite)
    strip = grid_rows([[photo] + [np.repeat(a[..., None], 3, axis=2) for a in result.steps()]])
    pio.write_image(steps_path, strip, overwrite)
    edges = "PiDiNet" if detector is not None else "classical edges"
    out.print(f"wrote {output} ({int(result.lines.sum())} line px; {edges}) and {steps_path}")


# ------------------------------------------------------------------------------------------------ masks


@masks_app.command("generate")
def masks_generate(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="Mask preset (see `pluralfill masks presets`).")] = "lama-medium",
    size: Annotated[int, typer.Option("--size", min=8, help="Side of the square masks in px.")] = 256,
    num: Annotated[int, typer.Option("-n", "--num", min=1, help="Masks to write (per bin with --bins).")] = 100,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    ratio: Annotated[Optional[str], typer.Option("--ratio", help="Keep holes whose fraction is in (LO, HI], e.g. 0.4-0.6.")] = None,
    bins: Annotated[bool, typer.Option("--bins", help="NUM masks in each standard bin (0,0.1] ... (0.5,0.6], one folder each.")] = False,
    for_images: Annotated[Optional[Path], typer.Option("--for-images", help="One mask per image of this folder, named like it (for --mask-dir / evaluate).")] = None,
    overwrite: Overwrite = False,
):
    """Write NUM masks (PNG, white = hole) and masks.csv with each mask's hole fraction."""
    from pluralfill.masks import STANDARD_BINS, generate_hole, get_preset, parse_ratio

    p = get_preset(preset)
    if bins and (ratio or for_images):
        raise PluralfillError("--bins makes its own folders: give it without --ratio and --for-images")
    ranges = [(f"{lo:g}-{hi:g}/", (lo, hi)) for lo, hi in STANDARD_BINS] if bins else [("", parse_ratio(ratio) if ratio else None)]
    if for_images is not None:
        images = pio.list_images(for_images)
        if not images:
            raise PluralfillError(f"no images in {for_images}")
        # each mask has the size of its image; --size is ignored
        plan = [("", ranges[0][1], i, pio.image_size(q)[::-1]) for i, q in enumerate(images)]
        names = [f"{q.stem}.png" for q in images]
    else:
        plan = [(sub, r, i, (size, size)) for sub, r in ranges for i in range(num)]
        names = [f"{sub}{p.name}_{i:05d}.png" for sub, _, i, _ in plan]
    pio.check_writable([output / n for n in names] + [output / "masks.csv"], overwrite)
    rows = []
    with _progress() as bar:
        task = bar.add_task(p.name, total=len(plan))
        for (_, r, i, hw), name in zip(plan, names):
            hole = generate_hole(p, hw, seed, i, ratio=r)
            pio.write_hole(output / name, hole, overwrite)
            rows.append([name, f"{hole.mean():.6f}", p.name, seed, i])
            bar.advance(task)
    text = _stringio.StringIO()
    csv.writer(text, lineterminator="\n").writerows([["file", "ratio", "preset", "seed", "index"], *rows])
    pio.write_text(output / "masks.csv", text.getvalue(), overwrite)
    ratios = np.array([float(r[1]) for r in rows])
    out.print(f"wrote {len(rows)} masks to {output}/ (hole fraction {ratios.min():.3f}-{ratios.max():.3f}, mean {ratios.mean():.3f})")


@masks_app.command("stats")
def masks_stats(
    folder: Annotated[Path, typer.Argument(help="Folder of mask images (searched recursively).")],
    invert_mask: InvertMask = False,
):
    """Print the histogram of hole fractions of a mask folder over the standard bins."""
    from pluralfill.masks import STANDARD_BINS

    if not folder.is_dir():
        raise PluralfillError(f"not a folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if pio.is_image_file(p))
    if not files:
        raise PluralfillError(f"no mask images in {folder}")
    ratios = []
    with _progress() as bar:
        task = bar.add_task("reading masks", total=len(files))
        for f in files:
            ratios.append(pio.hole_ratio(pio.read_hole(f, invert=invert_mask)))
            bar.advance(task)
    ratios = np.array(ratios)
    edges = [(0.0, 0.0, "0 (empty)")] + [(lo, hi, f"({lo:g}, {hi:g}]") for lo, hi in STANDARD_BINS] + [(0.6, 1.0, "(0.6, 1]")]
    table = Table(title=f"{len(ratios)} masks in {folder}, mean hole fraction {ratios.mean():.3f}")
    for c in ("hole fraction", "masks", "share", ""):
        table.add_column(c, justify="right" if c in ("masks", "share") else "left")
    for lo, hi, label in edges:
        n = int(np.sum(ratios == 0)) if hi == 0 else int(np.sum((ratios > lo) & (ratios <= hi)))
        share = n / len(ratios)
        table.add_row(label, str(n), f"{share:.1%}", "█" * round(share * 40))
    out.print(table)


@masks_app.command("presets")
def masks_presets():
    """List the mask presets and their sources."""
    from pluralfill.masks import PRESETS

    table = Table()
    for c in ("preset", "what", "source"):
        table.add_column(c)
    for p in PRESETS.values():
        table.add_row(p.name, p.description, p.source)
    out.print(table)


# ------------------------------------------------------------------------------------------------ evaluate


@app.command()
def evaluate(
    pred: Annotated[list[Path], typer.Option("--pred", help="Folder of results: NAME.png or NAME_sample{k}.png; repeat to compare methods.")],
    gt: Annotated[Path, typer.Option("--gt", help="Folder of ground-truth images NAME.*")],
    masks: Annotated[Path, typer.Option("--masks", help="Folder of masks NAME.png or NAME_mask*.png.")],
    metrics: Annotated[Optional[str], typer.Option("--metrics", help="Comma list; default: the pixel metrics plus those whose weights are cached.")] = None,
    bins: Annotated[Optional[str], typer.Option("--bins", help="'standard' (0,0.1]..(0.5,0.6], 'none', or LO-HI,LO-HI,...")] = None,
    fmt: Annotated[str, typer.Option("--format", help="md, csv or json.")] = "md",
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write metric-vs-hole-ratio curves to this PNG.")] = None,
    gray: Annotated[bool, typer.Option("--gray", help="SSIM on luma only (PUT's protocol).")] = False,
    invert_mask: InvertMask = False,
    lpips_net: Annotated[str, typer.Option("--lpips-net", help="LPIPS backbone: alex or vgg.")] = "alex",
    lpips_backbone: Annotated[Optional[Path], typer.Option("--lpips-backbone", help="AlexNet / VGG-16 weights file.")] = None,
    lpips_heads: Annotated[Optional[Path], typer.Option("--lpips-heads", help="LPIPS v0.1 linear heads file.")] = None,
    inception: Annotated[Optional[Path], typer.Option("--inception", help="pt_inception-2015-12-05 weights file.")] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Also write the table to this file.")] = None,
    overwrite: Overwrite = False,
):
    """Score results against ground truth: one column per hole-ratio bin, like seed 002's Table IV."""
    from pluralfill.metrics.evaluate import ALL_METRICS, evaluate as run, find_items, parse_bins, plot_curves, tables

    if fmt not in ("md", "csv", "json"):
        raise PluralfillError(f"--format must be md, csv or json, got {fmt!r}")
    if lpips_net not in ("alex", "vgg"):
        raise PluralfillError(f"--lpips-net must be alex or vgg, got {lpips_net!r}")
    if output is not None:
        pio.check_writable([output], overwrite)
    if plot is not None:
        pio.check_writable([plot], overwrite)
    weights = {"lpips_backbone": lpips_backbone, "lpips_heads": lpips_heads, "inception": inception}
    if metrics is None:
        chosen = _available_metrics(lpips_net, weights)
        skipped = [m for m in ALL_METRICS if m not in chosen]
        if skipped:
            err.print(f"note: skipping {', '.join(skipped)} (weights not in the cache; name them with --metrics to fetch)")
    else:
        chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    chosen = [m for m in ALL_METRICS if m in chosen] + [m for m in chosen if m not in ALL_METRICS]
    names = [p.name or str(p) for p in pred]
    if len(set(names)) < len(names):
        names = [str(p) for p in pred]
    evaluations = {}
    for name, folder in zip(names, pred):
        items, skipped_items = find_items(folder, gt, masks)
        for s in skipped_items:
            err.print(f"skipped {s}", highlight=False)
        with _progress() as bar:
            task = bar.add_task(f"evaluating {name}", total=len(items))
            evaluations[name] = run(items, chosen, parse_bins(bins), invert_mask, gray, device, lpips_net, weights,
                                    progress=lambda: bar.advance(task))  # fmt: skip
    text = tables(evaluations, fmt)
    print(text)
    if output is not None:
        pio.write_text(output, text + "\n", overwrite)
    if plot is not None:
        plot_curves(evaluations, plot)
        err.print(f"wrote {plot}")


def _available_metrics(lpips_net: str, weights: dict) -> list[str]:
    """Pixel metrics always; the others when their weights were given or are in the cache."""
    from pluralfill.metrics.evaluate import PIXEL_METRICS
    from pluralfill.pretrained import WEIGHTS, cache_dir

    def have(name, given):
        return given is not None or (cache_dir() / WEIGHTS[name].filename).is_file()

    chosen = list(PIXEL_METRICS)
    backbone = "alexnet" if lpips_net == "alex" else "vgg16"
    if have(backbone, weights["lpips_backbone"]) and have(f"lpips-{lpips_net}", weights["lpips_heads"]):
        chosen += ["lpips", "diversity-lpips"]
    if have("inception-fid", weights["inception"]):
        chosen += ["fid", "p-ids", "u-ids"]
    return chosen


# ------------------------------------------------------------------------------------------------ train


@app.command(context_settings={"allow_extra_args": False})
def train(
    config: Annotated[Optional[Path], typer.Argument(help="YAML config (see configs/); omit with --resume.", show_default=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. steps=2000 optim.lr=1e-4", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue this run folder from its last checkpoint.")] = None,
):
    """Train a stage of a method: `pluralfill train configs/put-tiny-pvqvae.yaml data.train=DIR`.

    A run folder gets the resolved config, metrics.csv, TensorBoard logs (tb/), sample sheets (samples/),
    last.ckpt to resume from, and last/ and best/ model folders for --checkpoint.
    """
    from pluralfill.train.config import load_config
    from pluralfill.train import train as run_training
    from pluralfill.train.run import resolve_run_config

    items = list(overrides or [])
    if config is not None and "=" in str(config):  # only overrides given, with --resume
        items, config = [str(config), *items], None
    if resume is not None:
        cfg = load_config(None, items, base=resolve_run_config(resume))
    elif config is None:
        raise PluralfillError("give a config file, or --resume RUN_DIR")
    else:
        cfg = load_config(config, items)
    folder = run_training(cfg, resume)
    err.print(f"run folder: {folder}  (inference: --checkpoint {folder / 'best'})", highlight=False)


# ------------------------------------------------------------------------------------------------ bench


@app.command()
def bench(
    method: Annotated[str, typer.Option("--method", help="put (Algorithm 1 vs parallel, batching) or dsi (cached vs uncached sampling).")] = "put",
    config: Annotated[Optional[str], typer.Option("--config", help="Named config (random weights: speed does not depend on them); default put-tiny / dsi.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Measure a trained model folder instead.")] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="put-tiny only: image side (256 = 32x32 tokens).")] = None,
    hole: Annotated[float, typer.Option("--hole", help="Fraction of tokens missing.")] = 0.4,
    samples: Annotated[int, typer.Option("-n", "--samples", min=1, help="Samples batched together.")] = 8,
    steps: Annotated[int, typer.Option("--steps", help="Parallel decoding passes.")] = 12,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs after one warm-up; the median counts.")] = 3,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the transformer.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Measure sampling speed. PUT: passes/s, tokens/s, P-VQVAE images/s, s per image and per sample, peak
    memory, and the ratios batched vs one by one, parallel vs Algorithm 1 (and bf16 vs fp32 and MFU on CUDA).
    DSI: structure sampling with and without the layer caches, and whole images for 1 and N samples."""
    from pluralfill.bench import bench_dsi, bench_put

    if not 0 < hole < 1:
        raise PluralfillError(f"--hole must be in (0, 1), got {hole}")
    if method not in ("put", "dsi"):
        raise PluralfillError(f"--method must be put or dsi, got {method!r}")
    ckpt = str(checkpoint) if checkpoint else None
    with err.status("measuring (the slow paths run a forward pass per token: this takes a while)"):
        if method == "dsi":
            result = bench_dsi(config or "dsi", ckpt, hole, samples, device, repeats)
        else:
            result = bench_put(config or "put-tiny", ckpt, resolution, hole, samples, steps, device, repeats, compile)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    if method == "dsi":
        title = f"{result['model']}: {result['sampled_positions']} of the {result['latent']} top codes sampled"
    else:
        title = f"{result['model']} at {result['resolution']} px, {result['missing_tokens']} of {result['tokens']} tokens missing"
    table = Table(title=f"{title}, {result['device']} ({result['threads']} threads)")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    for group in ("forward_per_s", "algorithm1", "parallel", "structure", "image", "ratios"):
        if group not in result:
            continue
        for k, v in result[group].items():
            table.add_row(f"{group}: {k}", f"{v:.3f}" if isinstance(v, float) else str(v))
    for k in ("pvqvae_images_per_s", "mfu_fp32_forward_batch", "peak_memory_mb"):
        if k in result:
            table.add_row(k, f"{result[k]:.3f}")
    out.print(table)


# ------------------------------------------------------------------------------------------------ serve


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; loopback unless you mean otherwise.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 7860,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    checkpoint: Annotated[Optional[list[Path]], typer.Option("--checkpoint", help="Learned model to offer (repeatable).")] = None,
):
    """Start the local web app: paint a hole, get N different fills, download them. API docs at /docs."""
    try:
        import uvicorn

        from pluralfill.app.server import create_app
    except ImportError:
        raise PluralfillError("the web app needs its extra: pip install 'pluralfill[app]'") from None
    application = create_app([str(c) for c in checkpoint or []], device=device)
    err.print(f"pluralfill web app on http://{host}:{port}/  (Ctrl+C to stop)")
    uvicorn.run(application, host=host, port=port, log_level="warning")


# ------------------------------------------------------------------------------------------------ convert

convert_app = typer.Typer(help="Convert official checkpoints to pluralfill checkpoint folders.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")


@convert_app.command("put-official")
def convert_put_official(
    checkpoint: Annotated[Path, typer.Argument(help="Official PUT transformer checkpoint (.pth).")],
    output: Annotated[Path, typer.Argument(help="Folder to write (config.json + model.safetensors).")],
    config: Annotated[Optional[str], typer.Option("--config", help="ffhq, places2 or imagenet: check the shapes against it.")] = None,
    num_heads: Annotated[Optional[int], typer.Option("--num-heads", help="Attention heads, when no --config (default 8).")] = None,
    overwrite: Overwrite = False,
):
    """Read an official PUT checkpoint (github liuqk3/PUT) safely and write our format; unknown or missing
    keys are reported by name."""
    from pluralfill.pretrained.put_official import convert

    if output.exists() and not overwrite:
        raise PluralfillError(f"output exists: {output} (pass --overwrite to replace)")
    with err.status(f"reading {checkpoint}"):
        model = convert(checkpoint, config, num_heads)
    if config is None:
        model.config.name = f"put-{checkpoint.stem}"
    model.save_pretrained(output, overwrite=overwrite)
    counts = model.parameter_counts()
    out.print(f"wrote {output}/ ({model.config.name}: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in counts.items()) + ")")
    out.print(f"use it: pluralfill inpaint photo.jpg --mask hole.png --checkpoint {output} -n 8 -o out")


# ------------------------------------------------------------------------------------------------ info


@app.command()
def info(
    name: Annotated[Optional[str], typer.Argument(help="Method name or checkpoint folder; none lists the methods.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """What a method name or checkpoint builds: method, resolution, parameters per component."""
    from pluralfill.methods import ARCHITECTURES, available_methods, describe

    if name is None:
        rows = [describe(m) for m in dict.fromkeys([*available_methods(), *ARCHITECTURES])]
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        table = Table(title="methods (learned ones run with --checkpoint)")
        for c in ("name", "method", "resolution", "parameters"):
            table.add_column(c)
        for r in rows:
            table.add_row(r["name"], r["method"], str(r["resolution"]), f"{sum(r['parameters'].values()):,}")
        out.print(table)
        return
    d = describe(name)
    if as_json:
        print(json.dumps(d, indent=2))
        return
    table = Table(title=f"{d['name']} ({d['method']}, resolution {d['resolution']})")
    table.add_column("component")
    table.add_column("parameters", justify="right")
    for k, v in d["parameters"].items():
        table.add_row(k, f"{v:,}")
    table.add_row("total", f"{sum(d['parameters'].values()):,}")
    out.print(table)


# ------------------------------------------------------------------------------------------------ entry


def _fail(message: str) -> None:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="pluralfill")
    except PluralfillError as e:
        _fail(str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as e:  # disk full, permission denied on an output folder, ...
        _fail(f"{e.strerror}: {e.filename}" if e.filename else str(e))


if __name__ == "__main__":
    main()

"""The `pluralfill` command. It parses, calls the library and prints; the work lives elsewhere."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

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
    rich_markup_mode=None,  # click's help: flags shown as flags, paragraphs rewrapped to the terminal
    context_settings={"help_option_names": ["-h", "--help"]},
)
masks_app = typer.Typer(help="Generate hole masks from presets and inspect mask folders.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(masks_app, name="masks")
models_app = typer.Typer(help="The model store: bundled and installed models, and the official ones to add.",
                         invoke_without_command=True, rich_markup_mode=None)  # fmt: skip
app.add_typer(models_app, name="models")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # one message, one line


MaxPixels = Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
InvertMask = Annotated[bool, typer.Option("--invert-mask", help="Masks are white where pixels are KNOWN (PUT's files).")]
Precision = Annotated[str, typer.Option("--precision", help="fp32 (exact), bf16, int8 (CPU), or auto: the fastest that holds its quality bound on the first image (docs/performance.md).")]


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
    method: Annotated[Optional[str], typer.Option("--method", help=f"Method or installed model (see `pluralfill info` and `pluralfill models`). [default: {DEFAULT_METHOD}]")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Checkpoint folder of a learned method.")] = None,
    num_samples: Annotated[Optional[int], typer.Option("-n", "--num-samples", min=1, help="Samples per image. [default: 1, or the protocol's]")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed: the same seed gives the same samples.")] = None,
    protocol: Annotated[Optional[str], typer.Option("--protocol", help="A paper's protocol (put, lama, mat): its samples per image and sampling options.")] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Also write NAME_grid.png: input, hole and all samples.")] = False,
    invert_mask: InvertMask = False,
    resize_mask: Annotated[bool, typer.Option("--resize-mask", help="Resize masks to their image (nearest).")] = False,
    no_composite: Annotated[bool, typer.Option("--no-composite", help="Keep the method's known pixels as it made them.")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, mps ...")] = "cpu",
    precision: Precision = "fp32",
    sampler: Annotated[Optional[str], typer.Option("--sampler", help="PUT: 'put' (Algorithm 1), 'put-tpami' (TPAMI-2024: many tokens a pass) or 'parallel' (MaskGIT decoding).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Parallel decoding passes (maskgit; put with --sampler parallel).")] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help="Parallel decoding: cosine, linear, square, cubic, arccos, pow<k>; put-tpami: cosine_T, linear_T, average_T (T passes).")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Sample each token from the k most likely codes.")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Sampling temperature (divides the logits; put-tpami multiplies them, as the official code).")] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Also write NAME_trace.png: the tokens and image at every step.")] = False,
    entropy: Annotated[bool, typer.Option("--entropy", help="dsi: also write NAME_entropy.png, the entropy of the structure distribution at every position.")] = False,
    sketch: Annotated[Optional[Path], typer.Option("--sketch", help="mhtma-sketch: white lines on black; put-conditional: an edge map; the image's size.")] = None,
    segmentation: Annotated[Optional[Path], typer.Option("--segmentation", help="put-conditional: a label map of COCO-panoptic class ids, the image's size.")] = None,
    class_label: Annotated[Optional[int], typer.Option("--class-label", help="The official MaskGIT models: the ImageNet class (0-999) to fill with.")] = None,
    attention_branch: Annotated[Optional[str], typer.Option("--attention-branch", help="mhtma: on, off (convolution branch only), high or low (every head at the image's highest / lowest temperature).")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="Method option key=value (repeatable).")] = None,
    devices: Annotated[int, typer.Option("--devices", min=1, help="Processes on this machine (one per GPU with --device cuda); the images are split between them.")] = 1,
    num_nodes: Annotated[int, typer.Option("--num-nodes", min=1, help="Machines taking part (start the same command on each, e.g. with torchrun).")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Skip the images whose outputs are all written (a killed run goes on); needs --seed.")] = False,
    max_pixels: MaxPixels = pio.DEFAULT_MAX_PIXELS,
    overwrite: Overwrite = False,
):
    """Fill the holes of IMAGES; writes NAME_sample{k}.png per sample into the output folder.

    Masks are white where pixels are missing. Without --mask or --mask-dir, each image pairs with
    NAME_mask*.png beside it (LaMa layout). With --devices N (and --num-nodes) the images are split across
    processes; the outputs are those of one process.
    """
    from pluralfill.methods.base import sample_seed
    from pluralfill.registry import load_inpainter
    from pluralfill import precision as precisions
    from pluralfill.runner import FillSettings, auto_precision, fill_jobs, planned_outputs, remaining_jobs
    from pluralfill.shards import start_shards

    precisions.check(precision, device)
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
    if resume and seed is None:
        raise PluralfillError("--resume needs --seed: the samples still to make must come from the seed of those written")
    if resume and overwrite:
        raise PluralfillError("give --resume (keep what is written) or --overwrite (replace it), not both")
    shard = start_shards(devices, num_nodes, device)
    seed = shard.broadcast(seed if seed is not None else sample_seed(None, 0))  # one seed for every process
    inpainter = load_inpainter(checkpoint or method or DEFAULT_METHOD, device=shard.device,
                               precision="fp32" if precision == "auto" else precision)  # fmt: skip
    loaded = getattr(getattr(inpainter, "model", None), "method", inpainter.name)
    if checkpoint is not None and method is not None and method != loaded:
        raise PluralfillError(f"--method {method} but {checkpoint} holds a {loaded} model")
    options = _parse_options(option or [])
    flags = {"sampler": sampler, "steps": steps, "schedule": schedule, "top_k": top_k, "temperature": temperature,
             "sketch": sketch, "segmentation": segmentation, "attention_branch": attention_branch,
             "class_label": class_label}  # fmt: skip
    options |= {k: v for k, v in flags.items() if v is not None} | ({"trace": True} if trace else {})
    options |= {"entropy": True} if entropy else {}
    if protocol is not None:
        from pluralfill.metrics.protocols import get_protocol

        p = get_protocol(protocol)
        num_samples = num_samples or p.samples
        options = {k: v for k, v in p.options.items() if k in inpainter.option_names()} | options
    num_samples = num_samples or 1
    options = inpainter.check_options(options)
    settings = FillSettings(num_samples, seed, grid, invert_mask, resize_mask, max_pixels, overwrite or resume, not no_composite, options)
    if precision == "auto":
        inpainter, verdicts = auto_precision(inpainter, jobs[0], settings)
        for v in verdicts[1:] if shard.main else ():
            err.print(f"precision auto: {v.line()}", highlight=False)
        if shard.main:
            err.print(f"precision auto: running in {getattr(inpainter, 'precision', 'fp32')}", highlight=False)
    if inpainter.deterministic and num_samples > 1 and shard.main:
        err.print(f"note: {inpainter.name} is deterministic: writing 1 sample per image, not {num_samples}")
    todo = remaining_jobs(jobs, inpainter, output, settings) if resume else jobs
    if resume and shard.main:
        err.print(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} image(s) done already", highlight=False)
    if not resume and not overwrite:
        pio.check_writable(planned_outputs(jobs, inpainter, output, settings), False)  # every process: the same verdict
    mine = shard.take(todo)

    def on_error(job, e):
        err.print(f"error: {job.image.name}: {e}", markup=False, highlight=False, soft_wrap=True)

    with _progress() as bar:
        task = bar.add_task(inpainter.name if shard.world == 1 else f"{inpainter.name} [{shard.rank}/{shard.world}]", total=len(mine))
        failed = fill_jobs(mine, inpainter, output, settings, on_error, lambda: bar.advance(task),
                           lambda note: err.print(f"note: {note}", markup=False, highlight=False), keep_going=shard.world > 1)  # fmt: skip
    failed = sum(shard.gather([failed]))
    shard.barrier()
    if shard.main:
        where = f" in {shard.world} processes" if shard.world > 1 else ""
        err.print(f"inpainted {len(todo) - failed} image(s) with {inpainter.name} into {output}/{where}", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("pluralfill-demo"),
    method: Annotated[str, typer.Option("--method", help="Method or installed model to show.")] = DEFAULT_METHOD,
    num_samples: Annotated[int, typer.Option("-n", "--num-samples", min=1, help="Samples to draw.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same grid.")] = 0,
    overwrite: Overwrite = False,
):
    """Inpaint the bundled photo with a generated hole; writes a grid of input, hole and the samples."""
    from pluralfill.runner import demo as run_demo

    with err.status(f"{method}: {num_samples} samples"):
        r = run_demo(output, method, num_samples, seed, overwrite)
    out.print(f"wrote {r.grid} ({r.num_samples} samples of {r.method}, hole {r.hole_ratio:.0%} of the image)", highlight=False)
    out.print("the papers' quality: download an official model (`pluralfill models` lists them), then\n"
              "  pluralfill models add CHECKPOINT.pth --name put-places2 && "
              "pluralfill inpaint photo.jpg --mask hole.png --method put-places2 -n 8 -o out", highlight=False)


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
    """Extract the sketch of a photo (as the MHTMA paper, "Learning to Scale Temperature in Masked Self-Attention", section IV-F, does) and show how: writes OUTPUT and OUTPUT_steps.png
    (photo | edge map | thresholded | area opened | skeleton). Draw on it and pass it to `inpaint --sketch`."""
    from pluralfill.masks.sketch import write_sketch

    result, steps_path = write_sketch(image, output, threshold, min_area, pidinet, device, max_pixels, overwrite)
    edges = "PiDiNet" if pidinet is not None else "classical edges"
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
    from pluralfill.masks.sets import plan_mask_set, write_mask_set

    plan = plan_mask_set(preset, size, num, ratio, bins, for_images)
    with _progress() as bar:
        task = bar.add_task(preset, total=len(plan))
        ratios = write_mask_set(plan, output, preset, seed, overwrite, lambda: bar.advance(task))
    out.print(f"wrote {len(ratios)} masks to {output}/ (hole fraction {ratios.min():.3f}-{ratios.max():.3f}, mean {ratios.mean():.3f})")


@masks_app.command("protocol")
def masks_protocol(
    protocol: Annotated[str, typer.Argument(help="put, lama or mat (see `pluralfill evaluate --help`).", show_default=False)],
    mask_set: Annotated[str, typer.Argument(help="put: pconv; lama: thin-256, medium-256, thick-256, thin-512, ...; mat: small, large.", show_default=False)],
    for_images: Annotated[Path, typer.Option("--for-images", help="The test images: one mask each, named like it, of its size.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (then --mask-dir of inpaint, --masks of evaluate).")],
    source: Annotated[Optional[Path], typer.Option("--source", help="A downloaded set's folder (put: the PConv testing_mask_dataset).")] = None,
    overwrite: Overwrite = False,
):
    """Prepare a protocol's masks for a folder of test images, with protocol.json to check them by."""
    from pluralfill.metrics.protocols import get_protocol, prepare

    p = get_protocol(protocol)
    with err.status(f"{protocol} {mask_set}"):
        manifest = prepare(p, p.mask_set(mask_set), for_images, output, source, overwrite)
    out.print(f"wrote {len(manifest['masks'])} {protocol} {mask_set} masks to {output}/ (fingerprint {manifest['fingerprint'][:16]})", highlight=False)


@masks_app.command("stats")
def masks_stats(
    folder: Annotated[Path, typer.Argument(help="Folder of mask images (searched recursively).")],
    invert_mask: InvertMask = False,
):
    """Print the histogram of hole fractions of a mask folder over the standard bins."""
    from pluralfill.masks.sets import hole_ratios, mask_files, ratio_histogram

    files = mask_files(folder)
    with _progress() as bar:
        task = bar.add_task("reading masks", total=len(files))
        ratios = hole_ratios(files, invert_mask, lambda: bar.advance(task))
    table = Table(title=f"{len(ratios)} masks in {folder}, mean hole fraction {ratios.mean():.3f}")
    for c in ("hole fraction", "masks", "share", ""):
        table.add_column(c, justify="right" if c in ("masks", "share") else "left")
    for label, n, share in ratio_histogram(ratios):
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
    protocol: Annotated[Optional[str], typer.Option("--protocol", help="A paper's protocol: put, lama or mat (its metrics, bins, SSIM and a check of its masks).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write metric-vs-hole-ratio curves to this PNG.")] = None,
    gray: Annotated[bool, typer.Option("--gray", help="SSIM on luma only (PUT's protocol).")] = False,
    invert_mask: InvertMask = False,
    lpips_net: Annotated[str, typer.Option("--lpips-net", help="LPIPS backbone: alex or vgg.")] = "alex",
    lpips_backbone: Annotated[Optional[Path], typer.Option("--lpips-backbone", help="AlexNet / VGG-16 weights file.")] = None,
    lpips_heads: Annotated[Optional[Path], typer.Option("--lpips-heads", help="LPIPS v0.1 linear heads file.")] = None,
    inception: Annotated[Optional[Path], typer.Option("--inception", help="pt_inception-2015-12-05 weights file.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, mps ...")] = "cpu",
    precision: Annotated[str, typer.Option("--precision", help="The LPIPS / Inception networks in fp32 (a paper's numbers), bf16, or auto (bf16 where the device has it, else fp32).")] = "fp32",
    devices: Annotated[int, typer.Option("--devices", min=1, help="Processes on this machine; the images are split between them.")] = 1,
    num_nodes: Annotated[int, typer.Option("--num-nodes", min=1, help="Machines taking part.")] = 1,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Also write the table to this file.")] = None,
    overwrite: Overwrite = False,
):
    """Score results against ground truth: one column per hole-ratio bin, like Table IV of the MHTMA paper.

    With --protocol the metrics, bins and SSIM are the paper's, the masks must be the ones `pluralfill masks
    protocol` prepared for it, and the results record how they were made (protocol, mask set and fingerprint,
    FID network and the sha256 of its weights, images, samples, versions). With --devices the images are
    split across processes and the numbers are those of one process.
    """
    from pluralfill.metrics.evaluate import ALL_METRICS, available_metrics, evaluate as run, find_items, parse_bins, plot_curves, tables
    from pluralfill.shards import start_shards

    from pluralfill import precision as precisions

    if fmt not in ("md", "csv", "json"):
        raise PluralfillError(f"--format must be md, csv or json, got {fmt!r}")
    if precision == "auto":
        precision = "bf16" if "bf16" in precisions.supported(device) and protocol is None else "fp32"
    if protocol is not None and precision != "fp32":
        raise PluralfillError(f"--protocol scores as the paper did, in fp32: drop --precision {precision}")
    if lpips_net not in ("alex", "vgg"):
        raise PluralfillError(f"--lpips-net must be alex or vgg, got {lpips_net!r}")
    if output is not None:
        pio.check_writable([output], overwrite)
    if plot is not None:
        pio.check_writable([plot], overwrite)
    weights = {"lpips_backbone": lpips_backbone, "lpips_heads": lpips_heads, "inception": inception}
    chosen_protocol = None
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
        if skipped:
            err.print(f"note: skipping {', '.join(skipped)} (weights not in the cache; name them with --metrics to fetch)")
    else:
        chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    chosen = [m for m in ALL_METRICS if m in chosen] + [m for m in chosen if m not in ALL_METRICS]
    names = [p.name or str(p) for p in pred]
    if len(set(names)) < len(names):
        names = [str(p) for p in pred]
    shard = start_shards(devices, num_nodes, device)
    evaluations, provenance = {}, {}
    for name, folder in zip(names, pred):
        items, skipped_items = find_items(folder, gt, masks)
        for s in skipped_items if shard.main else ():
            err.print(f"skipped {s}", highlight=False)
        if chosen_protocol is not None:
            from pluralfill.metrics.protocols import verify

            manifest = verify(chosen_protocol, masks, [i.name for i in items])
            provenance[name] = _provenance(chosen_protocol, manifest, items, chosen, weights)
        with _progress() as bar:
            task = bar.add_task(f"evaluating {name}", total=len(shard.take(items)))
            evaluations[name] = run(items, chosen, parse_bins(bins), invert_mask, gray, shard.device, lpips_net, weights,
                                    progress=lambda: bar.advance(task), shard=shard, precision=precision)  # fmt: skip
    if not shard.main:
        return
    text = tables(evaluations, fmt, provenance)
    print(text)
    if output is not None:
        pio.write_text(output, text + "\n", overwrite)
    if plot is not None:
        plot_curves(evaluations, plot)
        err.print(f"wrote {plot}")


def _provenance(protocol, manifest: dict, items, metrics: list[str], weights: dict) -> dict:
    """How a protocol's number was made, to be written beside it."""
    import platform

    import torch

    from pluralfill.hub import resolve, sha256_of

    fid = None
    if {"fid", "p-ids", "u-ids"} & set(metrics):
        fid = {"network": protocol.fid_network, "weights_sha256": sha256_of(resolve("inception-fid", weights.get("inception")))}
    samples = sorted({len(i.samples) for i in items})
    return {"protocol": protocol.name, "paper": protocol.paper, "mask_set": manifest["mask_set"], "mask_source": manifest["source"],
            "mask_fingerprint": manifest["fingerprint"], "images": len(items), "samples_per_image": samples[0] if len(samples) == 1 else samples,
            "protocol_samples": protocol.samples, "fid": fid, "ssim": "luma" if protocol.gray_ssim else "rgb", "note": protocol.note,
            "pluralfill": __version__, "torch": torch.__version__, "python": platform.python_version()}  # fmt: skip


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
    from pluralfill.registry import load_config, train as run_training

    items = list(overrides or [])
    if config is not None and "=" in str(config):  # only overrides given, with --resume
        items, config = [str(config), *items], None
    if resume is None and config is None:
        raise PluralfillError("give a config file, or --resume RUN_DIR")
    cfg = load_config(None if resume is not None else config, items, resume)
    folder = run_training(cfg, resume)
    err.print(f"run folder: {folder}  (inference: --checkpoint {folder / 'best'})", highlight=False)


# ------------------------------------------------------------------------------------------------ bench


@app.command()
def bench(
    method: Annotated[str, typer.Option("--method", help="put (Algorithm 1 vs the TPAMI sampler vs parallel, batching), maskgit (editing as the official inference), dsi (cached vs uncached sampling) or precision (TPAMI, MaskGIT and DSI at the official sizes in every precision and backend).")] = "put",
    config: Annotated[Optional[str], typer.Option("--config", help="Named config (random weights: speed does not depend on them); default put-tiny / dsi.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Measure a trained model folder instead.")] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="put-tiny only: image side (256 = 32x32 tokens).")] = None,
    hole: Annotated[float, typer.Option("--hole", help="Fraction of tokens missing.")] = 0.4,
    samples: Annotated[int, typer.Option("-n", "--samples", min=1, help="Samples batched together.")] = 8,
    steps: Annotated[int, typer.Option("--steps", help="Parallel decoding passes.")] = 12,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs after one warm-up; the median counts.")] = 3,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the transformer.")] = False,
    precision: Annotated[Optional[list[str]], typer.Option("--precision", help="--method precision: fp32, bf16 or int8 (repeatable); default: every one the device runs well.")] = None,
    backend: Annotated[Optional[list[str]], typer.Option("--backend", help="--method precision: torch and/or onnx (the transformer pass in onnxruntime; repeatable). [default: both]")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="--method precision: the tiny configs instead of the official sizes.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Measure sampling speed. PUT: passes/s, tokens/s, P-VQVAE images/s, s per image and per sample, peak
    memory, and the ratios batched vs one by one, parallel vs Algorithm 1 (and bf16 vs fp32 and MFU on CUDA).
    DSI: structure sampling with and without the layer caches, and whole images for 1 and N samples."""
    from pluralfill.bench import bench_dsi, bench_maskgit, bench_put

    if not 0 < hole < 1:
        raise PluralfillError(f"--hole must be in (0, 1), got {hole}")
    if method not in ("put", "maskgit", "dsi", "precision"):
        raise PluralfillError(f"--method must be put, maskgit, dsi or precision, got {method!r}")
    if method == "precision":
        return _bench_precisions(precision, backend or ["torch", "onnx"], quick, hole, device, repeats, as_json)
    if precision or backend or quick:
        raise PluralfillError("--precision, --backend and --quick belong to --method precision")
    ckpt = str(checkpoint) if checkpoint else None
    with err.status("measuring (the slow paths run a forward pass per token: this takes a while)"):
        if method == "dsi":
            result = bench_dsi(config or "dsi", ckpt, hole, samples, device, repeats)
        elif method == "maskgit":
            result = bench_maskgit(config or "maskgit-imagenet-256", ckpt, hole, samples, device, repeats, steps)
        else:
            result = bench_put(config or "put-tiny", ckpt, resolution, hole, samples, steps, device, repeats, compile)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    if method == "dsi":
        title = f"{result['model']}: {result['sampled_positions']} of the {result['latent']} top codes sampled"
    elif method == "maskgit":
        title = f"{result['model']} at {result['resolution']} px, {result['passes']} passes over {result['tokens']} tokens"
    else:
        title = f"{result['model']} at {result['resolution']} px, {result['missing_tokens']} of {result['tokens']} tokens missing"
    table = Table(title=f"{title}, {result['device']} ({result['threads']} threads)")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    for group in ("forward_per_s", "algorithm1", "put_tpami", "parallel", "structure", "image", "ratios"):
        if group not in result:
            continue
        for k, v in result[group].items():
            table.add_row(f"{group}: {k}", f"{v:.3f}" if isinstance(v, float) else str(v))
    for k in ("pvqvae_images_per_s", "mfu_fp32_forward_batch", "peak_memory_mb"):
        if k in result:
            table.add_row(k, f"{result[k]:.3f}")
    out.print(table)


def _bench_precisions(precisions, backends, quick, hole, device, repeats, as_json):
    from pluralfill.bench import bench_precisions

    unknown = [b for b in backends if b not in ("torch", "onnx")]
    if unknown:
        raise PluralfillError(f"--backend must be torch or onnx, got {unknown[0]!r}")
    if "onnx" in backends:
        _need_onnx()
    with err.status("measuring") as status:
        result = bench_precisions(precisions, backends, quick=quick, hole=hole, device=device, repeats=repeats,
                                  progress=lambda what: status.update(f"measuring {what}"))  # fmt: skip
    if as_json:
        print(json.dumps(result, indent=2, default=str).replace("Infinity", '"inf"'))
        return
    table = Table(title=f"one sample end to end, {result['device']} ({result['threads']} threads), hole {hole:.0%}")
    for c in ("model", "run", "s / sample", "vs fp32", "peak MB", "PSNR vs fp32", "greedy tokens", "bound"):
        table.add_column(c, justify="left" if c in ("model", "run") else "right")
    for key, entry in result["models"].items():
        base = entry["runs"]["torch fp32"]["s_per_sample"]
        for name, r in entry["runs"].items():
            table.add_row(key, name, f"{r['s_per_sample']:.3f}", f"{base / r['s_per_sample']:.2f}x",
                          f"{r['peak_memory_mb']:.0f}", f"{r['psnr_db_vs_fp32']:.1f} dB", f"{100 * r['greedy_agreement_vs_fp32']:.1f}%",
                          "holds" if r["bound_holds"] else "misses")  # fmt: skip
    out.print(table)


def _need_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise PluralfillError("ONNX needs the onnx and onnxruntime packages: pip install 'pluralfill[onnx]'") from None


# ------------------------------------------------------------------------------------------------ export


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="A learned method: bundled or installed model, or a model folder.", show_default=False)],
    onnx: Annotated[Path, typer.Option("--onnx", help="Folder to write the ONNX graphs and manifest.json into.")],
    overwrite: Overwrite = False,
):
    """Write each network of a model as ONNX (dynamic batch), each checked against PyTorch in onnxruntime."""
    from pluralfill.export import ATOL, export_onnx
    from pluralfill.registry import load_inpainter

    _need_onnx()
    inpainter = load_inpainter(name)
    if not hasattr(inpainter, "model"):
        raise PluralfillError(f"{name} is a classical method: it has no network to export")
    with err.status(f"exporting {inpainter.name}") as status:
        manifest = export_onnx(inpainter, onnx, overwrite, lambda net: status.update(f"exported {net}"))
    for net, info in manifest["networks"].items():
        out.print(f"{onnx / info['file']}  inputs {', '.join(info['inputs'])} -> {info['output']}  "
                  f"(max |onnxruntime - torch| {info['max_abs_diff']:.1e} <= {ATOL:g})", highlight=False)  # fmt: skip


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

@app.command(context_settings={"allow_extra_args": False})
def convert(
    converter: Annotated[Optional[str], typer.Argument(help="Which official files: see `pluralfill convert` without arguments.", show_default=False)] = None,
    paths: Annotated[Optional[list[Path]], typer.Argument(help="The official file(s), then the folder to write.", show_default=False)] = None,
    config: Annotated[Optional[str], typer.Option("--config", help="Named config to check the files against (e.g. ffhq).")] = None,
    num_heads: Annotated[Optional[int], typer.Option("--num-heads", help="put-official without --config: attention heads (default 8).")] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="dsi-official: the image size it was trained at (every published model: 256).")] = None,
    overwrite: Overwrite = False,
):
    """Convert official checkpoints into a model folder (config.json + model.safetensors) that --checkpoint
    reads. Files are read without unpickling code; unknown or missing keys are reported by name."""
    from pluralfill.registry import converters, find_converter

    if converter is None:
        out.print("pluralfill convert NAME FILE... OUTPUT, with NAME one of:", highlight=False)
        for c in converters().values():
            out.print(f"  {c.name} {' '.join(c.inputs)} OUTPUT\n      {c.summary}\n      published at {c.weights_page}", highlight=False)
        return
    c = find_converter(converter)
    paths = list(paths or [])
    if len(paths) != len(c.inputs) + 1:
        raise PluralfillError(f"{c.name} takes {' '.join(c.inputs)} OUTPUT, got {len(paths)} path(s)")
    *inputs, output = paths
    if output.exists() and not overwrite:
        raise PluralfillError(f"output exists: {output} (pass --overwrite to replace)")
    options = {k: v for k, v in (("num_heads", num_heads), ("resolution", resolution)) if v is not None}
    for key in options:
        if key not in inspect.signature(c.convert).parameters:
            raise PluralfillError(f"{c.name} takes no --{key.replace('_', '-')}: its checkpoints fix it")
    with err.status(f"reading {', '.join(map(str, inputs))}"):
        model = c.convert(*inputs, config=config, **options)
    model.save_pretrained(output, overwrite=overwrite)
    _say_assumed(getattr(model, "assumed", {}))
    counts = model.parameter_counts()
    out.print(f"wrote {output}/ ({model.config.name}: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in counts.items()) + ")")
    out.print(f"use it: pluralfill inpaint photo.jpg --mask hole.png --checkpoint {output} -n 8 -o out")


def _say_assumed(assumed: dict) -> None:
    """What a converter took for a setting the official file does not record."""
    for key, value in assumed.items():
        out.print(f"assumed {key} = {value}", highlight=False)


# ------------------------------------------------------------------------------------------------ models


@models_app.callback()
def models_list(ctx: typer.Context):
    """List the bundled models, the installed ones, and the official model families with where their weights
    are published. `pluralfill models add FILE...` installs one."""
    if ctx.invoked_subcommand is not None:
        return
    from pluralfill.hub import installed_models, models_dir
    from pluralfill.models.base import read_config
    from pluralfill.registry import bundled_models, converters

    installed = installed_models()
    out.print("models to use with --method NAME:", highlight=False)
    for kind, found in (("bundled", bundled_models()), ("installed", installed)):
        for name, folder in found.items():
            out.print(f"  {name}  ({kind}, {read_config(folder).get('method', '?')}) {folder}", highlight=False)
    if not installed:
        out.print(f"  nothing installed in {models_dir()} yet", highlight=False)
    out.print("official models: download, then `pluralfill models add FILE...` (or `pluralfill convert` into a folder):", highlight=False)
    for c in converters().values():
        out.print(f"  {c.name}: {' '.join(c.inputs)}\n      {c.summary}\n      published at {c.weights_page}", highlight=False)


@models_app.command("add")
def models_add(
    files: Annotated[list[Path], typer.Argument(help="The official checkpoint file(s), e.g. a PUT .pth; MaskGIT: TOKENIZER TRANSFORMER.", show_default=False)],
    name: Annotated[Optional[str], typer.Option("--name", help="Install under this name (default: the model's own).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an installed model of that name.")] = False,
    num_heads: Annotated[Optional[int], typer.Option("--num-heads", help="PUT: attention heads, where the file and its run's config do not say.")] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="DSI: the image size it was trained at (default 256).")] = None,
):
    """Recognise an official checkpoint, convert it and install it; then `--method NAME` uses it. What the file
    does not record (PUT's head count, DSI's resolution) is said, with the value taken."""
    from pluralfill.store import add

    with err.status(f"reading {', '.join(map(str, files))}"):
        done = add(files, name, overwrite, num_heads=num_heads, resolution=resolution)
    out.print(f"installed {done.name} ({done.converter}) in {done.folder}", highlight=False)
    _say_assumed(done.assumed)
    out.print(f"use it: pluralfill inpaint photo.jpg --mask hole.png --method {done.name} -n 8 -o out", highlight=False)


@models_app.command("remove")
def models_remove(name: Annotated[str, typer.Argument(help="An installed model.", show_default=False)]):
    """Delete an installed model."""
    from pluralfill.store import remove

    out.print(f"removed {name} ({remove(name)})", highlight=False)


# ------------------------------------------------------------------------------------------------ info


@app.command()
def info(
    name: Annotated[Optional[str], typer.Argument(help="Method name or checkpoint folder; none lists the methods.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """What a method name or checkpoint builds: method, resolution, parameters per component."""
    from pluralfill.registry import available_methods, describe, named_configs

    if name is None:
        rows = [describe(m) for m in dict.fromkeys([*available_methods(), *named_configs()])]
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

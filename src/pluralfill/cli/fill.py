"""`inpaint`, `demo` and `evaluate`: filling images and scoring the fills."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pluralfill import DEFAULT_METHOD
from pluralfill import io as pio
from pluralfill.cli import (
    Checkpoint,
    Device,
    Devices,
    InvertMask,
    MaxPixels,
    Method,
    NumNodes,
    Options,
    Output,
    Overwrite,
    Precision,
    Seed,
    _need_onnx,
    _progress,
    _say,
    app,
    err,
    out,
)
from pluralfill.errors import PluralfillError
from pluralfill.methods.options import OptionError

# ------------------------------------------------------------------------------------------------ inpaint


@app.command()
def inpaint(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.", show_default=False)],
    output: Output,
    mask: Annotated[Path | None, typer.Option("--mask", "-m", help="One mask for every image.")] = None,
    mask_dir: Annotated[Path | None, typer.Option("--mask-dir", help="Folder of masks named like the images.")] = None,
    method: Method = None,
    checkpoint: Checkpoint = None,
    num_samples: Annotated[
        int | None,
        typer.Option("-n", "--num-samples", min=1, max=1000, help="Samples per image. [default: 1, or the protocol's]"),
    ] = None,
    seed: Seed = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol", help="A paper's protocol (put, lama, mat): its samples per image and sampling options."
        ),
    ] = None,
    grid: Annotated[
        bool, typer.Option("--grid", help="Also write NAME_grid.png: input, hole and all samples.")
    ] = False,
    invert_mask: InvertMask = False,
    resize_mask: Annotated[bool, typer.Option("--resize-mask", help="Resize masks to their image (nearest).")] = False,
    no_composite: Annotated[
        bool, typer.Option("--no-composite", help="Keep the method's known pixels as it made them.")
    ] = False,
    device: Device = "cpu",
    precision: Precision = "fp32",
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="torch, or onnx: the networks the method declares exportable run in onnxruntime, exported once (fp32, "
            "CPU).",
        ),
    ] = "torch",
    sampler: Annotated[
        str | None,
        typer.Option(
            "--sampler", help="The token sampler, for methods that offer several (pluralfill info METHOD lists them)."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Parallel decoding passes.")] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule", help="How many tokens each pass fixes (pluralfill info METHOD lists the schedules)."
        ),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", help="Sample each token from the k most likely codes.")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option("--temperature", help="Sampling temperature: above 1 more varied fills, below 1 safer ones."),
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            help="Token samplers: known keeps the known tokens' keys and values between full passes (faster, "
            "approximate); off computes every pass in full.",
        ),
    ] = None,
    refresh: Annotated[
        int | None, typer.Option("--refresh", help="With --cache known: a full pass every this many passes.")
    ] = None,
    trace: Annotated[
        bool, typer.Option("--trace", help="Also write NAME_trace.png: the tokens and image at every step.")
    ] = False,
    entropy: Annotated[
        bool,
        typer.Option(
            "--entropy",
            help="Also write NAME_entropy.png, the sampler's entropy at every position (methods that measure it).",
        ),
    ] = False,
    guide: Annotated[
        list[str] | None,
        typer.Option(
            "--guide",
            help="A guide picture NAME=FILE, the image's size, or NAME=FOLDER with one named like each image "
            "(repeatable; pluralfill info METHOD lists its guides).",
        ),
    ] = None,
    sketch: Annotated[Path | None, typer.Option("--sketch", help="Same as --guide sketch=FILE.")] = None,
    segmentation: Annotated[
        Path | None, typer.Option("--segmentation", help="Same as --guide segmentation=FILE.")
    ] = None,
    class_label: Annotated[
        int | None, typer.Option("--class-label", help="Class-conditional models: the class to fill with.")
    ] = None,
    attention_branch: Annotated[
        str | None,
        typer.Option("--attention-branch", help="Which attention branch runs, for methods that offer a choice."),
    ] = None,
    option: Options = None,
    devices: Devices = None,
    num_nodes: NumNodes = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Skip the images whose outputs are all written (a killed run goes on); needs --seed."
        ),
    ] = False,
    max_pixels: MaxPixels = pio.DEFAULT_MAX_PIXELS,
    overwrite: Overwrite = False,
):
    """Fill the holes of IMAGES; writes NAME_sample{k}.png per sample into the output folder.

    Masks are white where pixels are missing. Without --mask or --mask-dir, each image pairs with
    NAME_mask*.png beside it (LaMa layout). With --devices N (and --num-nodes) the images are split across
    processes; the outputs are those of one process.

    Examples:

    \b
      pluralfill inpaint photo.jpg --mask hole.png -n 4 --seed 0 -o out --grid
      pluralfill inpaint photos/ -o out_folder
      pluralfill inpaint photo.jpg --mask hole.png --method put-scenes-small --top-k 20 -o out_put
    """
    from pluralfill import runner
    from pluralfill.methods.base import sample_seed
    from pluralfill.registry import load_inpainter
    from pluralfill.shards import start_shards

    _check_backend(backend, precision, device)
    jobs, unpaired = runner.find_fill_jobs(images, mask, mask_dir, output, resume, seed, overwrite)
    if unpaired:
        names = ", ".join(p.name for p in unpaired[:10]) + (" ..." if len(unpaired) > 10 else "")
        err.print(f"skipped {len(unpaired)} image(s) with no mask: {names}", highlight=False)
    shard = start_shards(devices, num_nodes, device)
    seed = shard.broadcast(seed if seed is not None else sample_seed(None, 0))  # one seed for every process
    loaded = "fp32" if precision == "auto" else precision
    inpainter = load_inpainter(checkpoint or method or DEFAULT_METHOD, device=shard.device, precision=loaded)
    flags = {
        "sampler": sampler,
        "steps": steps,
        "schedule": schedule,
        "top_k": top_k,
        "temperature": temperature,
        "cache": cache,
        "refresh": refresh,
        "attention_branch": attention_branch,
        "class_label": class_label,
        "trace": trace or None,
        "entropy": entropy or None,
    }
    options, num_samples = _options(inpainter, method, checkpoint, option, flags, protocol, num_samples)
    aliases = [f"{name}={path}" for name, path in (("sketch", sketch), ("segmentation", segmentation)) if path]
    guides = runner.parse_guides([*(guide or []), *aliases], inpainter)
    settings = runner.FillSettings(
        num_samples,
        seed,
        grid,
        invert_mask,
        resize_mask,
        max_pixels,
        overwrite or resume,
        not no_composite,
        options,
        guides,
    )
    inpainter = _run_in(inpainter, precision, backend, jobs[0], settings, shard.main)
    if inpainter.deterministic and num_samples > 1 and shard.main:
        err.print(f"note: {inpainter.name} is deterministic: writing 1 sample per image, not {num_samples}")
    # what exists before the run, judged once for every process (a fast one may already write while a slow one loads)
    todo = [jobs[i] for i in shard.agree(lambda: runner.plan_jobs(jobs, inpainter, output, settings, resume))]
    if resume and shard.main:
        err.print(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} image(s) done already", highlight=False)
    failed = _fill(shard, shard.take(todo), inpainter, output, settings)
    failed = sum(shard.gather([failed]))
    shard.barrier()
    if shard.main:
        where = f" in {shard.world} processes" if shard.world > 1 else ""
        err.print(
            f"inpainted {len(todo) - failed} image(s) with {inpainter.name} into {output}/{where}", highlight=False
        )
    if failed:
        raise typer.Exit(1)


def _check_backend(backend: str, precision: str, device: str) -> None:
    _check_precision(precision, device)
    if backend not in ("torch", "onnx"):
        raise PluralfillError(f"--backend must be torch or onnx, got {backend!r}")
    if backend == "onnx" and (precision != "fp32" or device != "cpu"):
        raise PluralfillError(
            "--backend onnx runs fp32 on the CPU (onnxruntime): drop --precision / --device, or use --backend torch"
        )


def _options(inpainter, method, checkpoint, pairs, flags: dict, protocol, num_samples):
    """The run's checked options and samples per image; a bad value is named by the flag the user typed."""
    from pluralfill import runner

    try:
        return runner.method_options(inpainter, method, checkpoint, pairs or [], flags, protocol, num_samples)
    except OptionError as e:
        raise e.for_flags({k: "--" + k.replace("_", "-") for k, v in flags.items() if v is not None}) from None


def _run_in(inpainter, precision: str, backend: str, first_job, settings, main: bool):
    """The inpainter in the precision `auto` chooses on the first image (said in words), or with its per-pass
    network in onnxruntime."""
    from pluralfill import runner

    if precision == "auto":
        inpainter, verdicts = runner.auto_precision(inpainter, first_job, settings)
        chosen = getattr(inpainter, "precision", "fp32")
        why = (
            "the fastest within its quality bounds" if chosen != "fp32" else "no faster precision is within its bounds"
        )
        for line in [v.line() for v in verdicts[1:]] + [f"running {chosen}: {why}"] if main else ():
            err.print(f"precision auto: {line}", highlight=False)
    if backend == "onnx":
        if settings.options.get("cache") == "known":
            raise PluralfillError("--cache known needs --backend torch: an exported network computes every position")
        _need_onnx()
        from pluralfill.export import onnx_backend

        with err.status("the per-pass network to onnxruntime (exported once per model)"):
            inpainter = onnx_backend(inpainter)
    return inpainter


def _fill(shard, jobs, inpainter, output, settings) -> int:
    """This process's jobs, with a progress bar; returns how many failed."""
    from pluralfill import runner

    name = inpainter.name if shard.world == 1 else f"{inpainter.name} [{shard.rank}/{shard.world}]"
    with _progress() as bar:
        task = bar.add_task(name, total=len(jobs))
        return runner.fill_jobs(
            jobs,
            inpainter,
            output,
            settings,
            lambda job, e: _say(f"error: {job.image.name}: {e}"),
            lambda: bar.advance(task),
            lambda note: _say(f"note: {note}"),
            keep_going=shard.world > 1,
        )


def _check_precision(precision: str, device: str) -> None:
    from pluralfill import precision as precisions

    precisions.check(precision, device)
    if precision == "bf16" and not precisions.native_bf16(precisions.as_device(device)):
        err.print(
            "note: this device has no bf16 hardware: bf16 runs emulated, slower than fp32 (--precision auto picks for "
            "you)"
        )


@app.command()
def demo(
    output: Output = Path("pluralfill-demo"),
    method: Annotated[str, typer.Option("--method", help="Method or installed model to show.")] = DEFAULT_METHOD,
    num_samples: Annotated[int, typer.Option("-n", "--num-samples", min=1, help="Samples to draw.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same grid.")] = 0,
    overwrite: Overwrite = False,
):
    """Inpaint the bundled photo with a generated hole; writes a grid of input, hole and the samples.

    Examples:

    \b
      pluralfill demo -o demo
      pluralfill demo --method telea -o demo_telea
    """
    from pluralfill.runner import demo as run_demo

    with err.status(f"{method}: {num_samples} samples"):
        r = run_demo(output, method, num_samples, seed, overwrite)
    out.print(
        f"wrote {r.grid} ({r.num_samples} samples of {r.method}, hole {r.hole_ratio:.0%} of the image)", highlight=False
    )
    out.print(
        "the papers' quality: download an official model (`pluralfill models` lists them), then\n"
        "  pluralfill models add CHECKPOINT.pth --name put-places2 && "
        "pluralfill inpaint photo.jpg --mask hole.png --method put-places2 -n 8 -o out",
        highlight=False,
    )


# ------------------------------------------------------------------------------------------------ evaluate


@app.command()
def evaluate(
    pred: Annotated[
        list[Path],
        typer.Option("--pred", help="Folder of results: NAME.png or NAME_sample{k}.png; repeat to compare methods."),
    ],
    gt: Annotated[Path, typer.Option("--gt", help="Folder of ground-truth images NAME.*")],
    masks: Annotated[Path, typer.Option("--masks", help="Folder of masks NAME.png or NAME_mask*.png.")],
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", help="Comma list; default: the pixel metrics plus those whose weights are cached."),
    ] = None,
    bins: Annotated[
        str | None, typer.Option("--bins", help="'standard' (0,0.1]..(0.5,0.6], 'none', or LO-HI,LO-HI,...")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md, csv or json.")] = "md",
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="A paper's protocol: put, lama or mat (its metrics, bins, SSIM and a check of its masks).",
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write metric-vs-hole-ratio curves to this PNG.")] = None,
    gray: Annotated[bool, typer.Option("--gray", help="SSIM on luma only (PUT's protocol).")] = False,
    invert_mask: InvertMask = False,
    lpips_net: Annotated[str, typer.Option("--lpips-net", help="LPIPS backbone: alex or vgg.")] = "alex",
    lpips_backbone: Annotated[
        Path | None, typer.Option("--lpips-backbone", help="AlexNet / VGG-16 weights file.")
    ] = None,
    lpips_heads: Annotated[Path | None, typer.Option("--lpips-heads", help="LPIPS v0.1 linear heads file.")] = None,
    inception: Annotated[Path | None, typer.Option("--inception", help="pt_inception-2015-12-05 weights file.")] = None,
    device: Device = "cpu",
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="The LPIPS / Inception networks in fp32 (a paper's numbers), bf16, or auto (bf16 where the device has "
            "it, else fp32).",
        ),
    ] = "fp32",
    devices: Annotated[
        int | None,
        typer.Option(
            "--devices",
            min=1,
            help="Processes on this machine; the images are split between them. [default: 1, or torchrun's]",
        ),
    ] = None,
    num_nodes: Annotated[
        int | None, typer.Option("--num-nodes", min=1, help="Machines taking part. [default: 1, or torchrun's]")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the table to this file.")] = None,
    overwrite: Overwrite = False,
):
    """Score results against ground truth: one column per hole-ratio bin, like Table IV of the MHTMA paper.

    With --protocol the metrics, bins and SSIM are the paper's, the masks must be the ones `pluralfill masks
    protocol` prepared for it, and the results record how they were made (protocol, mask set and fingerprint,
    FID network and the sha256 of its weights, images, samples, versions). With --devices the images are
    split across processes and the numbers are those of one process.

    Examples:

    \b
      pluralfill masks generate --preset lama-medium --for-images gt/ -o gt_masks/
      pluralfill inpaint gt/ --mask-dir gt_masks/ -n 2 --seed 0 -o pred/
      pluralfill evaluate --pred pred/ --gt gt/ --masks gt_masks/ --metrics mae,psnr,ssim --bins none
    """
    from pluralfill.metrics.evaluate import choose_metrics, find_items, parse_bins, plot_curves, tables
    from pluralfill.metrics.evaluate import evaluate as run
    from pluralfill.shards import start_shards

    if fmt not in ("md", "csv", "json"):
        raise PluralfillError(f"--format must be md, csv or json, got {fmt!r}")
    if lpips_net not in ("alex", "vgg"):
        raise PluralfillError(f"--lpips-net must be alex or vgg, got {lpips_net!r}")
    # judged before the processes start: only rank 0 writes these, after the gather every rank must reach
    pio.check_writable([p for p in (output, plot) if p is not None], overwrite)
    weights = {"lpips_backbone": lpips_backbone, "lpips_heads": lpips_heads, "inception": inception}
    chosen, bins, gray, chosen_protocol, skipped = choose_metrics(metrics, bins, gray, protocol, lpips_net, weights)
    if skipped:
        err.print(f"note: skipping {', '.join(skipped)} (weights not in the cache; name them with --metrics to fetch)")
    precision = _evaluate_precision(precision, device, protocol)
    names = [p.name or str(p) for p in pred]
    names = names if len(set(names)) == len(names) else [str(p) for p in pred]
    shard = start_shards(devices, num_nodes, device)
    evaluations, provenance = {}, {}
    for name, folder in zip(names, pred):
        items, skipped_items = find_items(folder, gt, masks)
        for s in skipped_items if shard.main else ():
            err.print(f"skipped {s}", highlight=False)
        if chosen_protocol is not None:
            from pluralfill.metrics.protocols import provenance as made_how
            from pluralfill.metrics.protocols import verify

            provenance[name] = made_how(
                chosen_protocol, verify(chosen_protocol, masks, [i.name for i in items]), items, chosen, weights
            )
        with _progress() as bar:
            task = bar.add_task(f"evaluating {name}", total=len(shard.take(items)))
            evaluations[name] = run(
                items,
                chosen,
                parse_bins(bins),
                invert_mask,
                gray,
                shard.device,
                lpips_net,
                weights,
                progress=lambda task=task: bar.advance(task),
                shard=shard,
                precision=precision,
            )
    if not shard.main:
        return
    text = tables(evaluations, fmt, provenance)
    print(text)
    if output is not None:
        pio.write_text(output, text + "\n", overwrite)
    if plot is not None:
        plot_curves(evaluations, plot)
        err.print(f"wrote {plot}")


def _evaluate_precision(precision: str, device: str, protocol: str | None) -> str:
    from pluralfill import precision as precisions

    if precision == "auto":
        return "bf16" if "bf16" in precisions.supported(device) and protocol is None else "fp32"
    if protocol is not None and precision != "fp32":
        raise PluralfillError(f"--protocol scores as the paper did, in fp32: drop --precision {precision}")
    return precision

"""`sketch`, `masks ...`, `train`, `bench` and `serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pluralfill import io as pio
from pluralfill.cli import (
    Device,
    InvertMask,
    MaxPixels,
    Output,
    Overwrite,
    _need_onnx,
    _progress,
    _say,
    app,
    err,
    masks_app,
    out,
)
from pluralfill.errors import PluralfillError

# ------------------------------------------------------------------------------------------------ sketch


@app.command()
def sketch(
    image: Annotated[Path, typer.Argument(help="A photo.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The sketch: white one-pixel lines on black (PNG).")],
    threshold: Annotated[
        float, typer.Option("--threshold", help="Edge strength above which a pixel is a line.")
    ] = 0.65,
    min_area: Annotated[
        int,
        typer.Option(
            "--min-area", min=0, help="Drop 8-connected pieces under this many px (at 256 px; scaled with the image)."
        ),
    ] = 100,
    pidinet: Annotated[
        Path | None,
        typer.Option("--pidinet", help="PiDiNet weights (table5_pidinet.pth); default: the classical edge detector."),
    ] = None,
    device: Device = "cpu",
    max_pixels: MaxPixels = pio.DEFAULT_MAX_PIXELS,
    overwrite: Overwrite = False,
):
    """Extract the sketch of a photo and show how; draw on it and pass it to `inpaint --sketch`.

    As MHTMA's paper (section IV-F): writes OUTPUT and OUTPUT_steps.png (photo | edge map | thresholded | area
    opened | skeleton).

    Examples:

    \b
      pluralfill sketch photo.jpg -o lines.png
    """
    from pluralfill.masks.sketch import write_sketch

    result, steps_path = write_sketch(image, output, threshold, min_area, pidinet, device, max_pixels, overwrite)
    edges = "PiDiNet" if pidinet is not None else "classical edges"
    out.print(f"wrote {output} ({int(result.lines.sum())} line px; {edges}) and {steps_path}")


# ------------------------------------------------------------------------------------------------ masks


@masks_app.command("generate")
def masks_generate(
    output: Output,
    preset: Annotated[
        str, typer.Option("--preset", "-p", help="Mask preset (see `pluralfill masks presets`).")
    ] = "lama-medium",
    size: Annotated[int, typer.Option("--size", min=8, max=8192, help="Side of the square masks in px.")] = 256,
    num: Annotated[
        int, typer.Option("-n", "--num", min=1, max=100_000, help="Masks to write (per bin with --bins).")
    ] = 100,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Any non-negative integer.")] = 0,
    ratio: Annotated[
        str | None, typer.Option("--ratio", help="Keep holes whose fraction is in (LO, HI], e.g. 0.4-0.6.")
    ] = None,
    bins: Annotated[
        bool, typer.Option("--bins", help="NUM masks in each standard bin (0,0.1] ... (0.5,0.6], one folder each.")
    ] = False,
    for_images: Annotated[
        Path | None,
        typer.Option(
            "--for-images", help="One mask per image of this folder, named like it (for --mask-dir / evaluate)."
        ),
    ] = None,
    overwrite: Overwrite = False,
):
    """Write NUM masks (PNG, white = hole) and masks.csv with each mask's hole fraction.

    Examples:

    \b
      pluralfill masks generate --preset lama-medium --size 256 -n 8 -o masks_new/
      pluralfill masks generate --preset mhtma --for-images photos/ -o photo_masks/
    """
    from pluralfill.masks.sets import plan_mask_set, write_mask_set

    plan = plan_mask_set(preset, size, num, ratio, bins, for_images)
    with _progress() as bar:
        task = bar.add_task(preset, total=len(plan))
        ratios = write_mask_set(plan, output, preset, seed, overwrite, lambda: bar.advance(task))
    out.print(
        f"wrote {len(ratios)} masks to {output}/ (hole fraction {ratios.min():.3f}-{ratios.max():.3f}, mean "
        f"{ratios.mean():.3f})"
    )


@masks_app.command("protocol")
def masks_protocol(
    protocol: Annotated[
        str, typer.Argument(help="put, lama or mat (see `pluralfill evaluate --help`).", show_default=False)
    ],
    mask_set: Annotated[
        str,
        typer.Argument(
            help="put: pconv; lama: thin-256, medium-256, thick-256, thin-512, ...; mat: small, large.",
            show_default=False,
        ),
    ],
    for_images: Annotated[
        Path, typer.Option("--for-images", help="The test images: one mask each, named like it, of its size.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output folder (then --mask-dir of inpaint, --masks of evaluate).")
    ],
    source: Annotated[
        Path | None,
        typer.Option("--source", help="A downloaded set's folder (put: the PConv testing_mask_dataset)."),
    ] = None,
    overwrite: Overwrite = False,
):
    """Prepare a protocol's masks for a folder of test images, with protocol.json to check them by.

    Examples:

    \b
      pluralfill masks protocol lama thin-256 --for-images gt/ -o lama_masks/
    """
    from pluralfill.metrics.protocols import get_protocol, prepare

    p = get_protocol(protocol)
    with err.status(f"{protocol} {mask_set}"):
        manifest = prepare(p, p.mask_set(mask_set), for_images, output, source, overwrite)
    out.print(
        f"wrote {len(manifest['masks'])} {protocol} {mask_set} masks to {output}/ (fingerprint "
        f"{manifest['fingerprint'][:16]})",
        highlight=False,
    )


@masks_app.command("select")
def masks_select(
    image: Annotated[Path, typer.Argument(help="The photo.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The hole to write (PNG, white = selected).")],
    point: Annotated[str | None, typer.Option("--point", help="X,Y: a click on the object.")] = None,
    box: Annotated[str | None, typer.Option("--box", help="X,Y,W,H: a box around the object.")] = None,
    grow: Annotated[int, typer.Option("--grow", min=-200, max=200, help="Widen (or, below 0, narrow) by N px.")] = 0,
    max_pixels: MaxPixels = pio.DEFAULT_MAX_PIXELS,
    overwrite: Overwrite = False,
):
    """Turn a click on an object, or a box around it, into a hole, offline (GrabCut; no model to download).

    Examples:

    \b
      pluralfill masks select photo.jpg --point 128,128 -o selected.png
      pluralfill masks select photo.jpg --box 60,60,140,140 --grow 8 -o selected.png --overwrite
    """
    from pluralfill.masks import select

    def numbers(text: str | None, count: int, flag: str):
        if text is None:
            return None
        parts = text.split(",")
        if len(parts) != count or not all(p.strip().lstrip("-").isdigit() for p in parts):
            raise PluralfillError(f"{flag} expects {count} integers separated by commas, got {text!r}")
        return tuple(int(p) for p in parts)

    pio.check_writable([output], overwrite)
    photo = pio.read_image(image, max_pixels)
    hole = select(photo, numbers(point, 2, "--point"), numbers(box, 4, "--box"), grow)
    pio.write_hole(output, hole, overwrite)
    out.print(f"wrote {output} ({hole.mean():.1%} of the photo selected)", highlight=False)


@masks_app.command("stats")
def masks_stats(
    folder: Annotated[Path, typer.Argument(help="Folder of mask images (searched recursively).")],
    invert_mask: InvertMask = False,
):
    """Print the histogram of hole fractions of a mask folder over the standard bins.

    Examples:

    \b
      pluralfill masks stats masks/
    """
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
    """List the mask presets and their sources.

    Examples:

    \b
      pluralfill masks presets
    """
    from pluralfill.masks import PRESETS

    table = Table()
    for c in ("preset", "what", "source"):
        table.add_column(c)
    for p in PRESETS.values():
        table.add_row(p.name, p.description, p.source)
    out.print(table)


# ------------------------------------------------------------------------------------------------ train


@app.command(context_settings={"allow_extra_args": False})
def train(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="A config by name (pluralfill info lists them) or a YAML file; omit with --resume.",
            show_default=False,
            metavar="CONFIG",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="key=value overrides, e.g. steps=2000 optim.lr=1e-4", show_default=False),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue this run folder from its last checkpoint.")
    ] = None,
):
    """Train a stage of a method on your images. A run folder gets the resolved config, metrics.csv, TensorBoard
    logs (tb/), sample sheets (samples/), last.ckpt to resume from, and last/ and best/ model folders.

    Examples (scenes/: a folder of photos):

    \b
      pluralfill train put-tiny-pvqvae data.train=scenes/ run_dir=runs/pvqvae
      pluralfill train put-tiny-transformer data.train=scenes/ first_stage=runs/pvqvae run_dir=runs/put
      pluralfill train --resume runs/put steps=4
    """
    from pluralfill.registry import load_config
    from pluralfill.registry import train as run_training

    items = list(overrides or [])
    if config is not None and "=" in str(config):  # only overrides given, with --resume
        items, config = [str(config), *items], None
    if resume is None and config is None:
        raise PluralfillError("give a config (a name from `pluralfill info`, or a YAML file), or --resume RUN_DIR")
    cfg = load_config(None if resume is not None else config, items, resume)
    folder = run_training(cfg, resume)
    err.print(f"run folder: {folder}  (inference: --checkpoint {folder / 'best'})", highlight=False)


# ------------------------------------------------------------------------------------------------ bench


@app.command()
def bench(
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help="A method with a benchmark of its own (pluralfill info marks them), or precision: the declared models "
            "at their official sizes in every precision and backend.",
            show_default=False,
        ),
    ],
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Named config (random weights: speed does not depend on them); default: the benchmark's own.",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Measure a trained model folder instead.")
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(
            "--resolution", min=16, max=4096, help="Image side, a multiple of 16, for the configs that take one."
        ),
    ] = None,
    hole: Annotated[float, typer.Option("--hole", help="Fraction of tokens missing.")] = 0.4,
    samples: Annotated[int, typer.Option("-n", "--samples", min=1, help="Samples batched together.")] = 8,
    steps: Annotated[int, typer.Option("--steps", help="Parallel decoding passes.")] = 12,
    device: Device = "cpu",
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Timed runs after one warm-up; the median counts.")
    ] = 3,
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile the network the sampler calls every pass.")
    ] = False,
    precision: Annotated[
        list[str] | None,
        typer.Option(
            "--precision",
            help="--method precision: fp32, bf16 or int8 (repeatable); default: every one the device runs well.",
        ),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            help="--method precision: torch and/or onnx (the transformer pass in onnxruntime; repeatable). [default: "
            "both]",
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="--method precision: the tiny configs instead of the official sizes.")
    ] = False,
    refresh: Annotated[
        list[int] | None,
        typer.Option(
            "--refresh",
            min=1,
            help="--method precision: each precision again with --cache known at this refresh interval (repeatable).",
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="--method precision: only this model (repeatable; tpami, put, maskgit ...)."),
    ] = None,
    drift: Annotated[
        bool,
        typer.Option(
            "--drift/--no-drift",
            help="--method precision --refresh: measure each cached run's draws against the exact passes (an extra "
            "sample that computes both; on Algorithm 1 it costs more than the run).",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Measure speed: a method's own benchmark, or every precision and backend side by side.

    A method's benchmark gives passes/s, seconds per image and per sample, peak memory, and the ratios between
    its samplers and batch sizes; `pluralfill info` lists the methods that have one.

    Examples:

    \b
      pluralfill bench --method put --config put-tiny --resolution 64 -n 2 --repeats 1
      pluralfill bench --method precision --quick --backend torch
      pluralfill bench --method precision --model tpami --backend torch --refresh 4 --refresh 8 --repeats 1
    """
    from pluralfill import bench as benchmarks
    from pluralfill.registry import benchmarked, methods, precision_models

    if not 0 < hole < 1:
        raise PluralfillError(f"--hole must be in (0, 1), got {hole}")
    if method != "precision" and method not in benchmarked():
        raise PluralfillError(f"--method must be precision or one of {', '.join(benchmarked())}, got {method!r}")
    if method != "precision" and (precision or backend or quick or refresh or model):
        raise PluralfillError("--precision, --backend, --quick, --refresh and --model belong to --method precision")
    if resolution is not None and resolution % 16:
        raise PluralfillError(f"--resolution must be a multiple of 16, got {resolution}")
    if set(backend or []) - {"torch", "onnx"}:
        raise PluralfillError(
            f"--backend must be torch or onnx, got {', '.join(sorted(set(backend) - {'torch', 'onnx'}))}"
        )
    if "onnx" in (backend or []):
        _need_onnx()
    ckpt = str(checkpoint) if checkpoint else None
    with err.status("measuring (the slow paths run a forward pass per token: this takes a while)") as status:
        if method == "precision":
            result = benchmarks.bench_precisions(
                precision_models(),
                precision,
                backend or ["torch", "onnx"],
                quick=quick,
                hole=hole,
                device=device,
                repeats=repeats,
                refresh=tuple(refresh or ()),
                only=tuple(model or ()),
                drift=drift,
                progress=lambda what: (
                    status.update(f"measuring {what}") if err.is_terminal else _say(f"measuring {what}")
                ),
            )
        else:
            request = benchmarks.Request(config, ckpt, resolution, hole, samples, steps, device, repeats, compile)
            result = methods()[method].benchmark(request)
    from pluralfill.devices import machine, machine_line

    result["machine"] = machine()  # every figure with the machine it was measured on
    if as_json:
        print(json.dumps(result, indent=2, default=str).replace("Infinity", '"inf"'))
        return
    err.print(f"machine: {machine_line(result['machine'])}", highlight=False)
    title, columns, rows = benchmarks.table(method, result)
    if not out.is_terminal:  # piped or redirected: a Markdown table, whole, whatever the width
        print(f"{title}\n\n| {' | '.join(columns)} |\n|{'---|' * len(columns)}")
        print("\n".join(f"| {' | '.join(row)} |" for row in rows))
        return
    table = Table(title=title)
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i < (2 if method == "precision" else 1) else "right")
    for row in rows:
        table.add_row(*row)
    out.print(table)


# ------------------------------------------------------------------------------------------------ serve


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; loopback unless you mean otherwise.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: a free port, printed.")] = 7860,
    device: Device = "cpu",
    checkpoint: Annotated[
        list[Path] | None, typer.Option("--checkpoint", help="Learned model to offer (repeatable).")
    ] = None,
):
    """Start the local web app: paint a hole, get N different fills, download them. API docs at /docs.

    Examples:

    \b
      pluralfill serve
      pluralfill serve --port 0 --checkpoint runs/put
    """
    try:
        import uvicorn

        from pluralfill.app.server import LOCAL_HOSTS, create_app
    except ImportError:
        raise PluralfillError("the web app needs its extra: pip install 'pluralfill[app]'") from None
    listening = _listen(host, port)  # the port is ours before any URL is printed
    hosts = ("*",) if host in ("0.0.0.0", "::", "") else (*LOCAL_HOSTS, host)  # an open address answers any name
    application = create_app([str(c) for c in checkpoint or []], device=device, hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"pluralfill web app on http://{shown}:{listening.getsockname()[1]}/  (Ctrl+C to stop)", highlight=False)
    uvicorn.Server(uvicorn.Config(application, log_level="warning")).run(sockets=[listening])


def _listen(host: str, port: int):
    """A socket bound to host:port (0: a free port), or one line saying the port is taken."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as e:
        listening.close()
        if e.errno == 98:
            raise PluralfillError(
                f"port {port} on {host} is in use: pass --port N, or --port 0 for a free one"
            ) from None
        raise PluralfillError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    listening.listen(128)
    return listening

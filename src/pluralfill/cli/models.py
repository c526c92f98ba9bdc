"""`convert`, `models ...`, `info` and `export`: the model store and what a model is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pluralfill.cli import Overwrite, _need_onnx, _say, app, err, models_app, out

# ------------------------------------------------------------------------------------------------ convert


@app.command(context_settings={"allow_extra_args": False})
def convert(
    converter: Annotated[
        str | None,
        typer.Argument(help="Which official files: see `pluralfill convert` without arguments.", show_default=False),
    ] = None,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="The official file(s), then the folder to write.", show_default=False)
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="Named config to check the files against (e.g. ffhq).")
    ] = None,
    num_heads: Annotated[
        int | None, typer.Option("--num-heads", help="put-official without --config: attention heads (default 8).")
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(
            "--resolution", help="dsi-official: the image size it was trained at (every published model: 256)."
        ),
    ] = None,
    overwrite: Overwrite = False,
):
    """Convert official checkpoints into a model folder (config.json + model.safetensors) that --checkpoint
    reads. Files are read without unpickling code; unknown or missing keys are reported by name.

    Examples:

    \b
      pluralfill convert
      pluralfill convert put-official transformer_ffhq.pth put-ffhq-model/ --num-heads 4
      pluralfill convert dsi-official CelebA-HQ_center/ dsi-model/ --resolution 64
    """
    from pluralfill.registry import converters
    from pluralfill.store import convert_into

    if converter is None:
        _say("pluralfill convert NAME FILE... OUTPUT, with NAME one of:", out)
        for c in converters().values():
            _say(f"  {c.name} {' '.join(c.inputs)} OUTPUT\n      {c.summary}\n      published at {c.weights_page}", out)
        return
    with err.status(f"reading {', '.join(map(str, (paths or [])[:-1]))}"):
        model = convert_into(
            converter, list(paths or []), config, overwrite, num_heads=num_heads, resolution=resolution
        )
    output = paths[-1]
    _say_assumed(getattr(model, "assumed", {}))
    counts = model.parameter_counts()
    out.print(
        f"wrote {output}/ ({model.config.name}: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in counts.items()) + ")"
    )
    out.print(f"use it: pluralfill inpaint photo.jpg --mask hole.png --checkpoint {output} -n 8 -o out")


def _say_assumed(assumed: dict) -> None:
    """What a converter took for a setting the official file does not record."""
    for key, value in assumed.items():
        _say(f"assumed {key} = {value}", out)


# ------------------------------------------------------------------------------------------------ models


@models_app.callback()
def models_list(ctx: typer.Context):
    """List the bundled models, the installed ones, and the official model families with where their weights
    are published. `pluralfill models add FILE...` installs one.

    Examples:

    \b
      pluralfill models
      pluralfill models add transformer_ffhq.pth --name my-put --num-heads 4
    """
    if ctx.invoked_subcommand is None:
        from pluralfill.store import listing

        for line in listing():
            _say(line, out)


@models_app.command("add")
def models_add(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="The official checkpoint file(s), e.g. a PUT .pth; MaskGIT: TOKENIZER TRANSFORMER.", show_default=False
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Install under this name (default: the model's own).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an installed model of that name.")] = False,
    num_heads: Annotated[
        int | None,
        typer.Option("--num-heads", help="PUT: attention heads, where the file and its run's config do not say."),
    ] = None,
    resolution: Annotated[
        int | None, typer.Option("--resolution", help="DSI: the image size it was trained at (default 256).")
    ] = None,
):
    """Recognise an official checkpoint, convert it and install it; then `--method NAME` uses it. What the file
    does not record (PUT's head count, DSI's resolution) is said, with the value taken.

    Examples:

    \b
      pluralfill models add transformer_ffhq.pth --name my-put --num-heads 4
      pluralfill models add CelebA-HQ_center/ --name my-dsi --resolution 64
      pluralfill inpaint photo.jpg --mask hole.png --method my-put -n 2 -o out_mine
    """
    from pluralfill.registry import named_configs
    from pluralfill.store import add

    with err.status(f"reading {', '.join(map(str, files))}"):
        done = add(files, name, overwrite, num_heads=num_heads, resolution=resolution)
    out.print(f"installed {done.name} ({done.converter}) in {done.folder}", highlight=False)
    if done.name in named_configs():
        _say(
            f"note: {done.name} is also a named architecture; the installed model takes the name in info, inpaint "
            "and serve (`pluralfill models remove` gives it back)",
            out,
        )
    _say_assumed(done.assumed)
    out.print(f"use it: pluralfill inpaint photo.jpg --mask hole.png --method {done.name} -n 8 -o out", highlight=False)


@models_app.command("remove")
def models_remove(name: Annotated[str, typer.Argument(help="An installed model.", show_default=False)]):
    """Delete an installed model.

    Examples:

    \b
      pluralfill models add transformer_ffhq.pth --name my-put --num-heads 4
      pluralfill models remove my-put
    """
    from pluralfill.store import remove

    out.print(f"removed {name} ({remove(name)})", highlight=False)


# ------------------------------------------------------------------------------------------------ info


@app.command()
def info(
    name: Annotated[
        str | None, typer.Argument(help="Method name or checkpoint folder; none lists the methods.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """What a method name or checkpoint builds: method, resolution, parameters per component.

    Examples:

    \b
      pluralfill info
      pluralfill info put-scenes-small
      pluralfill info put-tpami-ffhq-256 --json
    """
    from pluralfill.registry import benchmarked, catalogue, describe
    from pluralfill.train.config import packaged_configs

    if name is None:
        rows = [entry | describe(entry["name"]) for entry in catalogue()]
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        _methods_table(rows)
        from pluralfill.io import read_yaml

        configs = packaged_configs()
        width = max(map(len, configs)) + 2
        print("\ntraining configs (pluralfill train NAME data.train=DIR):")
        for config, path in configs.items():
            tree = read_yaml(path) or {}
            print(f"  {config:<{width}}{tree.get('stage', '')} of {tree.get('model', '')}")
        print(f"\nbenchmarks: pluralfill bench --method {' | '.join([*benchmarked(), 'precision'])}")
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
    if d.get("options"):
        table = Table(title="options (--option NAME=VALUE; the common ones also as flags)")
        for c in ("option", "type", "range", "default", "what it does"):
            table.add_column(c)
        for o in d["options"]:
            kind = " | ".join(map(str, o["choices"])) if o["choices"] else o["type"]
            table.add_row(o["name"], kind, _range(o), "" if o["default"] is None else str(o["default"]), o["help"])
        out.print(table)
    if d.get("guides"):
        table = Table(title="guides (--guide NAME=FILE, a picture the image's size)")
        for c in ("guide", "kind", "what it does"):
            table.add_column(c)
        for g in d["guides"]:
            table.add_row(g["name"], g["kind"], g["help"])
        out.print(table)


def _methods_table(rows: list[dict]) -> None:
    """The methods by status, as plain lines (whole names at any width): what runs now, the demo, and what
    needs the authors' weights, with where they are published."""
    width = max(len(r["name"]) for r in rows) + 2

    def line(r):
        count = sum(r["parameters"].values())
        size = f"{r['resolution']} px" if r["resolution"] != "any" else "any size"
        return f"  {r['name']:<{width}}{r['method']:<20}{size:<10}{f'{count:,} parameters' if count else ''}".rstrip()

    ready = [r for r in rows if r["status"] == "ready"]
    print("ready (pluralfill inpaint IMAGE --mask HOLE --method NAME):", *map(line, ready), sep="\n")
    demo = [r for r in rows if r["status"] == "demo"]
    if demo:
        print(
            f"\ndemo ({demo[0]['note']}; `pluralfill models` lists the authors' weights):", *map(line, demo), sep="\n"
        )
    waiting = [r for r in rows if r["status"] == "needs weights"]
    if waiting:
        print(
            "\nneeds weights (the authors' checkpoint: pluralfill models add FILE --name NAME; or your own training):"
        )
        for note in dict.fromkeys(r["note"] for r in waiting):
            print(f" {note}:", *(line(r) for r in waiting if r["note"] == note), sep="\n")


def _range(option: dict) -> str:
    """An option's bounds as a user reads them: "0 - 1", ">= 1", "> 0 - 100"."""
    low, high = option.get("min"), option.get("max")
    if low is None and high is None:
        return ""
    left = "" if low is None else f"{'>' if option.get('min_exclusive') else '>='} {low}"
    right = "" if high is None else f"{'<' if option.get('max_exclusive') else '<='} {high}"
    return ", ".join(part for part in (left, right) if part)


# ------------------------------------------------------------------------------------------------ export


@app.command()
def export(
    name: Annotated[
        str, typer.Argument(help="A learned method: bundled or installed model, or a model folder.", show_default=False)
    ],
    onnx: Annotated[Path, typer.Option("--onnx", help="Folder to write the ONNX graphs and manifest.json into.")],
    overwrite: Overwrite = False,
):
    """Write each network of a model as ONNX (dynamic batch), each checked against PyTorch in onnxruntime.

    Examples:

    \b
      pluralfill export put-scenes-small --onnx onnx-put/
    """
    from pluralfill.export import ATOL, export_onnx
    from pluralfill.registry import load_inpainter

    _need_onnx()
    inpainter = load_inpainter(name)
    inpainter.export_networks(1)  # one line, before anything is written, for a method without networks
    with err.status(f"exporting {inpainter.name}") as status:
        manifest = export_onnx(inpainter, onnx, overwrite, lambda net: status.update(f"exported {net}"))
    for info in manifest["networks"].values():
        out.print(
            f"{onnx / info['file']}  inputs {', '.join(info['inputs'])} -> {info['output']}  "
            f"(max |onnxruntime - torch| {info['max_abs_diff']:.1e} <= {ATOL:g})",
            highlight=False,
        )

"""The model store, as other inpainting tools keep one: official checkpoints recognised, converted once and
installed as `$PLURALFILL_HOME/models/NAME` (config.json + model.safetensors), where `--method NAME`, the
web app's method list and `pluralfill info NAME` find them.

    pluralfill models                                   # bundled, installed, and the official families
    pluralfill models add pretrained_ffhq.pth --name put-ffhq
    pluralfill models remove put-ffhq
"""

from __future__ import annotations

import inspect
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pluralfill.errors import PluralfillError
from pluralfill.hub import installed_models, models_dir
from pluralfill.io import check_apart, clean_leftovers
from pluralfill.registry import bundled_models, converters, methods

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Installed:
    name: str
    folder: Path
    converter: str
    assumed: dict = field(default_factory=dict)  # settings the file does not record, and the value taken


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise PluralfillError(f"model name {name!r}: use lower-case letters, digits, '.', '_' and '-' (up to 64)")
    if (
        name in methods() or name in bundled_models()
    ):  # a named config's name is fine: the installed model is what it names
        raise PluralfillError(f"{name!r} is already a method or a bundled model; pick another --name")


def add(files: list[str | Path], name: str | None = None, overwrite: bool = False, **options) -> Installed:
    """Recognise the official checkpoint `files` (every converter that takes that many files and the
    `options` given, e.g. num_heads or resolution, is tried in turn), convert it and install it under `name`
    (default: the name the converter gives it). What the file does not record and was assumed is returned."""
    clean_leftovers(models_dir())  # what an install killed midway left
    files = [Path(f) for f in files]
    for f in files:
        if not f.exists():
            raise PluralfillError(f"not found: {f}")
    if name is not None:  # before converting a file of gigabytes
        _check_name(name)
    tried = []
    options = {k: v for k, v in options.items() if v is not None}
    for conv in converters().values():
        if len(conv.inputs) != len(files) or not set(options) <= set(inspect.signature(conv.convert).parameters):
            continue
        try:
            model = conv.convert(*files, **options)
        except PluralfillError as e:
            tried.append(f"{conv.name}: {e}")
            continue
        name = name or model.config.name
        _check_name(name)
        folder = models_dir() / name
        check_apart(folder, files, "installed model")
        if folder.exists() and not overwrite:
            raise PluralfillError(
                f"a model named {name} is installed already (pass --overwrite to replace it, or --name)"
            )
        model.save_pretrained(folder, overwrite=overwrite)
        return Installed(name, folder, conv.name, getattr(model, "assumed", {}))
    if not tried:
        if options:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in options)
            raise PluralfillError(f"no official format of {len(files)} file(s) takes {flags}")
        counts = sorted({len(c.inputs) for c in converters().values()})
        raise PluralfillError(
            f"no official format takes {len(files)} file(s); the converters take {' or '.join(map(str, counts))}"
        )
    raise PluralfillError(f"{files[0]} is not an official checkpoint pluralfill knows ({'; '.join(tried)})")


def remove(name: str) -> Path:
    installed = installed_models()
    if name not in installed:
        have = ", ".join(installed) or "none"
        raise PluralfillError(f"no installed model named {name!r} (installed: {have})")
    shutil.rmtree(installed[name])
    return installed[name]


def convert_into(converter: str, paths: list[Path], config: str | None = None, overwrite: bool = False, **options):
    """`pluralfill convert`: the official files `paths[:-1]` converted by `converter` into the folder
    `paths[-1]` (config.json + model.safetensors); returns the model (its `assumed` says what was taken)."""
    from pluralfill.registry import find_converter

    c = find_converter(converter)
    if len(paths) != len(c.inputs) + 1:
        raise PluralfillError(f"{c.name} takes {' '.join(c.inputs)} OUTPUT, got {len(paths)} path(s)")
    *inputs, output = paths
    check_apart(output, inputs)
    if output.exists() and not overwrite:
        raise PluralfillError(f"output exists: {output} (pass --overwrite to replace)")
    options = {k: v for k, v in options.items() if v is not None}
    for key in options:
        if key not in inspect.signature(c.convert).parameters:
            raise PluralfillError(f"{c.name} takes no --{key.replace('_', '-')}: its checkpoints fix it")
    model = c.convert(*inputs, config=config, **options)
    model.save_pretrained(output, overwrite=overwrite)
    return model


def listing() -> list[str]:
    """What `pluralfill models` prints: the bundled and installed models, and the official families."""
    from pluralfill.models.base import read_config

    installed = installed_models()
    lines = ["models to use with --method NAME:"]
    for kind, found in (("bundled", bundled_models()), ("installed", installed)):
        lines += [
            f"  {name}  ({kind}, {read_config(folder).get('method', '?')}) {folder}" for name, folder in found.items()
        ]
    if not installed:
        lines.append(f"  nothing installed in {models_dir()} yet")
    lines.append(
        "official models: download, then `pluralfill models add FILE...` (or `pluralfill convert` into a folder):"
    )
    return lines + [
        f"  {c.name}: {' '.join(c.inputs)}\n      {c.summary}\n      published at {c.weights_page}"
        for c in converters().values()
    ]

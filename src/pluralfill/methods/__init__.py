"""The registry of methods (timm style): a name or a checkpoint folder -> an Inpainter."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pluralfill.errors import PluralfillError
from pluralfill.methods.base import Inpainter
from pluralfill.methods.classical import PatchMatchInpainter, navier_stokes, telea

# name -> factory(**options). Learned methods register here and in CHECKPOINT_LOADERS.
METHODS: dict[str, Callable[..., Inpainter]] = {
    "patchmatch": PatchMatchInpainter,
    "telea": telea,
    "navier-stokes": navier_stokes,
}
# the "method" field of a checkpoint's config.json -> loader(folder, device)
CHECKPOINT_LOADERS: dict[str, Callable[[Path, str], Inpainter]] = {}
DEVICELESS = {"patchmatch", "telea", "navier-stokes"}


def available_methods() -> list[str]:
    return list(METHODS)


def load_inpainter(name_or_path: str | Path, device: str = "cpu", **options) -> Inpainter:
    """A method by name (`patchmatch`, `telea`, ...) or a checkpoint folder holding `config.json`."""
    name = str(name_or_path)
    if name in METHODS:
        if name not in DEVICELESS:
            options["device"] = device
        return METHODS[name](**options)
    path = Path(name_or_path)
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        try:
            method = json.loads(config.read_text()).get("method")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
            raise PluralfillError(f"cannot read {config}: {e}") from None
        if method not in CHECKPOINT_LOADERS:
            raise PluralfillError(f"checkpoint {path} is for method {method!r}, which this pluralfill cannot load")
        return CHECKPOINT_LOADERS[method](path, device)
    if path.exists():
        raise PluralfillError(f"{path} is not a checkpoint folder (no config.json in it)")
    raise PluralfillError(f"unknown method or checkpoint {name!r}; methods: {', '.join(available_methods())}")


def describe(name_or_path: str | Path) -> dict:
    """What a name or checkpoint builds: method, resolution and parameter counts per component."""
    return load_inpainter(name_or_path).describe()


__all__ = ["Inpainter", "available_methods", "describe", "load_inpainter"]

"""The registry of methods (timm style): a name or a checkpoint folder -> an Inpainter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pluralfill.errors import PluralfillError
from pluralfill.methods.base import Inpainter
from pluralfill.methods.classical import PatchMatchInpainter, navier_stokes, telea
from pluralfill.models.hub import read_config

# name -> factory(**options): methods that run as they are
METHODS: dict[str, Callable[..., Inpainter]] = {
    "patchmatch": PatchMatchInpainter,
    "telea": telea,
    "navier-stokes": navier_stokes,
}
DEVICELESS = {"patchmatch", "telea", "navier-stokes"}
# the "method" field of a checkpoint's config.json -> loader(folder, device)
CHECKPOINT_LOADERS: dict[str, Callable[[Path, str], Inpainter]] = {}
# first-stage models (autoencoders) -> the training stage that builds an inpainter on them
NEXT_STAGE = {"pvqvae": "put-transformer", "vqgan": "maskgit-transformer", "dsi-hvqvae": "dsi-structure"}
# named architectures whose weights come from a checkpoint: name -> what it builds (for `info`)
ARCHITECTURES: dict[str, Callable[[], dict]] = {}


def bundled_models() -> dict[str, Path]:
    """Models whose weights ship inside the package (`pluralfill/weights/NAME/`): name -> folder."""
    from importlib.resources import files

    root = Path(str(files("pluralfill").joinpath("weights")))
    return {p.name: p for p in sorted(root.glob("*")) if (p / "config.json").is_file()} if root.is_dir() else {}


def _register(method: str, configs_module: str, model_class: str, inpainter: str) -> None:
    """A learned method: its checkpoints load by the `method` in config.json, its named configs show in `info`."""
    import importlib

    def load(folder, device):
        module, cls = inpainter.rsplit(".", 1)
        return getattr(importlib.import_module(module), cls).from_pretrained(folder, device)

    def architecture(name):
        def info():
            import torch

            module = importlib.import_module(configs_module)
            cfg = module.CONFIGS[name]
            with torch.device("meta"):  # counts parameters without allocating them
                model = getattr(module, model_class)(cfg)
            res = getattr(cfg, "resolution", None) or (getattr(cfg, "pvqvae", None) or cfg.tokenizer).resolution
            return {"name": name, "method": getattr(model, "method", method), "resolution": res, "parameters": model.parameter_counts()}

        return info

    CHECKPOINT_LOADERS[method] = load
    for name in importlib.import_module(configs_module).CONFIGS:
        ARCHITECTURES[name] = architecture(name)


_register("put", "pluralfill.models.put", "PUT", "pluralfill.methods.put.PUTInpainter")
_register("maskgit", "pluralfill.models.maskgit", "MaskGIT", "pluralfill.methods.maskgit.MaskGITInpainter")
_register("mhtma", "pluralfill.models.mhtma", "MHTMA", "pluralfill.methods.mhtma.MHTMAInpainter")
CHECKPOINT_LOADERS["mhtma-sketch"] = CHECKPOINT_LOADERS["mhtma"]
_register("dsi", "pluralfill.models.dsi", "DSI", "pluralfill.methods.dsi.DSIInpainter")


def available_methods() -> list[str]:
    """Methods that run as they are: the bundled models and the classical fills; others need a checkpoint."""
    return [*bundled_models(), *METHODS]


def load_inpainter(name_or_path: str | Path, device: str = "cpu", **options) -> Inpainter:
    """A method by name (`patchmatch`, `telea`, ...) or a checkpoint folder holding `config.json`."""
    name = str(name_or_path)
    if name in METHODS:
        if name not in DEVICELESS:
            options["device"] = device
        return METHODS[name](**options)
    bundled = bundled_models()
    path = bundled[name] if name in bundled else Path(name_or_path)
    if path.is_dir() and not (path / "config.json").exists():  # a training run: its best model, else its last
        path = next((path / n for n in ("best", "last") if (path / n / "config.json").is_file()), path)
    if path.is_dir():
        method = read_config(path).get("method")
        if method in NEXT_STAGE:
            raise PluralfillError(f"{path} holds a first-stage {method} model, which cannot inpaint on its own: "
                                  f"train the {NEXT_STAGE[method]} stage with first_stage={name_or_path}")  # fmt: skip
        if method not in CHECKPOINT_LOADERS:
            raise PluralfillError(f"checkpoint {path} is for method {method!r}, which this pluralfill cannot load")
        return CHECKPOINT_LOADERS[method](path, device)
    if name in ARCHITECTURES or name in CHECKPOINT_LOADERS:
        raise PluralfillError(
            f"{name} needs trained weights: pass --checkpoint RUN_DIR (train with `pluralfill train`, "
            "or convert official weights with `pluralfill convert`)"
        )
    if path.exists():
        raise PluralfillError(f"{path} is not a checkpoint folder (no config.json in it)")
    raise PluralfillError(f"unknown method or checkpoint {name!r}; methods: {', '.join(available_methods())}")


def describe(name_or_path: str | Path) -> dict:
    """What a name or checkpoint builds: method, resolution and parameter counts per component."""
    if str(name_or_path) in ARCHITECTURES and not Path(name_or_path).is_dir():
        return ARCHITECTURES[str(name_or_path)]()
    return load_inpainter(name_or_path).describe()


__all__ = ["Inpainter", "available_methods", "bundled_models", "describe", "load_inpainter"]

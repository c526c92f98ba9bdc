"""The registry of methods: one declaration per method, and the entry points that read it.

A method is declared once, in its own module of this package (timm's `@register_model`, for a whole
method): its name, its inpainter, the model its checkpoints hold and its named configs, its training
stages, and the converters of its official checkpoints. Every entry point reads the declarations:
`load_inpainter`, `describe` (`pluralfill info`), `train` and `load_config` (`pluralfill train`),
`find_converter` (`pluralfill convert`). Adding a method = its files in models/, methods/, train/ (and
pretrained/) + one module here; nothing else lists methods.

    registry/put.py:
        register(MethodSpec(name="put", inpainter=PUTInpainter, model=PUT, configs=CONFIGS,
                            stages=(Stage(PVQVAEStage, train_pvqvae),
                                    Stage(TransformerStage, train_transformer, reads=PVQVAE)),
                            converters=(Converter("put-official", ("CHECKPOINT",), convert, ...),)))

The declarations import every layer below (models, methods, train, pretrained), so this package sits on
top of them; only `cli` and `app` import it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pluralfill.errors import PluralfillError


@dataclass(frozen=True)
class Stage:
    """A training stage: its config class (with `stage: Literal[name]` and its own loss settings) and the
    function that trains it, `train(cfg, resume) -> run folder`. `reads`: the model class of the first
    stage it builds on (`first_stage=`), if any."""

    config: type
    train: Callable
    reads: type | None = None

    @property
    def name(self) -> str:
        return self.config.model_fields["stage"].annotation.__args__[0]


@dataclass(frozen=True)
class Converter:
    """`pluralfill convert NAME INPUT... OUTPUT`: `convert(*inputs, config=None, **options)` reads official
    files (never unpickling code) and returns a model with `save_pretrained`."""

    name: str
    inputs: tuple[str, ...]  # what the files are, in order, e.g. ("TOKENIZER", "TRANSFORMER")
    convert: Callable
    summary: str
    weights_page: str  # where the authors publish the files


@dataclass(frozen=True)
class MethodSpec:
    name: str
    summary: str
    inpainter: Callable  # learned: a class with from_pretrained(folder, device); weightless: a factory(**options)
    model: type | None = None  # the Pretrained class its checkpoints hold; None: runs without weights
    configs: Mapping[str, object] = field(default_factory=dict)  # named configs (`pluralfill info NAME`)
    checkpoint_names: tuple[str, ...] = ()  # the `method` values of config.json it loads; default (name,)
    stages: tuple[Stage, ...] = ()
    converters: tuple[Converter, ...] = ()
    paper: str = ""
    benchmark: Callable | None = None  # `pluralfill bench --method NAME`: a function of a bench.Request -> results
    # `pluralfill bench --method precision`: key -> (official config, tiny config, sampling options)
    precision_models: Mapping[str, tuple[str, str, dict]] = field(default_factory=dict)

    @property
    def loads(self) -> tuple[str, ...]:
        return self.checkpoint_names or ((self.name,) if self.model is not None else ())


_SPECS: dict[str, MethodSpec] = {}
_LOADED = False


def register(spec: MethodSpec) -> MethodSpec:
    if spec.name in _SPECS:
        raise ValueError(f"method {spec.name!r} is declared twice")
    _SPECS[spec.name] = spec
    return spec


def methods() -> dict[str, MethodSpec]:
    """Every declared method, by name (the modules of this package are imported on first use)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
    return _SPECS


# ------------------------------------------------------------------------------------------------ lookups


def stages() -> dict[str, tuple[MethodSpec, Stage]]:
    return {stage.name: (spec, stage) for spec in methods().values() for stage in spec.stages}


def converters() -> dict[str, Converter]:
    return {c.name: c for spec in methods().values() for c in spec.converters}


def find_converter(name: str) -> Converter:
    found = converters()
    if name not in found:
        raise PluralfillError(f"unknown converter {name!r}; converters: {', '.join(found)}")
    return found[name]


def named_configs() -> dict[str, tuple[MethodSpec, object]]:
    """Every named configuration of every method: `put-ffhq`, `maskgit-tiny`, ..."""
    return {name: (spec, cfg) for spec in methods().values() for name, cfg in spec.configs.items()}


def for_checkpoint(method: str | None) -> MethodSpec | None:
    """The method that loads checkpoints whose config.json says `method`."""
    return next((s for s in methods().values() if method in s.loads), None)


def bundled_models() -> dict[str, Path]:
    """Models whose weights ship inside the package (`pluralfill/weights/NAME/`): name -> folder."""
    from importlib.resources import files

    root = Path(str(files("pluralfill").joinpath("weights")))
    return {p.name: p for p in sorted(root.glob("*")) if (p / "config.json").is_file()} if root.is_dir() else {}


def available_methods() -> list[str]:
    """Methods that run as they are, the default first: the methods without weights, the models installed in
    the store (`pluralfill models add`), then the bundled demo models."""
    from pluralfill import DEFAULT_METHOD
    from pluralfill.hub import installed_models

    names = [*(name for name, s in methods().items() if s.model is None), *installed_models(), *bundled_models()]
    return list(dict.fromkeys([DEFAULT_METHOD, *names]))


DEMO_NOTE = "a demo of the learned pipeline, trained for two CPU hours: not the papers' quality"


def catalogue() -> list[dict]:
    """Every name `--method` takes, once, with what it is: {"name", "status" ("ready", "demo" or "needs weights"),
    "kind" ("classical", "installed", "bundled" or "architecture"), "note"}. An installed or bundled model takes
    its name before a named architecture of the same name, here and in `load_inpainter` and `describe`."""
    from pluralfill.hub import installed_models

    bundled, installed, rows = bundled_models(), installed_models(), {}
    for name in available_methods():
        kind = (
            "bundled"
            if name in bundled and name not in installed
            else "installed"
            if name in installed
            else "classical"
        )
        note = DEMO_NOTE if kind == "bundled" else ""
        rows[name] = {"name": name, "status": "demo" if kind == "bundled" else "ready", "kind": kind, "note": note}
    for name, (spec, _) in named_configs().items():
        where = (
            f"published at {spec.converters[0].weights_page}"
            if spec.converters
            else "no published weights: train one (pluralfill train, see pluralfill info for the configs)"
        )
        rows.setdefault(name, {"name": name, "status": "needs weights", "kind": "architecture", "note": where})
    return list(rows.values())


# ------------------------------------------------------------------------------------------------ inference


def load_inpainter(name_or_path: str | Path, device: str = "cpu", precision: str = "fp32", **options):
    """A method by name (`patchmatch`, `telea`, a bundled model), or a checkpoint folder holding
    `config.json` (a training run folder gives its best model, else its last), in `precision` (fp32, bf16
    or int8; see pluralfill.precision)."""
    from pluralfill import devices

    devices.check(device)  # one line for a device this machine lacks, before any weights are read
    inpainter = _load_inpainter(name_or_path, device, **options)
    if precision != "fp32":
        if not hasattr(inpainter, "to_precision"):
            raise PluralfillError(
                f"{inpainter.name} is a classical method: it runs in numpy, precision {precision} applies to learned "
                f"models"
            )
        inpainter.to_precision(precision)
    return inpainter


def _load_inpainter(name_or_path, device, **options):
    from pluralfill.models.base import read_config

    name = str(name_or_path)
    spec = methods().get(name)
    if spec is not None and spec.model is None:
        return spec.inpainter(**options)
    from pluralfill.hub import installed_models

    stored = bundled_models() | installed_models()
    path = stored[name] if name in stored and not Path(name).is_dir() else Path(name_or_path)
    path = _model_folder(path)
    if path.is_dir():
        method = read_config(path).get("method")
        spec = for_checkpoint(method)
        if spec is None:
            after, _ = _reader_of(method)
            if after is not None:
                raise PluralfillError(
                    f"{path} holds a first-stage {method} model, which cannot inpaint on its own: "
                    f"train the {after} stage with first_stage={name_or_path}"
                )
            raise PluralfillError(f"checkpoint {path} is for method {method!r}, which this pluralfill cannot load")
        return spec.inpainter.from_pretrained(path, device)
    if spec is not None or name in named_configs():
        owner = spec or named_configs()[name][0]
        where = f" (published at {owner.converters[0].weights_page})" if owner.converters else ""
        raise PluralfillError(
            f"{name} needs trained weights: download the authors' checkpoint{where} and install it with "
            f"`pluralfill models add FILE --name {name}`, or pass --checkpoint RUN_DIR after `pluralfill train`"
        )
    if path.is_file():
        raise PluralfillError(
            f"{path} is a file; a checkpoint is a model folder (config.json + model.safetensors) or a "
            "training run folder (an official weight file: `pluralfill models add` it first)"
        )
    if path.exists():
        raise PluralfillError(f"{path} is not a checkpoint folder (no config.json in it)")
    raise PluralfillError(f"unknown method or checkpoint {name!r}; methods: {', '.join(available_methods())}")


def describe(name_or_path: str | Path) -> dict:
    """What a name or checkpoint builds: method, resolution and parameter counts per component. A named
    config is built on the meta device: its parameters are counted, never allocated."""
    from pluralfill.hub import installed_models

    name = str(name_or_path)
    configs = named_configs()
    stored = name in bundled_models() or name in installed_models()  # a stored model takes the name first
    if name in configs and not stored and not Path(name).is_dir():
        import torch

        spec, cfg = configs[name]
        with torch.device("meta"):
            model = spec.model(cfg)
        method = getattr(model, "method", spec.name)
        weightless = spec.inpainter(model, device="meta")  # an inpainter over the weightless model
        options = weightless.option_specs()
        return {
            "name": name,
            "method": method,
            "resolution": cfg.resolution,
            "parameters": model.parameter_counts(),
            "options": options,
            "guides": weightless.guide_specs(),
        }
    first, folder = _first_stage(Path(name_or_path))
    if first is not None:  # a first stage (P-VQVAE, VQ-VAE, VQGAN) describes itself; it cannot inpaint
        model = first.from_pretrained(folder)
        counts = (
            model.parameter_counts()
            if hasattr(model, "parameter_counts")
            else {first.method: sum(p.numel() for p in model.parameters())}
        )
        return {
            "name": getattr(model.config, "name", Path(name_or_path).name),
            "method": first.method,
            "resolution": getattr(model.config, "resolution", "any"),
            "parameters": counts,
            "first_stage": True,
        }
    return load_inpainter(name_or_path).describe()


def _model_folder(path: Path) -> Path:
    """A model folder as it is, a training run folder's best/ (else last/) model."""
    if path.is_dir() and not (path / "config.json").exists():
        return next((path / n for n in ("best", "last") if (path / n / "config.json").is_file()), path)
    return path


def _reader_of(method: str | None):
    """(the stage that builds on a first stage of `method`, that first stage's model class), or (None, None)."""
    return next(
        (
            (name, stage.reads)
            for name, (_, stage) in stages().items()
            if stage.reads is not None and stage.reads.method == method
        ),
        (None, None),
    )


def _first_stage(path: Path):
    """(the model class, its folder) of a first-stage folder (or a run folder's best/last model), else (None, path)."""
    from pluralfill.models.base import read_config

    path = _model_folder(path)
    if not (path / "config.json").is_file():
        return None, path
    method = read_config(path).get("method")
    if for_checkpoint(method) is not None:
        return None, path
    return _reader_of(method)[1], path


# ------------------------------------------------------------------------------------------------ training


def load_config(path=None, overrides: list[str] = (), resume=None):
    """A training config: a YAML file (or the saved config of the run `resume` continues) with `a.b=value`
    overrides, validated by the config class of the stage it names."""
    from pluralfill.train.config import read_config, validate
    from pluralfill.train.run import resolve_run_config

    tree = read_config(path, overrides, base=resolve_run_config(resume) if resume is not None else None)
    return validate(tree, {name: stage.config for name, (_, stage) in stages().items()})


def train(cfg, resume=None) -> Path:
    """Run the stage `cfg.stage` names; returns the run folder."""
    if cfg.data.train is None:
        raise PluralfillError(
            "no training images: pass data.train=DIR (a folder of images, searched recursively, "
            "or a text file of paths)"
        )
    from pluralfill.train.run import Run

    started = len(Run.fresh)
    try:
        return stages()[cfg.stage][1].train(cfg, resume)
    except BaseException:  # a start that failed leaves no half-made run folder behind
        for run in Run.fresh[started:]:
            run.discard_unstarted()
        raise


def precision_models() -> dict:
    """`pluralfill bench --method precision`'s models: key -> (spec, official config, tiny config, options)."""
    return {key: (spec, *models) for spec in methods().values() for key, models in spec.precision_models.items()}


def benchmarked() -> list[str]:
    """The methods with a benchmark of their own (`pluralfill bench --method NAME`)."""
    return [name for name, spec in methods().items() if spec.benchmark is not None]

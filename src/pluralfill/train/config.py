"""The training configuration: YAML, validated by pydantic (unknown keys are errors), `key=value` overrides."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pluralfill.errors import PluralfillError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Beta = Annotated[float, Field(ge=0, lt=1)]  # an Adam beta


class DataConfig(Strict):
    train: str | None = None  # a folder of images (searched recursively) or a text file of paths; set it per run
    val: str | None = None  # held-out images; without it `val_fraction` of `train` is set aside
    val_fraction: float = Field(0.02, ge=0, lt=1)
    exclude: list[str] = []  # file-name patterns left out of train and val, e.g. held-out sources "coffee_*"
    num_workers: int = Field(2, ge=0, le=64)


class MaskConfig(Strict):
    preset: str | list[str] | None = "put"  # see `pluralfill masks presets`; a list: one drawn per hole
    folder: str | None = None  # or a folder of mask PNGs (e.g. the NVIDIA irregular masks)
    invert: bool = False
    folder_probability: float = Field(1.0, ge=0, le=1)  # with a folder and a preset: the share of holes from the folder
    folder_range: tuple[int, int] | None = None  # the files [a, b) of the sorted folder (PConv masks by hole ratio)
    zero_probability: float = Field(
        0.0, ge=0, le=1
    )  # a hole over the whole image (the official PUT recipe's zero_mask)
    low_resolution_probability: float = Field(0.0, ge=0, le=1)  # a hole resized to low_resolution px and back
    low_resolution: int = Field(32, ge=1, le=4096)


class OptimConfig(Strict):
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(2e-4, gt=0, allow_inf_nan=False)
    betas: tuple[Beta, Beta] = (0.9, 0.95)
    weight_decay: float = Field(0.01, ge=0, allow_inf_nan=False)
    warmup_steps: int = Field(100, ge=0)
    # cosine: linear warm-up to lr, cosine down to min_lr; put: the official PUT scheduler (warm-up from 0,
    # CosineAnnealingLRWithWarmup), dsi: the official DSI structure schedule, see train.run.lr_at;
    # constant: lr after the warm-up
    schedule: Literal["cosine", "constant", "put", "dsi"] = "cosine"
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    # the floor in absolute terms (the official PUT configs: 1e-6, 1e-5); overrides the ratio
    min_lr: float | None = Field(None, ge=0, allow_inf_nan=False)
    grad_clip: float | None = Field(1.0, gt=0, allow_inf_nan=False)


class AdversarialOptim(OptimConfig):
    """The optimizer settings of a stage with a discriminator: its Adam's peak learning rate and betas (None:
    the generator's), on the generator's schedule."""

    disc_lr: float | None = Field(None, gt=0, allow_inf_nan=False)
    disc_betas: tuple[Beta, Beta] | None = None


MOVED = {"loss.disc_lr": "optim.disc_lr"}  # settings an older pluralfill read elsewhere


class TrainConfig(Strict):
    """What every stage takes. Each stage subclasses it with `stage: Literal[its name]` and its own `loss`
    (and, where it has more, `optim`) section, so a setting another stage uses is an error here."""

    stage: str
    model: str | dict = "put-tiny"  # a named config (see `pluralfill info`), an inline one, or {base: NAME, key: value}
    data: DataConfig = DataConfig()
    masks: MaskConfig = MaskConfig()
    optim: OptimConfig = OptimConfig()
    loss: Strict = Strict()  # the stage's loss weights and schedule
    steps: int = Field(1000, ge=1, le=10**9)
    batch_size: int = Field(8, ge=1, le=1024)
    seed: int = Field(0, ge=0, lt=2**32)
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true"] = "32-true"  # bf16 on GPUs
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = 1
    num_nodes: int = Field(1, ge=1, le=4096)
    strategy: Literal["auto", "ddp", "ddp_spawn", "fsdp", "ddp_find_unused_parameters_true"] = "auto"
    log_every: int = Field(10, ge=1)
    val_every: int = Field(200, ge=1)
    val_batches: int = Field(4, ge=0)
    sample_every: int = Field(200, ge=1)
    checkpoint_every: int = Field(200, ge=1)
    run_dir: str | None = None  # default: runs/<stage>-<model>-<time>

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, tree):
        """A config (or a run folder) from an older pluralfill: each moved key read where it lives now, with a note."""
        if not isinstance(tree, dict):
            return tree
        tree = dict(tree)
        for old, new in MOVED.items():
            (section, key), (to_section, to_key) = old.split("."), new.split(".")
            if isinstance(tree.get(section), dict) and key in tree[section]:
                tree[section] = dict(tree[section])
                value = tree[section].pop(key)
                tree[to_section] = dict(tree.get(to_section) or {}) | {to_key: value}
                logging.getLogger("pluralfill").warning(
                    f"note: {old} is now {new}; read as {new}={value} (move it in the config)"
                )
        return tree


class SecondStageConfig(TrainConfig):
    """A stage that trains on top of a first stage's model."""

    first_stage: str | None = None  # the stage-1 run folder (its best model) or a model folder


def model_config(cfg: TrainConfig, configs: dict, config_class):
    """The named or inline model config of a run, as `config_class`; {base: NAME, ...} is a named config with
    some fields changed (what `model.attention=atma` on the command line makes of a named model)."""
    tree = cfg.model if isinstance(cfg.model, dict) else {"base": cfg.model}
    tree = dict(tree)
    if "base" in tree:
        base = tree.pop("base")
        if base not in configs:
            raise PluralfillError(
                f"unknown model {base!r} for {cfg.stage}; choose from {', '.join(configs)} or give a config"
            )
        tree = _merge(configs[base].model_dump(), tree)
    try:
        return config_class.model_validate(tree)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"])) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        raise PluralfillError(f"config error at model{'.' + where if where else ''}: {message}") from None


def _merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` written into it, nested dicts field by field: `model.pvqvae.patch_size=8` on a
    named model changes that one field, not the whole `pvqvae` section."""
    out = dict(base)
    for k, v in changes.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _set(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        if k == "model" and isinstance(tree.get(k), str):  # a named model with fields changed
            tree[k] = {"base": tree[k]}
        tree = tree.setdefault(k, {})
        if not isinstance(tree, dict):
            raise PluralfillError(f"cannot set {dotted}: {k} is not a section")
    tree[keys[-1]] = value


def packaged_configs() -> dict[str, Path]:
    """The training configs that ship with pluralfill, by name (`put-tiny-pvqvae`, `mhtma`, ...)."""
    from importlib.resources import files

    root = Path(str(files("pluralfill").joinpath("configs")))
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def find_config(name_or_path: str | os.PathLike) -> Path:
    """A config file: the path as given, or a packaged config by name (`put-tiny-pvqvae`, or with `.yaml`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = packaged_configs()
    stem = path.name.removesuffix(".yaml")
    if len(path.parts) == 1 and stem in named:
        return named[stem]
    raise PluralfillError(
        f"config not found: {path} is not a file, nor a packaged config (`pluralfill info` lists them)"
    )


def read_config(path: str | os.PathLike | None, overrides: list[str] = (), base: dict | None = None) -> dict:
    """YAML file or packaged config name (or `base`, a run's saved config) with `a.b=value` overrides (values
    parsed as YAML)."""
    if base is not None:
        tree = base
    else:
        path = find_config(path)
        from pluralfill.io import read_yaml

        tree = read_yaml(path, "training config") or {}
        if not isinstance(tree, dict):
            raise PluralfillError(
                f"{path} is not a training config: expected a YAML mapping of settings (see `pluralfill info`), got a "
                f"{type(tree).__name__}"
            )
    for item in overrides:
        if "=" not in item:
            raise PluralfillError(f"overrides look like key=value, got {item!r}")
        key, value = item.split("=", 1)
        _set(tree, key, yaml.safe_load(value) if value else None)
    return tree


def validate(tree: dict, stages: Mapping[str, type[TrainConfig]]) -> TrainConfig:
    """The config of the stage `tree["stage"]` names, validated by that stage's class."""
    stage = tree.get("stage")
    if stage not in stages:
        raise PluralfillError(
            f"config error at stage: {'missing' if stage is None else repr(stage)}; the stages are {', '.join(stages)}"
        )
    cls = stages[stage]
    try:
        return cls.model_validate(tree)
    except ValidationError as e:
        problems = {}  # every bad setting at once, each once (a union type reports one error per member)
        for error in e.errors():
            loc = [p for p in error["loc"] if not (isinstance(p, str) and any(c in p for c in "[-'("))]  # union tags
            where = ".".join(str(p) for p in loc)
            if error["type"] == "extra_forbidden":  # name what the section does take, for this stage
                section = cls
                for part in loc[:-1]:
                    section = section.model_fields[part].annotation
                takes = ", ".join(getattr(section, "model_fields", {})) or "none"
                section_name = ".".join(map(str, loc[:-1])) or "the config"
                message = f"the {stage} stage has no such setting; {section_name} takes: {takes}"
            else:
                message = error["msg"].replace("Input should be", "should be")
            problems.setdefault(
                where, f"{message} (got {error['input']!r:.60})" if error["type"] != "extra_forbidden" else message
            )
        raise PluralfillError("config error: " + "; ".join(f"at {k}: {v}" for k, v in problems.items())) from None

"""The training configuration: YAML, validated by pydantic (unknown keys are errors), `key=value` overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pluralfill.errors import PluralfillError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    train: str  # a folder of images (searched recursively) or a text file of paths
    val: str | None = None  # held-out images; without it `val_fraction` of `train` is set aside
    val_fraction: float = 0.02
    exclude: list[str] = []  # file-name patterns left out of train and val, e.g. held-out sources "coffee_*"
    num_workers: int = 2


class MaskConfig(Strict):
    preset: str | list[str] | None = "put"  # see `pluralfill masks presets`; a list: one drawn per hole
    folder: str | None = None  # or a folder of mask PNGs (e.g. the NVIDIA irregular masks)
    invert: bool = False


class OptimConfig(Strict):
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    temperature_lr_scale: float = 1.0  # MHTMA: the temperature network's learning rate relative to lr
    polyak_decay: float | None = None  # DSI: export an exponential moving average of the weights (0.9997 in seed 001)


class LossConfig(Strict):
    """Stage 1 weights of seed 000 Eq. 8 and 1; the GAN, perceptual and style terms start late."""

    pixel: float = 1.0
    gradient: float = 5.0
    adversarial: float = 0.1
    perceptual: float = 0.1
    style: float = 250.0
    commitment: float = 0.25
    late_start_step: int = 10_000  # GAN, perceptual and style terms join at this step
    vgg_weights: str | None = None  # VGG-19 file; default: cache, then download
    disc_lr: float = 2e-4
    random_quantize: float = 0.3  # PUT stage 2: known features swapped for their codes with this probability
    label_smoothing: float = 0.0  # MaskGIT stage 2
    mask_schedule: str = "cosine"  # MaskGIT stage 2: gamma for the masking ratio of MVTM
    coarse_pixel: float = 1.0  # MHTMA: L1 of the coarse output (Eq. 2); `pixel` weighs the final output's
    gan: Literal["hinge", "wgan-gp"] = "hinge"  # MHTMA: HAL-SN (default) or WGAN-GP (seed 002 Table II)
    gradient_penalty: float = 10.0  # MHTMA with gan=wgan-gp
    structural_feature: float = 1.0  # DSI texture stage: cross-entropy of the output's top codes against the structure


class SketchConfig(Strict):
    """How the sketch-guided MHTMA gets its training sketches (seed 002, IV-F)."""

    threshold: float = 0.65
    min_area: int = 100  # px at 256x256, scaled with the training resolution
    pidinet: str | None = None  # PiDiNet weights (table5_pidinet.pth); without them the classical edge detector


class TrainConfig(Strict):
    stage: Literal["put-pvqvae", "put-transformer", "maskgit-tokenizer", "maskgit-transformer", "mhtma", "dsi-hvqvae",
                   "dsi-structure", "dsi-texture"]
    model: str | dict = "put-tiny"  # a named config (see `pluralfill info`), an inline one, or {base: NAME, key: value}
    first_stage: str | None = None  # stage 2: the stage-1 run folder (its best model) or a model folder
    data: DataConfig
    masks: MaskConfig = MaskConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    sketch: SketchConfig = SketchConfig()
    steps: int = 1000
    batch_size: int = 8
    seed: int = 0
    precision: str = "32-true"  # "bf16-mixed" on GPUs
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    log_every: int = 10
    val_every: int = 200
    val_batches: int = 4
    sample_every: int = 200
    checkpoint_every: int = 200
    run_dir: str | None = None  # default: runs/<config name>-<time>


def model_config(cfg: "TrainConfig", configs: dict, config_class):
    """The named or inline model config of a run, as `config_class`; {base: NAME, ...} is a named config with
    some fields changed (what `model.attention=atma` on the command line makes of a named model)."""
    tree = cfg.model if isinstance(cfg.model, dict) else {"base": cfg.model}
    tree = dict(tree)
    if "base" in tree:
        base = tree.pop("base")
        if base not in configs:
            raise PluralfillError(f"unknown model {base!r} for {cfg.stage}; choose from {', '.join(configs)} or give a config")
        tree = _merge(configs[base].model_dump(), tree)
    try:
        return config_class.model_validate(tree)
    except ValidationError as e:
        first = e.errors()[0]
        raise PluralfillError(f"config error at model.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


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


def load_config(path: str | os.PathLike | None, overrides: list[str] = (), base: dict | None = None) -> TrainConfig:
    """YAML file (or `base`) + `a.b=value` overrides (values parsed as YAML) -> validated TrainConfig."""
    if base is not None:
        tree = base
    else:
        path = Path(path)
        if not path.is_file():
            raise PluralfillError(f"config not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise PluralfillError(f"cannot parse {path}: {str(e).splitlines()[0]}") from None
    for item in overrides:
        if "=" not in item:
            raise PluralfillError(f"overrides look like key=value, got {item!r}")
        key, value = item.split("=", 1)
        _set(tree, key, yaml.safe_load(value) if value else None)
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PluralfillError(f"config error at {where}: {first['msg']} ({e.error_count()} error(s))") from None

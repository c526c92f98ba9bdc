"""save_pretrained / from_pretrained: a folder with `config.json` and `model.safetensors` (diffusers style).

Nothing is unpickled: configs are JSON validated by pydantic, weights are safetensors.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pluralfill.errors import PluralfillError
from pluralfill.hub import load_checked
from pluralfill.io import check_replaceable, replace_folder

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
MODEL_FILES = {CONFIG_NAME, WEIGHTS_NAME, "sampling.json", "MODEL_CARD.md"}  # what a model folder may hold


def save_pretrained(
    model: torch.nn.Module, folder: str | os.PathLike, extra: dict | None = None, overwrite: bool = False
) -> Path:
    """Write `model.config` and its tensors into `folder`, atomically: a reader sees the old folder or the
    new one, never half of one."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise PluralfillError(f"output exists: {folder} (pass --overwrite to replace)")
    check_replaceable(folder, MODEL_FILES.__contains__, "model folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        config = {**(extra or {}), **model.config.model_dump(mode="json")}
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        try:
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        except Exception as e:  # safetensors' own error for a failed write (a full disk), or an OSError
            raise PluralfillError(f"cannot write {folder}: {e}".splitlines()[0] + " (nothing was replaced)") from None
        replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_config(folder: str | os.PathLike) -> dict:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise PluralfillError(f"{folder} is not a checkpoint folder (no {CONFIG_NAME} in it)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise PluralfillError(f"cannot read {path}: {e}") from None
    if not isinstance(config, dict):
        raise PluralfillError(
            f"{path} is not a model config: a JSON object of settings was expected, not {config!r:.40}"
        )
    return config


def load_weights_into(model: torch.nn.Module, folder: str | os.PathLike) -> torch.nn.Module:
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise PluralfillError(f"{folder} has no {WEIGHTS_NAME}")
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise PluralfillError(f"cannot read {path}: {e}".splitlines()[0]) from None
    return load_checked(model, state, f"{path} (config {Path(folder) / CONFIG_NAME})")


class Pretrained:
    """save_pretrained / from_pretrained for a module with a pydantic `config`. Subclasses set `method`
    (written into config.json, checked on load; a class that builds several sets `methods`) and `config_class`."""

    method: str
    config_class: type

    def save_pretrained(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        return save_pretrained(self, folder, extra={"method": self.method}, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu"):
        from pydantic import ValidationError

        config = read_config(folder)
        method = config.pop("method", None)
        allowed = getattr(cls, "methods", None) or (cls.method,)
        if method not in allowed:
            raise PluralfillError(f"{folder} holds a {method!r} checkpoint, not {' or '.join(map(repr, allowed))}")
        try:
            cfg = cls.config_class.model_validate(config)
        except ValidationError as e:
            raise PluralfillError(
                f"{folder}/{CONFIG_NAME} is not a valid {cls.method} config: {str(e).splitlines()[0]}"
            ) from None
        try:
            with torch.device("meta"):  # no time spent initialising weights that are loaded next
                model = cls(cfg)
        except (ValueError, RuntimeError, TypeError, AssertionError, ZeroDivisionError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise PluralfillError(f"{folder}/{CONFIG_NAME} describes a model that cannot be built: {first}") from None
        model = model.to_empty(device="cpu")
        return load_weights_into(model, folder).to(device).eval()


def parameter_counts(
    first_stage_name: str, first_stage: torch.nn.Module, transformer: torch.nn.Module
) -> dict[str, int]:
    """Parameters per component of a two-stage model; `transformer` leaves out its position embedding,
    as the papers' tables count it (PUT, Liu et al. 2022, Table 3)."""
    pos = transformer.pos_emb.numel()
    return {
        first_stage_name: sum(p.numel() for p in first_stage.parameters()),
        "transformer": sum(p.numel() for p in transformer.parameters()) - pos,
        "transformer_pos_emb": pos,
    }

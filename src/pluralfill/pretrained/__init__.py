"""Official checkpoints in pluralfill: one converter module per model family (read safely, checked key by
key, written as config.json + model.safetensors) and the model store of installed models."""

from __future__ import annotations

import torch

from pluralfill.errors import PluralfillError


def some_names(names) -> str:
    names = sorted(names)
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")


def config_mismatch(named, inferred, key: str, parts: tuple[str, ...], ignore=frozenset()) -> str | None:
    """Where the named config `key` and the config a file's shapes give differ: "PART k=file (config KEY:
    named), ..." for the first part that does (a part either lacks is skipped), or None. `ignore`: settings
    a file cannot show."""
    for part in parts:
        ours, theirs = getattr(named, part), getattr(inferred, part)
        if ours is None or theirs is None:
            continue
        a, b = ours.model_dump(), theirs.model_dump()
        diff = [f"{k}={b[k]} (config {key}: {a[k]})" for k in a if a[k] != b[k] and k not in ignore]
        if diff:
            return f"{part} {', '.join(diff)}"
    return None


def load_converted(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, unknown=()) -> torch.nn.Module:
    """Load renamed official tensors into `model`: official entries no rule knew (`unknown`), tensors the
    model has and the file lacks, and shapes that differ are each one line that names them."""
    if unknown:
        raise PluralfillError(f"unknown entries in {source}: {some_names(unknown)}")
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise PluralfillError(f"entries missing from {source}: {some_names(missing)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PluralfillError(f"{source} does not fit {model.config.name}: {str(e).splitlines()[-1].strip()}") from None
    return model.eval()

"""Official checkpoints in pluralfill: one converter module per model family (read safely, checked key by
key, written as config.json + model.safetensors) and the model store of installed models."""

from __future__ import annotations

import torch

from pluralfill.errors import PluralfillError


def _some(names) -> str:
    names = sorted(names)
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")


def load_converted(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, unknown=()) -> torch.nn.Module:
    """Load renamed official tensors into `model`: official entries no rule knew (`unknown`), tensors the
    model has and the file lacks, and shapes that differ are each one line that names them."""
    if unknown:
        raise PluralfillError(f"unknown entries in {source}: {_some(unknown)}")
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise PluralfillError(f"entries missing from {source}: {_some(missing)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PluralfillError(f"{source} does not fit {model.config.name}: {str(e).splitlines()[-1].strip()}") from None
    return model.eval()

"""Devices: what this PyTorch build and machine can run on, and one line for a device they lack."""

from __future__ import annotations

import torch

from pluralfill.errors import PluralfillError


def here() -> list[str]:
    """The devices this PyTorch build can use on this machine: cpu, cuda:0 ..., mps."""
    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    return ["cpu", *gpus, *(["mps"] if mps is not None and mps.is_available() else [])]


def parse(device: str | torch.device) -> torch.device:
    """`device` as a torch.device, or one line for a name torch does not know."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise PluralfillError(f"unknown device {device!r}: use cpu, cuda, cuda:1, mps ...") from None


def check(device: str | torch.device, count: int = 1) -> torch.device:
    """`device` (and `count` GPUs from it, for several processes) if this PyTorch and machine have it, else one
    line naming the devices they have."""
    d, have = parse(device), here()
    if d.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build, but no GPU is visible"
            raise PluralfillError(f"device {device}: this PyTorch is {build}; devices here: {', '.join(have)}")
        if (d.index or 0) + count > torch.cuda.device_count():
            many = f" x {count}" if count > 1 else ""
            gpus = torch.cuda.device_count()
            raise PluralfillError(
                f"device {device}{many}: this machine has {gpus} GPU(s); devices here: {', '.join(have)}"
            )
    elif d.type == "mps" and "mps" not in have:
        raise PluralfillError(f"device {device}: this PyTorch or machine has no MPS; devices here: {', '.join(have)}")
    elif d.type not in ("cpu", "cuda", "mps"):
        raise PluralfillError(f"device {device}: pluralfill runs on cpu, cuda or mps; devices here: {', '.join(have)}")
    return d

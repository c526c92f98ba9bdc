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


VECTOR_UNITS = (
    ("AVX2", "avx2"),
    ("AVX-512", "avx512f"),
    ("VNNI", "avx512_vnni"),
    ("AVX-VNNI", "avx_vnni"),
    ("AVX-512 BF16", "avx512_bf16"),
    ("AMX", "amx_tile"),
    ("NEON", "asimd"),
)


def machine() -> dict:
    """What a speed figure depends on: the CPU, its vector units (what makes int8 and bf16 fast), the threads
    torch uses, its quantized engine, whether bf16 runs in hardware, and the GPUs."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:  # not Linux: the vector units stay unknown
        pass
    bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "cpu": model,
        "vector_units": [name for name, flag in VECTOR_UNITS if flag in flags],
        "threads": torch.get_num_threads(),
        "quantized_engine": torch.backends.quantized.engine,
        "bf16_in_hardware": bf16,
        "gpus": gpus,
    }


def machine_line(m: dict | None = None) -> str:
    m = m or machine()
    units = " ".join(m["vector_units"]) or "no vector units known"
    gpus = f"; {', '.join(m['gpus'])}" if m["gpus"] else ""
    return f"{m['cpu']}: {units}, {m['threads']} threads, quantized engine {m['quantized_engine']}{gpus}"

"""The number formats a model runs in, which of them a device runs well, and how each is applied.

    fp32   the exact path, the default everywhere
    bf16   autocast: matmuls and convolutions in bfloat16, everything else (sampling, softmax) in fp32
    int8   every nn.Linear with int8 weights and dynamically quantized int8 activations (CPU only); the
           convolutions in bf16 where the CPU has bf16 units
    auto   the fastest of the above whose quality bound holds on the user's own input (`choose`)

Quality bounds, against fp32 on the same input: the image the codec decodes from the same tokens
(PSNR, dB) and the distribution the sampler draws each hidden token from, after its top-k and temperature,
in one network pass: the mean total-variation distance to fp32's, which is the chance that a draw coupled
with fp32's comes out different. Greedy agreement (the most likely token the same) is reported, not judged:
where two codes nearly tie it flips while the drawn distribution barely moves.

    bf16   >= 35 dB and TV <= 0.02
    int8   >= 30 dB and TV <= 0.05

int8 uses PyTorch's fbgemm/x86 dynamic int8 kernels (`quantized::linear_dynamic`), reached through
`torch.ao.quantization.quantize_dynamic`. torch 2.13 marks that module deprecated in favour of torchao, but
torchao 0.18's int8 configs have no fast x86 CPU kernel (measured 0.04x of fp32 on this project's CPU); the
deprecation warning is silenced here, and the call is the one place to change when torchao serves CPUs.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass

import torch

from pluralfill.devices import parse as as_device
from pluralfill.errors import PluralfillError

PRECISIONS = ("fp32", "bf16", "int8")
CHOICES = (*PRECISIONS, "auto")


@dataclass(frozen=True)
class Bound:
    psnr_db: float  # decoded image vs fp32, from the same tokens
    tv: float  # mean total-variation distance of the drawn distributions to fp32's, over the hidden positions


BOUNDS = {"bf16": Bound(35.0, 0.02), "int8": Bound(30.0, 0.05)}


def native_bf16(device: torch.device) -> bool:
    """bf16 matmuls in hardware: CUDA GPUs from Ampere on, CPUs with AVX-512 BF16 or AMX (oneDNN says)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def int8_engine() -> str | None:
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm", "qnnpack") if e in engines), None)


def supported(device: str | torch.device) -> tuple[str, ...]:
    """The precisions `device` runs at least as fast as it was built to: what `bench` measures by default and
    what `auto` tries. bf16 without bf16 hardware is emulated (several times slower than fp32) and left out."""
    device = torch.device(device)
    out = ["fp32"]
    if native_bf16(device):
        out.append("bf16")
    if device.type == "cpu" and int8_engine() is not None:
        out.append("int8")
    return tuple(out)


def check(precision: str, device: str | torch.device) -> str:
    """`precision` if `device` can run it, else one line saying why not."""
    device = as_device(device)
    if precision not in CHOICES:
        raise PluralfillError(f"precision must be one of {', '.join(CHOICES)}, got {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise PluralfillError(
            f"int8 runs on the CPU only (PyTorch's dynamic int8 kernels are CPU kernels), not on {device.type}: use "
            f"bf16 there"
        )
    if precision == "int8" and int8_engine() is None:
        raise PluralfillError(
            "int8 needs one of PyTorch's quantized CPU engines (x86, fbgemm, qnnpack); this build has none"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PluralfillError(
            f"bf16 needs a GPU from Ampere on; {torch.cuda.get_device_name(device)} has no bf16: use fp32"
        )
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise PluralfillError(f"bf16 runs on cpu and cuda here, not on {device.type}")
    return precision


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of `module` whose nn.Linear layers hold int8 weights (per tensor) and quantize their inputs on
    the fly; on a CPU with bf16 units its convolutions compute in bf16 (`BF16Conv2d`), elsewhere in fp32; norms
    and embeddings stay fp32."""
    if linear_share(module) == 0:
        raise PluralfillError(
            f"{type(module).__name__} has no Linear layer: int8 (dynamic, Linear layers only) would run it as fp32"
        )
    torch.backends.quantized.engine = int8_engine()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice: see the module docstring
        out = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)
    if native_bf16(torch.device("cpu")):
        _convolutions_in_bf16(out)
    return out


class BF16Conv2d(torch.nn.Module):
    """A convolution with bf16 weights that takes and returns fp32: the codecs of an int8 model on a CPU with bf16
    units, where a bf16 convolution runs about twice as fast (the int8 Linear kernels take fp32, so the model as a
    whole cannot run under bf16 autocast)."""

    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        self.conv = conv.to(torch.bfloat16)

    def forward(self, x):
        return self.conv(x.to(torch.bfloat16)).float()


def _convolutions_in_bf16(module: torch.nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is torch.nn.Conv2d:
            setattr(module, name, BF16Conv2d(child))
        else:
            _convolutions_in_bf16(child)


def linear_share(module: torch.nn.Module) -> float:
    """The share of a module's parameters that sit in nn.Linear layers: what int8 quantizes."""
    total = sum(p.numel() for p in module.parameters())
    linear = sum(
        p.numel() for m in module.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters(recurse=False)
    )
    return linear / max(total, 1)


def usable(module: torch.nn.Module, device) -> tuple[str, ...]:
    """`supported(device)` less int8 for a module without Linear layers (DSI's networks are convolutional)."""
    return tuple(p for p in supported(device) if p != "int8" or linear_share(module) > 0)


def autocast(device: torch.device, precision: str):
    """The context a forward pass runs in: bf16 autocast, or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), over the whole batch."""
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


def tv_distance(probs: torch.Tensor, reference: torch.Tensor, where: torch.Tensor | None = None) -> float:
    """Mean total-variation distance 1/2 sum |p - q| between two sets of distributions (..., K), over `where`:
    the chance that draws coupled as closely as possible differ."""
    tv = 0.5 * (probs.double() - reference.double()).abs().sum(-1)
    if where is not None:
        tv = tv[where.expand_as(tv)]
    return float(tv.mean()) if tv.numel() else 0.0


def agreement(logits: torch.Tensor, reference: torch.Tensor, where: torch.Tensor | None = None) -> float:
    """Fraction of positions whose most likely token is the reference's; logits (..., K), where (...) bool."""
    same = logits.float().argmax(-1) == reference.float().argmax(-1)
    if where is not None:
        same = same[where.expand_as(same)]
    return int(same.sum()) / max(same.numel(), 1)  # counted: a float32 mean makes 38 of 40 0.9499999


@dataclass
class Verdict:
    precision: str
    psnr_db: float
    agreement: float | None  # None: the method has no tokens (MHTMA); reported, not judged
    seconds: float  # one probe (a network pass and a decode)
    speedup: float  # fp32's probe seconds over this one's
    tv: float | None = None  # the drawn distributions' mean TV distance to fp32's; None: no tokens

    @property
    def holds(self) -> bool:
        if self.precision == "fp32":
            return True
        bound = BOUNDS[self.precision]
        return self.psnr_db >= bound.psnr_db and (self.tv is None or self.tv <= bound.tv)

    def line(self) -> str:
        """The verdict in words: how much faster, what it would change, and whether that is within its bounds."""
        if self.precision == "fp32":
            return "fp32: the reference"
        bound = BOUNDS[self.precision]
        parts = [f"{self.speedup:.2f}x the speed of fp32"]
        if self.tv is not None:
            parts.append(f"would draw a different token {100 * self.tv:.1f}% of the time ({100 * bound.tv:g}% allowed)")
        if math.isinf(self.psnr_db):
            parts.append("decodes the same image")
        else:
            parts.append(f"decodes an image {self.psnr_db:.1f} dB PSNR from fp32's ({bound.psnr_db:g} dB needed)")
        return f"{self.precision}: {', '.join(parts)}: " + (
            "holds its bounds" if self.holds else "misses them, not used"
        )


def measure(make, x: torch.Tensor, known: torch.Tensor, precisions=PRECISIONS, repeats: int = 1) -> list[Verdict]:
    """Each precision's probe on (x, known) against fp32's. make(precision) -> an inpainter with `probe`;
    fp32 comes first and its tokens are handed to the others, so the decoded images share their tokens."""

    def timed(inpainter, tokens):
        result = inpainter.probe(x, known, tokens)
        t = time.perf_counter()
        for _ in range(repeats):
            inpainter.probe(x, known, tokens)
        return result, (time.perf_counter() - t) / repeats

    reference, t32 = timed(make("fp32"), None)
    tokens = reference["logits"] is not None
    verdicts = [Verdict("fp32", float("inf"), 1.0 if tokens else None, t32, 1.0, 0.0 if tokens else None)]
    for p in precisions:
        if p == "fp32":
            continue
        got, t = timed(make(p), reference["tokens"])
        verdicts.append(judge(p, got, reference, t, t32 / t))
    return verdicts


def judge(precision: str, got: dict, reference: dict, seconds: float = 0.0, speedup: float = 0.0) -> Verdict:
    """A probe (`FixedResolutionInpainter.probe`) against fp32's probe of the same input and tokens."""
    if got["logits"] is None:
        return Verdict(precision, psnr(got["image"], reference["image"]), None, seconds, speedup, None)
    greedy = agreement(got["logits"], reference["logits"], reference["hidden"])
    tv = tv_distance(got["draw"], reference["draw"], reference["hidden"])
    return Verdict(precision, psnr(got["image"], reference["image"]), greedy, seconds, speedup, tv)


def choose(verdicts: list[Verdict]) -> Verdict:
    """The fastest precision whose bound holds and that beats fp32; fp32 if none does."""
    good = [v for v in verdicts if v.holds and (v.precision == "fp32" or v.speedup > 1.0)]
    return max(good, key=lambda v: v.speedup)

"""`pluralfill bench`: speed, measured after warm-up, every comparison run side by side in one invocation and
printed as a ratio. Each method that has a benchmark declares it in the registry (`MethodSpec.benchmark`, a
function of a `Request`, in this package's module of its family); this module holds what they share, and the
precision benchmark over the models the methods declare for it (`MethodSpec.precision_models`).

Weights do not change the cost of a forward pass, so the models are built from their named configs with
random weights; `--checkpoint` measures a trained one instead.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from pluralfill.errors import PluralfillError

LONG = 60.0  # seconds
PEAK_TFLOPS_BF16 = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense tensor-core peaks, for MFU


@dataclass
class Request:
    """What `pluralfill bench` asks of a method's benchmark; each takes the fields it has a use for."""

    config: str | None = None  # a named config (random weights); None: the benchmark's own default
    checkpoint: str | None = None
    resolution: int | None = None
    hole: float = 0.4  # the fraction of the image missing
    samples: int = 8  # samples batched together
    steps: int = 12  # parallel decoding passes
    device: str = "cpu"
    repeats: int = 3
    compile: bool = False


def timed(fn, device, repeats: int) -> float:
    """Median seconds of `fn` over `repeats` runs, after one warm-up run; a first run of over LONG seconds is a
    measurement of its own (what a warm-up saves is lost in it), which spares the slowest samplers a second run."""
    t = time.perf_counter()
    fn()
    if device.type == "cpu" and (first := time.perf_counter() - t) > LONG and repeats == 1:
        return first
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(inpainter_class, model_class, configs: dict, config: str, checkpoint: str | None, device: str):
    """A trained model folder, or a named config with random weights (seeded: the same in every run)."""
    torch.manual_seed(0)
    if checkpoint:
        return inpainter_class.from_pretrained(checkpoint, device)
    if config not in configs:
        raise PluralfillError(f"unknown config {config!r}; choose from {', '.join(configs)}")
    return inpainter_class(model_class(configs[config]), device)


def centred_hole(r: int, hole: float, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (1, 3, r, r) image and its known mask with a centred square of `hole` of the area missing."""
    x = torch.rand(1, 3, r, r, device=dev) * 2 - 1
    known = torch.ones(1, 1, r, r, device=dev)
    a, b = round(r * (1 - hole**0.5) / 2), round(r * (1 + hole**0.5) / 2)
    known[..., a:b, a:b] = 0
    return x, known


class _PeakRSS:
    """The most resident memory the process held while the block ran, sampled every 5 ms (CPU; on CUDA the
    allocator's own peak). Reported as MB above what it held when the block began."""

    def __init__(self, device):
        self.device = device

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    def __enter__(self):
        import threading

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        self.start = self.peak = self._rss()
        self.stop = threading.Event()

        def watch():
            while not self.stop.wait(0.005):
                self.peak = max(self.peak, self._rss())

        self.thread = threading.Thread(target=watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20 - self.start
        else:
            self.stop.set()
            self.thread.join()
            self.mb = self.peak - self.start


def bench_precisions(
    models: dict,
    precisions=None,
    backends=("torch", "onnx"),
    quick: bool = False,
    hole: float = 0.4,
    device: str = "cpu",
    repeats: int = 1,
    progress=None,
    refresh: tuple[int, ...] = (),
    only: tuple[str, ...] = (),
    drift: bool = True,
) -> dict:
    """One sample end to end (encode, every sampling pass, decode) of each model (key -> (MethodSpec, official
    config, tiny config, sampling options), as registry.precision_models gives them; `only`: these keys) at each
    precision, against fp32 in the same run; the quality probe of each precision (decoded PSNR, the drawn
    distributions' TV distance and, for information, greedy-token agreement vs fp32); the peak memory of each run.
    `refresh`: each precision again with cache=known at these refresh intervals, for the methods that have the
    option, with the TV distance of every partial pass's draws to the exact pass's (an extra, untimed sample
    that computes both; `drift=False` leaves it out).
    backend "onnx": the transformer pass in onnxruntime (fp32, and int8 by onnxruntime's own dynamic
    quantization), the rest in torch, for the methods that declare such a pass."""
    import tempfile
    from pathlib import Path

    from pluralfill import precision as P

    dev = torch.device(device)
    precisions = list(precisions or P.supported(dev))
    for p in precisions:
        P.check(p, dev)
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")  # the reference every ratio is taken against
    unknown = set(only) - set(models)
    if unknown:
        raise PluralfillError(f"unknown model {', '.join(sorted(unknown))}; choose from {', '.join(models)}")
    result: dict = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "bf16_in_hardware": P.native_bf16(dev),
        "hole": hole,
        "models": {},
        "ratios": {},
    }
    for key, (spec, full, tiny, options) in models.items():
        if only and key not in only:
            continue
        inpainter = build(spec.inpainter, spec.model, spec.configs, tiny if quick else full, None, device)
        x, known = centred_hole(inpainter.resolution, hole, dev)
        usable = [p for p in precisions if p != "int8" or P.linear_share(inpainter.model) > 0]  # DSI: no Linear layer
        runs = {f"torch {p}": (inpainter.at_precision(p), {}) for p in usable}
        if "refresh" in inpainter.Options.model_fields:  # the token samplers (DSI's own `cache` is its exact caches)
            for p in usable:
                runs |= {
                    f"torch {p} cache/{r}": (runs[f"torch {p}"][0], {"cache": "known", "refresh": r}) for r in refresh
                }
        if "onnx" in backends and inpainter.onnx_pass and dev.type == "cpu":
            from pluralfill.export import export_onnx, quantize_onnx, with_onnx_pass

            folder = Path(tempfile.mkdtemp(prefix="pluralfill-bench-onnx-"))
            export_onnx(inpainter, folder / "onnx")
            graph = folder / "onnx" / f"{inpainter.onnx_pass}.onnx"
            runs["onnx fp32"] = (with_onnx_pass(inpainter, graph), {})
            runs["onnx int8"] = (with_onnx_pass(inpainter, quantize_onnx(graph, folder / "int8.onnx")), {})
        entry = {
            "model": inpainter.name,
            "resolution": inpainter.resolution,
            "linear_share": P.linear_share(inpainter.model),
            "runs": {},
        }
        reference = runs["torch fp32"][0].probe(x, known)
        for name, (run, extra) in runs.items():
            if progress is not None:
                progress(f"{key}: {name}")
            with _PeakRSS(dev) as memory:
                seconds = timed(partial(run.sample_in_precision, x, known, [0], **options, **extra), dev, repeats)
            quality = P.judge(name.split()[1], run.probe(x, known, reference["tokens"]), reference)
            entry["runs"][name] = {
                "s_per_sample": seconds,
                "peak_memory_mb": memory.mb,
                "psnr_db_vs_fp32": quality.psnr_db,
                "greedy_agreement_vs_fp32": quality.agreement,
                "tv_vs_fp32": quality.tv,
                "bound_holds": quality.holds,
                "cache_tv_per_pass": _cache_drift(run, x, known, options | extra) if extra and drift else None,
            }
        base = entry["runs"]["torch fp32"]["s_per_sample"]
        for name, r in entry["runs"].items():
            if name != "torch fp32":
                label = name.split(maxsplit=1)[1] if name.startswith("torch") else name
                result["ratios"][f"{key}: {label} vs fp32"] = base / r["s_per_sample"]
        result["models"][key] = entry
    return result


def drift_meter(run) -> tuple[list[float], Callable]:
    """(values, compare): a `sampling.cache.comparing` callback that appends, for every partial pass of `run`'s
    cached sampler, the mean TV distance between what it draws from and what the exact pass over the same inputs
    does, at the positions still missing."""
    from pluralfill.precision import tv_distance

    values: list[float] = []

    def compare(exact, cached, unknown):
        values.append(tv_distance(run.draw_probs(cached[unknown]), run.draw_probs(exact[unknown])))

    return values, compare


def _cache_drift(run, x, known, options: dict) -> list[float]:
    """The per-pass drift (`drift_meter`) of one cached sample, seed 0."""
    from pluralfill.sampling.cache import comparing

    drift, compare = drift_meter(run)
    with comparing(compare):
        run.sample_in_precision(x, known, [0], **options)
    return drift


def table(method: str, result: dict) -> tuple[str, list[str], list[list[str]]]:
    """What `pluralfill bench` prints for a result: (title, columns, rows of text)."""
    if method == "precision":
        columns = [
            "model",
            "run",
            "s / sample",
            "vs fp32",
            "peak MB",
            "PSNR vs fp32",
            "draws differ",
            "greedy same",
            "bound",
            "cache: draws differ per pass",
        ]
        rows = []
        for key, entry in result["models"].items():
            base = entry["runs"]["torch fp32"]["s_per_sample"]
            for name, r in entry["runs"].items():
                drift = r.get("cache_tv_per_pass")
                rows.append(
                    [
                        key,
                        name,
                        f"{r['s_per_sample']:.3f}",
                        f"{base / r['s_per_sample']:.2f}x",
                        f"{r['peak_memory_mb']:.0f}",
                        f"{float(r['psnr_db_vs_fp32']):.1f} dB",  # a saved --json result holds "inf"
                        "-" if r["tv_vs_fp32"] is None else f"{100 * r['tv_vs_fp32']:.2f}%",
                        "-" if r["greedy_agreement_vs_fp32"] is None else f"{100 * r['greedy_agreement_vs_fp32']:.1f}%",
                        "holds" if r["bound_holds"] else "misses",
                        f"{100 * sum(drift) / len(drift):.2f}% (worst {100 * max(drift):.2f}%)" if drift else "-",
                    ]
                )
        return (
            f"one sample end to end, {result['device']} ({result['threads']} threads), hole {result['hole']:.0%}",
            columns,
            rows,
        )
    rows = []
    for group, values in result.items():  # every group of measurements, then the single ones
        if isinstance(values, dict):
            rows += [[f"{group}: {k}", f"{v:.3f}" if isinstance(v, float) else str(v)] for k, v in values.items()]
    rows += [[k, f"{v:.3f}"] for k, v in result.items() if isinstance(v, float)]
    return f"{result['title']}, {result['device']} ({result['threads']} threads)", ["measurement", "value"], rows

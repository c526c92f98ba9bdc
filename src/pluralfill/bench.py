"""`pluralfill bench`: speed of the token samplers, measured after warm-up, every comparison run side by side
in one invocation and printed as a ratio.

Weights do not change the cost of a forward pass, so the models are built from their named configs with
random weights; `--checkpoint` measures a trained one instead.
"""

from __future__ import annotations

import resource
import statistics
import time

import torch

from pluralfill.errors import PluralfillError
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put import CONFIGS, PUT, put_tiny_config

PEAK_TFLOPS_BF16 = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense tensor-core peaks, for MFU


def _timed(fn, device, repeats: int) -> float:
    """Median seconds of `fn` over `repeats` runs, after one warm-up run."""
    fn()
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


def _peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _forward_flops(cfg, batch: int) -> float:
    """Multiply-adds x 2 of one transformer forward: projections, MLP and attention."""
    t = cfg.transformer
    L, D = t.seq_len, t.dim
    per_layer = 2 * L * (4 * D * D + 2 * t.mlp_ratio * D * D) + 2 * 2 * L * L * D
    return batch * (t.num_layers * per_layer + 2 * L * (t.in_dim * D + D * t.vocab_size))


def bench_put(config: str = "put-tiny", checkpoint: str | None = None, resolution: int | None = None,
              hole: float = 0.4, samples: int = 8, steps: int = 12, device: str = "cpu", repeats: int = 3,
              compile: bool = False) -> dict:  # fmt: skip
    """Transformer passes/s, P-VQVAE images/s, Algorithm 1 and parallel decoding per image and per sample."""
    dev = torch.device(device)
    if checkpoint is not None:
        model = PUT.from_pretrained(checkpoint, dev)
    else:
        if config not in CONFIGS:
            raise PluralfillError(f"unknown PUT config {config!r}; choose from {', '.join(CONFIGS)}")
        cfg = put_tiny_config(resolution=resolution or 256) if config == "put-tiny" else CONFIGS[config]
        torch.manual_seed(0)
        model = PUT(cfg).eval()
    put = PUTInpainter(model, dev)
    cfg, res = model.config, model.config.pvqvae.resolution
    if compile:
        model.transformer.forward_embedded = torch.compile(model.transformer.forward_embedded)
    side = res // cfg.pvqvae.patch_size
    # a token-aligned centred rectangle with `hole` of the tokens missing
    cols = max(1, min(side, round(side * hole**0.5)))
    rows = max(1, min(side, round(hole * side * side / cols)))
    p = cfg.pvqvae.patch_size
    known = torch.ones(1, 1, res, res, device=dev)
    r0, c0 = (side - rows) // 2, (side - cols) // 2
    known[..., r0 * p : (r0 + rows) * p, c0 * p : (c0 + cols) * p] = 0
    x = torch.rand(1, 3, res, res, device=dev) * 2 - 1
    missing = rows * cols
    out: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                 "threads": torch.get_num_threads(), "model": cfg.name, "resolution": res,
                 "tokens": side * side, "missing_tokens": missing, "samples": samples}  # fmt: skip

    with torch.inference_mode():
        seq = model.pvqvae.encode(x, known).permute(0, 2, 3, 1).reshape(1, side * side, -1)
        e1 = model.transformer.embed(seq)
        eb = e1.expand(samples, -1, -1).contiguous()
        t1 = _timed(lambda: model.transformer.forward_embedded(e1), dev, repeats)
        tb = _timed(lambda: model.transformer.forward_embedded(eb), dev, repeats)
        out["forward_per_s"] = {"batch 1": 1 / t1, f"batch {samples}": samples / tb}
        if dev.type == "cuda":
            name = next((k for k in PEAK_TFLOPS_BF16 if k in out["device"]), None)
            if name:
                out["mfu_fp32_forward_batch"] = _forward_flops(cfg, samples) / tb / (PEAK_TFLOPS_BF16[name] * 1e12)
        xb, kb = x.expand(samples, -1, -1, -1).contiguous(), known.expand(samples, -1, -1, -1)
        types = model.pvqvae.token_types(kb)

        def round_trip():  # encode, quantize, decode with the reference: what one image costs the P-VQVAE
            return model.pvqvae.decode(model.pvqvae.tokenize(model.pvqvae.encode(xb, kb), types), xb, kb)

        out["pvqvae_images_per_s"] = samples / _timed(round_trip, dev, repeats)
        tokens_one = model.pvqvae.tokenize(model.pvqvae.encode(x))
        decode_one = _timed(lambda: model.pvqvae.decode(tokens_one, x, known), dev, repeats)

        def run(n, **options):
            return _timed(lambda: put.sample(x, known, list(range(n)), **options), dev, repeats)

        alg1_one = run(1, sampler="put", tokens_per_step=1, top_k=50)
        tpami_one = run(1, sampler="put-tpami", tokens_per_step=20, top_k=200)
        alg1_batch = run(samples, sampler="put", tokens_per_step=1, top_k=50)
        par_one = run(1, sampler="parallel", steps=steps)
        par_batch = run(samples, sampler="parallel", steps=steps)
        xs = torch.rand(samples, 3, res, res, device=dev) * 2 - 1  # different images in one batch (inpaint on a folder)
        ks = known.expand(samples, -1, -1, -1)
        par_images = _timed(lambda: put.sample(xs, ks, list(range(samples)), sampler="parallel", steps=steps), dev, repeats)
    out["algorithm1"] = {
        "s_per_image (1 sample)": alg1_one,
        f"s_per_sample ({samples} batched)": alg1_batch / samples,
        "tokens_per_s (1 sample)": missing / alg1_one,
        f"tokens_per_s ({samples} batched)": samples * missing / alg1_batch,
    }
    out["put_tpami"] = {"tokens_per_pass": 20, "passes": -(-missing // 20), "s_per_image (1 sample)": tpami_one}
    out["parallel"] = {
        "steps": steps,
        "s_per_image (1 sample)": par_one,
        f"s_per_sample ({samples} batched)": par_batch / samples,
    }
    out["ratios"] = {
        "TPAMI sampler (20 per pass) vs Algorithm 1, per image": alg1_one / tpami_one,
        f"parallel ({steps} steps) vs Algorithm 1, per image": alg1_one / par_one,
        # both end with the same P-VQVAE decode; without it, the samplers themselves
        f"parallel ({steps} steps) vs Algorithm 1, token sampling alone": (alg1_one - decode_one) / max(par_one - decode_one, 1e-9),
        f"Algorithm 1: {samples} batched vs one by one, throughput": samples * alg1_one / alg1_batch,
        f"parallel: {samples} batched vs one by one, throughput": samples * par_one / par_batch,
        f"parallel: {samples} images batched vs one by one, throughput": samples * par_one / par_images,
    }
    if dev.type == "cuda":  # the same sampling under bf16 autocast
        put16 = put.at_precision("bf16")
        with torch.inference_mode():
            par16 = _timed(lambda: put16.sample_in_precision(x, known, list(range(samples)), sampler="parallel", steps=steps), dev, repeats)
        out["ratios"]["parallel: bf16 vs fp32, batched"] = par_batch / par16
    out["peak_memory_mb"] = _peak_memory_mb(dev)
    return out


def _inpainter(inpainter_class, model_class, configs: dict, config: str, checkpoint: str | None, device: str):
    """A trained model folder, or the named config with random weights (seeded: the same in every run)."""
    torch.manual_seed(0)
    if checkpoint:
        return inpainter_class.from_pretrained(checkpoint, device)
    if config not in configs:
        raise PluralfillError(f"unknown config {config!r}; choose from {', '.join(configs)}")
    return inpainter_class(model_class(configs[config]), device)


def _centred_hole(r: int, hole: float, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (1, 3, r, r) image and its known mask with a centred square of `hole` of the area missing."""
    x = torch.rand(1, 3, r, r, device=dev) * 2 - 1
    known = torch.ones(1, 1, r, r, device=dev)
    a, b = round(r * (1 - hole**0.5) / 2), round(r * (1 + hole**0.5) / 2)
    known[..., a:b, a:b] = 0
    return x, known


def bench_dsi(config: str = "dsi", checkpoint: str | None = None, hole: float = 0.4, samples: int = 8, device: str = "cpu",
              repeats: int = 3, positions: str = "all") -> dict:  # fmt: skip
    """DSI: the structure generator's raster sampling with and without the layer caches, and whole images
    (structure + texture) for 1 and N samples. The plain path runs the whole network at every position (1.5 s
    a pass at 256 px on two CPU cores: 25 minutes for the 1,024 positions), so both paths are timed on one row
    of the latent (a row start, where the cached path runs the upper stream, and every position after it:
    what each row costs), with the same model, hole and seeds, and must draw the same codes there; the cached
    path is also timed on every position sampled (`positions`: "all" as the official sampler, or "hole")."""
    from pluralfill.geometry import token_hole
    from pluralfill.methods.dsi import DSIInpainter
    from pluralfill.models.dsi import CONFIGS as DSI_CONFIGS
    from pluralfill.models.dsi import DSI
    from pluralfill.sampling.autoregressive import sample_raster

    dev = torch.device(device)
    inpainter = _inpainter(DSIInpainter, DSI, DSI_CONFIGS, config, checkpoint, device)
    model = inpainter.model
    r, side = model.config.resolution, model.config.structure.side
    x, known = _centred_hole(r, hole, dev)
    every = torch.ones(side * side, dtype=torch.bool, device=dev) if positions == "all" else token_hole(known, r // side, 1)[0]
    row = torch.zeros(side * side, dtype=torch.bool, device=dev)
    row[(side // 2) * side : (side // 2 + 1) * side] = True
    with torch.no_grad():
        tokens = model.hvqvae.encode_top(x * known).reshape(1, -1)
        cond = model.structure.condition(x * known, 1 - known)
    codebook = model.hvqvae.quantize_top.embedding

    def structure(n: int, unknown, cache: bool):
        gens = [torch.Generator(device=dev).manual_seed(i) for i in range(n)]
        return sample_raster(model.structure, cond.expand(n, -1, -1, -1), codebook, tokens.expand(n, -1), unknown, gens, cache=cache)

    same = torch.equal(structure(2, row, True), structure(2, row, False))
    t_row_cached = _timed(lambda: structure(1, row, True), dev, repeats)
    t_row_plain = _timed(lambda: structure(1, row, False), dev, 1)
    t_cached = _timed(lambda: structure(1, every, True), dev, repeats)
    options = {"positions": positions}
    t_image_1 = _timed(lambda: inpainter.sample(x, known, [0], **options), dev, repeats)
    t_image_n = _timed(lambda: inpainter.sample(x, known, list(range(samples)), **options), dev, repeats)
    return {
        "model": model.config.name,
        "resolution": r,
        "latent": f"{side}x{side}",
        "positions": positions,
        "sampled_positions": int(every.sum()),
        "device": str(dev) if dev.type != "cpu" else "cpu",
        "threads": torch.get_num_threads(),
        "structure": {"one_row_uncached_s": t_row_plain, "one_row_cached_s": t_row_cached, "all_positions_cached_s": t_cached,
                      "sampled_codes_per_s_cached": int(every.sum()) / t_cached},  # fmt: skip
        "image": {"s_per_image_1_sample": t_image_1, f"s_per_sample_{samples}_batched": t_image_n / samples},
        "ratios": {
            "cached_vs_uncached": t_row_plain / t_row_cached,
            f"{samples}_batched_vs_one_by_one": t_image_1 * samples / t_image_n,
            "same_codes_cached_and_uncached": same,
        },
        "peak_memory_mb": _peak_memory_mb(dev),
    }


def bench_maskgit(config: str = "maskgit-imagenet-256", checkpoint: str | None = None, hole: float = 0.4, samples: int = 8,
                  device: str = "cpu", repeats: int = 3, steps: int = 12, start_step: int = 2) -> dict:  # fmt: skip
    """MaskGIT editing as the official inference runs it (steps 2..11 of 12 by default): seconds per image for one
    sample, per sample for `samples` batched, and the batched vs one-by-one ratio."""
    from pluralfill.methods.maskgit import MaskGITInpainter
    from pluralfill.models.maskgit import CONFIGS as MASKGIT_CONFIGS
    from pluralfill.models.maskgit import MaskGIT

    dev = torch.device(device)
    inpainter = _inpainter(MaskGITInpainter, MaskGIT, MASKGIT_CONFIGS, config, checkpoint, device)
    cfg = inpainter.model.config
    r = cfg.resolution
    x, known = _centred_hole(r, hole, dev)
    options = {"steps": steps, "start_step": start_step} | ({"class_label": 0} if cfg.official else {})
    with torch.inference_mode():
        one = _timed(lambda: inpainter.sample(x, known, [0], **options), dev, repeats)
        many = _timed(lambda: inpainter.sample(x, known, list(range(samples)), **options), dev, repeats)
    return {
        "model": cfg.name,
        "resolution": r,
        "tokens": cfg.tokenizer.tokens_per_side**2,
        "passes": steps - start_step,
        "device": str(dev) if dev.type != "cpu" else "cpu",
        "threads": torch.get_num_threads(),
        "image": {"s_per_image (1 sample)": one, f"s_per_sample ({samples} batched)": many / samples},
        "ratios": {f"{samples} batched vs one by one, throughput": samples * one / many},
        "peak_memory_mb": _peak_memory_mb(dev),
    }


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


# the official sizes, and the tiny configs the test and --quick use
PRECISION_MODELS = {
    "tpami": ("put", "put-tpami-ffhq-256", "put-tpami-tiny", {}),
    "maskgit": ("maskgit", "maskgit-imagenet-256", "maskgit-official-tiny", {"steps": 12, "start_step": 2, "class_label": 0}),
    "dsi": ("dsi", "dsi", "dsi-tiny", {}),
}


def bench_precisions(precisions=None, backends=("torch", "onnx"), models=tuple(PRECISION_MODELS), quick: bool = False,
                     hole: float = 0.4, device: str = "cpu", repeats: int = 1, progress=None) -> dict:  # fmt: skip
    """One sample end to end (encode, every sampling pass, decode) of each model at each precision, against
    fp32 in the same run; the quality probe of each precision (decoded PSNR and greedy-token agreement vs
    fp32); the peak memory of each run. backend "onnx": the transformer pass in onnxruntime (fp32, and int8
    by onnxruntime's own dynamic quantization), the rest in torch, for PUT and MaskGIT."""
    import tempfile
    from pathlib import Path

    from pluralfill import precision as P
    from pluralfill.methods.dsi import DSIInpainter
    from pluralfill.methods.maskgit import MaskGITInpainter
    from pluralfill.models.dsi import CONFIGS as DSI_CONFIGS
    from pluralfill.models.dsi import DSI
    from pluralfill.models.maskgit import CONFIGS as MASKGIT_CONFIGS
    from pluralfill.models.maskgit import MaskGIT

    dev = torch.device(device)
    precisions = list(precisions or P.supported(dev))
    for p in precisions:
        P.check(p, dev)
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")  # the reference every ratio is taken against
    families = {"put": (PUTInpainter, PUT, CONFIGS), "maskgit": (MaskGITInpainter, MaskGIT, MASKGIT_CONFIGS),
                "dsi": (DSIInpainter, DSI, DSI_CONFIGS)}  # fmt: skip
    result: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "threads": torch.get_num_threads(),
                    "bf16_in_hardware": P.native_bf16(dev), "hole": hole, "models": {}, "ratios": {}}  # fmt: skip
    for key in models:
        family, full, tiny, options = PRECISION_MODELS[key]
        inpainter = _inpainter(*families[family], tiny if quick else full, None, device)
        x, known = _centred_hole(inpainter.resolution, hole, dev)
        usable = [p for p in precisions if p != "int8" or P.linear_share(inpainter.model) > 0]  # DSI: no Linear layer
        runs = {f"torch {p}": inpainter.at_precision(p) for p in usable}
        if "onnx" in backends and family in ("put", "maskgit") and dev.type == "cpu":
            from pluralfill.export import export_onnx, quantize_onnx, with_onnx_transformer

            folder = Path(tempfile.mkdtemp(prefix="pluralfill-bench-onnx-"))
            export_onnx(inpainter, folder / "onnx")
            runs["onnx fp32"] = with_onnx_transformer(inpainter, folder / "onnx" / "transformer.onnx")
            runs["onnx int8"] = with_onnx_transformer(inpainter, quantize_onnx(folder / "onnx" / "transformer.onnx", folder / "int8.onnx"))
        entry = {"model": inpainter.name, "resolution": inpainter.resolution, "linear_share": P.linear_share(inpainter.model), "runs": {}}
        reference = runs["torch fp32"].probe(x, known)
        for name, run in runs.items():
            if progress is not None:
                progress(f"{key}: {name}")
            with _PeakRSS(dev) as memory:
                seconds = _timed(lambda: run.sample_in_precision(x, known, [0], **options), dev, repeats)
            quality = P.judge(name.split()[1], run.probe(x, known, reference["tokens"]), reference)
            entry["runs"][name] = {"s_per_sample": seconds, "peak_memory_mb": memory.mb, "psnr_db_vs_fp32": quality.psnr_db,
                                   "greedy_agreement_vs_fp32": quality.agreement, "bound_holds": quality.holds}  # fmt: skip
        base = entry["runs"]["torch fp32"]["s_per_sample"]
        for name, r in entry["runs"].items():
            if name != "torch fp32":
                label = name.split()[1] if name.startswith("torch") else name
                result["ratios"][f"{key}: {label} vs fp32"] = base / r["s_per_sample"]
        result["models"][key] = entry
    return result


def table(method: str, result: dict) -> tuple[str, list[str], list[list[str]]]:
    """What `pluralfill bench` prints for a result: (title, columns, rows of text)."""
    if method == "precision":
        columns = ["model", "run", "s / sample", "vs fp32", "peak MB", "PSNR vs fp32", "greedy tokens", "bound"]
        rows = []
        for key, entry in result["models"].items():
            base = entry["runs"]["torch fp32"]["s_per_sample"]
            for name, r in entry["runs"].items():
                rows.append([key, name, f"{r['s_per_sample']:.3f}", f"{base / r['s_per_sample']:.2f}x", f"{r['peak_memory_mb']:.0f}",
                             f"{r['psnr_db_vs_fp32']:.1f} dB", f"{100 * r['greedy_agreement_vs_fp32']:.1f}%",
                             "holds" if r["bound_holds"] else "misses"])  # fmt: skip
        return f"one sample end to end, {result['device']} ({result['threads']} threads), hole {result['hole']:.0%}", columns, rows
    if method == "dsi":
        title = f"{result['model']}: {result['sampled_positions']} of the {result['latent']} top codes sampled"
    elif method == "maskgit":
        title = f"{result['model']} at {result['resolution']} px, {result['passes']} passes over {result['tokens']} tokens"
    else:
        title = f"{result['model']} at {result['resolution']} px, {result['missing_tokens']} of {result['tokens']} tokens missing"
    rows = []
    for group in ("forward_per_s", "algorithm1", "put_tpami", "parallel", "structure", "image", "ratios"):
        for k, v in result.get(group, {}).items():
            rows.append([f"{group}: {k}", f"{v:.3f}" if isinstance(v, float) else str(v)])
    rows += [[k, f"{result[k]:.3f}"] for k in ("pvqvae_images_per_s", "mfu_fp32_forward_batch", "peak_memory_mb") if k in result]
    return f"{title}, {result['device']} ({result['threads']} threads)", ["measurement", "value"], rows

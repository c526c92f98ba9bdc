"""The PUT benchmark (`pluralfill bench --method put`): transformer passes/s, P-VQVAE images/s, and Algorithm 1,
the TPAMI sampler and parallel decoding per image and per sample, with the ratios between them."""

from __future__ import annotations

import torch

from pluralfill.bench import PEAK_TFLOPS_BF16, Request, peak_memory_mb, timed
from pluralfill.errors import PluralfillError
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put import CONFIGS, PUT, put_tiny_config


def _forward_flops(cfg, batch: int) -> float:
    """Multiply-adds x 2 of one transformer forward: projections, MLP and attention."""
    t = cfg.transformer
    L, D = t.seq_len, t.dim
    per_layer = 2 * L * (4 * D * D + 2 * t.mlp_ratio * D * D) + 2 * 2 * L * L * D
    return batch * (t.num_layers * per_layer + 2 * L * (t.in_dim * D + D * t.vocab_size))


def bench_put(r: Request) -> dict:
    """Transformer passes/s, P-VQVAE images/s, Algorithm 1 and parallel decoding per image and per sample."""
    config, checkpoint, resolution, hole, samples = (
        r.config or "put-tiny",
        r.checkpoint,
        r.resolution,
        r.hole,
        r.samples,
    )
    steps, device, repeats, compile = r.steps, r.device, r.repeats, r.compile
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
    out: dict = {
        "title": f"{cfg.name} at {res} px, {missing} of {side * side} tokens missing",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "model": cfg.name,
        "resolution": res,
        "tokens": side * side,
        "missing_tokens": missing,
        "samples": samples,
    }

    with torch.inference_mode():
        seq = model.pvqvae.encode(x, known).permute(0, 2, 3, 1).reshape(1, side * side, -1)
        e1 = model.transformer.embed(seq)
        eb = e1.expand(samples, -1, -1).contiguous()
        t1 = timed(lambda: model.transformer.forward_embedded(e1), dev, repeats)
        tb = timed(lambda: model.transformer.forward_embedded(eb), dev, repeats)
        out["forward_per_s"] = {"batch 1": 1 / t1, f"batch {samples}": samples / tb}
        if dev.type == "cuda":
            name = next((k for k in PEAK_TFLOPS_BF16 if k in out["device"]), None)
            if name:
                out["mfu_fp32_forward_batch"] = _forward_flops(cfg, samples) / tb / (PEAK_TFLOPS_BF16[name] * 1e12)
        xb, kb = x.expand(samples, -1, -1, -1).contiguous(), known.expand(samples, -1, -1, -1)
        types = model.pvqvae.token_types(kb)

        def round_trip():  # encode, quantize, decode with the reference: what one image costs the P-VQVAE
            return model.pvqvae.decode(model.pvqvae.tokenize(model.pvqvae.encode(xb, kb), types), xb, kb)

        out["pvqvae_images_per_s"] = samples / timed(round_trip, dev, repeats)
        tokens_one = model.pvqvae.tokenize(model.pvqvae.encode(x))
        decode_one = timed(lambda: model.pvqvae.decode(tokens_one, x, known), dev, repeats)

        def run(n, **options):
            return timed(lambda: put.sample(x, known, list(range(n)), **options), dev, repeats)

        alg1_one = run(1, sampler="put", tokens_per_step=1, top_k=50)
        tpami_one = run(1, sampler="put-tpami", tokens_per_step=20, top_k=200)
        alg1_batch = run(samples, sampler="put", tokens_per_step=1, top_k=50)
        par_one = run(1, sampler="parallel", steps=steps)
        par_batch = run(samples, sampler="parallel", steps=steps)
        xs = torch.rand(samples, 3, res, res, device=dev) * 2 - 1  # different images in one batch (inpaint on a folder)
        ks = known.expand(samples, -1, -1, -1)
        par_images = timed(
            lambda: put.sample(xs, ks, list(range(samples)), sampler="parallel", steps=steps), dev, repeats
        )
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
        f"parallel ({steps} steps) vs Algorithm 1, token sampling alone": (alg1_one - decode_one)
        / max(par_one - decode_one, 1e-9),
        f"Algorithm 1: {samples} batched vs one by one, throughput": samples * alg1_one / alg1_batch,
        f"parallel: {samples} batched vs one by one, throughput": samples * par_one / par_batch,
        f"parallel: {samples} images batched vs one by one, throughput": samples * par_one / par_images,
    }
    if dev.type == "cuda":  # the same sampling under bf16 autocast
        put16 = put.at_precision("bf16")
        with torch.inference_mode():
            par16 = timed(
                lambda: put16.sample_in_precision(x, known, list(range(samples)), sampler="parallel", steps=steps),
                dev,
                repeats,
            )
        out["ratios"]["parallel: bf16 vs fp32, batched"] = par_batch / par16
    out["peak_memory_mb"] = peak_memory_mb(dev)
    return out

"""The MaskGIT benchmark (`pluralfill bench --method maskgit`): editing as the official inference runs it."""

from __future__ import annotations

import torch

from pluralfill.bench import Request, build, centred_hole, peak_memory_mb, timed
from pluralfill.methods.maskgit import MaskGITInpainter
from pluralfill.models.maskgit import CONFIGS, MaskGIT


def bench_maskgit(r: Request, start_step: int = 2) -> dict:
    """MaskGIT editing as the official inference runs it (steps 2..11 of 12 by default): seconds per image for one
    sample, per sample for `samples` batched, and the batched vs one-by-one ratio."""
    dev, samples, repeats, steps = torch.device(r.device), r.samples, r.repeats, r.steps
    inpainter = build(MaskGITInpainter, MaskGIT, CONFIGS, r.config or "maskgit-imagenet-256", r.checkpoint, r.device)
    cfg = inpainter.model.config
    x, known = centred_hole(cfg.resolution, r.hole, dev)
    options = {"steps": steps, "start_step": start_step} | ({"class_label": 0} if cfg.official else {})
    with torch.inference_mode():
        one = timed(lambda: inpainter.sample(x, known, [0], **options), dev, repeats)
        many = timed(lambda: inpainter.sample(x, known, list(range(samples)), **options), dev, repeats)
    return {
        "title": f"{cfg.name} at {cfg.resolution} px, {steps - start_step} passes over "
        f"{cfg.tokenizer.tokens_per_side**2} tokens",
        "model": cfg.name,
        "resolution": cfg.resolution,
        "tokens": cfg.tokenizer.tokens_per_side**2,
        "passes": steps - start_step,
        "device": str(dev) if dev.type != "cpu" else "cpu",
        "threads": torch.get_num_threads(),
        "image": {"s_per_image (1 sample)": one, f"s_per_sample ({samples} batched)": many / samples},
        "ratios": {f"{samples} batched vs one by one, throughput": samples * one / many},
        "peak_memory_mb": peak_memory_mb(dev),
    }

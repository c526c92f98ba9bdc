"""The DSI benchmark (`pluralfill bench --method dsi`): the structure generator's raster sampling with and without
its layer caches, and whole images for 1 and N samples."""

from __future__ import annotations

import torch

from pluralfill.bench import Request, build, centred_hole, peak_memory_mb, timed
from pluralfill.methods.dsi import DSIInpainter
from pluralfill.models.dsi import CONFIGS, DSI


def bench_dsi(r: Request, positions: str = "all") -> dict:
    """DSI: the structure generator's raster sampling with and without the layer caches, and whole images
    (structure + texture) for 1 and N samples. The plain path runs the whole network at every position (1.5 s
    a pass at 256 px on two CPU cores: 25 minutes for the 1,024 positions), so both paths are timed on one row
    of the latent (a row start, where the cached path runs the upper stream, and every position after it:
    what each row costs), with the same model, hole and seeds, and must draw the same codes there; the cached
    path is also timed on every position sampled (`positions`: "all" as the official sampler, or "hole")."""
    from pluralfill.geometry import token_hole
    from pluralfill.sampling.autoregressive import sample_raster
    from pluralfill.sampling.base import Randomness

    dev, samples, repeats = torch.device(r.device), r.samples, r.repeats
    inpainter = build(DSIInpainter, DSI, CONFIGS, r.config or "dsi", r.checkpoint, r.device)
    model = inpainter.model
    res, side = model.config.resolution, model.config.structure.side
    x, known = centred_hole(res, r.hole, dev)
    every = (
        torch.ones(side * side, dtype=torch.bool, device=dev)
        if positions == "all"
        else token_hole(known, res // side, 1)[0]
    )
    row = torch.zeros(side * side, dtype=torch.bool, device=dev)
    row[(side // 2) * side : (side // 2 + 1) * side] = True
    with torch.no_grad():
        tokens = model.hvqvae.encode_top(x * known).reshape(1, -1)
        cond = model.structure.condition(x * known, 1 - known)
    codebook = model.hvqvae.quantize_top.embedding

    def structure(n: int, unknown, cache: bool):
        draws = Randomness(range(n), dev)
        return sample_raster(
            model.structure, cond.expand(n, -1, -1, -1), codebook, tokens.expand(n, -1), unknown, draws, cache=cache
        )

    same = torch.equal(structure(2, row, True), structure(2, row, False))
    t_row_cached = timed(lambda: structure(1, row, True), dev, repeats)
    t_row_plain = timed(lambda: structure(1, row, False), dev, 1)
    t_cached = timed(lambda: structure(1, every, True), dev, repeats)
    options = {"positions": positions}
    t_image_1 = timed(lambda: inpainter.sample(x, known, [0], **options), dev, repeats)
    t_image_n = timed(lambda: inpainter.sample(x, known, list(range(samples)), **options), dev, repeats)
    return {
        "title": f"{model.config.name}: {int(every.sum())} of the {side}x{side} top codes sampled",
        "model": model.config.name,
        "resolution": res,
        "latent": f"{side}x{side}",
        "positions": positions,
        "sampled_positions": int(every.sum()),
        "device": str(dev) if dev.type != "cpu" else "cpu",
        "threads": torch.get_num_threads(),
        "structure": {
            "one_row_uncached_s": t_row_plain,
            "one_row_cached_s": t_row_cached,
            "all_positions_cached_s": t_cached,
            "sampled_codes_per_s_cached": int(every.sum()) / t_cached,
        },
        "image": {"s_per_image_1_sample": t_image_1, f"s_per_sample_{samples}_batched": t_image_n / samples},
        "ratios": {
            "cached_vs_uncached": t_row_plain / t_row_cached,
            f"{samples}_batched_vs_one_by_one": t_image_1 * samples / t_image_n,
            "same_codes_cached_and_uncached": same,
        },
        "peak_memory_mb": peak_memory_mb(dev),
    }

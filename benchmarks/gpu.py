"""The prepared accelerator run: the seeds' speed figures against their anchors, bf16 against fp32 with the
precision module's quality bounds, and MFU, in one JSON and one markdown table. Fits in about 5 minutes on
one modern GPU; `benchmarks/gpu.sh` runs it. Random weights at the official sizes (speed does not depend on
the weights; the quality columns are drift from fp32, not the papers' scores).

    anchor (the seed's own figure)                                  measured here
    PUT Algorithm 1: 37 sampled tokens/s on an RTX 3090 (Liu et al. 2022)  put-ffhq, 1 sample, 40% hole
    P-VQVAE: 62.9 images/s (Liu et al. 2022)                               encode + quantize + decode, batch 16
    PUT TPAMI sampler, MaskGIT editing: per image                   batch 1 and batch 16 (per sample)
    MHTMA: 0.1 s per image (Zhou et al. 2023)                               one pass, 256 px
    DSI: 45 s per image (Peng et al. 2021)                                  1,024 positions cached + texture, 1 sample
    bf16 vs fp32, and the bounds                                    TPAMI, PUT, MaskGIT, DSI (bench --method precision)
    the known-token cache (refresh 4 and 8), its draws vs exact     the same models and precisions
    MFU                                                             TPAMI transformer pass, batch 16, bf16

    bash benchmarks/gpu.sh                       # --device cuda, writes benchmarks/gpu-results/
    python benchmarks/gpu.py --tiny --device cpu --out DIR     # the tiny configs: the test's run
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from pluralfill import precision as P
from pluralfill.bench import PEAK_TFLOPS_BF16, bench_precisions
from pluralfill.bench import centred_hole as _centred_hole
from pluralfill.bench import timed as _timed
from pluralfill.bench.put import _forward_flops
from pluralfill.registry import named_configs, precision_models

ANCHORS = {
    "put_algorithm1_tokens_per_s": 37.0,
    "pvqvae_images_per_s": 62.9,
    "mhtma_s_per_image": 0.1,
    "dsi_s_per_image": 45.0,
}
CONFIGS = {  # official size, tiny
    "put": ("put-ffhq", "put-tiny"),
    "tpami": ("put-tpami-ffhq-256", "put-tpami-tiny"),
    "maskgit": ("maskgit-imagenet-256", "maskgit-official-tiny"),
    "mhtma": ("mhtma", "mhtma-tiny"),
    "dsi": ("dsi", "dsi-tiny"),
}


def _build(key: str, tiny: bool, device: str):
    spec, cfg = named_configs()[CONFIGS[key][1 if tiny else 0]]
    torch.manual_seed(0)
    return spec.inpainter(spec.model(cfg).eval(), device)


def run(device: str = "cuda", tiny: bool = False, repeats: int = 2, batch: int = 16) -> dict:
    dev = torch.device(device)
    out: dict = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "tiny": tiny,
        "anchors": ANCHORS,
        "measured": {},
    }
    m = out["measured"]

    def per_image(inpainter, n, **options):
        x, known = _centred_hole(inpainter.resolution, 0.4, dev)
        return _timed(lambda: inpainter.sample_in_precision(x, known, list(range(n)), **options), dev, repeats) / n

    with torch.inference_mode():
        put = _build("put", tiny, device)
        x, known = _centred_hole(put.resolution, 0.4, dev)
        missing = int(put.model.pvqvae.token_types(known).ne(1).sum())
        m["put_algorithm1_tokens_per_s"] = missing / per_image(put, 1, sampler="put", tokens_per_step=1, top_k=50)
        p, xb, kb = put.model.pvqvae, x.expand(batch, -1, -1, -1).contiguous(), known.expand(batch, -1, -1, -1)
        types = p.token_types(kb)
        m["pvqvae_images_per_s"] = batch / _timed(
            lambda: p.decode(p.tokenize(p.encode(xb, kb), types), xb, kb), dev, repeats
        )
        tpami = _build("tpami", tiny, device)
        m["tpami_s_per_image (batch 1)"] = per_image(tpami, 1)
        m[f"tpami_s_per_sample (batch {batch})"] = per_image(tpami, batch)
        maskgit = _build("maskgit", tiny, device)
        mg = {"steps": 12, "start_step": 2, "class_label": 0}
        m["maskgit_s_per_image (batch 1)"] = per_image(maskgit, 1, **mg)
        m[f"maskgit_s_per_sample (batch {batch})"] = per_image(maskgit, batch, **mg)
        m["mhtma_s_per_image"] = per_image(_build("mhtma", tiny, device), 1)
        m["dsi_s_per_image"] = per_image(_build("dsi", tiny, device), 1)
        if dev.type == "cuda" or "bf16" in P.supported(dev):
            fast = tpami.at_precision("bf16")
            t = fast.model.transformer
            e = t.embed(torch.randn(batch, t.config.seq_len, t.config.in_dim, device=dev))
            with P.autocast(dev, "bf16"):
                seconds = _timed(lambda: t.forward_embedded(e), dev, repeats)
            name = next((k for k in PEAK_TFLOPS_BF16 if k in out["device"]), None)
            m["tpami_forward_tflops_bf16"] = _forward_flops(tpami.model.config, batch) / seconds / 1e12
            if name:
                m["mfu_bf16_tpami_forward"] = m["tpami_forward_tflops_bf16"] / PEAK_TFLOPS_BF16[name]
    precisions = ["fp32", "bf16"] if "bf16" in P.supported(dev) else ["fp32"]
    out["precision"] = bench_precisions(
        precision_models(), precisions, ("torch",), quick=tiny, device=device, repeats=1, refresh=(4, 8)
    )
    return out


def markdown(result: dict) -> str:
    m, a = result["measured"], result["anchors"]
    lines = [
        f"Device: {result['device']}, torch {result['torch']}" + (" (tiny configs)" if result["tiny"] else ""),
        "",
        "| measurement | value | the seed's anchor |",
        "|---|---|---|",
    ]
    for k, v in m.items():
        lines.append(f"| {k} | {v:.4g} | {a.get(k, '')} |")
    lines += [
        "",
        "| model | run | s / sample | vs fp32 | peak MB | PSNR vs fp32 | greedy tokens | bound | cache: draws differ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, entry in result["precision"]["models"].items():
        base = entry["runs"]["torch fp32"]["s_per_sample"]
        for name, r in entry["runs"].items():
            psnr = "identical" if r["psnr_db_vs_fp32"] == float("inf") else f"{r['psnr_db_vs_fp32']:.1f} dB"
            drift = r.get("cache_tv_per_pass")
            lines.append(
                f"| {key} | {name} | {r['s_per_sample']:.3f} | {base / r['s_per_sample']:.2f}x | "
                f"{r['peak_memory_mb']:.0f} | "
                f"{psnr} | {100 * r['greedy_agreement_vs_fp32']:.1f}% | {'holds' if r['bound_holds'] else 'misses'} | "
                f"{f'{100 * sum(drift) / len(drift):.2f}%' if drift else '-'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the tiny configs (the CPU test)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/gpu-results"))
    a = ap.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no GPU (pass --device cpu --tiny for the dry run)")
    result = run(a.device, a.tiny, a.repeats, a.batch)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu.json").write_text(json.dumps(result, indent=2, default=str).replace("Infinity", '"inf"') + "\n")
    (a.out / "gpu.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

"""The CPU settings the speed issue asked about, each measured against what pluralfill does by default, on
the networks that cost the time: the TPAMI transformer pass (put-tpami-ffhq-256: 1,024 tokens, ViT-base
width), the P-VQVAE decoder of that model, MaskGIT's VQGAN decoder and DSI's texture generator.

    threads          torch.set_num_threads(1) vs every core
    channels_last    NHWC memory format for the convolutional networks vs NCHW
    attention        F.scaled_dot_product_attention (what the blocks call) vs softmax(q k^T / sqrt(d)) v
    torch.compile    the transformer pass compiled (default inductor) vs eager
    inference_mode   torch.inference_mode() vs torch.no_grad()

Each row: median seconds over the repeats after a warm-up, and the ratio default / alternative (> 1: the
alternative is faster). Random weights (speed does not depend on them).

    python benchmarks/cpu_knobs.py [--repeats 3]
    python benchmarks/cpu_knobs.py --quick          # tiny configs: the test's run
"""

from __future__ import annotations

import argparse
import contextlib
import math
import warnings

import torch
import torch.nn.functional as F

from pluralfill.bench import timed as _timed
from pluralfill.registry import named_configs


def _model(name: str):
    spec, cfg = named_configs()[name]
    torch.manual_seed(0)
    return spec.model(cfg).eval()


@contextlib.contextmanager
def _plain_attention():
    """softmax(q k^T / sqrt(d)) v in place of SDPA, for the comparison."""
    sdpa = F.scaled_dot_product_attention

    def plain(q, k, v, dropout_p=0.0, **_):
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v

    F.scaled_dot_product_attention = plain
    try:
        yield
    finally:
        F.scaled_dot_product_attention = sdpa


def measure(quick: bool, repeats: int) -> list[dict]:
    dev = torch.device("cpu")
    put = _model("put-tpami-tiny" if quick else "put-tpami-ffhq-256")
    maskgit = _model("maskgit-official-tiny" if quick else "maskgit-imagenet-256")
    dsi = _model("dsi-tiny" if quick else "dsi")
    t, p = put.transformer, put.pvqvae
    r = p.config.resolution
    seq = torch.randn(1, t.config.seq_len, t.config.in_dim)
    x, known = torch.rand(1, 3, r, r) * 2 - 1, torch.ones(1, 1, r, r)
    with torch.no_grad():
        e = t.embed(seq)
        tokens = p.tokenize(p.encode(x))
        side = maskgit.config.tokenizer.tokens_per_side
        mg_tokens = maskgit.tokenizer.encode(
            torch.rand(1, 3, maskgit.config.resolution, maskgit.config.resolution) * 2 - 1
        ).reshape(1, side, side)
        rd = dsi.config.resolution
        xd, hd = torch.rand(1, 3, rd, rd) * 2 - 1, torch.zeros(1, 1, rd, rd)
        hd[..., rd // 4 : 3 * rd // 4, rd // 4 : 3 * rd // 4] = 1
        structure = dsi.hvqvae.top_vectors(dsi.hvqvae.encode_top(xd).reshape(1, dsi.config.structure.side, -1))
    nets = {
        "TPAMI transformer pass": (t, lambda: t.forward_embedded(e)),
        "P-VQVAE decoder": (p, lambda: p.decode(tokens, x, known)),
        "MaskGIT VQGAN decoder": (maskgit.tokenizer, lambda: maskgit.tokenizer.decode(mg_tokens)),
        "DSI texture generator": (dsi.texture, lambda: dsi.texture(xd * (1 - hd), hd, structure)),
    }
    rows = []

    def row(knob, net, default, alternative):
        base, alt = default(), alternative()
        rows.append(
            {
                "setting": knob,
                "network": net,
                "default_s": base,
                "alternative_s": alt,
                "alternative_speedup": base / alt,
            }
        )

    threads = torch.get_num_threads()
    for net, (_module, fn) in nets.items():
        with torch.no_grad():

            def one_thread(fn=fn):
                torch.set_num_threads(1)
                try:
                    return _timed(fn, dev, repeats)
                finally:
                    torch.set_num_threads(threads)

            row(f"threads: 1 vs {threads}", net, lambda fn=fn: _timed(fn, dev, repeats), one_thread)
            row(
                "inference_mode vs no_grad",
                net,
                lambda fn=fn: _timed(fn, dev, repeats),
                lambda fn=fn: _inference(fn, repeats),
            )
    with torch.no_grad():
        for net in ("P-VQVAE decoder", "MaskGIT VQGAN decoder", "DSI texture generator"):
            module, fn = nets[net]
            nchw = _timed(fn, dev, repeats)
            module.to(memory_format=torch.channels_last)
            nhwc = _timed(fn, dev, repeats)
            module.to(memory_format=torch.contiguous_format)
            rows.append(
                {
                    "setting": "channels_last vs NCHW",
                    "network": net,
                    "default_s": nchw,
                    "alternative_s": nhwc,
                    "alternative_speedup": nchw / nhwc,
                }
            )
        sdpa = _timed(nets["TPAMI transformer pass"][1], dev, repeats)
        with _plain_attention():
            plain = _timed(nets["TPAMI transformer pass"][1], dev, repeats)
        rows.append(
            {
                "setting": "plain attention vs SDPA",
                "network": "TPAMI transformer pass",
                "default_s": sdpa,
                "alternative_s": plain,
                "alternative_speedup": sdpa / plain,
            }
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = torch.compile(t.forward_embedded)
            try:
                alt = _timed(lambda: compiled(e), dev, repeats)
            except Exception as err:  # no C compiler, or an inductor failure: reported, not fatal
                alt = float("nan")
                print(f"torch.compile failed: {type(err).__name__}: {str(err)[:200]}")
        rows.append(
            {
                "setting": "torch.compile vs eager",
                "network": "TPAMI transformer pass",
                "default_s": sdpa,
                "alternative_s": alt,
                "alternative_speedup": sdpa / alt,
            }
        )
    return rows


def _inference(fn, repeats):
    with torch.inference_mode():
        return _timed(fn, torch.device("cpu"), repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny configs, 1 repeat")
    a = ap.parse_args(argv)
    rows = measure(a.quick, 1 if a.quick else a.repeats)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{'tiny configs' if a.quick else 'official sizes'}\n"
    )
    print("| setting | network | default (s) | alternative (s) | alternative's speed-up |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['network']} | {r['default_s']:.4f} | {r['alternative_s']:.4f} | "
            f"{r['alternative_speedup']:.2f}x |"
        )
    return rows


if __name__ == "__main__":
    main()

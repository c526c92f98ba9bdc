"""Convert an official PUT checkpoint (github liuqk3/PUT, `{'model': state_dict, ...}`) to our format.

The transformer checkpoint holds its P-VQVAE under `content_codec.*`; both are converted together. The
architecture is read off the tensor shapes and checked against the named config when one is given.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from pluralfill.errors import PluralfillError
from pluralfill.models.put import CONFIGS, PUT, PUTConfig
from pluralfill.models.pvqvae import PVQVAEConfig
from pluralfill.models.uq_transformer import UQTransformerConfig

# official key pattern -> ours; applied to keys with their `content_codec.` prefix removed
PVQVAE_KEYS = [
    (r"encoder\.pre_layers\.0\.", "encoder.patch_in."),
    (r"encoder\.res_layers\.(\d+)\.layers\.1\.", r"encoder.blocks.\1.fc1."),
    (r"encoder\.res_layers\.(\d+)\.layers\.3\.", r"encoder.blocks.\1.fc2."),
    (r"encoder\.post_layers\.1\.", "encoder.patch_out."),
    (r"quantize\.(embedding|cluster_size|embedding_avg)$", r"quantizer.\1"),
    (r"quant_conv\.", "quant_conv."),
    (r"post_quant_conv\.", "post_quant_conv."),
    (r"decoder\.pre_layers\.0\.", "decoder.conv_in."),
    (r"decoder\.res_layers\.(\d+)\.conv\.1\.", r"decoder.blocks.\1.conv1."),
    (r"decoder\.res_layers\.(\d+)\.conv\.3\.", r"decoder.blocks.\1.conv2."),
    (r"decoder\.up_layers\.(\d+)\.deconv\.", r"decoder.ups.\1."),
    (r"decoder\.post_layers\.1\.", "decoder.conv_out."),
    (r"decoder\.encoder\.layers\.(\d+)\.", r"decoder.reference.convs.\1."),
]
TRANSFORMER_KEYS = [
    (r"pos_emb$", "pos_emb"),
    (r"emb_proj\.", "emb_proj."),
    (r"blocks\.(\d+)\.(ln1|ln2)\.", r"blocks.\1.\2."),
    (r"blocks\.(\d+)\.attn\.(query|key|value|proj)\.", r"blocks.\1.attn.\2."),
    (r"blocks\.(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"blocks\.(\d+)\.mlp\.2\.", r"blocks.\1.mlp.fc2."),
    (r"layer_norm\.", "ln_f."),
    (r"to_logits\.", "head."),
]
# parts of training checkpoints that inference does not use
IGNORED = re.compile(r"^(content_codec\.)?loss\.")


def _rename(key: str) -> str | None:
    if key.startswith("content_codec."):
        rest, rules, prefix = key[len("content_codec.") :], PVQVAE_KEYS, "pvqvae."
    else:
        rest, rules, prefix = key, TRANSFORMER_KEYS, "transformer."
    for pattern, repl in rules:
        if re.match(pattern, rest):
            return prefix + re.sub(pattern, repl, rest, count=1)
    return None


def read_official(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise PluralfillError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as e:
        raise PluralfillError(f"cannot read {path} as a PyTorch checkpoint: {str(e).splitlines()[0]}") from None
    state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PluralfillError(f"{path} holds no state dict under 'model' or 'state_dict'")
    if not any(k.startswith("content_codec.") for k in state):
        if any(k.startswith("encoder.") for k in state):
            raise PluralfillError(f"{path} is a P-VQVAE checkpoint: convert the transformer checkpoint, which contains its P-VQVAE")
        raise PluralfillError(f"{path} has no content_codec.* keys: not a PUT transformer checkpoint")
    return state


def infer_config(state: dict[str, torch.Tensor], name: str = "put") -> PUTConfig:
    """The architecture a state dict was made by, from its tensor shapes."""
    g = lambda k: state[k].shape  # noqa: E731
    enc_blocks = len({m[1] for k in state if (m := re.match(r"content_codec\.encoder\.res_layers\.(\d+)\.", k))})
    layers = len({m[1] for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    channels = g("content_codec.encoder.pre_layers.0.weight")[0]
    patch = int(round((g("content_codec.encoder.pre_layers.0.weight")[1] / 3) ** 0.5))
    num_codes, code_dim = g("content_codec.quantize.embedding")
    seq_len, dim = g("pos_emb")[1:]
    vocab = g("to_logits.weight")[0]
    hidden = g("blocks.0.mlp.0.weight")[0]
    heads = {512: 8, 1024: 8}.get(dim)
    return PUTConfig(
        name=name,
        pvqvae=PVQVAEConfig(resolution=int(round(seq_len**0.5)) * patch, patch_size=patch, channels=channels,
                            code_dim=code_dim, num_codes=num_codes, num_res_blocks=enc_blocks,
                            codebook="dual" if vocab < num_codes else "one"),
        transformer=UQTransformerConfig(seq_len=seq_len, in_dim=code_dim, dim=dim, num_layers=layers,
                                        num_heads=heads or max(1, dim // 64), mlp_ratio=hidden // dim, vocab_size=vocab),
    )  # fmt: skip


def convert(path: str | os.PathLike, config: str | None = None, num_heads: int | None = None) -> PUT:
    """Read an official checkpoint into our PUT. `config` names one of CONFIGS (ffhq, places2, imagenet);
    without it the shapes decide. Head counts are not visible in shapes: the named config or `num_heads`
    (default 8, as in every official config) sets them."""
    state = read_official(path)
    cfg = infer_config(state)
    if num_heads is not None:
        cfg.transformer.num_heads = num_heads
    if config is not None:
        key = config if config.startswith("put-") else f"put-{config}"
        if key not in CONFIGS:
            raise PluralfillError(f"unknown PUT config {config!r}; choose from ffhq, places2, imagenet")
        named = CONFIGS[key]
        for part in ("pvqvae", "transformer"):
            ours, theirs = getattr(named, part).model_dump(), getattr(cfg, part).model_dump()
            diff = [f"{k}={theirs[k]} (config {key}: {ours[k]})" for k in ours if ours[k] != theirs[k] and k != "num_heads"]
            if diff:
                raise PluralfillError(f"{path} does not match {key}: {part} {', '.join(diff)}")
        cfg = named.model_copy(deep=True)
    else:
        cfg.name = f"put-{Path(path).stem}"
    renamed, unknown = {}, []
    for k, v in state.items():
        new = _rename(k)
        if new is None:
            if not IGNORED.match(k):
                unknown.append(k)
            continue
        renamed[new] = v
    if unknown:
        raise PluralfillError(f"unknown keys in {path}: {', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}")
    model = PUT(cfg)
    expected = set(model.state_dict())
    missing = sorted(expected - set(renamed))
    if missing:
        raise PluralfillError(f"keys missing from {path}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    try:
        model.load_state_dict(renamed, strict=True)
    except RuntimeError as e:
        raise PluralfillError(f"{path} does not fit {cfg.name}: {str(e).splitlines()[-1].strip()}") from None
    return model.eval()

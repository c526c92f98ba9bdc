"""Convert an official PUT checkpoint (github liuqk3/PUT, `{'model': state_dict, ...}`) to our format: the
CVPR-2022 models (branch cvpr2022) and the TPAMI-2024 ones (branch main, what the download link serves now).

A transformer checkpoint holds its P-VQVAE under `content_codec.*`; both are converted together. The
generation is told by the keys (TPAMI: a fused `attn.qkv`, `norm`, nearest up-sampling layers), the
architecture by the tensor shapes, checked against the named config when one is given. What shapes cannot
show: head counts (the named config, or `num_heads`), and whether a TPAMI model reads ImageNet-normalized
input (the ImageNet models do): the named config says, else the official `configs/config.yaml` beside the
checkpoint folder, else the file's path (`.../tpami2024_vit_base_imagenet_res512/checkpoint/last.pth`).
"""

from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path

import torch

from pluralfill.errors import PluralfillError
from pluralfill.hub import read_pickle
from pluralfill.models.put import CONFIGS, PUT, PUTConfig
from pluralfill.models.pvqvae import PVQVAEConfig
from pluralfill.models.uq_transformer import UQTransformerConfig
from pluralfill.pretrained import config_mismatch, load_converted

# official key pattern -> ours, the layers every generation shares; applied without the `content_codec.` prefix
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
    (r"decoder\.post_layers\.1\.", "decoder.conv_out."),
]
CVPR_TRANSFORMER_KEYS = [
    (r"pos_emb$", "pos_emb"),
    (r"emb_proj\.", "emb_proj."),
    (r"blocks\.(\d+)\.(ln1|ln2)\.", r"blocks.\1.\2."),
    (r"blocks\.(\d+)\.attn\.(query|key|value|proj)\.", r"blocks.\1.attn.\2."),
    (r"blocks\.(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"blocks\.(\d+)\.mlp\.2\.", r"blocks.\1.mlp.fc2."),
    (r"layer_norm\.", "ln_f."),
    (r"to_logits\.", "head."),
]
TPAMI_TRANSFORMER_KEYS = [
    (r"pos_emb$", "pos_emb"),
    (r"mask_emb$", "mask_emb"),
    (r"emb_proj\.", "emb_proj."),
    (r"blocks\.(\d+)\.norm1\.", r"blocks.\1.ln1."),
    (r"blocks\.(\d+)\.norm2\.", r"blocks.\1.ln2."),
    (r"blocks\.(\d+)\.attn\.proj\.", r"blocks.\1.attn.proj."),
    (r"blocks\.(\d+)\.attn\.q_bias$", r"blocks.\1.attn.query.bias"),
    (r"blocks\.(\d+)\.attn\.v_bias$", r"blocks.\1.attn.value.bias"),
    (r"blocks\.(\d+)\.mlp\.(fc1|fc2)\.", r"blocks.\1.mlp.\2."),
    (r"norm\.", "ln_f."),
    (r"to_logits\.", "head."),
]
FUSED_QKV = re.compile(r"blocks\.(\d+)\.attn\.qkv\.weight$")
# parts of training checkpoints that inference does not use
IGNORED = re.compile(r"^(content_codec\.)?loss\.")


def _apply(rules, key: str) -> str | None:
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key, count=1)
    return None


def _rename_pvqvae(key: str, cfg: PVQVAEConfig) -> str | None:
    """The P-VQVAE keys. The up path and the reference branch are flat Sequentials in the official code:
    [up, res x s, up, res x s, ...] and [conv, res x s, down, res x s, ..., down] with s residual blocks a stage."""
    s = cfg.stage_res_blocks
    if m := re.match(r"decoder\.up_layers\.(\d+)\.(deconv|conv)\.(?:(1|3)\.)?(weight|bias)$", key):
        stage, j = divmod(int(m[1]), 1 + s)
        if j == 0 and m[3] is None:
            return f"decoder.ups.{stage}.{m[4]}"
        if j > 0 and m[3] is not None:
            return f"decoder.stage_blocks.{stage}.{j - 1}.{'conv1' if m[3] == '1' else 'conv2'}.{m[4]}"
        return None
    if m := re.match(r"decoder\.encoder\.layers\.(\d+)\.(conv\.)?(?:(1|3)\.)?(weight|bias)$", key):
        index, wrapped, res = int(m[1]), m[2] is not None, m[3]
        stage, j = (0, 0) if index == 0 else divmod(index - 1, s + 1)
        if index == 0 and not wrapped and res is None:  # the first layer is a plain conv, the others are wrapped
            return f"decoder.reference.convs.0.{m[4]}"
        if index > 0 and j == s and wrapped and res is None:
            return f"decoder.reference.convs.{stage + 1}.{m[4]}"
        if index > 0 and j < s and wrapped and res is not None:
            return f"decoder.reference.blocks.{stage}.{j}.{'conv1' if res == '1' else 'conv2'}.{m[4]}"
        return None
    return _apply(PVQVAE_KEYS, key)


def rename_pvqvae(key: str, cfg: PVQVAEConfig, tpami: bool) -> str | None:
    """Our name of an official P-VQVAE key (without `content_codec.`), or None for a key we do not know."""
    if not tpami and (m := re.match(r"decoder\.up_layers\.(\d+)\.deconv\.(weight|bias)$", key)):
        return f"decoder.ups.{m[1]}.{m[2]}"
    if not tpami and (m := re.match(r"decoder\.encoder\.layers\.(\d+)\.(weight|bias)$", key)):
        return f"decoder.reference.convs.{m[1]}.{m[2]}"
    return _rename_pvqvae(key, cfg) if tpami else _apply(PVQVAE_KEYS, key)


@functools.lru_cache(maxsize=1)
def _read_once(path: str, mtime_ns: int, size: int):
    """The file read once for every converter that tries it (`models add` tries each in turn); the key holds
    its time and size, so a changed file is read again."""
    return read_pickle(Path(path), "an official PUT checkpoint (.pth)")


def read_official(path: str | os.PathLike, conditional: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of an official PUT transformer checkpoint, read without unpickling code; `conditional`:
    the controllable model's (with segmentation and sketch P-VQVAEs)."""
    path = Path(path)
    if not path.is_file():
        raise PluralfillError(f"checkpoint not found: {path}")
    stat = path.stat()
    obj = _read_once(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PluralfillError(f"{path} holds no state dict under 'model' or 'state_dict': not a PUT checkpoint")
    if not any(k.startswith("content_codec.") for k in state):
        if any(k.startswith(("encoder.", "decoder.", "quantize.")) for k in state):
            raise PluralfillError(
                f"{path} is a P-VQVAE checkpoint (stage 1 alone): convert the transformer checkpoint "
                "of the same model, which contains its P-VQVAE"
            )
        raise PluralfillError(
            f"{path} has no content_codec.* keys: not a PUT transformer checkpoint "
            f"(keys like {', '.join(list(state)[:3])})"
        )
    guided = any(k.startswith(("seg_codec.", "sketch_codec.")) for k in state)
    if guided and not conditional:
        raise PluralfillError(
            f"{path} is a conditional (segmentation + sketch) PUT TPAMI checkpoint: convert it with "
            "`pluralfill convert put-tpami-conditional`"
        )
    if conditional and not guided:
        raise PluralfillError(
            f"{path} is a PUT checkpoint without guidance (no seg_codec.* keys): convert it with "
            "`pluralfill convert put-official`"
        )
    return state


def generation(state: dict[str, torch.Tensor]) -> str:
    """'tpami2024' or 'cvpr2022', from the key layout."""
    if any(FUSED_QKV.match(k) for k in state) or "norm.weight" in state:
        return "tpami2024"
    if any(re.match(r"blocks\.\d+\.attn\.query\.", k) for k in state) or "layer_norm.weight" in state:
        return "cvpr2022"
    raise PluralfillError(
        "the transformer keys are neither PUT CVPR-2022 (attn.query, layer_norm) nor TPAMI-2024 (attn.qkv, norm)"
    )


def _count(state, pattern: str) -> int:
    return len({m[1] for k in state if (m := re.match(pattern, k))})


def infer_config(state: dict[str, torch.Tensor], name: str = "put") -> PUTConfig:
    """The architecture a state dict was made by, from its tensor shapes."""
    g = lambda k: state[k].shape  # noqa: E731
    tpami = generation(state) == "tpami2024"
    cc = "content_codec."
    channels = g(cc + "encoder.pre_layers.0.weight")[0]
    patch = int(round((g(cc + "encoder.pre_layers.0.weight")[1] / 3) ** 0.5))
    num_codes, code_dim = g(cc + "quantize.embedding")
    seq_len, dim = g("pos_emb")[1:]
    vocab = g("to_logits.weight")[0]
    layers = _count(state, r"blocks\.(\d+)\.")
    hidden = g("blocks.0.mlp.fc1.weight" if tpami else "blocks.0.mlp.0.weight")[0]
    pvqvae = dict(
        resolution=int(round(seq_len**0.5)) * patch,
        patch_size=patch,
        channels=channels,
        code_dim=code_dim,
        num_codes=num_codes,
        num_res_blocks=_count(state, r"content_codec\.encoder\.res_layers\.(\d+)\."),
        codebook="dual" if vocab < num_codes else "one",
        restart_dead_codes=False,
        data_init=False,
    )
    transformer = dict(
        seq_len=seq_len, in_dim=code_dim, dim=dim, num_layers=layers, mlp_ratio=hidden // dim, vocab_size=vocab
    )
    if not tpami:
        return PUTConfig(
            name=name,
            pvqvae=PVQVAEConfig(**pvqvae),
            transformer=UQTransformerConfig(**transformer, num_heads={512: 8, 1024: 8}.get(dim, max(1, dim // 64))),
        )
    stages = int(math.log2(patch))
    pvqvae |= dict(
        num_known_codes=vocab,
        decoder_res_blocks=_count(state, r"content_codec\.decoder\.res_layers\.(\d+)\."),
        stage_res_blocks=_count(state, r"content_codec\.decoder\.up_layers\.(\d+)\.") // stages - 1,
        upsample="nearest" if cc + "decoder.up_layers.0.conv.weight" in state else "deconv",
        decoder_width=g(cc + "decoder.post_layers.1.weight")[1],
    )
    transformer |= dict(num_heads=max(1, dim // 64), mask_embedding="mask_emb" in state, key_bias=False, drop_path=0.1)
    return PUTConfig(
        name=name, generation="tpami2024", pvqvae=PVQVAEConfig(**pvqvae), transformer=UQTransformerConfig(**transformer)
    )


def _official_config_beside(path: Path) -> dict | None:
    """The official config of the run a checkpoint belongs to (`<run>/configs/config.yaml`, as
    `scripts/inference.py` finds it next to `<run>/checkpoint/<file>.pth`), if that file is there."""
    from pluralfill.io import read_yaml

    candidate = path.parent.parent / "configs" / "config.yaml"
    if not candidate.is_file():
        return None
    tree = read_yaml(candidate, "PUT run config")
    return tree if isinstance(tree, dict) else None


def _find(node, key):
    """The first value under `key` anywhere in a config tree."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        return next((f for v in node.values() if (f := _find(v, key)) is not None), None)
    return None


def _normalization(tree: dict) -> str:
    """The input normalization an official config names: the ImageNet models standardize their input."""
    info = _find(_find(tree, "content_codec_config") or tree, "im_process_info")
    return "imagenet" if isinstance(info, dict) and isinstance(info.get("mean"), list) else "symmetric"


def _heads(tree: dict) -> int | None:
    """The transformer's head count an official config names (`n_head` in CVPR, `num_heads` in TPAMI)."""
    transformer = _find(tree, "transformer_config") or tree
    value = _find(transformer, "n_head") or _find(transformer, "num_heads")
    return int(value) if isinstance(value, int) and value > 0 else None


def _official_name(path: Path) -> str:
    """`OUTPUT/tpami2024_vit_base_ffhq_res256/checkpoint/last.pth` -> put-tpami2024_vit_base_ffhq_res256."""
    run = path.parent.parent.name if path.parent.name == "checkpoint" else path.stem
    return f"put-{run}"


def convert(path: str | os.PathLike, config: str | None = None, num_heads: int | None = None) -> PUT:
    """Read an official checkpoint into our PUT. `config` names one of CONFIGS (`ffhq`, `put-tpami-ffhq-512`,
    ...); without it the shapes decide. Head counts are not visible in shapes: the named config or
    `num_heads`, or the official run's `configs/config.yaml` beside `checkpoint/`, sets them; failing all three,
    the official configs' count for the width (8 for CVPR, dim / 64 for TPAMI), which `model.assumed` says."""
    path = Path(path)
    state = read_official(path)
    cfg = infer_config(state, name=_official_name(path))
    tpami = cfg.generation == "tpami2024"
    beside = _official_config_beside(path)
    assumed = {}
    if tpami:  # normalization: the ImageNet models standardize their input; nothing in the weights says so
        no_mask_emb_256 = cfg.pvqvae.resolution == 256 and not cfg.transformer.mask_embedding  # only imagenet-256
        if beside is not None:
            cfg.pvqvae.normalization = _normalization(beside)
        elif no_mask_emb_256 or "imagenet" in str(path).lower():
            cfg.pvqvae.normalization = "imagenet"
    if config is not None:
        cfg = _named(config, cfg, path)
    heads = num_heads or (None if config else beside and _heads(beside))  # a named config names its heads
    if heads:
        cfg.transformer.num_heads = heads
    elif config is None:  # the weights' shapes cannot tell the head count
        assumed["num_heads"] = (
            f"{cfg.transformer.num_heads} (the official configs' count for width {cfg.transformer.dim}; "
            "the file does not record it: pass --num-heads, or keep the run's configs/config.yaml beside checkpoint/)"
        )
    renamed, unknown = {}, []
    for k, v in state.items():
        new = _rename(k, v, cfg, tpami)
        if new is None:
            if not IGNORED.match(k):
                unknown.append(k)
            continue
        renamed.update(new)
    model = load_converted(PUT(cfg), renamed, str(path), unknown)
    model.assumed = assumed
    return model


def _named(config: str, inferred: PUTConfig, path: Path) -> PUTConfig:
    """The named config, after checking that the file's shapes fit it."""
    key = config if config.startswith("put-") else f"put-{config}"
    if key not in CONFIGS:
        names = ", ".join(n for n in CONFIGS if n not in ("put-tiny", "put-scenes-small"))
        raise PluralfillError(f"unknown PUT config {config!r}; choose from {names}")
    named = CONFIGS[key]
    if named.generation != inferred.generation:
        raise PluralfillError(
            f"{path} is a PUT {inferred.generation} checkpoint but {key} is a {named.generation} model"
        )
    shape_only = {"num_heads", "normalization", "restart_dead_codes", "data_init", "drop_path", "dropout", "ema_decay"}
    problem = config_mismatch(named, inferred, key, ("pvqvae", "transformer"), shape_only)
    if problem:
        raise PluralfillError(f"{path} does not match {key}: {problem}")
    return named.model_copy(deep=True)


def _rename(key: str, value: torch.Tensor, cfg: PUTConfig, tpami: bool) -> dict[str, torch.Tensor] | None:
    """{our key: tensor} for one official entry (a fused qkv gives three), or None for a key we do not know."""
    if key.startswith("content_codec."):
        new = rename_pvqvae(key[len("content_codec.") :], cfg.pvqvae, tpami)
        return None if new is None else {f"pvqvae.{new}": value}
    if tpami and (m := FUSED_QKV.match(key)):  # one Linear for q, k and v in the official code
        q, k, v = value.chunk(3, dim=0)
        return {f"transformer.blocks.{m[1]}.attn.{n}.weight": t for n, t in (("query", q), ("key", k), ("value", v))}
    new = _apply(TPAMI_TRANSFORMER_KEYS if tpami else CVPR_TRANSFORMER_KEYS, key)
    if new == "mask_emb":
        value = value.reshape(-1)  # (1, dim, 1, 1) in the official B x C x H x W layout
    return None if new is None else {f"transformer.{new}": value}


def convert_conditional(path: str | os.PathLike, config: str | None = None):
    """Read an official controllable (segmentation + sketch) TPAMI checkpoint. The three published models
    have the same shapes; `config` (or the file's path, or the official config beside it) picks the input
    normalization: ImageNet's mean and std for the ImageNet model."""
    from pluralfill.models.put_conditional import CONFIGS as GUIDED
    from pluralfill.models.put_conditional import PUTConditional

    path = Path(path)
    state = read_official(path, conditional=True)
    if config is None:
        data = next((d for d in ("imagenet", "naturalscene", "ffhq") if d in str(path).lower()), "ffhq")
        config = f"put-tpami-{data}-seg-sketch-256"
        name = _official_name(path)
    else:
        name = config = config if config.startswith("put-") else f"put-{config}"
    if config not in GUIDED:
        raise PluralfillError(f"unknown conditional PUT config {config!r}; choose from {', '.join(GUIDED)}")
    cfg = GUIDED[config].model_copy(deep=True)
    cfg.name = name
    beside = _official_config_beside(path)
    if beside is not None:
        cfg.pvqvae.normalization = _normalization(beside)
    renamed, unknown = {}, []
    for k, v in state.items():
        prefix = next((p for p in ("content_codec.", "seg_codec.", "sketch_codec.") if k.startswith(p)), None)
        if prefix is not None:
            ours = {
                "content_codec.": ("pvqvae", cfg.pvqvae),
                "seg_codec.": ("seg_pvqvae", cfg.guidance),
                "sketch_codec.": ("sketch_pvqvae", cfg.guidance),
            }[prefix]
            new = _rename_pvqvae(k[len(prefix) :], ours[1])
            new = None if new is None else {f"{ours[0]}.{new}": v}
        elif k in ("seg_embed_default.weight", "sketch_embed_default.weight"):
            new = {k.split("_embed")[0] + "_default": v.reshape(-1)}
        else:
            new = _rename(k, v, cfg, tpami=True)
        if new is None:
            if not IGNORED.match(k):
                unknown.append(k)
            continue
        renamed.update(new)
    return load_converted(PUTConditional(cfg), renamed, str(path), unknown)

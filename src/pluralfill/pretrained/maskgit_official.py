"""Convert the official MaskGIT checkpoints (google-research/maskgit: `tokenizer_imagenet{256,512}_checkpoint`
and `maskgit_imagenet{256,512}_checkpoint`) to our format, without JAX.

The files are flax msgpack: a map {"params": {module: {...: leaf}}}, each leaf a msgpack ext of type 1 whose
payload is [shape, dtype name, raw C-order bytes]. Flax kernels are [in, out] (dense), [kh, kw, in, out]
(conv) and [in, heads, head_dim] / [heads, head_dim, out] (attention); PyTorch wants them transposed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from pluralfill.errors import PluralfillError
from pluralfill.models.maskgit import CONFIGS, MaskGIT, MaskGITBertConfig, MaskGITConfig
from pluralfill.models.vqgan import VQGANConfig
from pluralfill.pretrained import config_mismatch, load_converted


def read_flax_checkpoint(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """{"encoder/Conv_0/kernel": array, ...} from a flax msgpack file (the `params` tree, names joined by /);
    a .safetensors file with `params/...` names is read too."""
    path = Path(path)
    if not path.is_file():
        raise PluralfillError(f"{what} checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            flat = load_file(str(path))
        except Exception as e:  # safetensors raises its own error types for damaged files
            raise PluralfillError(f"cannot read {path}: {e}".splitlines()[0]) from None
        return {k.removeprefix("params/"): v for k, v in flat.items()}
    import msgpack

    def leaf(code, payload):
        if code not in (1, 3):  # 1: ndarray, 3: numpy scalar; the official files hold ndarrays only
            raise PluralfillError(f"{path} holds a msgpack extension {code} that no flax checkpoint of MaskGIT has")
        shape, dtype, data = msgpack.unpackb(payload, raw=False)
        return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)

    try:
        tree = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False, ext_hook=leaf)
    except PluralfillError:
        raise
    except Exception as e:  # msgpack's errors for truncated or foreign bytes
        raise PluralfillError(
            f"cannot read {path} as a flax msgpack checkpoint (truncated, or another format): "
            f"{type(e).__name__}: {e}".splitlines()[0]
        ) from None
    if not isinstance(tree, dict) or not isinstance(tree.get("params"), dict):
        raise PluralfillError(f"{path} has no 'params' tree: not a flax checkpoint of MaskGIT")
    flat: dict[str, np.ndarray] = {}

    def walk(node, prefix):
        if prefix.count("/") > 16:  # the official trees are 4 deep
            raise PluralfillError(f"{path}: the parameter tree nests deeper than any flax checkpoint of MaskGIT")
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}/")
            elif isinstance(v, np.ndarray):
                flat[prefix + k] = v
            else:
                raise PluralfillError(f"{path}: {prefix}{k} is a {type(v).__name__}, not an array")

    walk(tree["params"], "")
    return flat


def _conv(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def _dense(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.reshape(kernel.shape[0], -1).T))


def _tokenizer_state(p: dict[str, np.ndarray], cfg: VQGANConfig) -> dict[str, torch.Tensor]:
    levels, r = len(cfg.channel_mult), cfg.num_res_blocks
    out = {}

    def block(prefix, ours):
        for theirs, mine in (("GroupNorm_0", "norm1"), ("GroupNorm_1", "norm2")):
            out[f"{ours}.{mine}.weight"] = torch.from_numpy(p.pop(f"{prefix}/{theirs}/scale").copy())
            out[f"{ours}.{mine}.bias"] = torch.from_numpy(p.pop(f"{prefix}/{theirs}/bias").copy())
        for theirs, mine in (("Conv_0", "conv1"), ("Conv_1", "conv2"), ("Conv_2", "shortcut")):
            if f"{prefix}/{theirs}/kernel" in p:
                out[f"{ours}.{mine}.weight"] = _conv(p.pop(f"{prefix}/{theirs}/kernel"))

    def conv(prefix, ours, bias=True):
        out[f"{ours}.weight"] = _conv(p.pop(f"{prefix}/kernel"))
        if bias:
            out[f"{ours}.bias"] = torch.from_numpy(p.pop(f"{prefix}/bias").copy())

    def gn(prefix, ours):
        out[f"{ours}.weight"] = torch.from_numpy(p.pop(f"{prefix}/scale").copy())
        out[f"{ours}.bias"] = torch.from_numpy(p.pop(f"{prefix}/bias").copy())

    conv("encoder/Conv_0", "encoder.conv_in", bias=False)
    for k in range((levels + 1) * r):
        block(f"encoder/ResBlock_{k}", f"encoder.blocks.{k}" if k < levels * r else f"encoder.final.{k - levels * r}")
    gn("encoder/GroupNorm_0", "encoder.norm_out")
    conv("encoder/Conv_1", "encoder.conv_out")
    conv("decoder/Conv_0", "decoder.conv_in")
    for k in range((levels + 1) * r):
        block(f"decoder/ResBlock_{k}", f"decoder.first.{k}" if k < r else f"decoder.blocks.{k - r}")
    for i in range(1, levels):
        conv(f"decoder/Conv_{i}", f"decoder.ups.{i - 1}")
    gn("decoder/GroupNorm_0", "decoder.norm_out")
    conv(f"decoder/Conv_{levels}", "decoder.conv_out")
    out["codebook"] = torch.from_numpy(p.pop("quantizer/codebook").copy())
    return out


def _transformer_state(p: dict[str, np.ndarray], cfg: MaskGITBertConfig) -> dict[str, torch.Tensor]:
    t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731 (a writable copy)
    out = {
        "tok_emb.weight": t(p.pop("Embed_0/word_embeddings/embedding")),
        "pos_emb": t(p.pop("Embed_0/position_embeddings/embedding"))[None],
        "ln_emb.weight": t(p.pop("Embed_0/embeddings_ln/scale")),
        "ln_emb.bias": t(p.pop("Embed_0/embeddings_ln/bias")),
        "head_dense.weight": _dense(p.pop("MlmLayer_0/mlm_dense/kernel")),
        "head_dense.bias": t(p.pop("MlmLayer_0/mlm_dense/bias")),
        "head_ln.weight": t(p.pop("MlmLayer_0/mlm_ln/scale")),
        "head_ln.bias": t(p.pop("MlmLayer_0/mlm_ln/bias")),
        "head_bias": t(p.pop("MlmLayer_0/mlm_bias/bias")),
    }
    for i in range(cfg.num_layers):
        a, m, b = f"TransformerLayer_{i}/Attention_0", f"TransformerLayer_{i}/Mlp_0", f"blocks.{i}"
        for name in ("query", "key", "value"):
            out[f"{b}.{name}.weight"] = _dense(p.pop(f"{a}/self_attention/{name}/kernel"))
            out[f"{b}.{name}.bias"] = t(p.pop(f"{a}/self_attention/{name}/bias").reshape(-1))
        kernel = p.pop(f"{a}/self_attention/out/kernel")  # [heads, head_dim, dim]
        out[f"{b}.out.weight"] = t(kernel.reshape(-1, kernel.shape[-1]).T)
        out[f"{b}.out.bias"] = t(p.pop(f"{a}/self_attention/out/bias"))
        for theirs, mine in ((f"{a}/attention_output_ln", "ln1"), (f"{m}/layer_output_ln", "ln2")):
            out[f"{b}.{mine}.weight"], out[f"{b}.{mine}.bias"] = t(p.pop(f"{theirs}/scale")), t(p.pop(f"{theirs}/bias"))
        for theirs, mine in (("intermediate_output", "fc1"), ("layer_output", "fc2")):
            out[f"{b}.{mine}.weight"], out[f"{b}.{mine}.bias"] = (
                _dense(p.pop(f"{m}/{theirs}/kernel")),
                t(p.pop(f"{m}/{theirs}/bias")),
            )
    return out


def infer_config(tok: dict[str, np.ndarray], tr: dict[str, np.ndarray]) -> MaskGITConfig:
    """The architecture two official files were made by, from their shapes."""
    levels = len([k for k in tok if re.fullmatch(r"decoder/Conv_\d+/kernel", k)]) - 1
    r = len({m[1] for k in tok if (m := re.match(r"decoder/ResBlock_(\d+)/", k))}) // (levels + 1)
    filters = tok["encoder/Conv_0/kernel"].shape[-1]
    widths = [tok[f"encoder/ResBlock_{i * r}/Conv_0/kernel"].shape[-1] for i in range(levels)]
    codes, dim = tok["quantizer/codebook"].shape
    vocab, hidden = tr["Embed_0/word_embeddings/embedding"].shape
    positions = tr["Embed_0/position_embeddings/embedding"].shape[0]
    side = int(round((positions - 1) ** 0.5))
    _, heads, _ = tr["TransformerLayer_0/Attention_0/self_attention/query/kernel"].shape
    layers = len({m[1] for k in tr if (m := re.match(r"TransformerLayer_(\d+)/", k))})
    return MaskGITConfig(
        name="maskgit-official",
        tokenizer=VQGANConfig(
            kind="official",
            resolution=side * 2 ** (levels - 1),
            channels=filters,
            channel_mult=tuple(w // filters for w in widths),
            num_res_blocks=r,
            attn_resolutions=(),
            code_dim=dim,
            num_codes=codes,
        ),
        transformer=MaskGITBertConfig(
            seq_len=positions - 1,
            num_codes=codes,
            num_classes=vocab - codes - 1,
            dim=hidden,
            num_layers=layers,
            num_heads=heads,
            intermediate=tr["TransformerLayer_0/Mlp_0/intermediate_output/kernel"].shape[1],
        ),
    )


def convert(tokenizer: str | os.PathLike, transformer: str | os.PathLike, config: str | None = None) -> MaskGIT:
    """Read the official tokenizer and transformer files into our MaskGIT; every name and shape is checked.
    `config` (maskgit-imagenet-256 or -512) checks the files against it; without it the shapes decide."""
    tok, tr = read_flax_checkpoint(tokenizer, "tokenizer"), read_flax_checkpoint(transformer, "transformer")
    for path, got, role, want, other in (
        (tokenizer, tok, "tokenizer", "quantizer/codebook", "Embed_0/word_embeddings/embedding"),
        (transformer, tr, "transformer", "Embed_0/word_embeddings/embedding", "quantizer/codebook"),
    ):
        if want not in got:
            what = (
                ("the MaskGIT " + ("transformer" if role == "tokenizer" else "tokenizer"))
                if other in got
                else "no MaskGIT file"
            )
            raise PluralfillError(
                f"{path} is {what}, given as the {role} (it has no {want}); the order is TOKENIZER TRANSFORMER"
            )
    try:
        cfg = infer_config(tok, tr)
    except KeyError as e:
        raise PluralfillError(f"the official files lack {e.args[0]}: not complete MaskGIT checkpoints") from None
    if config is not None:
        key = config if config.startswith("maskgit-") else f"maskgit-{config}"
        if key not in CONFIGS or not CONFIGS[key].official:
            names = ", ".join(n for n, c in CONFIGS.items() if c.official)
            raise PluralfillError(f"unknown official MaskGIT config {config!r}; choose from {names}")
        problem = config_mismatch(CONFIGS[key], cfg, key, ("tokenizer", "transformer"), {"dropout"})
        if problem:
            raise PluralfillError(f"the files do not match {key}: {problem}")
        cfg = CONFIGS[key].model_copy(deep=True)
    else:
        cfg.name = next(
            (n for n, c in CONFIGS.items() if c.official and c == cfg.model_copy(update={"name": n})), cfg.name
        )
    tok_rest, tr_rest = dict(tok), dict(tr)  # the readers take what they use from these
    try:
        state = {f"tokenizer.{k}": v for k, v in _tokenizer_state(tok_rest, cfg.tokenizer).items()}
        state |= {f"transformer.{k}": v for k, v in _transformer_state(tr_rest, cfg.transformer).items()}
    except KeyError as e:
        raise PluralfillError(f"the official files lack {e.args[0]} that a {cfg.name} model has") from None
    return load_converted(MaskGIT(cfg), state, f"{tokenizer} + {transformer}", [*tok_rest, *tr_rest])

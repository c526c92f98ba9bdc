"""Convert the official DSI TensorFlow checkpoints (USTC-JialunPeng/Diverse-Structure-Inpainting: the
CelebA-HQ, Places2 and ImageNet models, center and random masks, each a folder with `checkpoint`,
`model.ckpt.index`, `model.ckpt.data-00000-of-00001`) to our format, without TensorFlow.

Variable names come from per-scope counters in the order the official code creates the layers
(`vq_encoder/conv2d_3/W`, `structure_pixelcnn/wndense_12/g`, ...); `official_layers` walks our modules in
that order. Kernels are [kh, kw, in, out] (transposed convolutions [kh, kw, out, in]), dense V [in, out],
codebooks [D, K]. Where a training checkpoint holds `X/ExponentialMovingAverage` beside `X` (the structure
and VQ-VAE trainings keep an EMA of the weights, decay 0.9997), the EMA value is taken, as `test.py` gets
it from the released files; Adam slots and step counters are skipped. The texture discriminator is checked
and left out (inference does not use it). What the weights cannot show is the image size: 256 for every
published model (`resolution`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pluralfill.errors import PluralfillError
from pluralfill.models.dsi import CONFIGS, DSI, DSIConfig
from pluralfill.models.hvqvae import HVQVAEConfig
from pluralfill.models.structure_generator import StructureGeneratorConfig
from pluralfill.models.texture_generator import TextureGeneratorConfig
from pluralfill.nn.discriminators import SNPatchGANDiscriminator
from pluralfill.nn.gated import GatedConv2d, GatedUpConv2d
from pluralfill.nn.pixelsnail import CausalAttention
from pluralfill.nn.quantizer import DebiasedCodebook
from pluralfill.nn.weight_norm import WNConv2d, WNLinear
from pluralfill.pretrained import config_mismatch, some_names
from pluralfill.pretrained.tf_checkpoint import TFCheckpoint

SKIPPED = ("/Adam", "/Adam_1", "/ExponentialMovingAverage", "/biased", "/local_step")
STEP_COUNTERS = ("beta1_power", "beta2_power", "global_step")
KERNEL = (3, 2, 0, 1)  # [kh, kw, in, out] (transposed: [kh, kw, out, in]) -> PyTorch's layouts


def _layers(module: nn.Module):
    """The leaf layers of `module` that own official variables, in registration order."""
    if isinstance(
        module, (nn.Conv2d, nn.ConvTranspose2d, WNConv2d, WNLinear, GatedConv2d, DebiasedCodebook, CausalAttention)
    ):
        yield module
        return
    for child in module.children():
        yield from _layers(child)


def official_layers(model: DSI, disc: SNPatchGANDiscriminator | None = None):
    """(scope, module) in the order the official templates create their variables."""
    v, s = model.hvqvae, model.structure
    for m in (
        v.encoder_bottom,
        v.encoder_top,
        v.pre_top,
        v.quantize_top,
        v.decoder_top,
        v.pre_bottom,
        v.quantize_bottom,
    ):
        yield from (("vq_encoder", layer) for layer in _layers(m))
    for m in (v.upsample_top, v.decoder):
        yield from (("vq_decoder", layer) for layer in _layers(m))
    yield from (("structure_condition", layer) for layer in _layers(s.condition))
    order = [s.u_in, s.ul_in_above, s.ul_in_left]
    for u_block, ul_block in zip(s.u_stream, s.ul_stream):
        order += [u_block, ul_block]
    for m in (*order, *s.out_resnets, s.head):
        yield from (("structure_pixelcnn", layer) for layer in _layers(m))
    if model.texture is not None:
        yield from (("texture_generator", layer) for layer in _layers(model.texture))
    if disc is not None:
        yield from (("texture_discriminator", conv) for conv in disc.convs)


def _kind(layer: nn.Module, scope: str) -> str:
    if scope == "texture_discriminator":
        return "snconv2d"
    if isinstance(layer, CausalAttention):
        return "attention"
    for cls, kind in (
        (GatedUpConv2d, "gated_deconv2d"),
        (GatedConv2d, "gated_conv2d"),
        (WNConv2d, "wnconv2d"),
        (WNLinear, "wndense"),
        (nn.ConvTranspose2d, "deconv2d"),
        (nn.Conv2d, "conv2d"),
        (DebiasedCodebook, "vector_quantize"),
    ):
        if isinstance(layer, cls):
            return kind
    raise TypeError(type(layer).__name__)


class _Reader:
    """Takes official variables by name, preferring EMA shadows, and remembers what it took."""

    def __init__(self, ckpt: TFCheckpoint):
        self.ckpt, self.taken, self.ema_used = ckpt, set(), 0

    def name(self, name: str) -> str:
        ema = f"{name}/ExponentialMovingAverage"
        return ema if ema in self.ckpt.entries else name

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        source = self.name(name)
        if source not in self.ckpt.entries:
            raise PluralfillError(f"{self.ckpt.prefix} lacks {name}, which this DSI model has")
        got = self.ckpt.shape(source)
        if tuple(got) != tuple(shape):
            raise PluralfillError(f"{name} is {list(got)} in {self.ckpt.prefix}, this DSI model needs {list(shape)}")
        self.taken.add(source)
        self.ema_used += source != name
        return self.ckpt.read(source)


def _tf_shape(shape, order) -> tuple[int, ...]:
    inverse = [0] * len(order)
    for i, o in enumerate(order):
        inverse[o] = i
    return tuple(shape[i] for i in inverse)


def _state(model: DSI, reader: _Reader, disc: SNPatchGANDiscriminator | None) -> dict[str, torch.Tensor]:
    names = {id(m): n for n, m in model.named_modules()}
    state, counters = {}, {}

    def take(prefix: str, ours: str, tensor_like: torch.Tensor, order=None) -> None:
        shape = tuple(tensor_like.shape) if order is None else _tf_shape(tensor_like.shape, order)
        array = torch.from_numpy(reader.get(prefix, shape).copy())
        state[ours] = array if order is None else array.permute(*order).contiguous()

    for scope, layer in official_layers(model, disc):
        kind = _kind(layer, scope)
        key = (scope, kind)
        index = counters[key] = counters.get(key, -1) + 1
        tf = f"{scope}/{kind}_{index}"
        ours = names.get(id(layer), "")
        if kind == "snconv2d":  # checked, not kept
            reader.get(f"{tf}/W", _tf_shape(layer.weight_orig.shape, KERNEL))
            reader.get(f"{tf}/u", (1, layer.weight_u.shape[0]))
            reader.get(f"{tf}/b", tuple(layer.bias.shape))
        elif kind == "vector_quantize":
            for tf_name, our_name in (("embedding", "embedding"), ("ema_dw", "embedding_avg")):
                take(f"{tf}/{tf_name}", f"{ours}.{our_name}", layer.embedding, (1, 0))
            take(f"{tf}/ema_cluster_size", f"{ours}.cluster_size", layer.cluster_size)
            for buf in ("cluster_size_biased", "embedding_avg_biased", "updates"):  # a fresh EMA if training resumes
                state[f"{ours}.{buf}"] = getattr(layer, buf).detach().clone()
        elif isinstance(layer, CausalAttention):
            _attention(layer, ours, scope, counters, reader, state)
        elif kind in ("wnconv2d", "wndense"):
            order = KERNEL if kind == "wnconv2d" else (1, 0)
            take(f"{tf}/V", f"{ours}.weight_v", layer.weight_v, order)
            take(f"{tf}/g", f"{ours}.weight_g", layer.weight_g)
            take(f"{tf}/b", f"{ours}.bias", layer.bias)
        else:
            conv = layer.conv if isinstance(layer, GatedConv2d) else layer
            prefix = f"{ours}.conv" if isinstance(layer, GatedConv2d) else ours
            take(f"{tf}/W", f"{prefix}.weight", conv.weight, KERNEL)
            take(f"{tf}/b", f"{prefix}.bias", conv.bias)
    return state


def _attention(layer: CausalAttention, ours: str, scope: str, counters: dict, reader: _Reader, state: dict) -> None:
    """The official layer makes a query, key and value `nin` per head (in that order, head by head), then
    the output `nin`; ours stacks the heads of each (weight norm is per output unit, so nothing changes)."""
    parts = {"query": [], "key": [], "value": []}
    c = layer.query.weight_v.shape[1]
    for _ in range(layer.heads):
        for part, width in (("query", layer.key_dim), ("key", layer.key_dim), ("value", layer.value_dim)):
            index = counters[(scope, "wndense")] = counters.get((scope, "wndense"), -1) + 1
            tf = f"{scope}/wndense_{index}"
            parts[part].append(
                [reader.get(f"{tf}/V", (c, width)).T, reader.get(f"{tf}/g", (width,)), reader.get(f"{tf}/b", (width,))]
            )
    for part, heads in parts.items():
        for i, name in enumerate(("weight_v", "weight_g", "bias")):
            state[f"{ours}.{part}.{name}"] = torch.from_numpy(np.concatenate([h[i] for h in heads]).copy())
    index = counters[(scope, "wndense")] = counters[(scope, "wndense")] + 1
    tf = f"{scope}/wndense_{index}"
    state[f"{ours}.proj.weight_v"] = torch.from_numpy(
        reader.get(f"{tf}/V", tuple(layer.proj.weight_v.shape[::-1])).T.copy()
    )
    state[f"{ours}.proj.weight_g"] = torch.from_numpy(reader.get(f"{tf}/g", tuple(layer.proj.weight_g.shape)).copy())
    state[f"{ours}.proj.bias"] = torch.from_numpy(reader.get(f"{tf}/b", tuple(layer.proj.bias.shape)).copy())


def _count(ckpt: TFCheckpoint, scope: str, kind: str) -> int:
    return len({n.split("/")[1] for n in ckpt.names if n.startswith(f"{scope}/{kind}_") and not n.endswith(SKIPPED)})


def _shape(ckpt: TFCheckpoint, name: str) -> tuple[int, ...]:
    return ckpt.shape(name) if name in ckpt.entries else ()


def candidate_configs(ckpt: TFCheckpoint, resolution: int):
    """The configs the tensor shapes allow (the attention layout is found by counting layers)."""
    vq_t = _shape(ckpt, "vq_encoder/vector_quantize_0/embedding")
    d, k = vq_t
    n_res = (_count(ckpt, "vq_encoder", "conv2d") - 8) // 6
    hvqvae = HVQVAEConfig(
        resolution=resolution,
        hidden=_shape(ckpt, "vq_encoder/conv2d_1/W")[3],
        residual=_shape(ckpt, "vq_encoder/conv2d_3/W")[3],
        num_residual_layers=n_res,
        num_codes=k,
        code_dim=d,
    )
    c = _shape(ckpt, "structure_pixelcnn/wnconv2d_0/V")[3]
    r = _shape(ckpt, "structure_pixelcnn/wnconv2d_3/V")[3]
    num_resnets = (_count(ckpt, "structure_pixelcnn", "wnconv2d") - 3) // 4
    dense = _count(ckpt, "structure_pixelcnn", "wndense")
    queries = sum(1 for i in range(dense) if _shape(ckpt, f"structure_pixelcnn/wndense_{i}/V") == (c, c // 8))
    texture = None
    if "texture_generator/gated_conv2d_0/W" in ckpt.entries:
        texture = TextureGeneratorConfig(width=_shape(ckpt, "texture_generator/gated_conv2d_0/W")[3], code_dim=d)
    disc = _shape(ckpt, "texture_discriminator/snconv2d_0/W")
    for groups in range(1, num_resnets + 1):
        if num_resnets % groups or queries % (2 * groups):
            continue
        heads = queries // (2 * groups)
        out = dense - 3 * num_resnets - groups * (3 * heads + 1) - 1
        if heads < 1 or out < 0:
            continue
        structure = StructureGeneratorConfig(
            side=resolution // 8,
            num_codes=k,
            code_dim=d,
            channels=c,
            res_channels=r,
            num_resnets=num_resnets,
            num_attention=groups,
            num_heads=heads,
            num_out_resnets=out,
            cond_channels=_shape(ckpt, "structure_condition/wnconv2d_0/V")[3],
            cond_res_channels=_shape(ckpt, "structure_condition/wnconv2d_1/V")[3],
        )
        yield DSIConfig(
            name="dsi-official",
            hvqvae=hvqvae,
            structure=structure,
            texture=texture,
            disc_width=disc[3] if disc else 64,
            positions="all",
        )


def _official_name(prefix: Path) -> str:
    folder = prefix.parent.name.lower().replace("_", "-").removeprefix("dsi-")
    return f"dsi-{folder}" if folder and folder not in ("model-logs", "checkpoints", ".", "") else "dsi-official"


def convert(path: str | os.PathLike, config: str | None = None, resolution: int | None = None) -> DSI:
    """Read an official checkpoint (its folder, its prefix or one of its files) into our DSI. `config`
    (`dsi`) checks the file against that named config; `resolution`: the image size it was trained at (the
    networks are convolutional, so the file does not record it; default 256, every published model's, said
    in `model.assumed`)."""
    assumed = {}
    if resolution is None:
        resolution = 256
        assumed["resolution"] = "256 (every published DSI model's; the file does not record it: pass --resolution)"
    ckpt = TFCheckpoint(path)
    where = ckpt.prefix
    if "vq_encoder/vector_quantize_0/embedding" not in ckpt.entries:
        some = ", ".join(sorted(ckpt.names)[:4])
        raise PluralfillError(
            f"{where} is not a DSI checkpoint: it has no vq_encoder/vector_quantize_0/embedding (it holds {some} ...)"
        )
    if "structure_pixelcnn/wnconv2d_0/V" not in ckpt.entries:
        raise PluralfillError(
            f"{where} is a DSI VQ-VAE training checkpoint (no structure generator): convert the full model "
            "(save_full_model.py's output, or a structure / texture training checkpoint)"
        )
    if resolution % 8 or not 32 <= resolution <= 2048:
        raise PluralfillError(
            f"resolution must be a multiple of 8 from 32 to 2048 (the published models: 256), got {resolution}"
        )
    problems = []
    for cfg in candidate_configs(ckpt, resolution):
        model, disc = DSI(cfg), None
        if "texture_discriminator/snconv2d_0/W" in ckpt.entries:
            disc = SNPatchGANDiscriminator(cfg.disc_width)
        reader = _Reader(ckpt)
        try:
            state = _state(model, reader, disc)
        except PluralfillError as e:
            problems.append(str(e))
            continue
        left = [n for n in ckpt.names if n not in reader.taken and not n.endswith(SKIPPED) and n not in STEP_COUNTERS]
        left = [n for n in left if f"{n}/ExponentialMovingAverage" not in reader.taken]
        if left:
            raise PluralfillError(f"unknown entries in {where}: {some_names(left)}")
        if config is not None:
            _check_named(config, cfg, where)
        cfg = cfg.model_copy(update={"name": _official_name(where)})
        model = DSI(cfg)
        model.load_state_dict(state, strict=True)
        model.assumed = assumed
        return model.eval()
    raise PluralfillError(problems[0] if problems else f"{where}: the layer counts fit no DSI structure generator")


def _check_named(config: str, cfg: DSIConfig, where: Path) -> None:
    key = config if config.startswith("dsi") else f"dsi-{config}"
    if key not in CONFIGS:
        raise PluralfillError(f"unknown DSI config {config!r}; choose from {', '.join(CONFIGS)}")
    problem = config_mismatch(CONFIGS[key], cfg, key, ("hvqvae", "structure", "texture"), {"dropout"})
    if problem:
        raise PluralfillError(f"{where} does not match {key}: {problem}")


def convert_discriminator(path: str | os.PathLike) -> SNPatchGANDiscriminator:
    """The texture discriminator of an official checkpoint (to go on training the texture stage from it)."""
    ckpt = TFCheckpoint(path)
    if "texture_discriminator/snconv2d_0/W" not in ckpt.entries:
        raise PluralfillError(f"{ckpt.prefix} has no texture discriminator")
    disc = SNPatchGANDiscriminator(ckpt.shape("texture_discriminator/snconv2d_0/W")[3])
    reader, state = _Reader(ckpt), {}
    for i, conv in enumerate(disc.convs):
        tf = f"texture_discriminator/snconv2d_{i}"
        weight = (
            torch.from_numpy(reader.get(f"{tf}/W", _tf_shape(conv.weight_orig.shape, KERNEL)))
            .permute(*KERNEL)
            .contiguous()
        )
        u = torch.from_numpy(reader.get(f"{tf}/u", (1, conv.weight_u.shape[0]))[0].copy())
        v = torch.nn.functional.normalize(weight.flatten(1).t() @ u, dim=0, eps=1e-12)
        state |= {
            f"convs.{i}.weight_orig": weight,
            f"convs.{i}.weight_u": u,
            f"convs.{i}.weight_v": v,
            f"convs.{i}.bias": torch.from_numpy(reader.get(f"{tf}/b", tuple(conv.bias.shape)).copy()),
        }
    disc.load_state_dict(state)
    return disc

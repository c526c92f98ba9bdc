"""ONNX: every network of a model as its own graph with a dynamic batch, and an onnxruntime stand-in for the
transformer pass that the samplers call (`--backend onnx`).

    DIR/
      manifest.json           model, networks, inputs and outputs of each, opset, torch and onnx versions
      pvqvae_encoder.onnx     PUT: (x, known) -> features
      pvqvae_decoder.onnx          (tokens, reference, known) -> image
      transformer.onnx             (embedded) -> logits: one pass
      tokenizer_encoder.onnx  MaskGIT: (x) -> tokens;  tokenizer_decoder.onnx (tokens) -> image
      transformer.onnx                 (tokens[, class_label]) -> logits
      structure_condition.onnx, structure.onnx, texture.onnx, hvqvae_encoder.onnx    DSI
      generator.onnx          MHTMA: (x, known[, sketch][, noise]) -> the refined image

The graphs are traced with torch's TorchScript exporter (`dynamo=False`), which needs neither onnxscript nor a
Python-free model; each is run once by onnxruntime on the export's own example and compared with PyTorch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from pluralfill.errors import PluralfillError

OPSET = 18  # col2im (F.fold, in the patch attention layers) needs 18
ATOL = 1e-4  # onnxruntime vs PyTorch, fp32, on the export's own example


class _Network(torch.nn.Module):
    """A model's function with tensor inputs, as a module the exporter can trace."""

    def __init__(self, model: torch.nn.Module, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *inputs):
        return self.fn(*inputs)


@torch.no_grad()
def networks(inpainter, batch: int = 2) -> dict:
    """name -> (module, example inputs {name: tensor}, output name) for every network of a learned method."""
    m, r = inpainter.model, inpainter.resolution
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, r, r, generator=g) * 2 - 1
    known = torch.ones(batch, 1, r, r)
    known[..., r // 4 : 3 * r // 4, r // 4 : 3 * r // 4] = 0
    from pluralfill.models.dsi import DSI
    from pluralfill.models.maskgit import MaskGIT
    from pluralfill.models.mhtma import MHTMA
    from pluralfill.models.put import PUT

    if isinstance(m, PUT):
        p, t = m.pvqvae, m.transformer
        features = p.encode(x, known)
        side, c = features.shape[-1], features.shape[1]
        tokens = p.tokenize(features).reshape(batch, side, side)
        embedded = t.embed(features.permute(0, 2, 3, 1).reshape(batch, side * side, c)).detach()
        out = {"pvqvae_encoder": (_Network(m, p.encode), {"x": x, "known": known}, "features"),
               "pvqvae_decoder": (_Network(m, lambda k, ref, kn: p.decode(k, ref, kn, share_reference=False)),
                                  {"tokens": tokens, "reference": x, "known": known}, "image")}  # fmt: skip
        if not getattr(t, "guided", False):
            out["transformer"] = (_Network(m, t.forward_embedded), {"embedded": embedded}, "logits")
        return out
    if isinstance(m, MaskGIT):
        tok, t = m.tokenizer, m.transformer
        tokens = tok.encode(x).reshape(batch, -1)
        side = m.config.tokenizer.tokens_per_side
        if m.config.official:
            tf = (_Network(m, t), {"tokens": tokens, "class_label": torch.zeros(batch, dtype=torch.long)}, "logits")
        else:
            tf = (_Network(m, t), {"tokens": tokens}, "logits")
        return {"tokenizer_encoder": (_Network(m, lambda v: tok.encode(v).reshape(v.shape[0], -1)), {"x": x}, "tokens"),
                "tokenizer_decoder": (_Network(m, lambda k: tok.decode(k.reshape(k.shape[0], side, side))),
                                      {"tokens": tokens}, "image"),
                "transformer": tf}  # fmt: skip
    if isinstance(m, DSI):
        h, s = m.hvqvae, m.structure
        side = m.config.structure.side
        masked, hole = x * known, 1 - known
        codes = h.encode_top(x).reshape(batch, side, side)
        cond = s.condition(masked, hole)
        e = h.top_vectors(codes)
        return {"hvqvae_encoder": (_Network(m, lambda v: h.encode_top(v).reshape(v.shape[0], side, side)), {"x": x}, "codes"),
                "structure_condition": (_Network(m, s.condition), {"masked": masked, "hole": hole}, "condition"),
                "structure": (_Network(m, lambda v, c: s(v, c)), {"code_vectors": e, "condition": cond}, "logits"),
                "texture": (_Network(m, m.texture), {"masked": masked, "hole": hole, "structure": e}, "image")}  # fmt: skip
    if isinstance(m, MHTMA):
        inputs = {"x": x, "known": known}
        if m.config.sketch:
            inputs["sketch"] = torch.zeros_like(known)
        if m.config.noise:
            inputs["noise"] = torch.randn(batch, 1, r, r, generator=g)

        def generator(*a):
            named = dict(zip(inputs, a))
            return m(named["x"], named["known"], named.get("sketch"), named.get("noise"), "on")[1]

        return {"generator": (_Network(m, generator), inputs, "image")}
    raise PluralfillError(f"{inpainter.name} ({type(m).__name__}) has no ONNX export")


def export_onnx(inpainter, folder: Path, overwrite: bool = False, progress=None) -> dict:
    """Write every network of `inpainter` to `folder` (see the module docstring) and check each against
    PyTorch with onnxruntime; returns the manifest. Files appear only once every network is written."""
    import onnx
    import onnxruntime as ort

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PluralfillError(f"--onnx must be a folder, but {folder} is a file")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise PluralfillError(f"{folder} exists and is not empty: pass --overwrite to replace it")
    nets = networks(inpainter)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    manifest = {"model": inpainter.name, "method": type(inpainter.model).__name__, "resolution": inpainter.resolution,
                "opset": OPSET, "torch": torch.__version__, "onnx": onnx.__version__, "networks": {}}  # fmt: skip
    try:
        for name, (module, inputs, output) in nets.items():
            path = staging / f"{name}.onnx"
            axes = {k: {0: "batch"} for k in [*inputs, output]}
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes: only the batch is dynamic
                expected = module(*inputs.values())
                torch.onnx.export(module.eval(), tuple(inputs.values()), str(path), input_names=list(inputs), output_names=[output],
                                  dynamic_axes=axes, opset_version=OPSET, dynamo=False)  # fmt: skip
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            used = {i.name for i in session.get_inputs()}
            diff = 0.0
            for rows in (slice(None), slice(0, 1)):  # the export's batch, and another: the batch axis is dynamic
                want = expected[rows] if rows.stop else expected
                got = session.run(None, {k: v[rows].numpy() for k, v in inputs.items() if k in used})[0]
                diff = max(diff, float(np.abs(got.astype(np.float64) - want.double().numpy()).max()))
            if diff > ATOL:
                raise PluralfillError(f"{name}: onnxruntime differs from PyTorch by {diff:.2e} (> {ATOL:g}); not written")
            manifest["networks"][name] = {"file": path.name, "inputs": {k: list(v.shape[1:]) for k, v in inputs.items()},
                                          "output": output, "max_abs_diff": diff}  # fmt: skip
            if progress is not None:
                progress(name)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


class OnnxPass:
    """An onnxruntime session standing in for one network: called with torch tensors, returns a torch tensor."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs):
        feeds = {n: t.detach().float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy() for n, t in zip(self.names, inputs)}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def quantize_onnx(path: Path, out: Path) -> Path:
    """onnxruntime's dynamic int8 quantization of a graph (int8 weights, activations quantized per call)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to run pre-processing, printed on every call
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    return out


class _Proxy:
    """An object that answers as `target` does, except for the attributes given."""

    def __init__(self, target, **overrides):
        self.__dict__.update(overrides, _target=target)

    def __getattr__(self, name):
        return getattr(self.__dict__["_target"], name)

    def __call__(self, *args, **kwargs):  # looked up on the type, so it dispatches to the override "call"
        return self.__dict__["call"](*args, **kwargs)


def with_onnx_transformer(inpainter, path: Path):
    """A copy of a PUT or MaskGIT inpainter whose transformer pass runs in onnxruntime from `path` (a
    transformer.onnx written by `export_onnx`, or its int8 quantization); everything else stays in torch."""
    import copy

    from pluralfill.models.maskgit import MaskGIT
    from pluralfill.models.put import PUT

    ort_pass, model = OnnxPass(path), inpainter.model
    if isinstance(model, PUT):
        transformer = _Proxy(model.transformer, forward_embedded=lambda x, guidance=None: ort_pass(x).to(x.device))
    elif isinstance(model, MaskGIT):
        def call(tokens, label=None):
            extra = () if label is None else (label.expand(tokens.shape[0]),)
            return ort_pass(tokens, *extra).to(tokens.device)

        transformer = _Proxy(model.transformer, call=call)
    else:
        raise PluralfillError(f"--backend onnx runs the transformer pass of PUT and MaskGIT; {inpainter.name} has none")
    out = copy.copy(inpainter)
    out.model = _Proxy(model, transformer=transformer)
    return out


def onnx_backend(inpainter, cache: Path | None = None):
    """`--backend onnx`: the inpainter with its transformer pass in onnxruntime, exported once per model into
    `cache` (default `$PLURALFILL_HOME/onnx/<model>-<digest of its weights>/`) and reused after."""
    import hashlib

    from pluralfill.hub import home
    from pluralfill.models.maskgit import MaskGIT
    from pluralfill.models.put import PUT

    if not isinstance(getattr(inpainter, "model", None), (PUT, MaskGIT)) or getattr(inpainter.model.transformer, "guided", False):
        raise PluralfillError(f"--backend onnx runs the transformer pass of PUT and MaskGIT; {inpainter.name} has none to run there")
    state = inpainter.model.state_dict()
    digest = hashlib.sha256()
    for key in sorted(state):  # every name, shape and value: a cache that missed one change would run an old model
        tensor = state[key].detach().cpu().contiguous().reshape(-1)
        digest.update(key.encode() + str((tuple(state[key].shape), str(tensor.dtype))).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    folder = (cache or home() / "onnx") / f"{inpainter.name}-{digest.hexdigest()[:12]}"
    if not (folder / "transformer.onnx").is_file():
        export_onnx(inpainter, folder, overwrite=True)
    return with_onnx_transformer(inpainter, folder / "transformer.onnx")

"""ONNX: every network of a model as its own graph with a dynamic batch, and an onnxruntime stand-in for the
transformer pass that the samplers call (`--backend onnx`).

    DIR/
      manifest.json           model, networks, inputs and outputs of each, opset, torch and onnx versions
      NETWORK.onnx            one graph for each network the inpainter declares (`export_networks`), e.g. an
                              encoder (x, known) -> features, a transformer pass (embedded) -> logits, a decoder

The graphs are traced with torch's TorchScript exporter (`dynamo=False`), which needs neither onnxscript nor a
Python-free model; each is run once by onnxruntime on the export's own example and compared with PyTorch.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from pluralfill.errors import PluralfillError
from pluralfill.io import check_replaceable, replace_folder

OPSET = 18  # col2im (F.fold, in the patch attention layers) needs 18
ATOL = 1e-4  # onnxruntime vs PyTorch, fp32, on the export's own example


class _Network(torch.nn.Module):
    """A model's function with tensor inputs, as a module the exporter can trace."""

    def __init__(self, model: torch.nn.Module, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *inputs):
        return self.fn(*inputs)


def networks(inpainter, batch: int = 2) -> dict:
    """name -> (module, example inputs {name: tensor}, output name) for every network the inpainter declares."""
    return {
        name: (_Network(n.module, n.fn), n.inputs, n.output) for name, n in inpainter.export_networks(batch).items()
    }


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
    check_replaceable(folder, lambda name: name == "manifest.json" or name.endswith(".onnx"), "model export")
    nets = networks(inpainter)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    manifest = {
        "model": inpainter.name,
        "method": getattr(getattr(inpainter, "model", None), "method", inpainter.name),
        "resolution": getattr(inpainter, "resolution", None),
        "opset": OPSET,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "networks": {},
    }
    try:
        for name, (module, inputs, output) in nets.items():
            path = staging / f"{name}.onnx"
            axes = {k: {0: "batch"} for k in [*inputs, output]}
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes: only the batch is dynamic
                expected = module(*inputs.values())
                torch.onnx.export(
                    module.eval(),
                    tuple(inputs.values()),
                    str(path),
                    input_names=list(inputs),
                    output_names=[output],
                    dynamic_axes=axes,
                    opset_version=OPSET,
                    dynamo=False,
                )
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            used = {i.name for i in session.get_inputs()}
            diff = 0.0
            for rows in (slice(None), slice(0, 1)):  # the export's batch, and another: the batch axis is dynamic
                want = expected[rows] if rows.stop else expected
                got = session.run(None, {k: v[rows].numpy() for k, v in inputs.items() if k in used})[0]
                diff = max(diff, float(np.abs(got.astype(np.float64) - want.double().numpy()).max()))
            if diff > ATOL:
                raise PluralfillError(
                    f"{name}: onnxruntime differs from PyTorch by {diff:.2e} (> {ATOL:g}); not written"
                )
            manifest["networks"][name] = {
                "file": path.name,
                "inputs": {k: list(v.shape[1:]) for k, v in inputs.items()},
                "output": output,
                "max_abs_diff": diff,
            }
            if progress is not None:
                progress(name)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace_folder(staging, folder)
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

    def __call__(self, *inputs, cache=None):
        if cache is not None:
            raise PluralfillError("cache=known needs the torch backend: an exported network computes every position")
        feeds = {
            n: t.detach().float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
            for n, t in zip(self.names, inputs)
        }
        return torch.from_numpy(self.session.run(None, feeds)[0])


def quantize_onnx(path: Path, out: Path) -> Path:
    """onnxruntime's dynamic int8 quantization of a graph (int8 weights, activations quantized per call)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to run pre-processing, printed on every call
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    return out


def with_onnx_pass(inpainter, path: Path):
    """A copy of the inpainter whose `onnx_pass` network runs in onnxruntime from `path` (an export of it by
    `export_onnx`, or its int8 quantization); everything else stays in torch. A model folder's own `cache=known`
    default gives way: the exported pass computes every position."""
    out = inpainter.with_pass(OnnxPass(path))
    if out.default_options.get("cache") == "known":
        out.default_options = {**out.default_options, "cache": "off"}
    return out


def onnx_backend(inpainter, cache: Path | None = None):
    """`--backend onnx`: the inpainter with the network its sampler calls on every pass (its `onnx_pass`) in
    onnxruntime, exported once per model into `cache` (default `$PLURALFILL_HOME/onnx/<model>-<digest of its
    weights>/`) and reused after."""
    import hashlib

    from pluralfill.hub import home

    if not getattr(inpainter, "onnx_pass", None):
        raise PluralfillError(
            f"--backend onnx runs a method's per-pass network in onnxruntime; {inpainter.name} declares none"
        )
    model = getattr(inpainter, "model", None) or torch.nn.ModuleList(
        {id(n.module): n.module for n in inpainter.export_networks(1).values()}.values()
    )
    state = model.state_dict()
    digest = hashlib.sha256()
    for key in sorted(state):  # every name, shape and value: a cache that missed one change would run an old model
        tensor = state[key].detach().cpu().contiguous().reshape(-1)
        digest.update(key.encode() + str((tuple(state[key].shape), str(tensor.dtype))).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    folder = (cache or home() / "onnx") / f"{inpainter.name}-{digest.hexdigest()[:12]}"
    graph = folder / f"{inpainter.onnx_pass}.onnx"
    if not graph.is_file():
        export_onnx(inpainter, folder, overwrite=True)
    return with_onnx_pass(inpainter, graph)

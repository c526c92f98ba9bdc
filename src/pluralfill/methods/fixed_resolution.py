"""The shared path of the learned methods: a model of fixed input size on a window around the hole."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pluralfill import precision as precisions
from pluralfill.errors import PluralfillError
from pluralfill.geometry import Box, shrink, square_window
from pluralfill.methods.base import Inpainter
from pluralfill.methods.options import Windowed
from pluralfill.pixels import to_tensor, to_uint8


class Proxy:
    """An object that answers as `target` does, except for the attributes given (`call`: how it is called)."""

    def __init__(self, target, **overrides):
        self.__dict__.update(overrides, _target=target)

    def __getattr__(self, name):
        return getattr(self.__dict__["_target"], name)

    def __call__(self, *args, **kwargs):  # looked up on the type, so it dispatches to the override "call"
        return self.__dict__["call"](*args, **kwargs)


class FixedResolutionInpainter(Inpainter):
    """A learned method that sees R x R images: a square around the hole is scaled to R, `sample` fills it,
    and the fill is scaled back and pasted into the hole at full resolution. Samples are drawn in batches.

    Subclasses set `resolution` and `device` and implement
    `sample(x (1, 3, R, R) in [-1, 1], known (1, 1, R, R), seeds, trace=None, **options) -> (N, 3, R, R)`.
    Those with `batches_images` also take x (N, 3, R, R) and known (N, 1, R, R): one image per seed.
    """

    Options, pictures = Windowed, ("trace",)
    model_class: type  # the Pretrained model it wraps; its config has `method`, `name` and a resolution
    resolution: int
    batch_size: int = 8
    batches_images: bool = False  # `sample` takes a different image for every seed (see inpaint_many)
    records_extras: bool = False  # `sample` takes `extras`, a dict it puts what it measured of the call in
    precision: str = "fp32"  # see pluralfill.precision; set with `to_precision`

    def __init__(self, model, device="cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.name = model.config.name

    def to_precision(self, precision: str):
        """Run in `precision` (fp32, bf16 or int8) from now on; returns self. int8 swaps in a quantized copy of
        the model (the fp32 one is left as it was, for inpainters that share it)."""
        precisions.check(precision, self.device)
        if precision == "auto":
            raise PluralfillError(
                "precision auto is chosen per input: use pluralfill.precision.measure / choose, or the CLI"
            )
        if self.precision == "int8" and precision != "int8":
            raise PluralfillError(f"{self.name} was quantized to int8: load it again for {precision}")
        if precision == "int8" and self.precision != "int8":
            self.model = precisions.quantize_int8(self.model)
        self.precision = precision
        return self

    def at_precision(self, precision: str):
        """This inpainter in `precision`: itself if it runs in it already, else a copy (the model shared
        unless int8 quantizes a copy of it)."""
        return self if precision == self.precision else copy.copy(self).to_precision(precision)

    def choose_precision(self, image: np.ndarray, hole: np.ndarray, candidates=None):
        """The `auto` precision on this image and hole: each candidate (default: what the device runs well)
        is probed on the window the samples would see, against fp32; the fastest that holds its quality bound
        wins. Returns (the inpainter in it, every candidate's precision.Verdict)."""
        _, x, known, _ = self._window(image, hole, {})
        verdicts = precisions.measure(
            self.at_precision, x, known, candidates or precisions.usable(self.model, self.device)
        )
        return self.at_precision(precisions.choose(verdicts).precision), verdicts

    def probe(self, x, known, tokens=None) -> dict:
        """What the precision checks compare, on x (1, 3, R, R) and known (1, 1, R, R): {"tokens": the image's
        tokens (given ones are used as they are), "logits": one network pass over them with the hole hidden
        (None without tokens), "hidden": where the hole is, "image": the codec's decode of the tokens}."""
        with torch.no_grad(), precisions.autocast(self.device, self.precision):
            out = self._probe(x.to(self.device), known.to(self.device), tokens)
        out = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}
        out["draw"] = None if out["logits"] is None else self.draw_probs(out["logits"])
        return out

    def draw_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """The distribution the sampler draws a token from, given a pass's logits, with this inpainter's
        default options: top-k, then the temperature as its sampler applies it."""
        from pluralfill.sampling.base import top_k_filter

        o = self.options()
        temperature, top_k = getattr(o, "temperature", 1.0), getattr(o, "top_k", None)
        return torch.softmax(top_k_filter(logits.float() / temperature, top_k), -1)

    def _probe(self, x, known, tokens) -> dict:
        raise NotImplementedError(f"{self.name} has no precision probe")

    def sample_in_precision(self, x, known, seeds, **options):
        """`sample` in the inpainter's precision, in fp32 out."""
        with torch.no_grad(), precisions.autocast(self.device, self.precision):
            return self.sample(x, known, seeds, **options).float()

    @classmethod
    def from_pretrained(cls, folder, device: str = "cpu"):
        """The model in `folder`; its `sampling.json`, if there is one, sets default option values
        (e.g. the parallel sampler and its steps for the bundled model); the caller's options win."""
        inpainter = cls(cls.model_class.from_pretrained(folder, device), device)
        defaults = Path(folder) / "sampling.json"
        if defaults.is_file():
            inpainter.default_options = json.loads(defaults.read_text())
            inpainter.check_options(inpainter.default_options)
        return inpainter

    def describe(self) -> dict:
        return super().describe() | {
            "method": getattr(self.model, "method", self.name),
            "resolution": self.resolution,
            "parameters": self.model.parameter_counts(),
        }

    def sample(self, x, known, seeds, trace=None, **options):
        raise NotImplementedError

    def _example(self, batch: int):
        """A seeded example batch: x (B, 3, R, R) in [-1, 1] and known (B, 1, R, R) with a centred hole."""
        r = self.resolution
        x = torch.rand(batch, 3, r, r, generator=torch.Generator().manual_seed(0)) * 2 - 1
        known = torch.ones(batch, 1, r, r)
        known[..., r // 4 : 3 * r // 4, r // 4 : 3 * r // 4] = 0
        return x.to(self.device), known.to(self.device)

    def crop_options(self, box: Box, options: dict) -> dict:
        """The guides (pictures of the whole image) cut to the window and scaled to the model as (1, 1, R, R)
        tensors: lines 1 where any pixel they cover is on; grey values and class ids nearest, so ids stay ids."""
        out, size = dict(options), (self.resolution, self.resolution)
        for guide in self.guides:
            if options.get(guide.name) is None:
                continue
            crop = np.ascontiguousarray(box(options[guide.name]))
            if guide.kind == "lines":
                out[guide.name] = shrink(crop, size).to(self.device)
            else:
                t = torch.from_numpy(crop.astype(np.float32))[None, None]
                out[guide.name] = F.interpolate(t, size=size, mode="nearest").to(self.device)
        return out

    def trace_strip(self, x, known, trace) -> Image.Image:
        raise NotImplementedError(f"{self.name} records no trace")

    def _window(self, image, hole, options):
        """The square around the hole scaled to R: (box, x (1, 3, R, R), known (1, 1, R, R), options)."""
        box = square_window(hole, self.resolution)
        crop, crop_hole = box(image), box(hole)
        size = (self.resolution, self.resolution)
        x = F.interpolate(to_tensor(crop), size=size, mode="bicubic", align_corners=False).clamp(-1, 1).to(self.device)
        known = 1 - shrink(crop_hole, size).to(self.device)  # missing if any pixel it covers is
        return box, x, known, self.crop_options(box, options)

    @staticmethod
    def _paste(image, box: Box, y) -> list[np.ndarray]:
        """(N, 3, R, R) outputs -> N copies of the image with the window replaced by the output scaled back
        (the known pixels as the model made them; `inpaint` pastes the photo's back unless told not to)."""
        size = (box.y1 - box.y0, box.x1 - box.x0)
        if y.shape[-2:] != size:
            y = F.interpolate(y.float(), size=size, mode="bicubic", align_corners=False)
        samples = []
        for window in to_uint8(y):
            out = image.copy()
            out[box.y0 : box.y1, box.x0 : box.x1] = window
            samples.append(out)
        return samples

    def _fill(self, image, hole, seeds, trace: bool = False, soft_edge: int = 0, **options):
        box, x, known, options = self._window(image, hole, options)
        samples, extras = [], {"window": box}
        with torch.no_grad():
            for i in range(0, len(seeds), self.batch_size):
                steps = [] if trace and i == 0 else None
                record = {"extras": extras} if self.records_extras and i == 0 else {}  # what the first batch saw
                y = self.sample_in_precision(x, known, seeds[i : i + self.batch_size], trace=steps, **record, **options)
                if steps is not None:
                    extras["trace"] = self.trace_strip(x, known, steps)
                samples += self._paste(image, box, y)
        return samples, extras

    def _fill_many(self, jobs, trace: bool = False, soft_edge: int = 0, **options):
        """Samples of different images share batches of `batch_size` rows (one image and one seed a row)."""
        if not self.batches_images or trace or len(jobs) == 1:
            return super()._fill_many(jobs, trace=trace, soft_edge=soft_edge, **options)
        windows = [self._window(image, hole, options) for image, hole, _ in jobs]
        rows = [(j, seed) for j, (_, _, seeds) in enumerate(jobs) for seed in seeds]
        out: list[list[np.ndarray]] = [[] for _ in jobs]
        with torch.no_grad():
            for i in range(0, len(rows), self.batch_size):
                chunk = rows[i : i + self.batch_size]
                x = torch.cat([windows[j][1] for j, _ in chunk])
                known = torch.cat([windows[j][2] for j, _ in chunk])
                y = self.sample_in_precision(x, known, [seed for _, seed in chunk], **windows[0][3])
                for (j, _), yj in zip(chunk, y):
                    out[j] += self._paste(jobs[j][0], windows[j][0], yj[None])
        return [(samples, {"window": window[0]}) for samples, window in zip(out, windows)]

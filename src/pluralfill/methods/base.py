"""The Inpainter protocol every method implements, and the work common to all of them:
input checks, the crop around the hole, per-sample seeds and pasting the known pixels back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.io import check_hole, hole_from_array, to_rgb


def sample_seed(seed: int | None, index: int) -> int:
    """The seed of sample `index` of a run seeded with `seed`: sample i is reproducible on its own."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@dataclass(frozen=True)
class Box:
    """A crop window, y0:y1, x0:x1."""

    y0: int
    y1: int
    x0: int
    x1: int

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return a[self.y0 : self.y1, self.x0 : self.x1]


def box_around_hole(hole: np.ndarray, context: float = 1.0, min_context: int = 32) -> Box:
    """The hole's bounding box grown on each side by `context` times its size (at least `min_context` px),
    clipped to the image: the part of a large photo a method needs to see."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    my = max(min_context, int(context * (y1 - y0)))
    mx = max(min_context, int(context * (x1 - x0)))
    return Box(max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx))


def square_window(hole: np.ndarray, min_side: int, context: float = 0.5) -> Box:
    """A square around the hole for a model of fixed input size: the hole's bounding box with `context` of
    its size on each side, at least `min_side`, kept inside the image (narrower where the image is)."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(min_side, int(round(max(y1 - y0, x1 - x0) * (1 + 2 * context))))

    def span(lo, hi, n):
        if side >= n:
            return 0, n
        start = min(max(0, (lo + hi - side) // 2), n - side)
        return start, start + side

    (wy0, wy1), (wx0, wx1) = span(y0, y1, h), span(x0, x1, w)
    return Box(wy0, wy1, wx0, wx1)


def distance_to_hole(hole: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest hole pixel (0 inside the hole)."""
    import cv2

    return cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)


def grow(hole: np.ndarray, px: int) -> np.ndarray:
    """The hole and every pixel within `px` of it."""
    return hole if px <= 0 else distance_to_hole(hole) <= px


def soft_paste(target: np.ndarray, fill: np.ndarray, hole: np.ndarray, soft_edge: int) -> None:
    """Paste `fill` into `target` (in place) over the hole; with soft_edge > 0 the fill also fades out over
    that many known pixels around the hole, hiding the seam (MaskGIT's softened mask edge)."""
    if soft_edge <= 0:
        target[hole] = fill[hole]
        return
    alpha = np.clip(1 - distance_to_hole(hole) / (soft_edge + 1), 0, 1)[..., None]
    target[:] = (alpha * fill + (1 - alpha) * target).round().astype(np.uint8)


def shrink(mask: np.ndarray, size: tuple[int, int]):
    """A bool HxW mask scaled to `size` as a (1, 1, h, w) float tensor: 1 where any pixel it covers is 1."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None]
    m = F.interpolate(m, size=(max(m.shape[2], size[0]), max(m.shape[3], size[1])), mode="nearest")
    return F.adaptive_max_pool2d(m, size)


def to_image(x) -> np.ndarray:
    """One (3, H, W) tensor in [-1, 1] -> uint8 HxWx3 (for strips and maps)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def token_hole(known, cell: int, dilate: int = 0):
    """(B, 1, R, R) known -> (B, L) bool: the cells of a token grid (cell x cell px each) with any missing
    pixel, grown by `dilate` cells (tokens at the border of the hole saw it)."""
    import torch.nn.functional as F

    hole = F.max_pool2d(1 - known, cell)
    for _ in range(dilate):
        hole = F.max_pool2d(hole, 3, stride=1, padding=1)
    return hole.flatten(1) > 0


class Inpainter:
    """Fill the hole of an image with `num_samples` different completions.

    Subclasses implement `_fill(image, hole, seeds, **options)` on uint8 RGB / bool arrays and return one
    uint8 RGB array of the same size per seed. This class checks the inputs and pastes the known
    pixels back so that they stay exactly as given.
    """

    name: str = "inpainter"
    deterministic: bool = False  # every sample the same: one result is returned whatever num_samples is
    fills_from_nothing: bool = False  # can fill an image whose every pixel is missing
    default_options: dict = {}  # option values a model folder chose for itself (its sampling.json)

    def inpaint(self, image, hole, num_samples: int = 1, seed: int | None = None, composite: bool = True,
                first_sample: int = 0, **options):  # fmt: skip
        """`image`: Pillow image or uint8 HxWx3 array. `hole`: Pillow image or array, white / True = missing.
        Returns a list of Pillow images (one for deterministic methods): samples first_sample, first_sample+1,
        ... of the run seeded with `seed`, so a run can be drawn in pieces with the same result."""
        image, hole, seeds, options = self._inputs(image, hole, num_samples, seed, first_sample, options)
        return self._outputs(image, hole, self._fill(image, hole, seeds, **options), composite, options)

    def inpaint_many(self, images, holes, num_samples: int = 1, seed: int | None = None, composite: bool = True,
                     **options) -> list[list[Image.Image]]:  # fmt: skip
        """`inpaint` for several images with the same seed and options: image j gets what
        `inpaint(images[j], holes[j], ...)` gives. Methods that can (`batches_images`) fill the samples of
        different images in shared batches; the others take the images one by one."""
        if seed is None:
            seed = sample_seed(None, 0)
        jobs = [self._inputs(im, h, num_samples, seed, 0, options) for im, h in zip(images, holes)]
        if not jobs:
            return []
        filled = self._fill_many([(im, h, seeds) for im, h, seeds, _ in jobs], **jobs[0][3])
        return [self._outputs(im, h, samples, composite, o) for (im, h, _, o), samples in zip(jobs, filled)]

    def _inputs(self, image, hole, num_samples, seed, first_sample, options):
        """Checked image and hole arrays, the seed of every sample, and the options with the defaults."""
        image = to_rgb(image) if isinstance(image, Image.Image) else np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise PluralfillError(f"image must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        hole = hole_from_array(hole)
        if hole.shape != image.shape[:2]:
            raise PluralfillError(
                f"hole is {hole.shape[1]}x{hole.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}"
            )
        if num_samples < 1:
            raise PluralfillError(f"num_samples must be at least 1, got {num_samples}")
        check_hole(hole, self.fills_from_nothing, self.name)
        self.check_options(options)
        n = 1 if self.deterministic else num_samples
        if seed is None:
            seed = sample_seed(None, 0)
        return image, hole, [sample_seed(seed, first_sample + i) for i in range(n)], self.default_options | options

    def _outputs(self, image, hole, samples, composite, options) -> list[Image.Image]:
        if composite:  # known pixels exactly as given; with soft_edge, outside the blended band
            region = grow(hole, int(options.get("soft_edge") or 0))
            samples = [np.where(region[..., None], s, image) for s in samples]
        return [Image.fromarray(np.ascontiguousarray(s)) for s in samples]

    def _fill_many(self, jobs, **options):
        """[(image, hole, seeds)] -> the samples of each job; one by one unless a method batches images."""
        return [self._fill(image, hole, seeds, **options) for image, hole, seeds in jobs]

    def _fill(self, image: np.ndarray, hole: np.ndarray, seeds: list[int], **options):
        """One uint8 RGB array per seed."""
        raise NotImplementedError

    def option_names(self) -> list[str]:
        """The keyword options this method takes (beyond image, hole, num_samples, seed)."""
        import inspect

        names = []
        fills = [c.__dict__["_fill"] for c in type(self).__mro__ if "_fill" in c.__dict__]  # overrides pass **options on
        for fn in (*fills, getattr(self, "sample", None)):
            if fn is not None:
                names += [p.name for p in inspect.signature(fn).parameters.values()
                          if p.kind == p.KEYWORD_ONLY or (p.default is not p.empty and p.kind == p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
        return [n for n in dict.fromkeys(names) if n not in ("seed", "seeds")]

    def check_options(self, options: dict) -> None:
        allowed = self.option_names()
        for key in options:
            if key not in allowed:
                raise PluralfillError(f"{self.name} has no option {key!r}; it takes: {', '.join(allowed) or 'none'}")

    def describe(self) -> dict:
        """What `pluralfill info` prints: method, working resolution, parameters per component."""
        return {"name": self.name, "method": self.name, "resolution": "any", "parameters": {}}


class FixedResolutionInpainter(Inpainter):
    """A learned method that sees R x R images: a square around the hole is scaled to R, `sample` fills it,
    and the fill is scaled back and pasted into the hole at full resolution. Samples are drawn in batches.

    Subclasses set `resolution` and `device` and implement
    `sample(x (1, 3, R, R) in [-1, 1], known (1, 1, R, R), seeds, trace=None, **options) -> (N, 3, R, R)`.
    Those with `batches_images` also take x (N, 3, R, R) and known (N, 1, R, R): one image per seed.
    """

    model_class: type  # the Pretrained model it wraps; its config has `method`, `name` and a resolution
    resolution: int
    batch_size: int = 8
    batches_images: bool = False  # `sample` takes a different image for every seed (see inpaint_many)
    last_trace: Image.Image | None = None  # the step-by-step strip of sample 0, when asked for with trace=True

    def __init__(self, model, device="cpu"):
        import torch

        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.name = model.config.name

    @classmethod
    def from_pretrained(cls, folder, device: str = "cpu"):
        """The model in `folder`; its `sampling.json`, if there is one, sets default option values
        (e.g. the parallel sampler and its steps for the bundled model); the caller's options win."""
        import json
        from pathlib import Path

        inpainter = cls(cls.model_class.from_pretrained(folder, device), device)
        defaults = Path(folder) / "sampling.json"
        if defaults.is_file():
            inpainter.default_options = json.loads(defaults.read_text())
            inpainter.check_options(inpainter.default_options)
        return inpainter

    def describe(self) -> dict:
        return {"name": self.name, "method": self.model.config.method, "resolution": self.resolution,
                "parameters": self.model.parameter_counts()}  # fmt: skip

    def sample(self, x, known, seeds, trace=None, **options):
        raise NotImplementedError

    def crop_options(self, box: Box, options: dict) -> dict:
        """Options that are pictures of the whole image (a sketch) cut to the crop and scaled to the model."""
        return options

    def trace_strip(self, x, known, trace) -> Image.Image:
        raise NotImplementedError(f"{self.name} records no trace")

    def _window(self, image, hole, options):
        """The square around the hole scaled to R: (box, its hole, x (1, 3, R, R), known (1, 1, R, R), options)."""
        import torch
        import torch.nn.functional as F

        box = square_window(hole, self.resolution)
        crop, crop_hole = box(image), box(hole)
        size = (self.resolution, self.resolution)
        t = torch.from_numpy(np.array(crop, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
        x = F.interpolate(t, size=size, mode="bicubic", align_corners=False).clamp(-1, 1).to(self.device)
        known = 1 - shrink(crop_hole, size).to(self.device)  # missing if any pixel it covers is
        return box, crop_hole, x, known, self.crop_options(box, options)

    @staticmethod
    def _paste(image, box: Box, crop_hole, y, soft_edge: int) -> list[np.ndarray]:
        """(N, 3, R, R) fills -> N copies of the image with the fill scaled back into the hole."""
        import torch.nn.functional as F

        size = (box.y1 - box.y0, box.x1 - box.x0)
        if y.shape[-2:] != size:
            y = F.interpolate(y.float(), size=size, mode="bicubic", align_corners=False)
        y = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        samples = []
        for filled in y:
            out = image.copy()
            soft_paste(out[box.y0 : box.y1, box.x0 : box.x1], filled, crop_hole, soft_edge)
            samples.append(out)
        return samples

    def _fill(self, image, hole, seeds, trace: bool = False, soft_edge: int = 0, **options):
        import torch

        box, crop_hole, x, known, options = self._window(image, hole, options)
        samples = []
        with torch.no_grad():
            for i in range(0, len(seeds), self.batch_size):
                steps = [] if trace and i == 0 else None
                y = self.sample(x, known, seeds[i : i + self.batch_size], trace=steps, **options)
                if steps is not None:
                    self.last_trace = self.trace_strip(x, known, steps)
                samples += self._paste(image, box, crop_hole, y, soft_edge)
        return samples

    def _fill_many(self, jobs, trace: bool = False, soft_edge: int = 0, **options):
        """Samples of different images share batches of `batch_size` rows (one image and one seed a row)."""
        import torch

        if not self.batches_images or trace or len(jobs) == 1:
            return super()._fill_many(jobs, trace=trace, soft_edge=soft_edge, **options)
        windows = [self._window(image, hole, options) for image, hole, _ in jobs]
        rows = [(j, seed) for j, (_, _, seeds) in enumerate(jobs) for seed in seeds]
        out: list[list[np.ndarray]] = [[] for _ in jobs]
        with torch.no_grad():
            for i in range(0, len(rows), self.batch_size):
                chunk = rows[i : i + self.batch_size]
                x = torch.cat([windows[j][2] for j, _ in chunk])
                known = torch.cat([windows[j][3] for j, _ in chunk])
                y = self.sample(x, known, [seed for _, seed in chunk], **windows[0][4])
                for (j, _), yj in zip(chunk, y):
                    box, crop_hole = windows[j][:2]
                    out[j] += self._paste(jobs[j][0], box, crop_hole, yj[None], soft_edge)
        return out

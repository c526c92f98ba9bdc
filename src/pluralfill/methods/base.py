"""The Inpainter protocol every method implements, and the work common to all of them: input checks,
per-sample seeds and pasting the known pixels back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.geometry import paste
from pluralfill.io import check_hole, hole_from_array, to_rgb
from pluralfill.methods.options import Guide, Options

MAX_SAMPLES = 1000  # samples of one image in one call: beyond this a run is a mistake, not a request


def sample_seed(seed: int | None, index: int) -> int:
    """The seed of sample `index` of a run seeded with `seed`: sample i is reproducible on its own."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    # any integer is a seed: negative ones get a key of their own (SeedSequence takes non-negative entropy)
    key = [seed, index] if seed >= 0 else [-seed, index, 1]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


@dataclass
class Network:
    """A network an inpainter exports to ONNX: `fn(*inputs.values())` is the tensor named `output`; `module` (a
    torch module) holds the weights it uses. `inputs` are example tensors of a batch (its first axis is dynamic)."""

    module: Any
    fn: Callable
    inputs: dict
    output: str


class Samples(list):
    """The samples of one fill (Pillow images), with the method's named extras in `extras`: "window" (the Box
    of the photo a learned method worked on), "trace" (the step-by-step strip of sample 0, with trace=True),
    "entropy" and "entropy_bits" (DSI's structure entropy, with entropy=True; "entropy_max" its top),
    "temperatures" (MHTMA's per-head temperatures). Each call returns its own: an inpainter keeps none."""

    def __init__(self, images=(), extras: dict | None = None):
        super().__init__(images)
        self.extras = dict(extras or {})


class Inpainter:
    """Fill the hole of an image with `num_samples` different completions.

    Subclasses implement `_fill(image, hole, seeds, **options)` on uint8 RGB / bool arrays and return one
    uint8 RGB array of the same size per seed. This class checks the inputs and pastes the known
    pixels back so that they stay exactly as given.
    """

    name: str = "inpainter"
    deterministic: bool = False  # every sample the same: one result is returned whatever num_samples is
    fills_from_nothing: bool = False  # can fill an image whose every pixel is missing
    Options: type[Options] = Options  # what it takes (see methods/options.py); an instance may narrow it
    guides: tuple[Guide, ...] = ()  # the pictures that steer it
    default_options: Mapping = MappingProxyType({})  # option values a model folder chose for itself (sampling.json)
    pictures: tuple[str, ...] = ()  # bool options that, on, return a picture of the same name in the extras
    uncertainty: str | None = None  # the option that returns an uncertainty map: extras NAME_bits over the window

    def inpaint(
        self,
        image,
        hole,
        num_samples: int = 1,
        seed: int | None = None,
        composite: bool = True,
        first_sample: int = 0,
        **options,
    ) -> Samples:
        """`image`: Pillow image or uint8 HxWx3 array. `hole`: Pillow image or array, white / True = missing.
        Returns `Samples`, a list of Pillow images (one for deterministic methods): samples first_sample,
        first_sample+1, ... of the run seeded with `seed`, so a run can be drawn in pieces with the same result;
        its `extras` hold what else the method made of this call."""
        image, hole, seeds, options = self._inputs(image, hole, num_samples, seed, first_sample, options)
        return self._outputs(image, hole, self._fill(image, hole, seeds, **options), composite, options)

    def inpaint_many(
        self, images, holes, num_samples: int = 1, seed: int | None = None, composite: bool = True, **options
    ) -> list[Samples]:
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
        if not 1 <= num_samples <= MAX_SAMPLES:
            raise PluralfillError(f"num_samples must be from 1 to {MAX_SAMPLES}, got {num_samples}")
        check_hole(hole, self.fills_from_nothing, self.name)
        options = dict(options)
        guides = {g.name: options.pop(g.name) for g in self.guides if g.name in options}
        pictures = (k for k, v in options.items() if isinstance(v, (np.ndarray, Image.Image)))
        self.check_guides(k for k in pictures if k not in self.Options.model_fields)
        options = self.options(**options).model_dump()
        options |= {g.name: g.check(guides[g.name], hole.shape) for g in self.guides if guides.get(g.name) is not None}
        n = 1 if self.deterministic else num_samples
        if seed is None:
            seed = sample_seed(None, 0)
        return image, hole, [sample_seed(seed, first_sample + i) for i in range(n)], options

    def _outputs(self, image, hole, filled, composite, options) -> Samples:
        samples, extras = filled if isinstance(filled, tuple) else (filled, {})
        if composite:  # known pixels exactly as given; with soft_edge, outside the blended band
            samples = [paste(image, s, hole, int(options.get("soft_edge") or 0)) for s in samples]
        return Samples([Image.fromarray(np.ascontiguousarray(s)) for s in samples], extras)

    def _fill_many(self, jobs, **options):
        """[(image, hole, seeds)] -> what `_fill` gives for each job; one by one unless a method batches images."""
        return [self._fill(image, hole, seeds, **options) for image, hole, seeds in jobs]

    def _fill(self, image: np.ndarray, hole: np.ndarray, seeds: list[int], **options):
        """One uint8 RGB array per seed, or (those arrays, {extra name: value})."""
        raise NotImplementedError

    # what runs in onnxruntime: `pluralfill export` writes every network; `--backend onnx` runs `onnx_pass`,
    # the network the sampler calls on every pass, there
    onnx_pass: str | None = None

    def export_networks(self, batch: int = 2) -> dict[str, Network]:
        raise PluralfillError(f"{self.name} has no network to export to ONNX")

    def with_pass(self, run: Callable) -> Inpainter:
        """A copy whose `onnx_pass` network is `run(*its inputs, cache=None)` (torch tensors in, a torch tensor out;
        `cache` is given only by a sampler that keeps keys and values, which an exported network cannot)."""
        raise PluralfillError(f"{self.name} has no network that runs in onnxruntime")

    def options(self, **given) -> Options:
        """`given` over the defaults (the model folder's, then the declared ones), checked: an OptionError names
        every bad value at once."""
        return self.Options.check(self.name, self.default_options | given)

    def check_options(self, options: dict) -> dict:
        """The options given, checked and typed ("5" -> 5), without the defaults they leave out."""
        checked = self.options(**options)
        return {k: getattr(checked, k) for k in options}

    def check_guides(self, names) -> None:
        """Refuse, in one line, a guide this method does not declare."""
        declared = {g.name for g in self.guides}
        for name in names:
            if name not in declared:
                raise PluralfillError(
                    f"{self.name} takes no {name} guide; its guides: {', '.join(sorted(declared)) or 'none'}"
                )

    def option_names(self) -> list[str]:
        return list(self.Options.model_fields)

    def option_specs(self) -> list[dict]:
        """Every option as a form field (see Options.fields), with this instance's defaults."""
        return self.Options.fields(self.default_options)

    def guide_specs(self) -> list[dict]:
        return [{"name": g.name, "kind": g.kind, "help": g.help} for g in self.guides]

    def describe(self) -> dict:
        """What `pluralfill info` prints: method, working resolution, parameters per component, options."""
        return {
            "name": self.name,
            "method": self.name,
            "resolution": "any",
            "parameters": {},
            "options": self.option_specs(),
            "guides": self.guide_specs(),
        }

"""The Inpainter protocol every method implements, and the work common to all of them: input checks,
per-sample seeds and pasting the known pixels back."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.geometry import paste
from pluralfill.io import check_hole, hole_from_array, to_rgb


def sample_seed(seed: int | None, index: int) -> int:
    """The seed of sample `index` of a run seeded with `seed`: sample i is reproducible on its own."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    # any integer is a seed: negative ones get a key of their own (SeedSequence takes non-negative entropy)
    key = [seed, index] if seed >= 0 else [-seed, index, 1]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


# What the options that several methods share mean, for form fields and `pluralfill info`.
OPTION_HELP = {
    "top_k": "sample each token from its k most likely codes only (empty: all codes)",
    "temperature": "above 1: more varied fills, below 1: safer ones",
    "steps": "how many parallel decoding passes fill the hole",
    "schedule": "how many tokens each pass fixes: cosine, linear, uniform, square, cubic, arccos, log, exp or pow<k>",
    "choice_temperature": "the randomness of which tokens a pass keeps (MaskGIT's 4.5; 0 keeps the most confident)",
    "soft_edge": "blend the fill into the photo over this many pixels at the hole's edge",
    "dilate": "grow the hole by this many tokens before sampling",
    "trace": "record the sampler's steps of the first sample as a strip",
    "sketch": "guidance lines the fill should follow, the photo's size",
    "segmentation": "a label map of the photo that the fill should follow",
}

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
    default_options: dict = {}  # option values a model folder chose for itself (its sampling.json)
    option_choices: dict = {}  # option name -> the values it takes, where they are a closed set
    option_help: dict = {}  # option name -> one line for a form field's hint; OPTION_HELP has the shared ones
    uncertainty: str | None = None  # the option that returns an uncertainty map: extras NAME_bits over the window

    def inpaint(self, image, hole, num_samples: int = 1, seed: int | None = None, composite: bool = True,
                first_sample: int = 0, **options) -> Samples:  # fmt: skip
        """`image`: Pillow image or uint8 HxWx3 array. `hole`: Pillow image or array, white / True = missing.
        Returns `Samples`, a list of Pillow images (one for deterministic methods): samples first_sample,
        first_sample+1, ... of the run seeded with `seed`, so a run can be drawn in pieces with the same result;
        its `extras` hold what else the method made of this call."""
        image, hole, seeds, options = self._inputs(image, hole, num_samples, seed, first_sample, options)
        return self._outputs(image, hole, self._fill(image, hole, seeds, **options), composite, options)

    def inpaint_many(self, images, holes, num_samples: int = 1, seed: int | None = None, composite: bool = True,
                     **options) -> list[Samples]:  # fmt: skip
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
        options = self.check_options(options)
        n = 1 if self.deterministic else num_samples
        if seed is None:
            seed = sample_seed(None, 0)
        return image, hole, [sample_seed(seed, first_sample + i) for i in range(n)], self.default_options | options

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

    def _option_functions(self):
        fills = [c.__dict__["_fill"] for c in type(self).__mro__ if "_fill" in c.__dict__]  # overrides pass **options on
        return [fn for fn in (*fills, getattr(self, "sample", None)) if fn is not None]

    def option_names(self) -> list[str]:
        """The keyword options this method takes (beyond image, hole, num_samples, seed)."""
        import inspect

        names = []
        for fn in self._option_functions():
            names += [p.name for p in inspect.signature(fn).parameters.values()
                      if p.kind == p.KEYWORD_ONLY or (p.default is not p.empty and p.kind == p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
        return [n for n in dict.fromkeys(names) if n not in ("seed", "seeds", "extras")]

    def option_types(self) -> dict:
        """Option name -> its annotation, for the options typed with plain values (int, float, bool, str)."""
        import types as pytypes
        import typing

        plain = {int, float, bool, str, type(None)}
        types = {}
        for fn in self._option_functions():
            try:
                hints = typing.get_type_hints(fn)
            except Exception:  # an annotation that does not resolve: that option goes unchecked
                continue
            for name, hint in hints.items():
                args = typing.get_args(hint) or (hint,)
                union = typing.get_origin(hint) in (None, typing.Union, pytypes.UnionType)
                if name not in types and union and all(a in plain for a in args):
                    types[name] = hint
        return types

    def option_specs(self) -> list[dict]:
        """Every option as a form field: {"name", "type" (int, float, bool, str, or "picture" for an image
        the size of the photo), "default" (None: the method decides), "nullable", "choices" (or None),
        "help" (one line)}."""
        import inspect
        import typing

        types, specs = self.option_types(), {}
        for fn in self._option_functions():
            for p in inspect.signature(fn).parameters.values():
                if p.name in specs or p.name in ("seed", "seeds", "extras") or p.default is p.empty and p.kind != p.KEYWORD_ONLY:
                    continue
                hint = types.get(p.name)
                args = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
                kind = args[0].__name__ if hint is not None and len(args) == 1 else "picture" if hint is None else "str"
                default = self.default_options.get(p.name, None if p.default is p.empty else p.default)
                if default is None and isinstance(getattr(self, p.name, None), (int, float, str)):
                    default = getattr(self, p.name)  # None stands for the instance's own setting (classical fills)
                specs[p.name] = {"name": p.name, "type": kind, "default": default,
                                 "nullable": hint is None or type(None) in typing.get_args(hint),
                                 "choices": list(self.option_choices[p.name]) if p.name in self.option_choices else None,
                                 "help": (OPTION_HELP | self.option_help).get(p.name, "")}  # fmt: skip
        return [specs[n] for n in self.option_names()]

    def check_options(self, options: dict) -> dict:
        """Every option known and of its type; returns them with numbers read from text ("5" -> 5)."""
        from pydantic import TypeAdapter, ValidationError

        allowed, types, checked = self.option_names(), self.option_types(), {}
        for key, value in options.items():
            if key not in allowed:
                raise PluralfillError(f"{self.name} has no option {key!r}; it takes: {', '.join(allowed) or 'none'}")
            if key in types:
                try:
                    value = TypeAdapter(types[key]).validate_python(value)
                except ValidationError:
                    wanted = " or ".join(getattr(a, "__name__", str(a)) for a in (getattr(types[key], "__args__", None) or (types[key],)) if a is not type(None))
                    raise PluralfillError(f"option {key}={value!r}: {self.name} wants {wanted}") from None
            checked[key] = value
        return checked

    def describe(self) -> dict:
        """What `pluralfill info` prints: method, working resolution, parameters per component, options."""
        return {"name": self.name, "method": self.name, "resolution": "any", "parameters": {}, "options": self.option_specs()}

"""What a method takes besides the image and the hole, declared once per method.

Options are a pydantic model (a subclass of `Options`): each field has a type, its choices (a Literal), its
bounds, a default and one line of help. Guides are `Guide`s: pictures the size of the photo that steer the fill
(a sketch, an edge map, a label map). `pluralfill info`, `--option`, `--guide`, the web app's fields,
`/api/methods`, the zip's settings and the Python API all read these declarations; nothing else lists them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pluralfill.errors import PluralfillError


class FieldProblem(ValueError):
    """Raised by a model's cross-field rule to name the option at fault (pydantic's own errors name none)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


class OptionError(PluralfillError):
    """Bad option values: `problems` maps each bad option to what is wrong with it; the message is one line
    naming every option, its value and the rule it breaks."""

    def __init__(self, problems: dict[str, str], values: dict, flags: dict[str, str] | None = None):
        self.problems, self.values, flags = problems, values, flags or {}

        def shown(name: str) -> str:
            value = values.get(name)
            text = json.dumps(value) if _plain(value) else type(value).__name__
            if name in flags:  # the flag the user typed, as they typed it
                return f"{flags[name]} {text}"
            return f"option {name}={text}" if name in values else f"option {name}"

        super().__init__("; ".join(f"{shown(k)}: {v}" for k, v in problems.items()))

    def for_flags(self, flags: dict[str, str]) -> OptionError:
        """The same problems, named by the command-line flags that set them ({"top_k": "--top-k"})."""
        return OptionError(self.problems, self.values, flags)


def option(default, help: str, *, step: float | None = None, **bounds):
    """A field of an Options model: its default, one line of help, pydantic's bounds (ge, gt, le, lt) and the
    `step` a number field moves by."""
    return Field(default, description=help, json_schema_extra={"step": step} if step else None, **bounds)


class Options(BaseModel):
    """A method's options; a subclass declares one field per option (see `option`). Unknown names are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def check(cls, method: str, values: dict) -> Options:
        """`values` as this model, or an OptionError naming every bad one."""
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            problems = {}
            for error in e.errors():
                name = ".".join(str(p) for p in error["loc"])
                cause = error.get("ctx", {}).get("error")
                if isinstance(cause, FieldProblem):  # a rule across fields: the field it names
                    name = cause.field
                if error["type"] == "extra_forbidden":
                    problems[name] = (
                        f"{method} has no option {name!r}; it takes: {', '.join(cls.model_fields) or 'none'}"
                    )
                else:
                    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "should be")
                    problems.setdefault(name or "options", message)
            raise OptionError(problems, values if isinstance(values, dict) else {}) from None

    @classmethod
    def fields(cls, defaults: dict | None = None) -> list[dict]:
        """Every option as a form field: {"name", "type" (int, float, bool or str), "default" (None: the method
        decides), "nullable", "choices" (or None), "min", "max" (inclusive, or None), "step", "help"}."""
        schema, defaults = cls.model_json_schema(), defaults or {}
        out = []
        for name, prop in schema["properties"].items():
            kinds = [p for p in prop.get("anyOf", [prop])]
            value = next((k for k in kinds if k.get("type") != "null"), {})
            kind = {"integer": "int", "number": "float", "boolean": "bool"}.get(value.get("type"), "str")
            low = value.get("minimum", value.get("exclusiveMinimum"))
            out.append(
                {
                    "name": name,
                    "type": kind,
                    "default": defaults.get(name, prop.get("default")),
                    "nullable": any(k.get("type") == "null" for k in kinds),
                    "choices": value.get("enum"),
                    "min": low,
                    "max": value.get("maximum", value.get("exclusiveMaximum")),
                    "min_exclusive": "exclusiveMinimum" in value,
                    "max_exclusive": "exclusiveMaximum" in value,
                    "step": prop.get("step") or (1 if kind == "int" else None),
                    "help": prop.get("description", ""),
                }
            )
        return out


def _plain(value) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


# ----------------------------------------------------------------------------------------- shared options


class TokenSampling(Options):
    """How a token is drawn from the transformer's distribution."""

    top_k: int | None = option(
        None, "sample each token from its k most likely codes only (empty or 0: all codes)", ge=0
    )
    temperature: float = option(1.0, "above 1: more varied fills, below 1: safer ones", gt=0, le=100, step=0.05)


class ParallelDecoding(Options):
    """MaskGIT's iterative decoding (Chang et al. 2022, Section 3.2)."""

    steps: int = option(12, "how many parallel decoding passes fill the hole", ge=1, le=1024)
    schedule: str = option(
        "cosine", "how many tokens each pass fixes: cosine, linear, uniform, square, cubic, arccos, log, exp or pow<k>"
    )
    order: Literal["confidence", "halton"] = option(
        "confidence",
        "which tokens a pass keeps: the most confident (MaskGIT), or the next of a Halton order over the grid "
        "(Besnier et al. 2025)",
    )
    choice_temperature: float = option(
        4.5,
        "the randomness of which tokens a pass keeps (MaskGIT's 4.5; 0 keeps the most confident)",
        ge=0,
        le=100,
        step=0.5,
    )


class Cached(Options):
    """Passes that keep the known tokens' keys and values (`sampling.cache.Passes`)."""

    cache: Literal["off", "known"] = option(
        "off",
        "known: keep the known tokens' keys and values between full passes and recompute only the hole "
        "(faster, approximate); off: every pass in full",
    )
    refresh: int = option(4, "cache=known: a full pass every this many passes (1: exact)", ge=1, le=1024)


class Windowed(Options):
    """What every learned method on a window around the hole takes."""

    trace: bool = option(False, "record the sampler's steps of the first sample as a strip")
    soft_edge: int = option(0, "blend the fill into the photo over this many pixels at the hole's edge", ge=0, le=256)


def known_schedule(schedule: str | None, samplers: tuple[str, ...] = ("parallel",)) -> None:
    """Raises FieldProblem unless one of `samplers` ("parallel", "put-tpami") knows `schedule` (open sets:
    pow<k>, cosine_T)."""
    from pluralfill.sampling.parallel import mask_ratio
    from pluralfill.sampling.put_tpami import pass_counts

    if schedule is None:
        return
    checks = {"parallel": lambda: mask_ratio(schedule, 1.0), "put-tpami": lambda: pass_counts(schedule, 1)}
    problems = []
    for sampler in samplers:
        try:
            return checks[sampler]() and None
        except PluralfillError as e:
            problems.append(str(e))
    raise FieldProblem("schedule", "; ".join(problems))


# -------------------------------------------------------------------------------------------------- guides


@dataclass(frozen=True)
class Guide:
    """A picture the size of the photo that steers the fill. kind: "lines" (white strokes on black, read as
    on / off), "grey" (0-255 values such as an edge map) or "labels" (one class id a pixel)."""

    name: str
    kind: Literal["lines", "grey", "labels"]
    help: str

    def read(self, path, size: tuple[int, int], resize: bool = False, max_pixels: int | None = None) -> np.ndarray:
        """The guide from a file, checked to be `size` (W, H) unless `resize`."""
        from pluralfill import io

        limit = {"max_pixels": max_pixels} if max_pixels else {}
        if self.kind == "labels":
            return io.read_labels(path, size, resize, what=self.name, **limit)
        return io.read_grey(path, size, resize, what=self.name, **limit)

    def picture(self, im) -> np.ndarray:
        """A Pillow image as this guide's array: class ids as they are, grey values with transparency on black."""
        from pluralfill.io import grey_image, label_image

        if self.kind == "labels":
            return np.asarray(label_image(im, self.name)).astype(np.int64)
        return np.asarray(grey_image(im))

    def image(self, picture: np.ndarray):
        """This guide's array as a Pillow image that `read` gives back (16-bit where class ids need it)."""
        from PIL import Image

        a = np.asarray(picture)
        if a.dtype == bool:
            return Image.fromarray(a.astype(np.uint8) * 255)
        return Image.fromarray(a.astype(np.uint8) if a.max(initial=0) < 256 else a.astype(np.int32))

    def check(self, picture, shape: tuple[int, int]) -> np.ndarray:
        """A picture given to `inpaint` as this guide's array: 2-D, the photo's size."""
        from pluralfill.io import hole_from_array

        a = np.asarray(picture)
        if a.ndim != 2:
            raise PluralfillError(f"{self.name} must be one channel (a {self.kind} map), got shape {a.shape}")
        if a.shape != shape:
            raise PluralfillError(f"{self.name} is {a.shape[1]}x{a.shape[0]} but the image is {shape[1]}x{shape[0]}")
        return hole_from_array(a) if self.kind == "lines" else a

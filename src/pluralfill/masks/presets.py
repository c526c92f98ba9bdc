"""Mask presets as data: each is a documented record of shapes and the probability each one is drawn."""

from __future__ import annotations

from dataclasses import dataclass

from pluralfill.errors import PluralfillError
from pluralfill.masks.shapes import Boxes, BrushStrokes, DeepFillBox, KeptStrokes, LamaStrokes, Square

Shape = BrushStrokes | LamaStrokes | Boxes | Square | DeepFillBox | KeptStrokes


@dataclass(frozen=True)
class MaskPreset:
    """The union of `parts`; part i is drawn with probability `probabilities[i]`.

    `max_ratio` is the preset's own cap on the hole fraction (LaMa rejects masks over half the image);
    it applies when no `--ratio` range is asked for.
    """

    name: str
    source: str
    parts: tuple[Shape, ...]
    probabilities: tuple[float, ...] = ()
    max_ratio: float | None = None
    description: str = ""

    def __post_init__(self):
        if not self.probabilities:
            object.__setattr__(self, "probabilities", (1.0,) * len(self.parts))
        assert len(self.probabilities) == len(self.parts)


DEMO_PRESET = "mhtma"  # the demo's hole: free strokes and a square, a hole a photo of any kind can show

PRESETS: dict[str, MaskPreset] = {
    p.name: p
    for p in [
        MaskPreset(
            "deepfill",
            "DeepFill v2 (Yu et al., ICCV 2019): free-form brush strokes united with a random box",
            (BrushStrokes(strokes=(1, 3), vertices=(4, 11), width=(12, 40)), DeepFillBox(side=128, max_delta=32)),
            description="1-3 strokes, 4-11 vertices, width 12-40, plus a 128x128 box shrunk by up to 16 px a side",
        ),
        MaskPreset(
            "mhtma",
            "MHTMA (Zhou et al. 2023, section IV-A): free-form strokes united with a 96x96 square",
            (BrushStrokes(strokes=(1, 3), vertices=(4, 11), width=(12, 40)), Square(side=96)),
            description="DeepFill v2 strokes plus a 96x96 square at a random position",
        ),
        MaskPreset(
            "dsi-box",
            "the official DSI code's random square (--random_mask: random_bbox + bbox2mask, max_delta 0)",
            (DeepFillBox(side=128, max_delta=0),),
            description="a 128x128 square (at 256) at a uniformly random position; [dsi-box, dsi-strokes] is "
            "--random_mask",
        ),
        MaskPreset(
            "dsi-strokes",
            "the official DSI code's free-form mask (brush_stroke_mask, DeepFill v2's)",
            (BrushStrokes(strokes=(1, 3), vertices=(4, 11), width=(12, 40)),),
            description="1-3 strokes of 4-11 vertices, width 12-40",
        ),
        MaskPreset(
            "put",
            "PUT (Liu et al. 2022): irregular brush strokes",
            (BrushStrokes(strokes=(1, 4), vertices=(5, 10), width=(10, 30)),),
            description="1-4 strokes of 5-10 vertices, width 10-30 (the stroke count is our choice)",
        ),
        MaskPreset(
            "put-keep-0-0.5",
            "the official PUT code's training strokes (stage 1; stage 2 of places2 and imagenet)",
            (KeptStrokes(keep=(0.0, 0.5)),),
            description="strokes mark the kept pixels, covering U(0, 0.5) of the image; the rest is the hole",
        ),
        MaskPreset(
            "put-keep-0.3-0.6",
            "the official PUT code's training strokes (stage 2 of ffhq)",
            (KeptStrokes(keep=(0.3, 0.6)),),
            description="strokes mark the kept pixels, covering U(0.3, 0.6) of the image; the rest is the hole",
        ),
        MaskPreset(
            "lama-thin",
            "LaMa (Suvorov et al., WACV 2022) configs/data_gen/random_thin_256.yaml",
            (LamaStrokes(min_times=4, max_times=50, max_width=10, max_angle=4, max_len=40),),
            max_ratio=0.5,
            description="4-50 thin strokes (width 5-14, length 10-49)",
        ),
        MaskPreset(
            "lama-medium",
            "LaMa configs/data_gen/random_medium_256.yaml",
            (
                LamaStrokes(min_times=4, max_times=5, max_width=50, max_angle=4, max_len=100),
                Boxes(min_times=1, max_times=5, min_size=10, max_size=50, margin=0),
            ),
            probabilities=(1.0, 0.3),
            max_ratio=0.5,
            description="4-5 strokes (width 5-54, length 10-109); with p=0.3 also 1-5 boxes of side 10-50",
        ),
        MaskPreset(
            "lama-thick",
            "LaMa configs/data_gen/random_thick_256.yaml",
            (
                LamaStrokes(min_times=1, max_times=5, max_width=100, max_angle=4, max_len=200),
                Boxes(min_times=1, max_times=3, min_size=30, max_size=150, margin=10),
            ),
            probabilities=(1.0, 0.3),
            max_ratio=0.5,
            description="1-5 thick strokes (width 5-104, length 10-209); with p=0.3 also 1-3 boxes of side 30-150",
        ),
        MaskPreset(
            "center",
            "the classic centre hole: 128x128 at 256x256",
            (Square(side=128, centered=True),),
            description="a centred square of half the side, 25% of the image",
        ),
        MaskPreset(
            "box",
            "random rectangles",
            (Boxes(min_times=1, max_times=3, min_size=32, max_size=128, margin=0),),
            description="1-3 rectangles with sides 32-128",
        ),
    ]
}

# The standard evaluation bins of hole fraction, as in Zhou et al. 2023, Table IV: (0, 0.1], ..., (0.5, 0.6].
STANDARD_BINS: tuple[tuple[float, float], ...] = tuple((round(i / 10, 1), round((i + 1) / 10, 1)) for i in range(6))


def get_preset(name: str) -> MaskPreset:
    if name not in PRESETS:
        raise PluralfillError(f"unknown mask preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]

"""MHTMA (Zhou et al. 2023): a coarse-to-fine gated-convolution inpainting GAN whose refinement network has a
convolution branch and an attention branch built on multi-head temperature masked self-attention.

    coarse = CoarseNet([x with the hole in ImageNet mean colour, hole, (sketch), (noise)])
    mixed  = coarse in the hole, x elsewhere
    fine   = decoder(conv_branch(mixed, hole, ...) ++ attention_branch(mixed, hole, ...))

Sizes follow DeepFill v2 (width 48 at 256 px), on which Zhou et al. 2023 builds; the figure-level description of
Zhou et al. 2023 fixes the structure (gated convs at both ends, dilated gated convs in the middle, two encoders,
a decoder of 5 gated convs and one standard conv). The sketch-guided variant (section IV-F) takes a fifth
input channel: the user's lines inside the hole.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.models.base import Pretrained
from pluralfill.nn.gated import GatedConv2d as G
from pluralfill.nn.gated import GatedUpConv2d as Up
from pluralfill.nn.patch_attention import AttentionKind, PatchAttention

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the colour the hole is filled with before the network sees it (IV-B)


class MHTMAConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "mhtma"
    resolution: int = 256
    width: int = 48  # channels of the first layer; the middle has 4x
    attention: AttentionKind = "mhtma"  # or the Table I ablations: "vanilla", "atma", "contextual", "none"
    num_heads: int = 2
    patch_size: int = 3
    hole_score: float = -1e4  # lambda of Eq. 9: the score of keys from the hole
    init_temperature: float = 0.1  # every head starts at DeepFill's constant (softmax scale 10)
    min_temperature: float = 0.01  # added to the Softplus: keeps scores / temperature finite (not in the paper)
    sketch: bool = False  # section IV-F: a fifth input channel with the sketch inside the hole
    noise: bool = False  # one channel of N(0, 1) noise in the hole: different seeds give different fills
    disc_width: int = 64  # the global-local discriminator's first layer (training only)

    @property
    def in_channels(self) -> int:
        return 4 + int(self.sketch) + int(self.noise)


CONFIGS: dict[str, MHTMAConfig] = {
    "mhtma": MHTMAConfig(),
    "mhtma-sketch": MHTMAConfig(name="mhtma-sketch", sketch=True),
    "mhtma-tiny": MHTMAConfig(name="mhtma-tiny", resolution=64, width=12, disc_width=16),
    "mhtma-tiny-sketch": MHTMAConfig(name="mhtma-tiny-sketch", resolution=64, width=12, disc_width=16, sketch=True),
}


def dilated(c: int) -> list[nn.Module]:
    return [G(c, c, 3, dilation=d) for d in (2, 4, 8, 16)]


class CoarseNet(nn.Module):
    """Gated-conv encoder (down 4x), dilated gated convs, gated-conv decoder back to the image."""

    def __init__(self, in_channels: int, c: int):
        super().__init__()
        self.net = nn.Sequential(
            G(in_channels, c, 5),
            G(c, 2 * c, 3, 2),
            G(2 * c, 2 * c),
            G(2 * c, 4 * c, 3, 2),
            G(4 * c, 4 * c),
            G(4 * c, 4 * c),
            *dilated(4 * c),
            G(4 * c, 4 * c),
            G(4 * c, 4 * c),
            Up(4 * c, 2 * c),
            G(2 * c, 2 * c),
            Up(2 * c, c),
            G(c, c // 2),
            nn.Conv2d(c // 2, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(x))


class RefineNet(nn.Module):
    """Two encoders and one decoder (Zhou et al. 2023, III-A). The attention branch: gated convs, the masked
    attention at 1/4 resolution, two gated convs. The convolution branch: gated and dilated gated convs.
    The decoder: 5 gated convs (two of them upsampling) and one standard conv."""

    def __init__(self, in_channels: int, c: int, cfg: MHTMAConfig):
        super().__init__()
        self.conv_branch = nn.Sequential(
            G(in_channels, c, 5),
            G(c, c, 3, 2),
            G(c, 2 * c),
            G(2 * c, 2 * c, 3, 2),
            G(2 * c, 4 * c),
            G(4 * c, 4 * c),
            *dilated(4 * c),
        )
        self.has_attention = cfg.attention != "none"  # "none": the convolution branch alone (Table I's floor)
        if self.has_attention:
            self.attention_in = nn.Sequential(
                G(in_channels, c, 5),
                G(c, c, 3, 2),
                G(c, 2 * c),
                G(2 * c, 4 * c, 3, 2),
                G(4 * c, 4 * c),
                G(4 * c, 4 * c, activation="relu"),
            )
            self.attention = PatchAttention(
                4 * c,
                cfg.attention,
                cfg.num_heads,
                cfg.patch_size,
                cfg.hole_score,
                cfg.init_temperature,
                min_temperature=cfg.min_temperature,
            )
            self.attention_out = nn.Sequential(G(4 * c, 4 * c), G(4 * c, 4 * c))
        self.decoder = nn.Sequential(
            G((8 if self.has_attention else 4) * c, 4 * c),
            G(4 * c, 4 * c),
            Up(4 * c, 2 * c),
            Up(2 * c, c),
            G(c, c // 2),
            nn.Conv2d(c // 2, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, hole: torch.Tensor, attention_branch: str = "on"):
        conv = self.conv_branch(x)
        if not self.has_attention:
            return torch.tanh(self.decoder(conv)), x.new_zeros(x.shape[0], 0)
        mode = {"on": "learned", "off": "learned", "high": "high", "low": "low"}[attention_branch]
        att, temperatures = self.attention(self.attention_in(x), hole, mode)
        att = self.attention_out(att)
        if attention_branch == "off":  # the convolution branch alone (Zhou et al. 2023, Fig. 8)
            att = torch.zeros_like(att)
        return torch.tanh(self.decoder(torch.cat([conv, att], dim=1))), temperatures


class MHTMA(Pretrained, nn.Module):
    """The generator: `forward(x, known, sketch=None, noise=None)` -> (coarse, fine, temperatures (B, heads)).
    x in [-1, 1]; known (B, 1, R, R) is 1 where pixels are present; sketch (B, 1, R, R) 1 on lines."""

    config_class, methods = MHTMAConfig, ("mhtma", "mhtma-sketch")

    def __init__(self, cfg: MHTMAConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or MHTMAConfig()
        self.method = "mhtma-sketch" if cfg.sketch else "mhtma"
        self.coarse = CoarseNet(cfg.in_channels, cfg.width)
        self.refine = RefineNet(cfg.in_channels, cfg.width, cfg)

    def inputs(self, image, hole, sketch, noise) -> torch.Tensor:
        parts = [image, hole]
        if self.config.sketch:
            parts.append(hole * (sketch if sketch is not None else torch.zeros_like(hole)))
        if self.config.noise:
            parts.append(hole * (noise if noise is not None else torch.zeros_like(hole)))
        return torch.cat(parts, dim=1)

    def forward(self, x, known, sketch=None, noise=None, attention_branch: str = "on"):
        hole = 1 - known
        mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) * 2 - 1
        x_in = x * known + mean * hole
        coarse = self.coarse(self.inputs(x_in, hole, sketch, noise))
        mixed = coarse * hole + x * known
        fine, temperatures = self.refine(self.inputs(mixed, hole, sketch, noise), hole, attention_branch)
        return coarse, fine, temperatures

    def parameter_counts(self) -> dict[str, int]:
        def count(m):
            return sum(p.numel() for p in m.parameters())

        attention = count(self.refine.attention) if self.refine.has_attention else 0
        return {"coarse": count(self.coarse), "refine": count(self.refine) - attention, "attention": attention}

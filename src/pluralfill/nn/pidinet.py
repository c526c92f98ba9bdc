"""PiDiNet (Su et al., "Pixel Difference Networks for Efficient Edge Detection", ICCV 2021), the edge detector
Zhou et al. 2023 (IV-F) uses to make sketches. Module and parameter names follow the official code, so its
checkpoints (e.g. `table5_pidinet.pth`: the `carv4` layout, 60 channels, dilation 24, spatial attention)
load as they are.

A pixel difference convolution keeps an ordinary 3x3 weight but applies it to differences of pixels:
  cd (central):  sum_i w_i (x_i - x_centre)
  ad (angular):  sum_i w_i (x_i - x_{i's clockwise neighbour on the ring})
  rd (radial):   5x5 ring: sum_i w_i (x_{outer i} - x_{inner i})
Each is one convolution with a kernel derived from w, which is how it is computed here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CARV4 = ("cd", "ad", "rd", "cv") * 4  # the layer types of the published PiDiNet models
# ad: each of the 8 ring positions (row-major 3x3 index) minus its clockwise predecessor; the centre minus itself
_AD_PREVIOUS = [3, 0, 1, 6, 4, 2, 7, 8, 5]
# rd: the 8 directions of the 3x3 ring (index 1..8 of w, skipping the centre), on the outer and inner 5x5 rings
_RD_OUTER = [0, 2, 4, 10, 14, 20, 22, 24]
_RD_INNER = [6, 7, 8, 11, 13, 16, 17, 18]


def difference_kernel(kind: str, w: torch.Tensor) -> torch.Tensor:
    """The ordinary kernel that computes pixel difference convolution `kind` with weight w (O, I, 3, 3)."""
    if kind == "cv":
        return w
    o, i = w.shape[:2]
    flat = w.reshape(o, i, 9)
    if kind == "cd":
        centre = torch.zeros_like(flat)
        centre[:, :, 4] = flat.sum(-1)
        return (flat - centre).reshape(o, i, 3, 3)
    if kind == "ad":
        return (flat - flat[:, :, _AD_PREVIOUS]).reshape(o, i, 3, 3)
    if kind == "rd":
        k = w.new_zeros(o, i, 25)
        k[:, :, _RD_OUTER] = flat[:, :, 1:]
        k[:, :, _RD_INNER] = -flat[:, :, 1:]
        return k.reshape(o, i, 5, 5)
    raise ValueError(f"unknown pixel difference convolution {kind!r}")


class PixelDifferenceConv2d(nn.Module):
    """A 3x3 convolution of kind cv, cd, ad or rd (rd reaches 5x5), size-preserving, no bias."""

    def __init__(self, kind: str, in_channels: int, out_channels: int, groups: int = 1):
        super().__init__()
        self.kind, self.groups = kind, groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = difference_kernel(self.kind, self.weight)
        return F.conv2d(x, kernel, padding=kernel.shape[-1] // 2, groups=self.groups)


class PDCBlock(nn.Module):
    """Depthwise pixel difference conv, ReLU, 1x1 conv, residual; stride 2 max-pools first and projects
    the shortcut."""

    def __init__(self, kind: str, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        if stride > 1:
            self.pool = nn.MaxPool2d(2, 2)
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        self.conv1 = PixelDifferenceConv2d(kind, in_channels, in_channels, groups=in_channels)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = self.pool(x)
        y = self.conv2(F.relu(self.conv1(x)))
        return y + (self.shortcut(x) if self.stride > 1 else x)


class CSAM(nn.Module):
    """Compact spatial attention: a sigmoid map from ReLU, 1x1 conv to 4 channels, 3x3 conv to 1."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 1)
        self.conv2 = nn.Conv2d(4, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv2(self.conv1(F.relu(x))))


class CDCM(nn.Module):
    """Compact dilation convolution module: ReLU, 1x1 conv, the sum of 3x3 convs dilated 5, 7, 9 and 11."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1)
        for j, d in enumerate((5, 7, 9, 11), start=1):
            setattr(self, f"conv2_{j}", nn.Conv2d(out_channels, out_channels, 3, dilation=d, padding=d, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.relu(x))
        return sum(getattr(self, f"conv2_{j}")(x) for j in range(1, 5))


class MapReduce(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PiDiNet(nn.Module):
    """`forward(x)` with x (B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) edge probability. Four stages of
    PDC blocks (C, 2C, 4C, 4C channels); each stage's features go through CDCM and CSAM to one side map;
    a 1x1 conv fuses the four upsampled side maps."""

    def __init__(
        self, channels: int = 60, kinds: tuple[str, ...] = CARV4, dilation: int | None = 24, attention: bool = True
    ):
        super().__init__()
        c = channels
        self.init_block = PixelDifferenceConv2d(kinds[0], 3, c)
        widths = [c, 2 * c, 4 * c, 4 * c]
        layer, prev = 1, c
        for stage, (width, blocks) in enumerate(zip(widths, (3, 4, 4, 4)), start=1):
            for j in range(1, blocks + 1):
                stride = 2 if stage > 1 and j == 1 else 1
                setattr(self, f"block{stage}_{j}", PDCBlock(kinds[layer], prev, width, stride))
                prev, layer = width, layer + 1
        self.stage_blocks = (3, 4, 4, 4)
        side = dilation or None
        if dilation:
            self.dilations = nn.ModuleList(CDCM(w, dilation) for w in widths)
        if attention:
            self.attentions = nn.ModuleList(CSAM(side or w) for w in widths)
        self.conv_reduces = nn.ModuleList(MapReduce(side or w) for w in widths)
        self.classifier = nn.Conv2d(4, 1, 1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        x = self.init_block((x - self.mean) / self.std)
        sides = []
        for stage, blocks in enumerate(self.stage_blocks, start=1):
            for j in range(1, blocks + 1):
                x = getattr(self, f"block{stage}_{j}")(x)
            f = self.dilations[stage - 1](x) if hasattr(self, "dilations") else x
            f = self.attentions[stage - 1](f) if hasattr(self, "attentions") else f
            sides.append(F.interpolate(self.conv_reduces[stage - 1](f), (h, w), mode="bilinear", align_corners=False))
        return torch.sigmoid(self.classifier(torch.cat(sides, dim=1)))


def load_pidinet(path=None, device="cpu") -> PiDiNet:
    """The published PiDiNet (BSDS500, `table5_pidinet.pth`) from a path, the cache or its URL.
    DataParallel's `module.` prefix in the official file is removed."""
    from pluralfill.hub import load_checked, load_state_dict, resolve

    file = resolve("pidinet", path)
    state = {k.removeprefix("module."): v for k, v in load_state_dict(file).items()}
    return load_checked(PiDiNet(), state, f"{file} (pidinet)").to(device).eval()

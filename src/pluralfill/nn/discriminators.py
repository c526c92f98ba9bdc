"""Discriminators: the PatchGAN of PUT, the global-local one of MHTMA, the SN-PatchGAN of DSI."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from pluralfill.nn.padding import pad_same


class EdgeConnectDiscriminator(nn.Module):
    """The 70x70 PatchGAN of EdgeConnect (Nazeri et al. 2019) with spectral normalization, used by PUT
    (Liu et al. 2022, Eq. 5): five 4x4 convolutions without bias (3-64-128-256-512-1, strides 2, 2, 2, 1, 1),
    LeakyReLU 0.2, one logit per patch. Module names are the official ones (`conv1.0.weight_orig`, ...)."""

    def __init__(self, in_channels: int = 3, width: int = 64):
        super().__init__()
        w = width
        chans = [in_channels, w, 2 * w, 4 * w, 8 * w, 1]
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            conv = spectral_norm(nn.Conv2d(a, b, 4, stride=2 if i < 3 else 1, padding=1, bias=False))
            setattr(
                self,
                f"conv{i + 1}",
                nn.Sequential(conv, nn.LeakyReLU(0.2, inplace=True)) if i < 4 else nn.Sequential(conv),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            x = getattr(self, f"conv{i}")(x)
        return x


def hole_boxes(hole: torch.Tensor, size: int) -> list[tuple[int, int]]:
    """The top-left corner of a size x size window centred on each image's hole (its bounding box),
    kept inside the image. hole: (B, 1, H, W), 1 = missing."""
    corners = []
    _, _, h, w = hole.shape
    for m in hole[:, 0] > 0.5:
        ys, xs = torch.nonzero(m, as_tuple=True)
        cy, cx = (
            ((int(ys.min()) + int(ys.max()) + 1) // 2, (int(xs.min()) + int(xs.max()) + 1) // 2)
            if len(ys)
            else (h // 2, w // 2)
        )
        corners.append((min(max(0, cy - size // 2), h - size), min(max(0, cx - size // 2), w - size)))
    return corners


def crop(images: torch.Tensor, corners: list[tuple[int, int]], size: int) -> torch.Tensor:
    return torch.stack([im[:, y : y + size, x : x + size] for im, (y, x) in zip(images, corners)])


class GlobalLocalDiscriminator(nn.Module):
    """The global-local discriminator of MHTMA (Zhou et al. 2023, Fig. 2; after Iizuka et al. 2017): a global branch
    (6 convolutions + FC) sees the whole image, a local branch (5 convolutions + FC) a window of half the
    image's side centred on the hole; their features are concatenated and a last FC gives one logit.
    Convolutions are 5x5, stride 2, LeakyReLU 0.2; spectral normalization on every layer unless
    `spectral=False` (WGAN-GP, which constrains the critic with a gradient penalty instead)."""

    def __init__(self, resolution: int, width: int = 64, spectral: bool = True):
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)
        self.local_size = resolution // 2

        def branch(chans, side):
            layers = []
            for a, b in zip(chans[:-1], chans[1:]):
                layers += [sn(nn.Conv2d(a, b, 5, 2, 2)), nn.LeakyReLU(0.2, inplace=True)]
                side = (side + 1) // 2
            return nn.Sequential(*layers, nn.Flatten(), sn(nn.Linear(chans[-1] * side * side, 16 * width)))

        w = width
        self.global_branch = branch([3, w, 2 * w, 4 * w, 8 * w, 8 * w, 8 * w], resolution)
        self.local_branch = branch([3, w, 2 * w, 4 * w, 8 * w, 8 * w], self.local_size)
        self.head = sn(nn.Linear(32 * width, 1))

    def forward(self, images: torch.Tensor, corners: list[tuple[int, int]]) -> torch.Tensor:
        """(B, 3, R, R) images and their hole windows (from `hole_boxes`) -> (B, 1) logits."""
        local = crop(images, corners, self.local_size)
        f = torch.cat([self.global_branch(images), self.local_branch(local)], dim=1)
        return self.head(F.leaky_relu(f, 0.2))


class SNPatchGANDiscriminator(nn.Module):
    """DSI's texture discriminator (the official `texture_discriminator`, DeepFill v2's SN-PatchGAN): six 5x5
    stride-2 spectral-normalized convolutions (c, 2c, 4c, 4c, 4c, 4c), each followed by LeakyReLU 0.2, on the
    image and its hole; the last map flattened in (H, W, C) order, every entry a logit. TensorFlow's 'SAME'
    padding (1 top / left, 2 bottom / right). Spectral norm does one power iteration per call from the stored
    u (v = u W^T, u' = v W, sigma = v W u'^T), as torch.nn.utils.spectral_norm does in training mode."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        chans = [4, w, 2 * w, 4 * w, 4 * w, 4 * w, 4 * w]
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(a, b, 5, 2)) for a, b in zip(chans[:-1], chans[1:]))

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, hole], dim=1)
        for conv in self.convs:
            x = F.leaky_relu(conv(pad_same(x, 5, 2)), 0.2)
        return x.permute(0, 2, 3, 1).flatten(1)

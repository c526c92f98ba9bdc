"""VGG-16 / VGG-19 feature stacks with torchvision's key names (`features.N.weight`)."""

from __future__ import annotations

import torch
from torch import nn

CONFIGS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def layer_names(arch: str) -> list[str]:
    """The name of each entry of `features`: conv1_1, relu1_1, ..., pool1, ..."""
    names, block, conv = [], 1, 1
    for v in CONFIGS[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


class VGGFeatures(nn.Module):
    """The convolutional part of VGG; `forward(x, taps)` returns the named activations, in `taps` order.

    Only the layers up to the deepest tap are run. Inputs are ImageNet-normalized by the caller.
    """

    def __init__(self, arch: str = "vgg19"):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in CONFIGS[arch]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*layers)
        self.names = layer_names(arch)

    def forward(self, x: torch.Tensor, taps: tuple[str, ...]) -> list[torch.Tensor]:
        wanted = {self.names.index(t): t for t in taps}
        found: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                found[wanted[i]] = x
                if len(found) == len(wanted):
                    break
        return [found[t] for t in taps]

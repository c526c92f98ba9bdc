"""P-VQVAE (PUT, Liu et al. 2022, Table 1): a patch encoder without context between patches, a dual codebook, and a
multi-scale guided decoder whose reference branch reads the masked image.

    features = quant_conv(encoder(x * known - (1 - known)))        missing pixels are black (-1)
    tokens   = nearest code: e for fully known patches, e' for the rest
    image    = decoder(post_quant_conv(e[tokens]), reference = masked image, known)

Images are NCHW in [-1, 1]; `known` is (B, 1, H, W), 1 where the pixel is present. Ablations of section 4.1:
`encoder="conv"` (Table 2), `codebook="one"`, `reference=False`.

The TPAMI-2024 models (the authors' second generation) are configurations of the same network: a 9216-row
table (8192 known codes), two residual blocks in the decoder trunk and two after every up-sampling
(mirrored in the reference branch), nearest-neighbour up-sampling, 16 px patches at 512 px, and for the
ImageNet models inputs normalized by ImageNet's mean and std.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from pluralfill.models.base import Pretrained
from pluralfill.nn.quantizer import DualCodebook

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PVQVAEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: int = 256
    patch_size: int = 8
    channels: int = 256  # width of the encoder MLP and of the decoder trunk
    code_dim: int = 256
    num_codes: int = 1024  # e and e' together
    num_res_blocks: int = 8
    bottleneck: int = 2  # residual blocks narrow to channels // bottleneck
    encoder: Literal["patch", "conv"] = "patch"
    codebook: Literal["dual", "one"] = "dual"
    reference: bool = True
    ema_decay: float = 0.99
    restart_dead_codes: bool = True  # not in the paper: codes unused for a while move to current features
    data_init: bool = True  # not in the paper: the codebook starts as features of the first batch
    decoder_width: int = 64  # decoder/reference width at full size, doubling per stage up (official: 64)
    num_known_codes: int | None = None  # rows of e, the rest of the table is e' (None: half of num_codes)
    decoder_res_blocks: int | None = None  # residual blocks of the decoder trunk (None: num_res_blocks)
    stage_res_blocks: int = 0  # residual blocks after every up-sampling, mirrored in the reference branch (TPAMI: 2)
    upsample: Literal["deconv", "nearest"] = "deconv"  # TPAMI: nearest x2, then a 3x3 convolution
    normalization: Literal["symmetric", "imagenet"] = "symmetric"  # x in [-1, 1], or (x - mean) / std of ImageNet
    in_channels: int = 3  # 1: the one-channel guidance maps of PUT's conditional model (segmentation, sketch)

    @model_validator(mode="after")
    def _fits(self):
        if self.patch_size < 2 or self.patch_size & (self.patch_size - 1):
            raise ValueError(f"patch_size must be a power of two from 2, got {self.patch_size}")
        if self.resolution % self.patch_size or not 16 <= self.resolution <= 4096:
            raise ValueError(f"resolution must be a multiple of patch_size from 16 to 4096, got {self.resolution}")
        return self

    @property
    def stages(self) -> int:
        return int(math.log2(self.patch_size))

    @property
    def known_codes(self) -> int:
        if self.codebook == "one":
            return self.num_codes
        return self.num_known_codes if self.num_known_codes is not None else self.num_codes // 2

    @property
    def up_widths(self) -> list[int]:
        """Decoder widths after each up-sampling; 256, 128, 64 for patch 8, as the official code fixes them."""
        return [self.decoder_width * 2 ** (self.stages - 1 - i) for i in range(self.stages)]


def token_types(known: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, 1, H, W) known mask -> (B, H/p, W/p) types: 0 fully missing, 1 fully known, 2 partly missing."""
    frac = F.avg_pool2d(known.float(), patch_size)[:, 0]
    full = torch.isclose(frac, torch.ones_like(frac))
    return torch.where(full, 1, torch.where(frac == 0, 0, 2)).long()


def masked_input(x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The image a user gives: missing pixels set to black (-1)."""
    k = known.to(x.dtype)
    return x * k - (1 - k)


class LinearResBlock(nn.Module):
    """y = relu(x) + fc2(relu(fc1(relu(x)))): the official block applies its ReLU in place to the input,
    so the skip carries relu(x), not x."""

    def __init__(self, c: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, hidden), nn.Linear(hidden, c)

    def forward(self, x):
        x = F.relu(x)
        return x + self.fc2(F.relu(self.fc1(x)))


class ConvResBlock(nn.Module):
    """The same rule with convolutions: 3x3 then `k2`x`k2` (1 in the official decoder, 3 in Table 2)."""

    def __init__(self, c: int, hidden: int, k2: int = 1):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, hidden, 3, padding=1), nn.Conv2d(hidden, c, k2, padding=k2 // 2)

    def forward(self, x):
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class PatchEncoder(nn.Module):
    """Each non-overlapping p x p patch, flattened channel-major (c, i, j), through an MLP of its own."""

    def __init__(self, cfg: PVQVAEConfig):
        super().__init__()
        self.p = cfg.patch_size
        self.patch_in = nn.Linear(cfg.in_channels * self.p * self.p, cfg.channels)
        self.blocks = nn.ModuleList(
            LinearResBlock(cfg.channels, cfg.channels // cfg.bottleneck) for _ in range(cfg.num_res_blocks)
        )
        self.patch_out = nn.Linear(cfg.channels, cfg.channels)

    def forward(self, x):
        b, _, h, w = x.shape
        t = F.unfold(x, self.p, stride=self.p).transpose(1, 2)  # B, L, 3*p*p
        t = self.patch_in(t)
        for block in self.blocks:
            t = block(t)
        t = F.relu(self.patch_out(F.relu(t)))
        return t.transpose(1, 2).reshape(b, -1, h // self.p, w // self.p)


class ConvEncoder(nn.Module):
    """P-VQVAE^conv (Table 2): strided convolutions, so neighbouring patches mix."""

    def __init__(self, cfg: PVQVAEConfig):
        super().__init__()
        widths = [cfg.in_channels] + [64 * 2**i for i in range(cfg.stages - 1)] + [cfg.channels]
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.blocks = nn.ModuleList(
            ConvResBlock(cfg.channels, cfg.channels // cfg.bottleneck, k2=3) for _ in range(cfg.num_res_blocks)
        )
        self.conv_out = nn.Conv2d(cfg.channels, cfg.channels, 3, padding=1)

    def forward(self, x):
        for down in self.downs:
            x = F.relu(down(x))
        for block in self.blocks:
            x = block(x)
        return F.relu(self.conv_out(F.relu(x)))


def stage_blocks(widths: list[int], n: int) -> nn.ModuleList:
    """`n` residual blocks at each of `widths` (none when n = 0: the CVPR-2022 layout)."""
    return (
        nn.ModuleList(nn.ModuleList(ConvResBlock(c, c // 2) for _ in range(n)) for c in widths)
        if n
        else nn.ModuleList()
    )


class ReferenceEncoder(nn.Module):
    """The decoder's reference branch: features of the masked image at every decoder resolution, keyed by
    spatial size: a 3x3 conv, then (ReLU, 4x4 stride-2 conv) down to the token grid, with the decoder's
    residual blocks mirrored after each layer but the last."""

    def __init__(self, cfg: PVQVAEConfig):
        super().__init__()
        widths = [cfg.in_channels] + cfg.up_widths[::-1] + [cfg.channels]  # 3, 64, 128, 256, channels for patch 8
        convs = [nn.Conv2d(cfg.in_channels, widths[1], 3, padding=1)]
        convs += [nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[1:-1], widths[2:])]
        self.convs = nn.ModuleList(convs)
        self.blocks = stage_blocks(widths[1:-1], cfg.stage_res_blocks)

    def forward(self, x) -> dict[tuple[int, int], torch.Tensor]:
        feats = {}
        for i, conv in enumerate(self.convs):
            x = conv(x if i == 0 else F.relu(x))
            blocks = self.blocks[i] if i < len(self.blocks) else ()
            if blocks:  # official quirk: the next residual block's in-place ReLU rectifies the stored feature too
                x = F.relu(x)
            feats[tuple(int(n) for n in x.shape[-2:])] = x  # plain ints: also a key while traced for ONNX
            for block in blocks:
                x = block(x)
        return feats


class GuidedDecoder(nn.Module):
    """Multi-scale guided decoder: before each up-sampling, and once more at full size, known regions
    take the reference features: x = x * (1 - m) + ref * m, m the known mask resized by nearest."""

    def __init__(self, cfg: PVQVAEConfig):
        super().__init__()
        c = cfg.channels
        trunk = cfg.num_res_blocks if cfg.decoder_res_blocks is None else cfg.decoder_res_blocks
        self.conv_in = nn.Conv2d(c, c, 3, padding=1)
        self.blocks = nn.ModuleList(ConvResBlock(c, c // cfg.bottleneck, k2=1) for _ in range(trunk))
        widths = [c] + cfg.up_widths
        self.nearest = cfg.upsample == "nearest"
        if self.nearest:  # TPAMI: nearest x2, then a 3x3 conv
            self.ups = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        else:
            self.ups = nn.ModuleList(
                nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:])
            )
        self.stage_blocks = stage_blocks(cfg.up_widths, cfg.stage_res_blocks)
        self.conv_out = nn.Conv2d(widths[-1], cfg.in_channels, 3, padding=1)
        self.reference = ReferenceEncoder(cfg) if cfg.reference else None

    def trunk(self, z):
        x = self.conv_in(z)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(
        self, z, reference: torch.Tensor | None = None, known: torch.Tensor | None = None, refs: dict | None = None
    ):
        """`refs`: reference features computed beforehand (`self.reference(masked image)`), e.g. once for all
        samples of one image; they broadcast over the batch."""
        x = self.trunk(z)
        if refs is None and self.reference is not None and reference is not None:
            refs = self.reference(reference)
        for i, up in enumerate([*self.ups, None]):
            if refs is not None:
                size = tuple(int(n) for n in x.shape[-2:])
                m = F.interpolate(known.to(x.dtype), size=size, mode="nearest")
                x = x * (1 - m) + refs[size] * m
            if up is None:
                break
            x = F.relu(x)
            x = up(F.interpolate(x, scale_factor=2.0, mode="nearest") if self.nearest else x)
            for block in self.stage_blocks[i] if self.stage_blocks else ():
                x = block(x)
        return self.conv_out(F.relu(x))


class PVQVAE(Pretrained, nn.Module):
    method, config_class = "pvqvae", PVQVAEConfig

    def __init__(self, cfg: PVQVAEConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or PVQVAEConfig()
        self.encoder = PatchEncoder(cfg) if cfg.encoder == "patch" else ConvEncoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.channels, cfg.code_dim, 1)
        split = cfg.known_codes if cfg.codebook == "dual" else None
        self.quantizer = DualCodebook(
            cfg.num_codes,
            cfg.code_dim,
            split=split,
            decay=cfg.ema_decay,
            restart_dead_codes=cfg.restart_dead_codes,
            data_init=cfg.data_init,
        )
        self.post_quant_conv = nn.Conv2d(cfg.code_dim, cfg.channels, 1)
        self.decoder = GuidedDecoder(cfg)

    @property
    def num_known_codes(self) -> int:
        """Size of e: the vocabulary the transformer predicts."""
        return self.quantizer.split

    def token_types(self, known: torch.Tensor) -> torch.Tensor:
        return token_types(known, self.config.patch_size)

    def known_fraction(self, known: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) known mask -> (B, h, w): the fraction of each patch's pixels that are present."""
        return F.avg_pool2d(known.float(), self.config.patch_size)[:, 0]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> what the network reads (the same, or ImageNet-standardized for those models)."""
        if self.config.normalization == "symmetric":
            return x
        mean, std = (
            torch.tensor(v, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD)
        )
        return ((x + 1) / 2 - mean) / std

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        """What the decoder writes -> [-1, 1] images."""
        if self.config.normalization == "symmetric":
            return y
        mean, std = (
            torch.tensor(v, device=y.device, dtype=y.dtype).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD)
        )
        return (y * std + mean) * 2 - 1

    def encode(self, x: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Un-quantized features (B, code_dim, h, w) of the image with its missing pixels blacked out."""
        if known is not None:
            x = masked_input(x, known)
        return self.quant_conv(self.encoder(self.normalize(x)))

    def tokenize(self, features: torch.Tensor, types: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, h, w) features -> (B, h, w) code indices; `types` picks e or e' per position."""
        b, c, h, w = features.shape
        z = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        t = None if types is None else types.reshape(b, h * w)
        return self.quantizer.tokens(z, t).reshape(b, h, w)

    def decode(
        self,
        tokens: torch.Tensor,
        reference: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        share_reference: bool = False,
    ) -> torch.Tensor:
        """(B, h, w) tokens -> image in about [-1, 1]; `reference` is the masked image, `known` its mask.
        With `share_reference`, reference (1, 3, H, W) and known (1, 1, H, W) serve every token map: the
        reference branch runs once instead of B times."""
        z = self.quantizer.lookup(tokens).permute(0, 3, 1, 2)
        if reference is None or known is None:
            return self.denormalize(self.decoder(self.post_quant_conv(z)))
        reference = self.normalize(masked_input(reference, known))
        refs = self.decoder.reference(reference) if share_reference and self.decoder.reference is not None else None
        return self.denormalize(self.decoder(self.post_quant_conv(z), reference, known, refs=refs))

    def forward(self, x: torch.Tensor, known: torch.Tensor, erase: torch.Tensor | None = None):
        """Training pass as the official code runs it. The input is x with the pixels the erase mask m'
        drops set black (it is also the target); its token types come from m'; the decoder's reference is that
        input masked by m (`known`), blended in where m is 1. Returns (reconstruction, commitment loss, tokens,
        target), images in [-1, 1]."""
        target = masked_input(x, erase) if erase is not None else x
        f = self.encode(target)
        b, c, h, w = f.shape
        types = self.token_types(erase if erase is not None else torch.ones_like(known)).reshape(b, h * w)
        zq, tokens, commitment = self.quantizer(f.permute(0, 2, 3, 1).reshape(b, h * w, c), types)
        reference = self.normalize(masked_input(target, known))
        rec = self.decoder(self.post_quant_conv(zq.transpose(1, 2).reshape(b, c, h, w)), reference, known)
        return self.denormalize(rec), commitment, tokens.reshape(b, h, w), target

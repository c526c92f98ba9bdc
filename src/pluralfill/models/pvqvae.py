"""P-VQVAE (PUT, seed 000, Table 1): a patch encoder without context between patches, a dual codebook, and a
multi-scale guided decoder whose reference branch reads the masked image.

    features = quant_conv(encoder(x * known - (1 - known)))        missing pixels are black (-1)
    tokens   = nearest code: e for fully known patches, e' for the rest
    image    = decoder(post_quant_conv(e[tokens]), reference = masked image, known)

Images are NCHW in [-1, 1]; `known` is (B, 1, H, W), 1 where the pixel is present. Ablations of section 4.1:
`encoder="conv"` (Table 2), `codebook="one"`, `reference=False`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.models.base import Pretrained
from pluralfill.nn.quantizer import DualCodebook


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
    decoder_width: int = 64  # decoder/reference width at full size, doubling per stage up (official: 64)

    @property
    def stages(self) -> int:
        return int(math.log2(self.patch_size))

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
        self.patch_in = nn.Linear(3 * self.p * self.p, cfg.channels)
        self.blocks = nn.ModuleList(LinearResBlock(cfg.channels, cfg.channels // cfg.bottleneck) for _ in range(cfg.num_res_blocks))
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
        widths = [3] + [64 * 2**i for i in range(cfg.stages - 1)] + [cfg.channels]
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.blocks = nn.ModuleList(ConvResBlock(cfg.channels, cfg.channels // cfg.bottleneck, k2=3) for _ in range(cfg.num_res_blocks))
        self.conv_out = nn.Conv2d(cfg.channels, cfg.channels, 3, padding=1)

    def forward(self, x):
        for down in self.downs:
            x = F.relu(down(x))
        for block in self.blocks:
            x = block(x)
        return F.relu(self.conv_out(F.relu(x)))


class ReferenceEncoder(nn.Module):
    """The decoder's reference branch: features of the masked image at every decoder resolution,
    taken before their ReLU, keyed by spatial size."""

    def __init__(self, cfg: PVQVAEConfig):
        super().__init__()
        widths = [3] + cfg.up_widths[::-1] + [cfg.channels]  # 3, 64, 128, 256, channels for patch 8
        convs = [nn.Conv2d(3, widths[1], 3, padding=1)]
        convs += [nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[1:-1], widths[2:])]
        self.convs = nn.ModuleList(convs)

    def forward(self, x) -> dict[tuple[int, int], torch.Tensor]:
        feats = {}
        for i, conv in enumerate(self.convs):
            x = conv(x if i == 0 else F.relu(x))
            feats[tuple(x.shape[-2:])] = x
        return feats


class GuidedDecoder(nn.Module):
    """Multi-scale guided decoder: before each up-sampling, and once more at full size, known regions
    take the reference features: x = x * (1 - m) + ref * m, m the known mask resized by nearest."""

    def __init__(self, cfg: PVQVAEConfig):
        super().__init__()
        c = cfg.channels
        self.conv_in = nn.Conv2d(c, c, 3, padding=1)
        self.blocks = nn.ModuleList(ConvResBlock(c, c // cfg.bottleneck, k2=1) for _ in range(cfg.num_res_blocks))
        widths = [c] + cfg.up_widths
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.conv_out = nn.Conv2d(widths[-1], 3, 3, padding=1)
        self.reference = ReferenceEncoder(cfg) if cfg.reference else None

    def trunk(self, z):
        x = self.conv_in(z)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, z, reference: torch.Tensor | None = None, known: torch.Tensor | None = None, refs: dict | None = None):
        """`refs`: reference features computed beforehand (`self.reference(masked image)`), e.g. once for all
        samples of one image; they broadcast over the batch."""
        x = self.trunk(z)
        if refs is None and self.reference is not None and reference is not None:
            refs = self.reference(reference)
        for up in [*self.ups, None]:
            if refs is not None:
                size = tuple(x.shape[-2:])
                m = F.interpolate(known.to(x.dtype), size=size, mode="nearest")
                x = x * (1 - m) + refs[size] * m
            if up is not None:
                x = up(F.relu(x))
        return self.conv_out(F.relu(x))


class PVQVAE(Pretrained, nn.Module):
    method, config_class = "pvqvae", PVQVAEConfig

    def __init__(self, cfg: PVQVAEConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or PVQVAEConfig()
        self.encoder = PatchEncoder(cfg) if cfg.encoder == "patch" else ConvEncoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.channels, cfg.code_dim, 1)
        split = cfg.num_codes // 2 if cfg.codebook == "dual" else None
        self.quantizer = DualCodebook(cfg.num_codes, cfg.code_dim, split=split, decay=cfg.ema_decay,
                                      restart_dead_codes=cfg.restart_dead_codes)  # fmt: skip
        self.post_quant_conv = nn.Conv2d(cfg.code_dim, cfg.channels, 1)
        self.decoder = GuidedDecoder(cfg)

    @property
    def num_known_codes(self) -> int:
        """Size of e: the vocabulary the transformer predicts."""
        return self.quantizer.split

    def token_types(self, known: torch.Tensor) -> torch.Tensor:
        return token_types(known, self.config.patch_size)

    def encode(self, x: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Un-quantized features (B, code_dim, h, w) of the image with its missing pixels blacked out."""
        if known is not None:
            x = masked_input(x, known)
        return self.quant_conv(self.encoder(x))

    def tokenize(self, features: torch.Tensor, types: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, h, w) features -> (B, h, w) code indices; `types` picks e or e' per position."""
        b, c, h, w = features.shape
        z = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        t = None if types is None else types.reshape(b, h * w)
        return self.quantizer.tokens(z, t).reshape(b, h, w)

    def decode(self, tokens: torch.Tensor, reference: torch.Tensor | None = None, known: torch.Tensor | None = None,
               share_reference: bool = False) -> torch.Tensor:  # fmt: skip
        """(B, h, w) tokens -> image in about [-1, 1]; `reference` is the masked image, `known` its mask.
        With `share_reference`, reference (1, 3, H, W) and known (1, 1, H, W) serve every token map: the
        reference branch runs once instead of B times."""
        z = self.quantizer.lookup(tokens).permute(0, 3, 1, 2)
        if reference is None or known is None:
            return self.decoder(self.post_quant_conv(z))
        reference = masked_input(reference, known)
        refs = self.decoder.reference(reference) if share_reference and self.decoder.reference is not None else None
        return self.decoder(self.post_quant_conv(z), reference, known, refs=refs)

    def forward(self, x: torch.Tensor, known: torch.Tensor, known_ref: torch.Tensor | None = None):
        """Training pass (seed 000, section 2): encode x * m, quantize, decode with the reference masked by
        m * m'. Returns (reconstruction of the masked input, commitment loss, tokens)."""
        f = self.encode(x, known)
        b, c, h, w = f.shape
        types = self.token_types(known).reshape(b, h * w)
        zq, tokens, commitment = self.quantizer(f.permute(0, 2, 3, 1).reshape(b, h * w, c), types)
        ref_known = known if known_ref is None else known * known_ref
        rec = self.decoder(self.post_quant_conv(zq.transpose(1, 2).reshape(b, c, h, w)), masked_input(x, ref_known), ref_known)
        return rec, commitment, tokens.reshape(b, h, w)

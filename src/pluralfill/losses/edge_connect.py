"""PUT's stage-1 loss as the official code computes it (`EdgeConnectLoss` of the cvpr2022 branch, nsgan).

Images enter in [0, 1] (the decoder's [-1, 1] output clamped and rescaled); VGG-19 reads them without
ImageNet normalization. With M = 1 - m the hole of the reference mask (B, 1, H, W):

    pixel          = mean|rec - x| / mean(M)                      all pixels over the batch's hole fraction
    gradient       = 5 * (mean| |Dx rec| - |Dx x| | + mean| |Dy rec| - |Dy x| |) / 2      absolute differences
    perceptual     = 0.1 * sum_l mean|phi_l(rec) - phi_l(x)|        relu1_1 ... relu5_1
    style          = 250 * sum_l mean|G(phi_l(rec M)) - G(phi_l(x M))|   relu2_2, 3_4, 4_4, 5_2: the hole only
    adversarial    = 0.1 * BCE(D(rec), 1)                         D sees [0, 1] images here ...
    D's own loss   = (BCE(D(x), 1) + BCE(D(rec_raw), 0)) / 2       ... and [-1, 1], unclamped, in its own step

Every term but the reconstruction waits for `start_step`; the quantizer's loss is added by the caller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pluralfill.losses.perceptual import PERCEPTUAL_LAYERS, STYLE_LAYERS, gram
from pluralfill.nn.vgg import VGGFeatures


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped, through the 0..255 scale as the official post-processing goes."""
    return ((x + 1) * 127.5).clamp(0, 255) / 255


def absolute_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|x[.., j+1] - x[.., j]| and |x[i+1, ..] - x[i, ..]|, zero in the last column / row (which still count
    in the mean, as the official ImageGradientLoss pads them)."""
    dx, dy = torch.zeros_like(x), torch.zeros_like(x)
    dx[..., :, :-1] = (x[..., :, 1:] - x[..., :, :-1]).abs()
    dy[..., :-1, :] = (x[..., 1:, :] - x[..., :-1, :]).abs()
    return dx, dy


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE of sigmoid(logits) against a constant label. The official code applies nn.BCELoss to the
    probabilities; on logits it is the same up to float rounding (its log clamp at -100 never binds here)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class EdgeConnectLoss(nn.Module):
    """The terms of PUT's stage 1. `vgg`: a VGG-19 trunk (frozen here), or None to train without the
    perceptual and style terms."""

    def __init__(
        self,
        vgg: VGGFeatures | None,
        pixel: float = 1.0,
        gradient: float = 5.0,
        perceptual: float = 0.1,
        style: float = 250.0,
        adversarial: float = 0.1,
        start_step: int = 5000,
    ):
        super().__init__()
        self.vgg = vgg.requires_grad_(False).eval() if vgg is not None else None
        self.weights = {
            "pixel": pixel,
            "gradient": gradient,
            "perceptual": perceptual,
            "style": style,
            "adversarial": adversarial,
        }
        self.start_step = start_step

    def train(self, mode: bool = True):
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()  # never in training mode
        return self

    def terms(
        self, rec_raw: torch.Tensor, x: torch.Tensor, known: torch.Tensor, step: int, disc=None
    ) -> dict[str, torch.Tensor]:
        """Weighted terms of the generator loss. rec_raw: the decoder's output, x: the target, both [-1, 1];
        known: the reference mask m (B, 1, H, W), 1 = known; disc(images) -> logits, or None."""
        rec01, x01 = to_unit(rec_raw), to_unit(x)
        hole = 1 - known.to(rec01.dtype)
        w, late = self.weights, step >= self.start_step
        # the batch's hole fraction; guarded for a batch without holes, which the official masks never give
        out = {"pixel": w["pixel"] * (rec01 - x01).abs().mean() / hole.mean().clamp(min=1e-8)}
        if late:
            (rx, ry), (xx, xy) = absolute_gradients(rec01), absolute_gradients(x01)
            out["gradient"] = w["gradient"] * 0.5 * ((rx - xx).abs().mean() + (ry - xy).abs().mean())
            if self.vgg is not None:
                fr, fx = (dict(zip(PERCEPTUAL_LAYERS, self.vgg(t, PERCEPTUAL_LAYERS))) for t in (rec01, x01))
                out["perceptual"] = w["perceptual"] * sum((fr[k] - fx[k]).abs().mean() for k in PERCEPTUAL_LAYERS)
                sr, sx = (dict(zip(STYLE_LAYERS, self.vgg(t * hole, STYLE_LAYERS))) for t in (rec01, x01))
                out["style"] = w["style"] * sum((gram(sr[k]) - gram(sx[k])).abs().mean() for k in STYLE_LAYERS)
            if disc is not None:
                out["adversarial"] = w["adversarial"] * bce(disc(rec01), 1.0)
        return out

    def discriminator_loss(self, disc, x: torch.Tensor, rec_raw: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The discriminator's step: real and fake in [-1, 1], the fake unclamped and detached (official quirk:
        its step overwrites the [0, 1] images it computed with the raw ones). Before `start_step` the real
        image still passes through D once (so spectral norm advances), at zero weight."""
        real = bce(disc(x), 1.0)
        if step < self.start_step:
            return {"loss": 0 * real}
        fake = bce(disc(rec_raw.detach()), 0.0)
        return {"real": real, "fake": fake, "loss": (real + fake) / 2}

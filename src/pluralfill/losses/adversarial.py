"""Adversarial losses on discriminator logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(x_fake)), the standard GAN objective of seed 000 Eq. 5."""
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def bce_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(x_fake)."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def hinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()

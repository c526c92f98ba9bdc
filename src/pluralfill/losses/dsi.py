"""DSI's training losses as the official scripts compute them (Peng et al. 2021, A-B).

    VQ-VAE:     mean((x - x_hat)^2) + 0.25 (commit_top + commit_bottom)
    structure:  sum over positions (and the batch) of -log p(code | codes before, masked image)
    texture:    generator = -mean D(completed) + mean|x - out| + 0.1 (feature_top + feature_bottom)
                discriminator = 0.5 mean relu(1 - D(x)) + 0.5 mean relu(1 + D(completed))
    feature(f, codes, E): d = squared distances of each feature to the K codes, s = -tanh((d - mean) / std)
                over the codes (population std), cross-entropy of 10 s against the true code, mean over positions

`completed` = out * hole + x * (1 - hole); the VQ-VAE's encoder reads it for the feature loss, which asks the
completed image to have the structure (top codes) and texture (bottom codes) the generator was given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_scores(features: torch.Tensor, codebook: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """features (..., D), codebook (K, D) -> logits (..., K): distances standardized over the codebook,
    squashed by -tanh, times `scale`, so a compact codebook is scored like a spread one."""
    d = features.pow(2).sum(-1, keepdim=True) - 2 * features @ codebook.t() + codebook.pow(2).sum(-1)
    mean, var = d.mean(-1, keepdim=True), d.var(-1, keepdim=True, correction=0)
    return -scale * torch.tanh((d - mean) / var.sqrt())


def feature_loss(features: torch.Tensor, codes: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """features (B, D, h, w) from the VQ-VAE's encoder, codes (B, h, w) the true ones."""
    logits = feature_scores(features.permute(0, 2, 3, 1), codebook)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))


def structure_nll(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """logits (B, K, S, S), codes (B, S, S) -> the cross-entropy at every position (B, S, S)."""
    return F.cross_entropy(logits, codes, reduction="none")


def texture_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * F.relu(1 - real).mean() + 0.5 * F.relu(1 + fake).mean()

"""Poly-1 loss (Leng et al. 2022), the token loss of PUT's TPAMI transformer: cross-entropy plus
epsilon * (1 - p_target), averaged over the positions given."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def poly_loss(logits: torch.Tensor, target: torch.Tensor, epsilon: float = 1.0) -> dict[str, torch.Tensor]:
    """(N, V) logits, (N,) targets -> {"loss", "ce_loss", "poly_n_loss"}, each a mean over the N positions;
    epsilon = 0 is plain cross-entropy."""
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    poly = epsilon * (1 - torch.softmax(logits.float(), -1).gather(-1, target[:, None])[:, 0])
    return {"loss": (ce + poly).mean(), "ce_loss": ce.mean(), "poly_n_loss": poly.mean()}

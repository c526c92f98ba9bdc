"""Codebooks learned by exponential moving averages (VQ-VAE-2).

- `DualCodebook`, PUT's: one table of `num_codes` rows, e (rows [0, split)) for fully known patches and e'
  (rows [split, num_codes)) for patches with any missing pixel, each updated by EMA (Liu et al. 2022, Eq. 2).
  Buffers keep the official names (`embedding`, `cluster_size`, `embedding_avg`) so checkpoints map 1:1.
- `DebiasedCodebook`, DSI's: one table whose running counts and sums are TensorFlow's zero-debiased moving
  averages, as the official code's `assign_moving_average` keeps them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def code_counts_and_sums(z: torch.Tensor, tokens: torch.Tensor, num_codes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How many features (..., dim) each code took and their sum, over every process of a DDP run."""
    z, tokens = z.reshape(-1, z.shape[-1]).float(), tokens.reshape(-1)
    onehot = F.one_hot(tokens, num_codes).type_as(z)
    counts, sums = onehot.sum(0), onehot.t() @ z
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(counts)
        torch.distributed.all_reduce(sums)
    return counts, sums


KNOWN = 1  # token types, as the official code numbers them: 0 fully missing, 1 fully known, 2 partly missing


class DualCodebook(nn.Module):
    def __init__(
        self,
        num_codes: int = 1024,
        dim: int = 256,
        split: int | None = 512,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_dead_codes: bool = True,
        dead_threshold: float = 0.5,
        data_init: bool = True,
    ):
        super().__init__()
        self.num_codes, self.dim, self.decay, self.eps = num_codes, dim, decay, eps
        self.restart_dead_codes, self.dead_threshold, self.data_init = restart_dead_codes, dead_threshold, data_init
        self.split = num_codes if split is None else split  # split == num_codes: one codebook (ablation)
        self.register_buffer("embedding", torch.randn(num_codes, dim) * 0.1)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embedding_avg", self.embedding.clone())

    def distance(self, z: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., num_codes) squared Euclidean distance |z|^2 + |e|^2 - 2 z.e."""
        e = self.embedding
        return z.pow(2).sum(-1, keepdim=True) + e.pow(2).sum(-1) - 2 * z @ e.t()

    def tokens(self, z: torch.Tensor, token_type: torch.Tensor | None = None) -> torch.Tensor:
        """Nearest code of each (..., dim) feature: known tokens search e, the others e'."""
        d = self.distance(z)
        if token_type is None or self.split == self.num_codes:
            known = torch.ones(d.shape[:-1], dtype=torch.bool, device=d.device)
        else:
            known = token_type == KNOWN
        in_e = d[..., : self.split].argmin(-1)
        in_e_masked = d[..., self.split :].argmin(-1) + self.split if self.split < self.num_codes else in_e
        return torch.where(known, in_e, in_e_masked)

    def lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.embedding)

    def _halves(self, types: torch.Tensor | None):
        """(rows of the table, mask of the features that may fill them) for e and e'."""
        if types is None or self.split == self.num_codes:
            return [(slice(0, self.num_codes), None)]
        return [(slice(0, self.split), types == KNOWN), (slice(self.split, self.num_codes), types != KNOWN)]

    @torch.no_grad()
    def _fill_from(self, z: torch.Tensor, types: torch.Tensor | None, only_dead: bool) -> None:
        """Set codes to randomly chosen current features: all codes at the first training step (a
        codebook drawn at random collapses onto a few codes), later the codes nobody has used for a
        while (dead-code restart). Neither is in the paper; both keep e and e' in use."""
        z = z.reshape(-1, self.dim).float()
        flat_types = None if types is None else types.reshape(-1)
        for rows, allowed in self._halves(flat_types):
            pool = z if allowed is None else z[allowed]
            if len(pool) == 0:
                continue
            target = torch.arange(self.num_codes, device=z.device)[rows]
            if only_dead:
                target = target[self.cluster_size[rows] < self.dead_threshold]
            if len(target) == 0:
                continue
            pick = pool[torch.randint(len(pool), (len(target),), device=z.device)]
            self.embedding[target] = pick
            self.embedding_avg[target] = pick
            self.cluster_size[target] = 1.0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for buf in (self.embedding, self.embedding_avg, self.cluster_size):
                torch.distributed.broadcast(buf, 0)

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, tokens: torch.Tensor) -> None:
        """Eq. 2: running counts and sums per code, with Laplace smoothing so no count reaches zero."""
        counts, sums = code_counts_and_sums(z, tokens, self.num_codes)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embedding_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.embedding.copy_(self.embedding_avg / size.unsqueeze(1))

    def forward(self, z: torch.Tensor, token_type: torch.Tensor | None = None):
        """z: (B, L, dim). Returns (straight-through quantized z, tokens, commitment loss)."""
        if self.training and self.data_init and self.cluster_size.sum() == 0:  # first training step
            self._fill_from(z.detach(), token_type, only_dead=False)
        tokens = self.tokens(z, token_type)
        zq = self.lookup(tokens)
        if self.training:
            self.ema_update(z.detach(), tokens)
            if self.restart_dead_codes:
                self._fill_from(z.detach(), token_type, only_dead=True)
        commitment = F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), tokens, commitment


class DebiasedCodebook(nn.Module):
    """The official DSI quantizer. Nearest code by |z|^2 - 2 z.e + |e|^2 (first index on ties); the
    commitment term mean((sg(q) - z)^2) is returned unweighted (DSI weighs it 0.25) and there is no
    codebook term: in training the counts N and sums m of the features each code takes are averaged with
    zero-debiasing (biased_t = d biased + (1 - d) x, value = biased_t / (1 - d^t), so the first batch sets
    them outright), then e = m / N' with N' = (N + eps) / (n + K eps) n, n = sum N. The codes start N(0, 1).
    (Codes set to the first batch's features instead made a small model's top latent collapse onto 3 codes.)"""

    def __init__(self, num_codes: int = 512, dim: int = 64, decay: float = 0.99, eps: float = 1e-5):
        super().__init__()
        self.num_codes, self.dim, self.decay, self.eps = num_codes, dim, decay, eps
        self.register_buffer("embedding", torch.randn(num_codes, dim))
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embedding_avg", self.embedding.clone())
        self.register_buffer("cluster_size_biased", torch.zeros(num_codes))
        self.register_buffer("embedding_avg_biased", torch.zeros(num_codes, dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def distance(self, z: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., num_codes) squared distances, summed as the official code sums them."""
        e = self.embedding
        return z.pow(2).sum(-1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(-1)

    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        return self.distance(z).argmin(-1)

    def lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.embedding)

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, tokens: torch.Tensor) -> None:
        counts, sums = code_counts_and_sums(z, tokens, self.num_codes)
        self.updates += 1
        debias = 1 - self.decay ** int(self.updates)
        for biased, value, new in (
            (self.cluster_size_biased, self.cluster_size, counts),
            (self.embedding_avg_biased, self.embedding_avg, sums),
        ):
            biased.sub_((biased - new) * (1 - self.decay))
            value.copy_(biased / debias)
        n = self.cluster_size.sum()
        size = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.embedding.copy_(self.embedding_avg / size.unsqueeze(1))

    def forward(self, z: torch.Tensor):
        """z (..., dim) -> (straight-through z + sg(q - z), tokens, mean((sg(q) - z)^2)); in training the
        codebook then moves (the returned q is the one before the update, as in the official graph)."""
        tokens = self.tokens(z)
        zq = self.lookup(tokens)
        commitment = F.mse_loss(z, zq.detach())
        if self.training:
            self.ema_update(z.detach(), tokens)
        return z + (zq - z).detach(), tokens, commitment

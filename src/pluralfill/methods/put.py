"""PUT as an Inpainter: crop around the hole, encode the known region once, sample N token maps in one
batch with Algorithm 1, decode each with the masked image as reference, paste back at full size."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pluralfill.methods.base import Inpainter, square_window, sample_seed
from pluralfill.models.put import PUT
from pluralfill.sampling.put import sample_put


def to_tensor(image: np.ndarray, device) -> torch.Tensor:
    """uint8 HxWx3 -> (1, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.float32)).to(device).permute(2, 0, 1)[None] / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> N x H x W x 3 uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class PUTInpainter(Inpainter):
    name = "put"

    def __init__(self, model: PUT, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.resolution = model.config.pvqvae.resolution
        self.name = model.config.name

    @classmethod
    def from_pretrained(cls, folder, device: str = "cpu") -> "PUTInpainter":
        return cls(PUT.from_pretrained(folder, device), device)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, known: torch.Tensor, seeds: list[int], top_k: int | None = 50,
               temperature: float = 1.0, tokens_per_step: int = 1, position_by: str = "probability") -> torch.Tensor:  # fmt: skip
        """x (1, 3, R, R) in [-1, 1], known (1, 1, R, R) -> (len(seeds), 3, R, R) completions."""
        pvqvae, n = self.model.pvqvae, len(seeds)
        features = pvqvae.encode(x, known)  # once for all samples
        b, c, h, w = features.shape
        types = pvqvae.token_types(known)
        tokens = pvqvae.tokenize(features, types).reshape(1, h * w)
        seq = features.permute(0, 2, 3, 1).reshape(1, h * w, c)
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        out = sample_put(
            self.model.transformer, pvqvae.quantizer.embedding, seq.expand(n, -1, -1), tokens.expand(n, -1),
            (types == 1).reshape(1, h * w).expand(n, -1), generators, top_k=top_k, temperature=temperature,
            tokens_per_step=tokens_per_step, position_by=position_by,
        )  # fmt: skip
        return pvqvae.decode(out.reshape(n, h, w), x.expand(n, -1, -1, -1), known.expand(n, -1, -1, -1))

    def _fill(self, image, hole, num_samples, seed, top_k: int | None = 50, temperature: float = 1.0,
              tokens_per_step: int = 1, position_by: str = "probability", batch_size: int = 8):  # fmt: skip
        box = square_window(hole, self.resolution)
        crop, crop_hole = box(image), box(hole)
        size = (self.resolution, self.resolution)
        x = F.interpolate(to_tensor(crop, self.device), size=size, mode="bicubic", align_corners=False).clamp(-1, 1)
        # a low-resolution pixel is missing if any pixel it covers is
        h = torch.from_numpy(crop_hole).float()[None, None]
        h = F.interpolate(h, size=(max(h.shape[2], size[0]), max(h.shape[3], size[1])), mode="nearest")
        missing = F.adaptive_max_pool2d(h, size)
        known = (1 - missing).to(self.device)
        seeds = [sample_seed(seed, i) for i in range(num_samples)]
        samples = []
        for i in range(0, num_samples, batch_size):
            y = self.sample(x, known, seeds[i : i + batch_size], top_k, temperature, tokens_per_step, position_by)
            if y.shape[-2:] != crop.shape[:2]:
                y = F.interpolate(y, size=crop.shape[:2], mode="bicubic", align_corners=False)
            for filled in to_uint8(y):
                out = image.copy()
                region = out[box.y0 : box.y1, box.x0 : box.x1]
                region[crop_hole] = filled[crop_hole]
                samples.append(out)
        return samples

    def describe(self) -> dict:
        return {"name": self.name, "method": "put", "resolution": self.resolution, "parameters": self.model.parameter_counts()}

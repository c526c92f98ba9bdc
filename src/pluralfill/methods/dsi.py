"""DSI as an Inpainter (Peng et al. 2021): the codes of the top latent are sampled in raster order by the structure
generator (with its caches by default), the texture generator paints the hole from the sampled structure.
The per-position entropy of the structure distribution can be kept for a heat map.

Which positions are sampled (`positions`): "all", as the official test.py (from an empty map, the known
region's codes too; the composite keeps the known pixels anyway), or "hole": the known region keeps the codes
the VQ-VAE's encoder gives the masked image, and only positions whose 8x8 cell touches the hole are sampled
(fewer steps; the structure around the hole is the photo's own). The model's config sets the default:
"all" for converted official models."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from pluralfill.errors import PluralfillError
from pluralfill.geometry import token_hole
from pluralfill.grid import grid_rows, masked_view
from pluralfill.methods.base import Network
from pluralfill.methods.fixed_resolution import FixedResolutionInpainter
from pluralfill.methods.options import TokenSampling, Windowed, option
from pluralfill.models.dsi import DSI
from pluralfill.nn.weight_norm import frozen_weights
from pluralfill.pixels import to_uint8
from pluralfill.sampling.autoregressive import sample_raster
from pluralfill.sampling.base import randomness


def entropy_image(masked: np.ndarray, entropy: np.ndarray, max_bits: float):
    """The masked input and the entropy map side by side, with a colour bar (Peng et al. 2021, Figure 9)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.3), dpi=110)
    axes[0].imshow(masked)
    axes[0].set_title("input")
    shown = axes[1].imshow(entropy, cmap="inferno", vmin=0, vmax=max_bits, interpolation="nearest")
    axes[1].set_title("structure entropy (bits)")
    for ax in axes:
        ax.axis("off")
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    fig.tight_layout()
    fig.canvas.draw()
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return image


class DSIOptions(Windowed, TokenSampling):
    cache: bool = option(True, "reuse the structure sampler's keys and values between positions (same numbers, faster)")
    entropy: bool = option(False, "also return the structure sampler's entropy per position, as a map")
    dilate: int = option(1, "positions='hole': grow the hole by this many tokens before sampling", ge=0, le=8)
    positions: Literal["all", "hole"] | None = option(
        None, "sample the structure at all positions (the official sampler) or only inside the hole; empty: the model's"
    )


class DSIInpainter(FixedResolutionInpainter):
    model_class, Options, pictures = DSI, DSIOptions, ("trace", "entropy")
    uncertainty = "entropy"
    records_extras = True  # entropy=True: "entropy" (a picture), "entropy_bits" (side, side) and "entropy_max"

    def __init__(self, model: DSI, device: str | torch.device = "cpu"):
        if model.texture is None:
            raise PluralfillError(
                f"{model.config.name} has no texture generator yet: train the dsi-texture stage with first_stage= this "
                f"run"
            )
        super().__init__(model, device)
        self.resolution = model.config.resolution

    @torch.no_grad()
    def sample(self, x, known, seeds, trace=None, extras: dict | None = None, **options):
        """x (1, 3, R, R) in [-1, 1], known (1, 1, R, R) -> (len(seeds), 3, R, R). `seeds`: one per sample, or a
        sampling.base.Randomness. `options`: DSIOptions."""
        o = self.options(**options)
        n, m = len(seeds), self.model
        positions = o.positions or m.config.positions
        hole = 1 - known
        masked = x * known
        side = m.config.structure.side
        if positions == "all":
            tokens = torch.zeros(1, side * side, dtype=torch.long, device=self.device)
            unknown = torch.ones(side * side, dtype=torch.bool, device=self.device)
        else:
            tokens = m.hvqvae.encode_top(masked).reshape(1, -1)
            unknown = token_hole(known, self.resolution // side, o.dilate)[0]
        cond = m.structure.condition(masked, hole).expand(n, -1, -1, -1)
        bits = torch.zeros(unknown.shape[0], device=self.device) if o.entropy else None
        codebook = m.hvqvae.quantize_top.embedding
        codes = sample_raster(
            m.structure,
            cond,
            codebook,
            tokens.expand(n, -1),
            unknown,
            randomness(seeds, self.device),
            o.top_k,
            o.temperature,
            o.cache,
            bits,
            trace=trace,
        )
        if bits is not None and extras is not None:
            shown = masked_view(to_uint8(x[0]), (hole[0, 0] > 0.5).cpu().numpy())
            top = math.log2(m.config.structure.num_codes)
            extras["entropy_bits"], extras["entropy_max"] = bits.reshape(side, side).cpu().numpy(), top
            extras["entropy"] = entropy_image(shown, extras["entropy_bits"], top)
        structure = m.hvqvae.top_vectors(codes.reshape(n, side, side))
        return m.texture(masked.expand(n, -1, -1, -1), hole.expand(n, -1, -1, -1), structure)

    def _probe(self, x, known, tokens):
        m, side = self.model, self.model.config.structure.side
        masked, hole = x * known, 1 - known
        if tokens is None:  # the image's own structure
            tokens = m.hvqvae.encode_top(x).reshape(x.shape[0], -1)
        codebook = m.hvqvae.quantize_top.embedding
        e = codebook[tokens].transpose(1, 2).reshape(x.shape[0], -1, side, side)
        with frozen_weights(m.structure):  # one teacher-forced pass: the logits at every position
            logits = (
                m.structure(e, m.structure.condition(masked, hole))
                .permute(0, 2, 3, 1)
                .reshape(x.shape[0], side * side, -1)
            )
        structure = m.hvqvae.top_vectors(tokens.reshape(-1, side, side))
        return {
            "tokens": tokens,
            "logits": logits,
            "hidden": token_hole(known, self.resolution // side, 0),
            "image": m.texture(masked, hole, structure),
        }

    @torch.no_grad()
    def export_networks(self, batch: int = 2) -> dict[str, Network]:
        """The VQ-VAE's top encoder, the structure generator's condition and pass, and the texture generator."""
        m, (x, known) = self.model, self._example(batch)
        h, s, side = m.hvqvae, m.structure, m.config.structure.side
        masked, hole = x * known, 1 - known
        e = h.top_vectors(h.encode_top(x).reshape(batch, side, side))
        cond = s.condition(masked, hole)
        return {
            "hvqvae_encoder": Network(m, lambda v: h.encode_top(v).reshape(v.shape[0], side, side), {"x": x}, "codes"),
            "structure_condition": Network(m, s.condition, {"masked": masked, "hole": hole}, "condition"),
            "structure": Network(m, lambda v, c: s(v, c), {"code_vectors": e, "condition": cond}, "logits"),
            "texture": Network(m, m.texture, {"masked": masked, "hole": hole, "structure": e}, "image"),
        }

    def trace_strip(self, x, known, trace):
        """The input and sample 0's structure: each top-latent code drawn in a colour of its own."""
        side = self.model.config.structure.side
        codes = trace[-1].tokens[0].reshape(side, side)
        hole = known[0, 0].cpu().numpy() < 0.5
        palette = np.random.default_rng(0).integers(0, 256, (self.model.config.structure.num_codes, 3), dtype=np.uint8)
        cell = self.resolution // codes.shape[0]
        structure = palette[codes.cpu().numpy()].repeat(cell, 0).repeat(cell, 1)
        return grid_rows([[masked_view(to_uint8(x[0]), hole), structure]])

"""DSI (Peng et al., CVPR 2021) as the official code builds it: the hierarchical VQ-VAE, the
diverse structure generator and the texture generator as one model. Trained in three stages (`dsi-hvqvae`,
`dsi-structure`, `dsi-texture`); the model exported by the structure stage has no texture generator yet
(`texture` is None). `pretrained.dsi_official` reads the authors' TensorFlow checkpoints into it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from pluralfill.models.base import Pretrained
from pluralfill.models.hvqvae import HVQVAE, HVQVAEConfig
from pluralfill.models.structure_generator import StructureGenerator, StructureGeneratorConfig
from pluralfill.models.texture_generator import TextureGenerator, TextureGeneratorConfig


class DSIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "dsi"
    hvqvae: HVQVAEConfig = HVQVAEConfig()
    structure: StructureGeneratorConfig = StructureGeneratorConfig()
    texture: TextureGeneratorConfig | None = TextureGeneratorConfig()
    disc_width: int = 64  # nr_channel_dis_t (training only)
    # which top-latent positions inference samples: "all" as the official test.py (from an empty map, the
    # known region too), "hole" keeps the codes the encoder gives the known region and samples the rest
    positions: Literal["all", "hole"] = "hole"

    @model_validator(mode="after")
    def _check(self):
        v, s = self.hvqvae, self.structure
        if (s.side, s.num_codes, s.code_dim) != (v.top_side, v.num_codes, v.code_dim):
            raise ValueError(
                f"the structure generator (side {s.side}, {s.num_codes} codes of {s.code_dim}) must read the VQ-VAE's "
                f"top latent (side {v.top_side}, {v.num_codes} codes of {v.code_dim})"
            )
        if self.texture is not None and self.texture.code_dim != v.code_dim:
            raise ValueError(f"texture.code_dim ({self.texture.code_dim}) must be the VQ-VAE's code_dim ({v.code_dim})")
        return self

    @property
    def resolution(self) -> int:
        return self.hvqvae.resolution


def dsi_tiny_config() -> DSIConfig:
    """64 px: an 8x8 top latent of 128 codes; a few layers. Trains on a laptop CPU in minutes."""
    return DSIConfig(
        name="dsi-tiny",
        hvqvae=HVQVAEConfig(resolution=64, hidden=64, residual=32, num_codes=128, code_dim=32),
        structure=StructureGeneratorConfig(
            side=8,
            num_codes=128,
            code_dim=32,
            channels=64,
            res_channels=64,
            num_resnets=4,
            num_attention=2,
            num_heads=4,
            num_out_resnets=2,
            cond_channels=8,
            cond_res_channels=8,
        ),
        texture=TextureGeneratorConfig(width=16, code_dim=32),
        disc_width=16,
    )


CONFIGS: dict[str, DSIConfig] = {"dsi": DSIConfig(), "dsi-tiny": dsi_tiny_config()}


class DSI(Pretrained, nn.Module):
    method, config_class = "dsi", DSIConfig

    def __init__(self, cfg: DSIConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or DSIConfig()
        self.hvqvae = HVQVAE(cfg.hvqvae)
        self.structure = StructureGenerator(cfg.structure)
        self.texture = TextureGenerator(cfg.texture) if cfg.texture is not None else None

    def parameter_counts(self) -> dict[str, int]:
        def count(m):
            return sum(p.numel() for p in m.parameters()) if m is not None else 0

        return {
            "hvqvae": count(self.hvqvae),
            "structure_generator": count(self.structure),
            "texture_generator": count(self.texture),
        }

    def forward(self, *args, **kwargs):
        raise TypeError("DSI is three networks: call .hvqvae, .structure and .texture")


class HVQVAEModel(Pretrained, HVQVAE):
    """The stage-1 export: the hierarchical VQ-VAE on its own (config = HVQVAEConfig)."""

    method, config_class = "dsi-hvqvae", HVQVAEConfig


def fit_to_vqvae(dsi: DSIConfig, hvqvae: HVQVAEConfig) -> DSIConfig:
    """The generators must read the VQ-VAE they are trained on: its latent size and codebook."""
    data = dsi.model_dump()
    data["hvqvae"] = hvqvae.model_dump()
    data["structure"] |= {"side": hvqvae.top_side, "num_codes": hvqvae.num_codes, "code_dim": hvqvae.code_dim}
    if data["texture"] is not None:
        data["texture"]["code_dim"] = hvqvae.code_dim
    return DSIConfig.model_validate(data)

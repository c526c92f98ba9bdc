"""DSI (Peng et al., CVPR 2021; seed 001): the hierarchical VQ-VAE, the diverse structure generator and the
texture generator as one model. Trained in three stages (`dsi-hvqvae`, `dsi-structure`, `dsi-texture`);
the model exported by the structure stage has no texture generator yet (`texture` is None)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
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
    disc_width: int = 64  # SN-PatchGAN (training only)

    @property
    def resolution(self) -> int:
        return self.hvqvae.resolution


def dsi_tiny_config() -> DSIConfig:
    """64 px: an 8x8 top latent of 128 codes; a few layers. Trains on a laptop CPU in minutes."""
    return DSIConfig(
        name="dsi-tiny",
        hvqvae=HVQVAEConfig(resolution=64, hidden=64, residual=32, num_codes=128, code_dim=32),
        structure=StructureGeneratorConfig(
            resolution=64, side=8, num_codes=128, hidden=64, residual=64, cond_hidden=16, cond_residual=16, num_layers=4,
            attention_layers=2, num_heads=4, output_layers=2,
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

        return {"hvqvae": count(self.hvqvae), "structure_generator": count(self.structure), "texture_generator": count(self.texture)}

    def forward(self, *args, **kwargs):
        raise TypeError("DSI is three networks: call .hvqvae, .structure and .texture")


class HVQVAEModel(Pretrained, HVQVAE):
    """The stage-1 export: the hierarchical VQ-VAE on its own (config = HVQVAEConfig)."""

    method, config_class = "dsi-hvqvae", HVQVAEConfig


def fit_to_vqvae(dsi: DSIConfig, hvqvae: HVQVAEConfig) -> DSIConfig:
    """The generators must read the VQ-VAE they are trained on: its resolution, latent size and codebook."""
    dsi = dsi.model_copy(deep=True)
    dsi.hvqvae = hvqvae
    dsi.structure.resolution, dsi.structure.side, dsi.structure.num_codes = hvqvae.resolution, hvqvae.top_side, hvqvae.num_codes
    if dsi.texture is not None:
        dsi.texture.code_dim = hvqvae.code_dim
    return dsi

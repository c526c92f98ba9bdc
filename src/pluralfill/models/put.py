"""PUT = P-VQVAE + UQ-Transformer, with the named configurations of seed 000 (Table 3) and tiny ones."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.errors import PluralfillError
from pluralfill.models.base import Pretrained, parameter_counts
from pluralfill.models.pvqvae import PVQVAE, PVQVAEConfig
from pluralfill.models.uq_transformer import UQTransformer, UQTransformerConfig


class PUTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["put"] = "put"
    name: str = "put"
    pvqvae: PVQVAEConfig = PVQVAEConfig()
    transformer: UQTransformerConfig = UQTransformerConfig()

    @property
    def resolution(self) -> int:
        return self.pvqvae.resolution


def _put(name: str, layers: int, dim: int, heads: int = 8) -> PUTConfig:
    return PUTConfig(name=name, transformer=UQTransformerConfig(num_layers=layers, dim=dim, num_heads=heads))


def put_tiny_config(name: str = "put-tiny", resolution: int = 64) -> PUTConfig:
    """A P-VQVAE and transformer small enough to train and test on a CPU in seconds."""
    tokens = (resolution // 8) ** 2
    return PUTConfig(
        name=name,
        pvqvae=PVQVAEConfig(resolution=resolution, channels=32, code_dim=32, num_codes=256, num_res_blocks=2),
        transformer=UQTransformerConfig(seq_len=tokens, in_dim=32, dim=64, num_layers=2, num_heads=4, vocab_size=128),
    )


def put_scenes_small_config() -> PUTConfig:
    """The bundled default model: 256x256 input cut into 16x16 patches (a 16x16 token grid, so that both
    stages train on a laptop CPU), a thin decoder, 6 transformer layers; about 26 MB of fp32 weights."""
    return PUTConfig(
        name="put-scenes-small",
        pvqvae=PVQVAEConfig(resolution=256, patch_size=16, channels=160, code_dim=64, num_codes=1024,
                            num_res_blocks=2, decoder_width=16),  # fmt: skip
        transformer=UQTransformerConfig(seq_len=256, in_dim=64, dim=256, num_layers=6, num_heads=4, vocab_size=512),
    )


CONFIGS: dict[str, PUTConfig] = {
    "put-ffhq": _put("put-ffhq", 30, 512),
    "put-places2": _put("put-places2", 35, 512),
    "put-imagenet": _put("put-imagenet", 35, 1024),
    "put-tiny": put_tiny_config(),
    "put-scenes-small": put_scenes_small_config(),
}


class PUT(Pretrained, nn.Module):
    method, config_class = "put", PUTConfig

    def __init__(self, cfg: PUTConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or PUTConfig()
        if cfg.transformer.in_dim != cfg.pvqvae.code_dim:
            raise PluralfillError("transformer.in_dim must equal pvqvae.code_dim")
        if cfg.transformer.vocab_size != cfg.pvqvae.num_codes // (2 if cfg.pvqvae.codebook == "dual" else 1):
            raise PluralfillError("transformer.vocab_size must equal the size of the e codebook")
        if cfg.transformer.seq_len != (cfg.pvqvae.resolution // cfg.pvqvae.patch_size) ** 2:
            raise PluralfillError("transformer.seq_len must equal the number of tokens of a pvqvae.resolution image")
        self.pvqvae = PVQVAE(cfg.pvqvae)
        self.transformer = UQTransformer(cfg.transformer)

    def parameter_counts(self) -> dict[str, int]:
        return parameter_counts("pvqvae", self.pvqvae, self.transformer)

"""PUT = P-VQVAE + UQ-Transformer, with the named configurations of Liu et al. 2022 (Table 3), of the authors'
TPAMI-2024 models (`put-tpami-*`, what their download link serves today), and tiny ones."""

from __future__ import annotations

from typing import Literal

import torch
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
    generation: Literal["cvpr2022", "tpami2024"] = (
        "cvpr2022"  # which official models it follows; sets the default sampler
    )
    pvqvae: PVQVAEConfig = PVQVAEConfig()
    transformer: UQTransformerConfig = UQTransformerConfig()

    @property
    def resolution(self) -> int:
        return self.pvqvae.resolution

    def fit_to(self, pvqvae: PVQVAEConfig) -> PUTConfig:
        """This config over `pvqvae`, with what the transformer reads of it derived: its input width, its codes,
        its sequence length and, reading tokens, how many ids it embeds."""
        t = self.transformer.model_copy(
            update={
                "in_dim": pvqvae.code_dim,
                "vocab_size": pvqvae.known_codes,
                "seq_len": (pvqvae.resolution // pvqvae.patch_size) ** 2,
                "num_input_codes": pvqvae.num_codes if self.transformer.input == "tokens" else 0,
            }
        )
        return self.model_copy(update={"pvqvae": pvqvae, "transformer": t})


def _put(name: str, layers: int, dim: int, heads: int = 8) -> PUTConfig:
    """The paper's models; the codebook trains as the official code trains it (no data init, no restarts)."""
    return PUTConfig(
        name=name,
        pvqvae=PVQVAEConfig(restart_dead_codes=False, data_init=False),
        transformer=UQTransformerConfig(num_layers=layers, dim=dim, num_heads=heads),
    )


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
        pvqvae=PVQVAEConfig(
            resolution=256, patch_size=16, channels=160, code_dim=64, num_codes=1024, num_res_blocks=2, decoder_width=16
        ),
        transformer=UQTransformerConfig(seq_len=256, in_dim=64, dim=256, num_layers=6, num_heads=4, vocab_size=512),
    )


def put_tpami_config(
    name: str, resolution: int = 256, normalization: str = "symmetric", mask_embedding: bool = True
) -> PUTConfig:
    """The TPAMI-2024 models (configs/put_tpami2024/*/vit_base_*_res{256,512}.yaml of the official code):
    a 9216-code table (8192 for known patches), 2 decoder residual blocks plus 2 after every nearest-neighbour
    up-sampling; at 512 px 16 px patches (still 32 x 32 tokens) and 10 encoder blocks; ViT-base transformer."""
    patch = resolution // 32
    return PUTConfig(
        name=name,
        generation="tpami2024",
        pvqvae=PVQVAEConfig(
            resolution=resolution,
            patch_size=patch,
            channels=256,
            code_dim=256,
            num_codes=9216,
            num_known_codes=8192,
            num_res_blocks=8 if patch == 8 else 10,
            decoder_res_blocks=2,
            stage_res_blocks=2,
            upsample="nearest",
            normalization=normalization,
            restart_dead_codes=False,
            data_init=False,
        ),
        transformer=UQTransformerConfig(
            seq_len=1024,
            in_dim=256,
            dim=768,
            num_layers=12,
            num_heads=12,
            vocab_size=8192,
            mask_embedding=mask_embedding,
            key_bias=False,
            drop_path=0.1,
        ),
    )


def put_tpami_tiny_config() -> PUTConfig:
    """The sizes of the official TPAMI fixture (64 px, 40 codes of which 32 known, 2 x 64 transformer): the
    TPAMI structure at a size tests run in milliseconds. The decoder widths are the official fixed ones."""
    return PUTConfig(
        name="put-tpami-tiny",
        generation="tpami2024",
        pvqvae=PVQVAEConfig(
            resolution=64,
            patch_size=8,
            channels=32,
            code_dim=32,
            num_codes=40,
            num_known_codes=32,
            num_res_blocks=2,
            decoder_res_blocks=2,
            stage_res_blocks=2,
            upsample="nearest",
            restart_dead_codes=False,
            data_init=False,
        ),
        transformer=UQTransformerConfig(
            seq_len=64,
            in_dim=32,
            dim=64,
            num_layers=2,
            num_heads=4,
            vocab_size=32,
            mask_embedding=True,
            key_bias=False,
            drop_path=0.1,
        ),
    )


CONFIGS: dict[str, PUTConfig] = {
    "put-ffhq": _put("put-ffhq", 30, 512),
    "put-places2": _put("put-places2", 35, 512),
    "put-imagenet": _put("put-imagenet", 35, 1024),
    "put-tiny": put_tiny_config(),
    "put-scenes-small": put_scenes_small_config(),
    # TPAMI 2024: datasets ffhq, imagenet (ImageNet-normalized; no mask embedding at 256), naturalscene (Places2)
    "put-tpami-ffhq-256": put_tpami_config("put-tpami-ffhq-256", 256),
    "put-tpami-ffhq-512": put_tpami_config("put-tpami-ffhq-512", 512),
    "put-tpami-imagenet-256": put_tpami_config("put-tpami-imagenet-256", 256, "imagenet", mask_embedding=False),
    "put-tpami-imagenet-512": put_tpami_config("put-tpami-imagenet-512", 512, "imagenet"),
    "put-tpami-naturalscene-256": put_tpami_config("put-tpami-naturalscene-256", 256),
    "put-tpami-naturalscene-512": put_tpami_config("put-tpami-naturalscene-512", 512),
    "put-tpami-tiny": put_tpami_tiny_config(),
}


class PUT(Pretrained, nn.Module):
    method, config_class = "put", PUTConfig

    def __init__(self, cfg: PUTConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or PUTConfig()
        if cfg.transformer.in_dim != cfg.pvqvae.code_dim:
            raise PluralfillError("transformer.in_dim must equal pvqvae.code_dim")
        if cfg.transformer.vocab_size != cfg.pvqvae.known_codes:
            raise PluralfillError("transformer.vocab_size must equal the size of the e codebook")
        if cfg.transformer.input == "tokens" and cfg.transformer.num_input_codes != cfg.pvqvae.num_codes:
            raise PluralfillError("a transformer reading tokens needs num_input_codes = pvqvae.num_codes (e and e')")
        if cfg.transformer.seq_len != (cfg.pvqvae.resolution // cfg.pvqvae.patch_size) ** 2:
            raise PluralfillError("transformer.seq_len must equal the number of tokens of a pvqvae.resolution image")
        self.pvqvae = PVQVAE(cfg.pvqvae)
        self.transformer = UQTransformer(cfg.transformer)

    def transformer_inputs(self, features: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the transformer reads for (B, L, C) un-quantized features and their (B, L) tokens (e for known
        patches, e' for the others), and the table a sampled code k is looked up in to feed it back: the
        features (PUT), their quantized vectors (ablation ^qua0), or the token ids themselves (^tok)."""
        codebook = self.pvqvae.quantizer.embedding
        kind = self.config.transformer.input
        if kind == "features":
            return features, codebook
        if kind == "quantized":
            return codebook[tokens], codebook
        return tokens, torch.arange(codebook.shape[0], device=tokens.device)

    def parameter_counts(self) -> dict[str, int]:
        return parameter_counts("pvqvae", self.pvqvae, self.transformer)

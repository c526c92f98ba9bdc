"""PUT's controllable model (TPAMI 2024, configs/put_tpami2024_conditional of the official code): the
transformer reads, joined at every position, the image's P-VQVAE features and the features of two guidance
maps made by their own one-channel P-VQVAEs: a segmentation (COCO-panoptic class ids from Mask2Former) and
a sketch (edges from DexiNed). A missing guidance is a learned default vector at every position.

    x = [content_features * r + mask_emb * (1 - r) + pos_emb  |  seg features or seg default  |  sketch ... ]

Sampling is the TPAMI sampler; committed positions read their code + pos_emb (no projection: the
conditional transformer has none). Label maps enter the segmentation P-VQVAE as label / 76.5 - 1 and
sketches as value / 127.5 - 1, as the official configs normalize them.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from pluralfill.errors import PluralfillError
from pluralfill.models.base import Pretrained
from pluralfill.models.pvqvae import PVQVAE, PVQVAEConfig
from pluralfill.models.uq_transformer import UQTransformer, UQTransformerConfig

SEG_SCALE = 76.5  # the official segmentation P-VQVAE reads label / 76.5 - 1


class PUTConditionalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["put-conditional"] = "put-conditional"
    name: str = "put-conditional"
    generation: Literal["tpami2024"] = "tpami2024"
    pvqvae: PVQVAEConfig = PVQVAEConfig()
    guidance: PVQVAEConfig = PVQVAEConfig(
        in_channels=1, num_codes=512, codebook="one", reference=False
    )  # seg and sketch
    transformer: UQTransformerConfig = UQTransformerConfig()

    @property
    def resolution(self) -> int:
        return self.pvqvae.resolution


class GuidedTransformer:
    """The conditional transformer with its guidance fixed, as the samplers see a transformer: the sampled
    state is the image's part of the input; the guidance joins it at every pass."""

    def __init__(self, transformer: UQTransformer, guidance: torch.Tensor):
        self.transformer, self.guidance = transformer, guidance

    def embed(self, features, known_fraction=None):
        return self.transformer.embed(features, known_fraction)

    def embed_codes(self, codes, positions):
        return self.transformer.embed_codes(codes, positions)

    def forward_embedded(self, x, cache=None):
        return self.transformer.forward_embedded(x, self.guidance, cache)


class PUTConditional(Pretrained, nn.Module):
    method, config_class = "put-conditional", PUTConditionalConfig

    def __init__(self, cfg: PUTConditionalConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or PUTConditionalConfig()
        if cfg.transformer.guidance_dim != 2 * cfg.guidance.code_dim:
            raise PluralfillError("transformer.guidance_dim must be twice guidance.code_dim (segmentation and sketch)")
        if cfg.transformer.vocab_size != cfg.pvqvae.known_codes:
            raise PluralfillError("transformer.vocab_size must equal the size of the e codebook")
        self.pvqvae = PVQVAE(cfg.pvqvae)
        self.seg_pvqvae = PVQVAE(cfg.guidance)
        self.sketch_pvqvae = PVQVAE(cfg.guidance)
        self.seg_default = nn.Parameter(torch.zeros(cfg.guidance.code_dim))
        self.sketch_default = nn.Parameter(torch.zeros(cfg.guidance.code_dim))
        self.transformer = UQTransformer(cfg.transformer)

    def guidance(self, segmentation: torch.Tensor | None, sketch: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B, L, 2 * code_dim): features of a label map (B, 1, R, R) of class ids and of a sketch (B, 1, R, R)
        of 0..255 values, or the learned default where one is not given."""
        side = self.config.pvqvae.resolution // self.config.pvqvae.patch_size
        parts = []
        for net, default, picture, scale in (
            (self.seg_pvqvae, self.seg_default, segmentation, SEG_SCALE),
            (self.sketch_pvqvae, self.sketch_default, sketch, 127.5),
        ):
            if picture is None:
                parts.append(default.expand(batch, side * side, -1))
            else:
                f = net.encode(picture.float() / scale - 1)
                parts.append(f.permute(0, 2, 3, 1).reshape(f.shape[0], side * side, -1).expand(batch, -1, -1))
        return torch.cat(parts, dim=-1)

    def transformer_inputs(self, features: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformer reads the un-quantized features; a sampled code comes back as its code vector."""
        return features, self.pvqvae.quantizer.embedding

    def parameter_counts(self) -> dict[str, int]:
        def count(m):
            return sum(p.numel() for p in m.parameters())

        pos = self.transformer.pos_emb.numel()
        return {
            "pvqvae": count(self.pvqvae),
            "seg_pvqvae": count(self.seg_pvqvae),
            "sketch_pvqvae": count(self.sketch_pvqvae),
            "guidance_defaults": self.seg_default.numel() + self.sketch_default.numel(),
            "transformer": count(self.transformer) - pos,
            "transformer_pos_emb": pos,
        }


def put_tpami_conditional_config(
    name: str, normalization: str = "symmetric", tiny: bool = False
) -> PUTConditionalConfig:
    """configs/put_tpami2024_conditional/*/vit_base_*_seg_sketch_res256.yaml: the 256 px content P-VQVAE,
    two one-channel guidance P-VQVAEs (512 codes, no reference branch), a ViT-base over 256 + 2 x 256 channels."""
    if tiny:
        width, codes, known, blocks, layers, dim, heads, guide = 32, 40, 32, 2, 2, 96, 4, 32
    else:
        width, codes, known, blocks, layers, dim, heads, guide = 256, 9216, 8192, 8, 12, 768, 12, 256
    resolution = 64 if tiny else 256
    common = dict(
        resolution=resolution,
        patch_size=8,
        channels=width,
        code_dim=width if not tiny else guide,
        num_res_blocks=blocks,
        decoder_res_blocks=2,
        stage_res_blocks=2,
        upsample="nearest",
        restart_dead_codes=False,
        data_init=False,
    )
    return PUTConditionalConfig(
        name=name,
        pvqvae=PVQVAEConfig(**common, num_codes=codes, num_known_codes=known, normalization=normalization),
        guidance=PVQVAEConfig(
            **common, in_channels=1, num_codes=512 if not tiny else 64, codebook="one", reference=False
        ),
        transformer=UQTransformerConfig(
            seq_len=(resolution // 8) ** 2,
            in_dim=dim - 2 * guide,
            dim=dim,
            num_layers=layers,
            num_heads=heads,
            vocab_size=known,
            mask_embedding=True,
            key_bias=False,
            drop_path=0.1,
            guidance_dim=2 * guide,
        ),
    )


CONFIGS: dict[str, PUTConditionalConfig] = {
    "put-tpami-ffhq-seg-sketch-256": put_tpami_conditional_config("put-tpami-ffhq-seg-sketch-256"),
    "put-tpami-imagenet-seg-sketch-256": put_tpami_conditional_config("put-tpami-imagenet-seg-sketch-256", "imagenet"),
    "put-tpami-naturalscene-seg-sketch-256": put_tpami_conditional_config("put-tpami-naturalscene-seg-sketch-256"),
    "put-tpami-conditional-tiny": put_tpami_conditional_config("put-tpami-conditional-tiny", tiny=True),
}

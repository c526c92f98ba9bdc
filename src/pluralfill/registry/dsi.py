"""DSI (seed 001): hierarchical VQ-VAE, autoregressive structure generator, texture generator."""

from pluralfill.methods.dsi import DSIInpainter
from pluralfill.models.dsi import CONFIGS, DSI, HVQVAEModel
from pluralfill.registry import MethodSpec, Stage, register
from pluralfill.train import dsi as train

register(MethodSpec(
    name="dsi",
    summary="hierarchical VQ-VAE, autoregressive structure generator with layer caches, texture generator",
    paper="Peng et al., Generating Diverse Structure for Image Inpainting With Hierarchical VQ-VAE, CVPR 2021",
    inpainter=DSIInpainter,
    model=DSI,
    configs=CONFIGS,
    stages=(Stage(train.HVQVAEStage, train.train_hvqvae), Stage(train.StructureStage, train.train_structure, reads=HVQVAEModel),
            Stage(train.TextureStage, train.train_texture, reads=DSI)),
))  # fmt: skip

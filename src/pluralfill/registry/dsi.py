"""DSI (Peng et al. 2021): hierarchical VQ-VAE, autoregressive structure generator, texture generator."""

from pluralfill.bench.dsi import bench_dsi
from pluralfill.methods.dsi import DSIInpainter
from pluralfill.models.dsi import CONFIGS, DSI, HVQVAEModel
from pluralfill.pretrained import dsi_official
from pluralfill.registry import Converter, MethodSpec, Stage, register
from pluralfill.train import dsi as train

register(
    MethodSpec(
        name="dsi",
        summary="hierarchical VQ-VAE, PixelSNAIL structure generator sampled with layer caches, texture generator with "
        "attention transfer",
        paper="Peng et al., Generating Diverse Structure for Image Inpainting With Hierarchical VQ-VAE, CVPR 2021",
        inpainter=DSIInpainter,
        model=DSI,
        configs=CONFIGS,
        stages=(
            Stage(train.HVQVAEStage, train.train_hvqvae),
            Stage(train.StructureStage, train.train_structure, reads=HVQVAEModel),
            Stage(train.TextureStage, train.train_texture, reads=DSI),
        ),
        converters=(
            Converter(
                "dsi-official",
                ("CHECKPOINT",),
                dsi_official.convert,
                "a TensorFlow checkpoint of the official code: its folder (checkpoint, model.ckpt.index, "
                "model.ckpt.data-00000-of-00001) or prefix; CelebA-HQ, Places2, ImageNet, center or random masks",
                "https://github.com/USTC-JialunPeng/Diverse-Structure-Inpainting (README: Pre-trained Models)",
            ),
        ),
        benchmark=bench_dsi,
        precision_models={"dsi": ("dsi", "dsi-tiny", {})},
    )
)

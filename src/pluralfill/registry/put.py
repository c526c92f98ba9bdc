"""PUT (seed 000): P-VQVAE + UQ-Transformer; the official CVPR-2022 checkpoints convert."""

from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put import CONFIGS, PUT
from pluralfill.models.pvqvae import PVQVAE
from pluralfill.pretrained import put_official
from pluralfill.registry import Converter, MethodSpec, Stage, register
from pluralfill.train import put as train

register(MethodSpec(
    name="put",
    summary="P-VQVAE + UQ-Transformer over un-quantized features; Algorithm 1 or parallel decoding",
    paper="Liu et al., Reduce Information Loss in Transformers for Pluralistic Image Inpainting, CVPR 2022",
    inpainter=PUTInpainter,
    model=PUT,
    configs=CONFIGS,
    stages=(Stage(train.PVQVAEStage, train.train_pvqvae), Stage(train.TransformerStage, train.train_transformer, reads=PVQVAE)),
    converters=(Converter("put-official", ("CHECKPOINT",), put_official.convert,
                          "an official PUT transformer checkpoint (.pth; it holds its P-VQVAE)",
                          "https://github.com/liuqk3/PUT"),),
))  # fmt: skip

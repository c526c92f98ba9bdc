"""PUT (Liu et al. 2022): P-VQVAE + UQ-Transformer, the CVPR-2022 and TPAMI-2024 generations, whose official
checkpoints convert; and the TPAMI controllable model (segmentation + sketch guidance), convert-only."""

from pluralfill.bench.put import bench_put
from pluralfill.methods.put import PUTInpainter
from pluralfill.methods.put_conditional import PUTConditionalInpainter
from pluralfill.models import put_conditional
from pluralfill.models.put import CONFIGS, PUT
from pluralfill.models.pvqvae import PVQVAE
from pluralfill.pretrained import put_official
from pluralfill.registry import Converter, MethodSpec, Stage, register
from pluralfill.train import put as train

PAGE = "https://github.com/liuqk3/PUT (README: OneDrive / BaiduYun links)"

register(
    MethodSpec(
        name="put",
        summary="P-VQVAE + UQ-Transformer over un-quantized features; Algorithm 1, the TPAMI sampler or parallel "
        "decoding",
        paper="Liu et al., Reduce Information Loss in Transformers for Pluralistic Image Inpainting, CVPR 2022; "
        "Transformer based Pluralistic Image Completion with Reduced Information Loss, TPAMI 2024",
        inpainter=PUTInpainter,
        model=PUT,
        configs=CONFIGS,
        stages=(
            Stage(train.PVQVAEStage, train.train_pvqvae),
            Stage(train.TransformerStage, train.train_transformer, reads=PVQVAE),
        ),
        converters=(
            Converter(
                "put-official",
                ("CHECKPOINT",),
                put_official.convert,
                "an official PUT transformer checkpoint, CVPR-2022 or TPAMI-2024 (.pth; it holds its P-VQVAE)",
                PAGE,
            ),
        ),
        benchmark=bench_put,
        precision_models={
            "tpami": ("put-tpami-ffhq-256", "put-tpami-tiny", {}),
            "put": ("put-ffhq", "put-tiny", {}),
        },
    )
)

register(
    MethodSpec(
        name="put-conditional",
        summary="PUT TPAMI-2024 guided by a segmentation and a sketch (give the maps as files: --segmentation, "
        "--sketch)",
        paper="Transformer based Pluralistic Image Completion with Reduced Information Loss, TPAMI 2024 (controllable)",
        inpainter=PUTConditionalInpainter,
        model=put_conditional.PUTConditional,
        configs=put_conditional.CONFIGS,
        converters=(
            Converter(
                "put-tpami-conditional",
                ("CHECKPOINT",),
                put_official.convert_conditional,
                "an official controllable PUT TPAMI checkpoint (seg + sketch; .pth)",
                PAGE,
            ),
        ),
    )
)

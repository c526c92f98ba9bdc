"""MaskGIT (Chang et al. 2022): VQGAN tokenizer + bidirectional transformer, iterative parallel decoding."""

from pluralfill.bench.maskgit import bench_maskgit
from pluralfill.methods.maskgit import MaskGITInpainter
from pluralfill.models.maskgit import CONFIGS, MaskGIT
from pluralfill.models.vqgan import VQGAN
from pluralfill.pretrained import maskgit_official
from pluralfill.registry import Converter, MethodSpec, Stage, register
from pluralfill.train import maskgit as train

register(
    MethodSpec(
        name="maskgit",
        summary="VQGAN tokens + bidirectional transformer, iterative parallel decoding",
        paper="Chang et al., MaskGIT: Masked Generative Image Transformer, CVPR 2022",
        inpainter=MaskGITInpainter,
        model=MaskGIT,
        configs=CONFIGS,
        stages=(
            Stage(train.TokenizerStage, train.train_tokenizer),
            Stage(train.TransformerStage, train.train_transformer, reads=VQGAN),
        ),
        converters=(
            Converter(
                "maskgit-official",
                ("TOKENIZER", "TRANSFORMER"),
                maskgit_official.convert,
                "the official ImageNet checkpoints: tokenizer_imagenet{256,512}_checkpoint and "
                "maskgit_imagenet{256,512}_checkpoint",
                "https://github.com/google-research/maskgit (README: the Google Cloud Storage links)",
            ),
        ),
        benchmark=bench_maskgit,
        precision_models={
            "maskgit": (
                "maskgit-imagenet-256",
                "maskgit-official-tiny",
                {"steps": 12, "start_step": 2, "class_label": 0},
            )
        },
    )
)

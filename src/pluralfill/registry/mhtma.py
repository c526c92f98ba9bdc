"""MHTMA (Zhou et al. 2023): coarse-to-fine gated-convolution GAN with multi-head temperature masked attention."""

from pluralfill.methods.mhtma import MHTMAInpainter
from pluralfill.models.mhtma import CONFIGS, MHTMA
from pluralfill.registry import MethodSpec, Stage, register
from pluralfill.train import mhtma as train

register(
    MethodSpec(
        name="mhtma",
        summary="coarse-to-fine gated-conv GAN, multi-head temperature masked self-attention; sketch-guided variant",
        paper="Learning to Scale Temperature in Masked Self-Attention for Image Inpainting",
        inpainter=MHTMAInpainter,
        model=MHTMA,
        configs=CONFIGS,
        checkpoint_names=("mhtma", "mhtma-sketch"),
        stages=(Stage(train.MHTMAStage, train.train_mhtma),),
    )
)

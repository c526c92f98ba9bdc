"""PUT's two training stages (seed 000, section 2; DESIGN.md for the official details).

Stage 1 (`put-pvqvae`): the P-VQVAE reconstructs the masked image x * m from its tokens, the decoder's
reference masked further by m' (Eq. 1): pixel + 5 gradient + 0.1 adversarial + 0.1 perceptual + 250 style
+ 0.25 commitment, codebooks by EMA; the last three reconstruction terms start late.

Stage 2 (`put-transformer`): the P-VQVAE is frozen; the UQ-Transformer reads the un-quantized features of
the masked image (known ones swapped for their codes with p = 0.3) and is trained with cross-entropy on
the positions with missing pixels, against the tokens of the full image.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from pluralfill.errors import PluralfillError
from pluralfill.grid import grid_rows, masked_view
from pluralfill.losses.adversarial import bce_discriminator_loss, bce_generator_loss
from pluralfill.losses.reconstruction import gradient_loss, pixel_loss
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put import CONFIGS, PUT, PUTConfig
from pluralfill.models.pvqvae import PVQVAE, masked_input
from pluralfill.pixels import to_uint8
from pluralfill.train.config import SecondStageConfig, Strict, TrainConfig, model_config
from pluralfill.train.loop import data, discriminator_step, first_stage, fit, setup_autoencoder, step_optimizer, unwrap
from pluralfill.train.run import start
from pluralfill.train.transformer import frozen_first_stage, train_token_transformer


class PVQVAELoss(Strict):
    """Weights of seed 000 Eq. 8 and 1; the GAN, perceptual and style terms start late."""

    pixel: float = 1.0
    gradient: float = 5.0
    adversarial: float = 0.1
    perceptual: float = 0.1
    style: float = 250.0
    commitment: float = 0.25
    late_start_step: int = 10_000  # GAN, perceptual and style terms join at this step
    vgg_weights: str | None = None  # VGG-19 file; default: cache, then download
    disc_lr: float = 2e-4


class PVQVAEStage(TrainConfig):
    stage: Literal["put-pvqvae"]
    loss: PVQVAELoss = PVQVAELoss()


class TransformerLoss(Strict):
    random_quantize: float = 0.3  # known features swapped for their codes with this probability


class TransformerStage(SecondStageConfig):
    stage: Literal["put-transformer"]
    loss: TransformerLoss = TransformerLoss()


def put_config(cfg: TrainConfig) -> PUTConfig:
    return model_config(cfg, CONFIGS, PUTConfig)


# ------------------------------------------------------------------------------------------------ stage 1


def train_pvqvae(cfg: PVQVAEStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    pcfg = put_config(cfg).pvqvae
    model = PVQVAE(pcfg)
    vgg = None
    if cfg.loss.perceptual or cfg.loss.style:
        from pluralfill.losses.perceptual import VGGLoss

        try:
            vgg = VGGLoss("vgg19", cfg.loss.vgg_weights).to(fabric.device)
        except PluralfillError as e:
            raise PluralfillError(f"{e} -- or train without them: loss.perceptual=0 loss.style=0") from None
    model, opt, state, modules = setup_autoencoder(fabric, run, model, cfg, disc_betas=(0.0, 0.9))
    train, val = data(cfg, pcfg.resolution, fabric.global_rank, num_holes=2)
    lw, last = cfg.loss, {}

    def losses(x, known, known_ref, late: bool):
        rec, commitment, _ = model(x, known, known_ref)
        target = masked_input(x, known)
        terms = {"pixel": pixel_loss(rec, target), "gradient": gradient_loss(rec, target), "commitment": commitment}
        total = lw.pixel * terms["pixel"] + lw.gradient * terms["gradient"] + lw.commitment * commitment
        if late and vgg is not None:
            terms["perceptual"], terms["style"] = vgg(rec, target)
            total = total + lw.perceptual * terms["perceptual"] + lw.style * terms["style"]
        if late and "disc" in state:
            terms["adversarial"] = bce_generator_loss(state["disc"](rec))
            total = total + lw.adversarial * terms["adversarial"]
        last.update(rec=rec.detach(), target=target, x=x, known=known)
        return total, terms

    def step_fn(step, batch, lr):
        late = step >= lw.late_start_step
        total, terms = losses(*batch, late)
        step_optimizer(fabric, model, opt, total, cfg, lr)
        if late and "disc" in state:
            terms["disc"] = discriminator_step(fabric, state, bce_discriminator_loss, last["target"], last["rec"])
        return terms | {"loss": total}

    def validate():
        if not val:
            return {}
        return {"val/pixel": float(np.mean([float(losses(*(t.to(fabric.device) for t in b), late=False)[1]["pixel"]) for b in val]))}

    def sheet(step, batch):  # masked input, reconstruction, target of the last batch seen (validation's, if it ran)
        x, known = last["x"], last["known"]
        n = min(4, x.shape[0])
        holes = (known[:n, 0] < 0.5).cpu().numpy()
        return grid_rows([[masked_view(i, h), r, t] for i, h, r, t in
                          zip(to_uint8(x[:n]), holes, to_uint8(last["rec"][:n]), to_uint8(last["target"][:n]))])  # fmt: skip

    return fit(run, state, train, step_fn, unwrap(model), modules, validate, sheet)


# ------------------------------------------------------------------------------------------------ stage 2


def train_transformer(cfg: TransformerStage, resume=None) -> Path:
    def build(cfg, device):
        pvqvae = first_stage(cfg.first_stage, PVQVAE)
        put_cfg = put_config(cfg)
        put_cfg.pvqvae = pvqvae.config  # the transformer must fit the P-VQVAE it reads
        t = put_cfg.transformer
        t.in_dim, t.vocab_size = pvqvae.config.code_dim, pvqvae.num_known_codes
        t.seq_len = (pvqvae.config.resolution // pvqvae.config.patch_size) ** 2
        model = PUT(put_cfg)
        frozen_first_stage(model.pvqvae, pvqvae, device)
        return model

    def fast(model):  # sheets every few hundred steps must be quick: 16 passes
        return {"tokens_per_step": max(1, model.config.transformer.seq_len // 16)}

    losses = partial(transformer_losses, random_quantize=cfg.loss.random_quantize)
    return train_token_transformer(cfg, resume, build, losses, PUTInpainter, fast)


def transformer_losses(model: PUT, transformer, x, known, training: bool, random_quantize: float) -> dict:
    """Cross-entropy of the transformer on the positions with missing pixels, against the full image's tokens."""
    pvq = model.pvqvae
    with torch.no_grad():
        f = pvq.encode(x, known)
        b, c, h, w = f.shape
        types = pvq.token_types(known).reshape(b, h * w)
        seq = f.permute(0, 2, 3, 1).reshape(b, h * w, c)
        target = pvq.tokenize(pvq.encode(x)).reshape(b, h * w)
        if training and random_quantize > 0:  # known features swapped for their codes, as the sampler writes codes back
            swap = (types == 1) & (torch.rand(types.shape, device=x.device) < random_quantize)
            codes = pvq.quantizer.lookup(pvq.tokenize(f, types.reshape(b, h, w)).reshape(b, h * w))
            seq = torch.where(swap[..., None], codes, seq)
    logits = transformer(seq)
    missing = types != 1
    loss = F.cross_entropy(logits[missing].float(), target[missing])
    return {"loss": loss, "accuracy": (logits[missing].argmax(-1) == target[missing]).float().mean()}

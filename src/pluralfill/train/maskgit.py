"""MaskGIT's two training stages (Chang et al. 2022).

Stage 1 (`maskgit-tokenizer`): the VQGAN reconstructs images: L1 + perceptual (VGG-16) + adversarial
(PatchGAN, hinge) + commitment, codebook by EMA; the perceptual and GAN terms start late.

Stage 2 (`maskgit-transformer`): the tokenizer is frozen; the transformer learns masked visual token
modeling: per image a masking ratio gamma(r), r ~ U(0, 1), and cross-entropy on the masked tokens.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from pluralfill.grid import grid_rows
from pluralfill.losses.adversarial import hinge_discriminator_loss, hinge_generator_loss
from pluralfill.losses.reconstruction import pixel_loss
from pluralfill.methods.maskgit import MaskGITInpainter
from pluralfill.models.maskgit import CONFIGS, MaskGIT, MaskGITConfig
from pluralfill.models.vqgan import VQGAN
from pluralfill.pixels import to_uint8
from pluralfill.sampling.parallel import mask_ratio
from pluralfill.train.config import AdversarialOptim, SecondStageConfig, Strict, TrainConfig, model_config
from pluralfill.train.loop import (
    data,
    discriminator_step,
    first_stage,
    fit,
    setup_autoencoder,
    step_optimizer,
    unwrap,
    vgg_features,
)
from pluralfill.train.run import start
from pluralfill.train.transformer import frozen_first_stage, train_token_transformer

LPIPS_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


class TokenizerLoss(Strict):
    pixel: float = 1.0
    perceptual: float = 0.1  # VGG-16 at the LPIPS taps
    adversarial: float = 0.1
    commitment: float = 0.25
    late_start_step: int = 10_000  # perceptual and GAN terms join at this step
    vgg_weights: str | None = None  # VGG-16 file; default: cache, then download


class TokenizerOptim(AdversarialOptim):
    disc_lr: float | None = 2e-4
    disc_betas: tuple[float, float] | None = (0.5, 0.9)


class TokenizerStage(TrainConfig):
    stage: Literal["maskgit-tokenizer"]
    loss: TokenizerLoss = TokenizerLoss()
    optim: TokenizerOptim = TokenizerOptim()


class TransformerLoss(Strict):
    mask_schedule: str = "cosine"  # gamma, the masking ratio of MVTM
    label_smoothing: float = 0.0


class TransformerStage(SecondStageConfig):
    stage: Literal["maskgit-transformer"]
    loss: TransformerLoss = TransformerLoss()


def maskgit_config(cfg: TrainConfig) -> MaskGITConfig:
    return model_config(cfg, CONFIGS, MaskGITConfig)


def train_tokenizer(cfg: TokenizerStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    tcfg = maskgit_config(cfg).tokenizer
    model = VQGAN(tcfg)
    vgg = None
    if cfg.loss.perceptual:
        from pluralfill.losses.perceptual import VGGLoss

        features = vgg_features("vgg16", cfg.loss.vgg_weights, unless="loss.perceptual=0")
        vgg = VGGLoss(features, perceptual_layers=LPIPS_TAPS, style_layers=()).to(fabric.device)
    model, opt, state, modules = setup_autoencoder(fabric, run, model, cfg)
    train, val = data(cfg, tcfg.resolution, fabric.global_rank, num_holes=0)
    lw, last = cfg.loss, {}

    def losses(x, late: bool):
        rec, commitment, _ = model(x)
        terms = {"pixel": pixel_loss(rec, x), "commitment": commitment}
        total = lw.pixel * terms["pixel"] + lw.commitment * commitment
        if late and vgg is not None:
            terms["perceptual"] = vgg(rec, x)[0]
            total = total + lw.perceptual * terms["perceptual"]
        if late and "disc" in state:
            terms["adversarial"] = hinge_generator_loss(state["disc"](rec))
            total = total + lw.adversarial * terms["adversarial"]
        last["rec"] = rec.detach()
        return total, terms

    def step_fn(step, batch, lr):
        (x,) = batch
        late = step >= lw.late_start_step
        total, terms = losses(x, late)
        step_optimizer(fabric, model, opt, total, cfg, lr)
        if late and "disc" in state:
            terms["disc"] = discriminator_step(fabric, state, hinge_discriminator_loss, x, last["rec"])
        return terms | {"loss": total}

    def validate():
        if not val:
            return {}
        return {
            "val/pixel": float(np.mean([float(losses(b[0].to(fabric.device), late=False)[1]["pixel"]) for b in val]))
        }

    def sheet(step, batch):  # images and their reconstructions
        n = min(4, batch[0].shape[0])
        return grid_rows([[a, b] for a, b in zip(to_uint8(batch[0][:n]), to_uint8(last["rec"][:n]))])

    return fit(run, state, train, step_fn, unwrap(model), modules, validate, sheet)


def train_transformer(cfg: TransformerStage, resume=None) -> Path:
    def build(cfg, device):
        tokenizer = first_stage(cfg.first_stage, VQGAN)
        model = MaskGIT(maskgit_config(cfg).fit_to(tokenizer.config))
        frozen_first_stage(model.tokenizer, tokenizer, device)
        return model

    losses = partial(transformer_losses, schedule=cfg.loss.mask_schedule, label_smoothing=cfg.loss.label_smoothing)
    return train_token_transformer(cfg, resume, build, losses, MaskGITInpainter, lambda model: {"steps": 8})


def transformer_losses(model: MaskGIT, transformer, x, known, training: bool, schedule: str, label_smoothing: float):
    """MVTM on the tokens of the whole image (the hole of the batch only shows in the sample sheets)."""
    with torch.no_grad():
        tokens = model.tokenizer.encode(x).reshape(x.shape[0], -1)
    loss, accuracy = mvtm_loss(transformer, tokens, model.transformer.mask_id, schedule, label_smoothing)
    return {"loss": loss, "accuracy": accuracy}


def mvtm_loss(forward, tokens: torch.Tensor, mask_id: int, schedule: str = "cosine", label_smoothing: float = 0.0):
    """Masked visual token modeling: per image a ratio r ~ U(0, 1), ceil(gamma(r) * L) random positions
    replaced by [MASK], cross-entropy on those positions. `forward` maps token ids to logits (the
    transformer, or its DDP wrapper). Returns (loss, accuracy)."""
    b, n = tokens.shape
    r = torch.rand(b, device=tokens.device).tolist()
    counts = torch.tensor([max(1, math.ceil(mask_ratio(schedule, x, n) * n)) for x in r], device=tokens.device)
    ranks = torch.rand(b, n, device=tokens.device).argsort(1).argsort(1)  # a random permutation per row
    masked = ranks < counts[:, None]
    logits = forward(torch.where(masked, mask_id, tokens))
    loss = F.cross_entropy(logits[masked].float(), tokens[masked], label_smoothing=label_smoothing)
    return loss, (logits[masked].argmax(-1) == tokens[masked]).float().mean()

"""MaskGIT's two training stages (seed 003).

Stage 1 (`maskgit-tokenizer`): the VQGAN reconstructs images: L1 + perceptual (VGG-16) + adversarial
(PatchGAN, hinge) + commitment, codebook by EMA; the perceptual and GAN terms start late.

Stage 2 (`maskgit-transformer`): the tokenizer is frozen; the transformer learns masked visual token
modeling: per image a masking ratio gamma(r), r ~ U(0, 1), and cross-entropy on the masked tokens.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from pluralfill.errors import PluralfillError
from pluralfill.grid import grid_rows
from pluralfill.losses.adversarial import hinge_discriminator_loss, hinge_generator_loss
from pluralfill.losses.reconstruction import pixel_loss
from pluralfill.models.maskgit import CONFIGS, MaskGIT, MaskGITConfig, mvtm_loss
from pluralfill.models.vqgan import VQGAN
from pluralfill.train.config import TrainConfig, model_config
from pluralfill.train.loop import (
    data,
    discriminator_step,
    first_stage,
    fit,
    setup_autoencoder,
    step_optimizer,
    to_uint8,
    unwrap,
)
from pluralfill.train.put import sample_sheet, transformer_optimizer
from pluralfill.train.run import Run, make_fabric, seed_step

LPIPS_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
VAL_SEED_STEP = 10**9  # validation masks are drawn from this fixed "step"


def maskgit_config(cfg: TrainConfig) -> MaskGITConfig:
    return model_config(cfg, CONFIGS, MaskGITConfig)


def train_tokenizer(cfg: TrainConfig, resume=None) -> Path:
    fabric = make_fabric(cfg)
    run = Run.create(cfg, fabric, resume)
    tcfg = maskgit_config(cfg).tokenizer
    fabric.seed_everything(cfg.seed, verbose=False)
    model = VQGAN(tcfg)
    vgg = None
    if cfg.loss.perceptual:
        from pluralfill.losses.perceptual import VGGLoss

        try:
            vgg = VGGLoss("vgg16", cfg.loss.vgg_weights, perceptual_layers=LPIPS_TAPS, style_layers=()).to(fabric.device)
        except PluralfillError as e:
            raise PluralfillError(f"{e} -- or train without it: loss.perceptual=0") from None
    model, opt, state, modules = setup_autoencoder(fabric, run, model, cfg, disc_betas=(0.5, 0.9))
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
        return {"val/pixel": float(np.mean([float(losses(b[0].to(fabric.device), late=False)[1]["pixel"]) for b in val]))}

    def sheet(step, batch):  # images and their reconstructions
        n = min(4, batch[0].shape[0])
        return grid_rows([[a, b] for a, b in zip(to_uint8(batch[0][:n]), to_uint8(last["rec"][:n]))])

    return fit(run, state, train, step_fn, unwrap(model), modules, validate, sheet)


def train_transformer(cfg: TrainConfig, resume=None) -> Path:
    fabric = make_fabric(cfg)
    run = Run.create(cfg, fabric, resume)
    tokenizer = first_stage(cfg.first_stage, VQGAN)
    mcfg = maskgit_config(cfg)
    mcfg.tokenizer = tokenizer.config  # the transformer must fit the tokenizer it reads
    mcfg.transformer.vocab_size = tokenizer.config.num_codes
    mcfg.transformer.seq_len = tokenizer.config.tokens_per_side**2
    fabric.seed_everything(cfg.seed, verbose=False)
    model = MaskGIT(mcfg)
    model.tokenizer.load_state_dict(tokenizer.state_dict())
    model.tokenizer.requires_grad_(False).eval().to(fabric.device)
    transformer, opt = fabric.setup(model.transformer, transformer_optimizer(model.transformer, cfg))
    state = {"transformer": transformer, "optimizer": opt, "step": 0, "best": math.inf}
    if run.resumed:
        run.load_state(state)
    train, val = data(cfg, mcfg.tokenizer.resolution, fabric.global_rank, num_holes=1)

    def losses(x):
        with torch.no_grad():
            tokens = model.tokenizer.encode(x).reshape(x.shape[0], -1)
        loss, accuracy = mvtm_loss(transformer, tokens, model.transformer.mask_id, cfg.loss.mask_schedule, cfg.loss.label_smoothing)
        return {"loss": loss, "accuracy": accuracy}

    def step_fn(step, batch, lr):
        terms = losses(batch[0])
        step_optimizer(fabric, transformer, opt, terms["loss"], cfg, lr)
        return terms

    def validate():
        seed_step(cfg, VAL_SEED_STEP, 0)  # the same masks at every validation
        scores = [losses(b[0].to(fabric.device)) for b in val]
        return {f"val/{k}": float(np.mean([float(s[k]) for s in scores])) for k in ("loss", "accuracy")} if scores else {}

    inpainter = []

    def sheet(step, batch):
        from pluralfill.methods.maskgit import MaskGITInpainter

        inpainter[:] = inpainter or [MaskGITInpainter(model, fabric.device)]
        return sample_sheet(val[0] if val else batch, lambda x, k, seeds: inpainter[0].sample(x, k, seeds, steps=8), step, fabric.device)

    return fit(run, state, train, step_fn, model, [transformer], validate, sheet)

"""PUT's two training stages, as the official code trains them (branch cvpr2022; the recipe of every
paper-size config is checked against the authors' files by tests/test_put_training.py).

Stage 1 (`put-pvqvae`): the image, with the pixels of an erase mask m' set black (with probability 0.2; m'
also decides the token types), is encoded, quantized and decoded with a reference: that image masked by a
second mask m (all missing with probability 0.3). The loss is `losses.edge_connect.EdgeConnectLoss` (L1 over
the hole fraction, gradient, perceptual, style on the hole, non-saturating GAN against a spectral-norm
PatchGAN) plus the quantizer's loss; all but the L1 start at `loss.late_start_step`. Adam with betas
(0, 0.9) for both networks, the official warm-up-then-cosine scheduler.

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

from pluralfill.data import HoleSource
from pluralfill.grid import grid_rows, masked_view
from pluralfill.losses.edge_connect import EdgeConnectLoss
from pluralfill.losses.poly import poly_loss
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put import CONFIGS, PUT, PUTConfig
from pluralfill.models.pvqvae import PVQVAE
from pluralfill.nn.discriminators import EdgeConnectDiscriminator
from pluralfill.pixels import to_uint8
from pluralfill.train.config import AdversarialOptim, SecondStageConfig, Strict, TrainConfig, model_config
from pluralfill.train.loop import (
    add_discriminator,
    data,
    discriminator_update,
    first_stage,
    fit,
    setup_generator,
    step_optimizer,
    unwrap,
    vgg_features,
)
from pluralfill.train.run import lr_at, start
from pluralfill.train.transformer import frozen_first_stage, train_token_transformer


class PVQVAELoss(Strict):
    """The weights of the official EdgeConnectLoss (Liu et al. 2022, Eq. 8 and 1)."""

    pixel: float = 1.0  # L1 over the batch's hole fraction
    gradient: float = 5.0
    adversarial: float = 0.1
    perceptual: float = 0.1
    style: float = 250.0
    commitment: float = 1.0  # the quantizer's loss, added unweighted by the official code
    late_start_step: int = 5000  # gradient, perceptual, style and GAN terms join here (official: 5000 / 15000 / 30000)
    vgg_weights: str | None = None  # VGG-19 file; default: cache, then download


class PVQVAEOptim(AdversarialOptim):
    disc_lr: float | None = 2e-5  # the discriminator's peak learning rate (same schedule as the generator's)
    disc_betas: tuple[float, float] | None = (0.0, 0.9)


class PVQVAEStage(TrainConfig):
    stage: Literal["put-pvqvae"]
    loss: PVQVAELoss = PVQVAELoss()
    optim: PVQVAEOptim = PVQVAEOptim()
    erase_probability: float = 0.2  # how often an erase mask m' blacks out pixels of the input (the rest: none)


class TransformerLoss(Strict):
    random_quantize: float = 0.3  # known features swapped for their codes with this probability
    poly_epsilon: float = 0.0  # Poly-1 loss: CE + epsilon (1 - p_target); the TPAMI models train with 1.0


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
    lw = cfg.loss
    vgg = (
        vgg_features("vgg19", lw.vgg_weights, unless="loss.perceptual=0 loss.style=0")
        if lw.perceptual or lw.style
        else None
    )
    loss_fn = pvqvae_loss(lw, vgg).to(fabric.device)
    state, modules = setup_generator(fabric, model, cfg)
    model, opt = state["model"], state["optimizer"]
    if lw.adversarial:
        add_discriminator(fabric, state, modules, EdgeConnectDiscriminator(), cfg)
    run.restore(state)
    # m (the reference's mask) and m' (the erase mask), from the same mask sources; zero holes only for m
    reference_holes = HoleSource.from_config(cfg.masks)
    erase_holes = HoleSource.from_config(cfg.masks, zero_probability=0.0, probability=cfg.erase_probability)
    train, val = data(cfg, pcfg.resolution, fabric.global_rank, num_holes=2, holes=[reference_holes, erase_holes])
    last = {}

    def step_fn(step, batch, lr):
        x, known, erase = batch
        total, terms, rec, target = pvqvae_losses(
            model, loss_fn, x, known, erase, step, state.get("disc"), lw.commitment
        )
        last.update(rec=rec.detach(), target=target, known=known)
        step_optimizer(fabric, model, opt, total, cfg, lr)
        if "disc" in state:  # its own step, every iteration (official: at zero weight before the start step)
            d = loss_fn.discriminator_loss(state["disc"], last["target"], last["rec"], step)
            terms["disc"] = discriminator_update(fabric, state, d["loss"], lr_at(step, cfg, cfg.optim.disc_lr))
        return terms | {"loss": total}

    def validate():
        if not val:
            return {}
        scores = []
        for b in val:
            x, known, erase = (t.to(fabric.device) for t in b)
            rec, _, _, target = model(x, known, erase)
            scores.append(float((rec - target).abs().mean()))
        return {"val/pixel": float(np.mean(scores))}

    def sheet(step, batch):  # the input as the reference sees it, the reconstruction, the target
        x, known = last["target"], last["known"]
        n = min(4, x.shape[0])
        holes = (known[:n, 0] < 0.5).cpu().numpy()
        return grid_rows(
            [
                [masked_view(i, h), r, t]
                for i, h, r, t in zip(to_uint8(x[:n]), holes, to_uint8(last["rec"][:n]), to_uint8(x[:n]))
            ]
        )

    return fit(run, state, train, step_fn, unwrap(model), modules, validate, sheet)


def pvqvae_loss(lw: PVQVAELoss, vgg=None) -> EdgeConnectLoss:
    """The stage's generator loss with the config's weights."""
    return EdgeConnectLoss(
        vgg,
        pixel=lw.pixel,
        gradient=lw.gradient,
        perceptual=lw.perceptual,
        style=lw.style,
        adversarial=lw.adversarial,
        start_step=lw.late_start_step,
    )


def pvqvae_losses(
    model: PVQVAE, loss_fn: EdgeConnectLoss, x, known, erase, step: int, disc=None, commitment: float = 1.0
):
    """One generator step of stage 1: (total, terms, reconstruction, target). The target is x with the erase
    mask's pixels black; the reference the decoder reads is the target masked by `known`."""
    rec, quantizer_loss, _, target = model(x, known, erase)
    terms = loss_fn.terms(rec, target, known, step, disc)
    terms["commitment"] = commitment * quantizer_loss
    return sum(terms.values()), terms, rec, target


# ------------------------------------------------------------------------------------------------ stage 2


def train_transformer(cfg: TransformerStage, resume=None) -> Path:
    def build(cfg, device):
        pvqvae = first_stage(cfg.first_stage, PVQVAE)
        model = PUT(put_config(cfg).fit_to(pvqvae.config))
        frozen_first_stage(model.pvqvae, pvqvae, device)
        return model

    def fast(model):  # sheets every few hundred steps must be quick: 16 passes
        return {"tokens_per_step": max(1, model.config.transformer.seq_len // 16)}

    losses = partial(transformer_losses, random_quantize=cfg.loss.random_quantize, poly_epsilon=cfg.loss.poly_epsilon)
    return train_token_transformer(cfg, resume, build, losses, PUTInpainter, fast)


def transformer_losses(
    model: PUT, transformer, x, known, training: bool, random_quantize: float, poly_epsilon: float = 0.0
) -> dict:
    """Cross-entropy (plus the Poly-1 term) of the transformer on the positions with missing pixels (types 0
    and 2), against the full image's tokens."""
    pvq = model.pvqvae
    with torch.no_grad():
        f = pvq.encode(x, known)
        b, c, h, w = f.shape
        types = pvq.token_types(known).reshape(b, h * w)
        tokens = pvq.tokenize(f, types.reshape(b, h, w)).reshape(b, h * w)
        seq, _ = model.transformer_inputs(f.permute(0, 2, 3, 1).reshape(b, h * w, c), tokens)
        target = pvq.tokenize(pvq.encode(x)).reshape(b, h * w)
        if training and random_quantize > 0 and model.config.transformer.input == "features":
            # known features swapped for their codes, as the sampler writes codes back
            swap = (types == 1) & (torch.rand(types.shape, device=x.device) < random_quantize)
            seq = torch.where(swap[..., None], pvq.quantizer.lookup(tokens), seq)
    fraction = pvq.known_fraction(known).reshape(b, h * w)
    logits = transformer(seq, fraction)
    missing = types != 1
    loss = poly_loss(logits[missing], target[missing], poly_epsilon)["loss"]
    return {"loss": loss, "accuracy": (logits[missing].argmax(-1) == target[missing]).float().mean()}

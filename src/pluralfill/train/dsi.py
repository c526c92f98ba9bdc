"""DSI's three training stages as the official scripts run them (Peng et al. 2021, A-B; losses in losses.dsi).

1. `dsi-hvqvae`: the hierarchical VQ-VAE reconstructs images: MSE + 0.25 x commitment; the codebooks learn by
   zero-debiased EMA (decay 0.99). Validation also logs how many top codes are in use and their entropy
   (bits), to see a collapse early.
2. `dsi-structure`: the VQ-VAE is frozen; the structure generator learns p(top codes | masked image, hole) by
   maximum likelihood with teacher forcing (the photo's own top latent); the loss is the cross-entropy summed
   over positions and images, halved (the official run averages the gradients of two GPU towers that each sum
   theirs); logged in bits per code (Table 3) beside the VQ-VAE's MSE. Learning rate schedule "dsi".
3. `dsi-texture`: the texture generator paints the hole from the true structure: mean|x - out| - mean D +
   0.1 (feature loss on the top and bottom latents) against a spectral-normalized PatchGAN trained with the
   hinge loss, one generator and one discriminator step per iteration.

Stages 1-2 keep an exponential moving average of the weights (`optim.polyak_decay`, 0.9997 officially; the
codebooks stay as trained) and export it. Stage 2 exports a DSI without texture generator; stage 3
(first_stage= the stage-2 run) completes it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from pluralfill.errors import PluralfillError
from pluralfill.geometry import token_hole
from pluralfill.grid import grid_rows, masked_view
from pluralfill.losses.dsi import feature_loss, structure_nll, texture_discriminator_loss
from pluralfill.methods.dsi import DSIInpainter
from pluralfill.models.dsi import CONFIGS, DSI, DSIConfig, HVQVAEModel, fit_to_vqvae
from pluralfill.nn.discriminators import SNPatchGANDiscriminator
from pluralfill.pixels import to_uint8
from pluralfill.sampling.autoregressive import sample_raster
from pluralfill.sampling.base import Randomness
from pluralfill.train.config import AdversarialOptim, OptimConfig, SecondStageConfig, Strict, TrainConfig, model_config
from pluralfill.train.loop import (
    add_discriminator,
    data,
    discriminator_update,
    first_stage,
    fit,
    setup_generator,
    step_optimizer,
    unwrap,
)
from pluralfill.train.run import seed_step, start
from pluralfill.train.transformer import VAL_SEED_STEP


class DSIOptim(OptimConfig):
    polyak_decay: float | None = (
        None  # export an exponential moving average of the weights (0.9997 in Peng et al. 2021)
    )


class HVQVAELoss(Strict):
    commitment: float = 0.25


class HVQVAEStage(TrainConfig):
    stage: Literal["dsi-hvqvae"]
    loss: HVQVAELoss = HVQVAELoss()
    optim: DSIOptim = DSIOptim()


class StructureLoss(Strict):
    towers: int = 2  # the summed cross-entropy is divided by this (the official gradient: mean of 2 towers' sums)


class StructureStage(SecondStageConfig):
    stage: Literal["dsi-structure"]
    loss: StructureLoss = StructureLoss()
    optim: DSIOptim = DSIOptim()


class TextureLoss(Strict):
    pixel: float = 1.0  # mean |x - out| over the whole image
    feature: float = 0.1  # on each of the top and bottom latents
    adversarial: float = 1.0
    late_start_step: int = 0  # the adversarial term joins at this step (official: 0)


class TextureOptim(AdversarialOptim):
    """disc_lr None: the generator's learning rate, at every step (one optimizer serves both officially)."""


class TextureStage(SecondStageConfig):
    stage: Literal["dsi-texture"]
    loss: TextureLoss = TextureLoss()
    optim: TextureOptim = TextureOptim()


def dsi_config(cfg: TrainConfig) -> DSIConfig:
    return model_config(cfg, CONFIGS, DSIConfig)


class WeightAverage:
    """tf.train.ExponentialMovingAverage of the parameters (shadow <- d shadow + (1 - d) w after each step);
    buffers, the codebooks among them, are taken from the live model, as the official export does."""

    def __init__(self, fabric, state: dict, model, decay: float | None):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        self.live = unwrap(model)
        self.ema = None
        if decay is not None:
            self.ema = AveragedModel(self.live, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False).to(
                fabric.device
            )
            state["polyak"] = self.ema

    def update(self) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.live)

    @property
    def module(self):
        """The model to validate and export: the average with the live buffers, else the live model."""
        if self.ema is None:
            return self.live
        with torch.no_grad():
            for mine, live in zip(self.ema.module.buffers(), self.live.buffers()):
                mine.copy_(live)
        return self.ema.module


def train_hvqvae(cfg: HVQVAEStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    vcfg = dsi_config(cfg).hvqvae
    model = HVQVAEModel(vcfg)
    state, modules = setup_generator(fabric, model, cfg)
    model, opt = state["model"], state["optimizer"]
    average = WeightAverage(fabric, state, model, cfg.optim.polyak_decay)
    run.restore(state)
    train, val = data(cfg, vcfg.resolution, fabric.global_rank, num_holes=0)
    last = {}

    def step_fn(step, batch, lr):
        terms, rec = hvqvae_losses(model, batch[0], cfg.loss)
        last["rec"] = rec.detach()
        step_optimizer(fabric, model, opt, terms["loss"], cfg, lr)
        average.update()
        return terms

    def validate():
        net = average.module.eval()
        mse, top = [], []
        for b in val:
            x = b[0].to(fabric.device)
            rec, _, (top_codes, _) = net(x)
            mse.append(F.mse_loss(rec, x))
            top.append(top_codes.flatten())
        if not mse:
            return {}
        # a top latent collapsed onto a few codes carries no structure, and DSI's samples then all look alike
        counts = torch.bincount(torch.cat(top), minlength=vcfg.num_codes).float()
        p = counts[counts > 0] / counts.sum()
        return {
            "val/mse": float(torch.stack(mse).mean()),
            "val/top_codes_used": float((counts > 0).sum()),
            "val/top_code_bits": float(-(p * p.log2()).sum()),
        }

    def sheet(step, batch):
        n = min(4, batch[0].shape[0])
        return grid_rows([[a, b] for a, b in zip(to_uint8(batch[0][:n]), to_uint8(last["rec"][:n]))])

    return fit(run, state, train, step_fn, lambda: average.module, [model], validate, sheet)


def hvqvae_losses(model, x, lw: HVQVAELoss) -> tuple[dict, torch.Tensor]:
    """Stage 1's step (train_vqvae.py): mean squared error plus the weighted commitment; (terms, reconstruction)."""
    rec, commitment, _ = model(x)
    mse = F.mse_loss(rec, x)
    return {"loss": mse + lw.commitment * commitment, "mse": mse, "commitment": commitment}, rec


def structure_losses(structure, vq, x, hole, masked) -> torch.Tensor:
    """Stage 2's cross-entropy at every top-latent position (B, S, S), teacher-forced with the photo's own codes."""
    with torch.no_grad():
        codes = vq.encode_top(x)
    return structure_nll(structure(vq.top_vectors(codes), structure.condition(masked, hole)), codes)


def structure_step_loss(ce: torch.Tensor, lw: StructureLoss, world_size: int = 1) -> torch.Tensor:
    """The minimised loss: the batch's summed cross-entropy (train_structure_generator.py), over the towers."""
    return ce.sum() * world_size / lw.towers


def texture_fill(texture, vq, x, hole, masked) -> tuple[torch.Tensor, dict]:
    """The texture generator's output from the photo's true structure, and the VQ-VAE's encoding of the photo."""
    with torch.no_grad():
        truth = vq.encode(x)  # the true structure and texture codes
    return texture(masked, hole, truth["quant_t"]), truth


def texture_losses(
    texture, vq, x, hole, masked, lw: TextureLoss, critic=None
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Stage 3's generator step (train_texture_generator.py) from the true structure: (terms, total, completed).
    critic(completed) -> the discriminator's logits, or None before the adversarial term joins."""
    out, truth = texture_fill(texture, vq, x, hole, masked)
    completed = out * hole + masked * (1 - hole)
    seen = vq.encode(completed)
    terms = {
        "pixel": (x - out).abs().mean(),
        "feature_top": feature_loss(seen["enc_t"], truth["idx_t"], vq.quantize_top.embedding),
        "feature_bottom": feature_loss(seen["enc_b"], truth["idx_b"], vq.quantize_bottom.embedding),
    }
    total = lw.pixel * terms["pixel"] + lw.feature * (terms["feature_top"] + terms["feature_bottom"])
    if critic is not None:
        terms["adversarial"] = -critic(completed).mean()
        total = total + lw.adversarial * terms["adversarial"]
    return terms, total, completed


def _masked_batch(batch, device):
    """(x, hole, x with 0 in the hole): the official input is image * (1 - mask)."""
    x, known = (t.to(device) for t in batch[:2])
    return x, 1 - known, x * known


def train_structure(cfg: StructureStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    hvqvae = first_stage(cfg.first_stage, HVQVAEModel)
    dcfg = fit_to_vqvae(dsi_config(cfg), hvqvae.config).model_copy(update={"texture": None})
    dsi = DSI(dcfg)
    dsi.hvqvae.load_state_dict(hvqvae.state_dict())
    vq = dsi.hvqvae.requires_grad_(False).eval().to(fabric.device)
    state, modules = setup_generator(fabric, dsi.structure, cfg, name="structure")
    structure, opt = state["structure"], state["optimizer"]
    average = WeightAverage(fabric, state, structure, cfg.optim.polyak_decay)
    run.restore(state)
    train, val = data(cfg, dcfg.resolution, fabric.global_rank, num_holes=1)
    per_code = math.log(2) * dcfg.structure.side**2

    def step_fn(step, batch, lr):
        x, hole, masked = _masked_batch(batch, fabric.device)
        ce = structure_losses(structure, vq, x, hole, masked)
        loss = structure_step_loss(ce, cfg.loss, fabric.world_size)
        step_optimizer(fabric, structure, opt, loss, cfg, lr)
        average.update()
        return {"loss": loss, "nll_bits": ce.detach().sum() / (per_code * x.shape[0])}

    def validate():
        if not val:
            return {}
        net = average.module.eval()
        bits, bits_hole, mse = [], [], []
        for batch in val:
            x, hole, masked = _masked_batch(batch, fabric.device)
            per_position = structure_losses(net, vq, x, hole, masked).flatten(1) / math.log(2)
            in_hole = token_hole(1 - hole, dcfg.resolution // dcfg.structure.side)  # codes the condition cannot show
            bits.append(float(per_position.mean()))
            bits_hole.append(float(per_position[in_hole].mean()) if in_hole.any() else float("nan"))
            mse.append(float(F.mse_loss(vq(x)[0], x)))
        # all codes (as trained), the codes under the hole alone, and the VQ-VAE's reconstruction error (Table 3)
        return {
            "val/nll_bits": float(np.mean(bits)),
            "val/nll_bits_hole": float(np.nanmean(bits_hole)),
            "val/vqvae_mse": float(np.mean(mse)),
        }

    def sheet(step, batch):
        """Rows of: masked input, three sampled structures (the VQ-VAE decodes them with its own bottom codes
        of the masked photo), original."""
        x, hole, masked = _masked_batch(val[0] if val else batch, fabric.device)
        net, side = average.module.eval(), dcfg.structure.side
        rows = []
        for i in range(min(3, x.shape[0])):
            hi, mi = hole[i : i + 1], masked[i : i + 1]
            codes = vq.encode_top(mi).reshape(1, -1).expand(3, -1)
            draws = Randomness([step * 10 + j for j in range(3)], fabric.device)
            cond = net.condition(mi, hi).expand(3, -1, -1, -1)
            unknown = token_hole(1 - hi, dcfg.resolution // side, 1)[0]
            sampled = sample_raster(net, cond, vq.quantize_top.embedding, codes, unknown, draws)
            decoded = decode_structure(vq, mi, sampled.reshape(3, side, side))
            rows.append(
                [
                    masked_view(to_uint8(x[i : i + 1])[0], (hi[0, 0] > 0.5).cpu().numpy()),
                    *to_uint8(decoded),
                    to_uint8(x[i : i + 1])[0],
                ]
            )
        return grid_rows(rows)

    def export():  # the VQ-VAE and the (averaged) structure generator
        model = DSI(dcfg)
        model.hvqvae, model.structure = vq, average.module
        return model

    return fit(run, state, train, step_fn, export, [structure], validate, sheet)


@torch.no_grad()
def decode_structure(hvqvae, x_known: torch.Tensor, top_codes: torch.Tensor) -> torch.Tensor:
    """Look at a top latent: decode it with the bottom codes the VQ-VAE picks for it and the masked photo."""
    top = hvqvae.top_vectors(top_codes)
    bottom = hvqvae.encoder_bottom(x_known).expand(top.shape[0], -1, -1, -1)
    bottom_z = hvqvae.pre_bottom(torch.cat([bottom, hvqvae.decoder_top(top)], 1))
    bq = hvqvae.quantize_bottom.lookup(hvqvae.quantize_bottom.tokens(bottom_z.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
    return hvqvae.decode(top, bq)


def _shared_adam_steps(opt: torch.optim.Optimizer, t: int) -> None:
    """Quirk of the official texture script: the generator and the discriminator steps go through one Adam
    object, so its bias correction counts both; the update at t (1-based, over both) sees t."""
    for group in opt.param_groups:
        for p in group["params"]:
            if "step" in opt.state.get(p, {}):
                opt.state[p]["step"].fill_(t - 1)  # Adam adds one before using it


def train_texture(cfg: TextureStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    partial = first_stage(cfg.first_stage, DSI)
    texture_cfg = dsi_config(cfg).texture
    if texture_cfg is None:
        raise PluralfillError("the model config has no texture generator")
    dcfg = fit_to_vqvae(partial.config.model_copy(update={"texture": texture_cfg}), partial.config.hvqvae)
    dsi = DSI(dcfg)
    dsi.hvqvae.load_state_dict(partial.hvqvae.state_dict())
    dsi.structure.load_state_dict(partial.structure.state_dict())
    for frozen in (dsi.hvqvae, dsi.structure):
        frozen.requires_grad_(False).eval().to(fabric.device)
    state, modules = setup_generator(fabric, dsi.texture, cfg, name="texture")
    texture, opt = state["texture"], state["optimizer"]
    lw = cfg.loss
    if lw.adversarial:
        add_discriminator(fabric, state, modules, SNPatchGANDiscriminator(dcfg.disc_width), cfg)
    run.restore(state)
    train, val = data(cfg, dcfg.resolution, fabric.global_rank, num_holes=1)
    vq = dsi.hvqvae

    def generate(x, hole, masked):
        return texture_fill(texture, vq, x, hole, masked)

    def step_fn(step, batch, lr):
        x, hole, masked = _masked_batch(batch, fabric.device)
        adversarial = "disc" in state and step >= lw.late_start_step
        critic = (lambda completed: state["disc"](completed, hole)) if adversarial else None
        terms, total, completed = texture_losses(texture, vq, x, hole, masked, lw, critic)
        if adversarial:
            _shared_adam_steps(opt, 2 * (step - lw.late_start_step) + 1)
        step_optimizer(fabric, texture, opt, total, cfg, lr)
        if adversarial:  # real and completed in one call: one power iteration, as the official graph
            d = state["disc"](torch.cat([x, completed.detach()]), hole.repeat(2, 1, 1, 1))
            real, fake = d.chunk(2)
            _shared_adam_steps(state["disc_optimizer"], 2 * (step - lw.late_start_step) + 2)
            loss = discriminator_update(fabric, state, texture_discriminator_loss(real, fake), cfg.optim.disc_lr or lr)
            terms["disc"] = loss.detach()
        return terms | {"loss": total}

    def validate():
        scores = []
        for batch in val:
            x, hole, masked = _masked_batch(batch, fabric.device)
            out, _ = generate(x, hole, masked)
            scores.append(float(((out - x).abs() * hole).sum() / (3 * hole.sum()).clamp(min=1)))
        return {"val/hole_l1": float(np.mean(scores))} if scores else {}

    def sheet(step, batch):
        """Rows of: masked input, the fill from the true structure, two fills from sampled structures, original."""
        seed_step(cfg, VAL_SEED_STEP, 0)
        inpainter = DSIInpainter(dsi, fabric.device)
        x, hole, masked = _masked_batch(val[0] if val else batch, fabric.device)
        rows = []
        for i in range(min(3, x.shape[0])):
            xi, hi, mi = x[i : i + 1], hole[i : i + 1], masked[i : i + 1]
            true_fill = generate(xi, hi, mi)[0] * hi + mi * (1 - hi)
            sampled = inpainter.sample(xi, 1 - hi, [step * 10, step * 10 + 1]) * hi + mi * (1 - hi)
            rows.append(
                [
                    masked_view(to_uint8(xi)[0], (hi[0, 0] > 0.5).cpu().numpy()),
                    to_uint8(true_fill)[0],
                    *to_uint8(sampled),
                    to_uint8(xi)[0],
                ]
            )
        return grid_rows(rows)

    return fit(run, state, train, step_fn, dsi, modules, validate, sheet)

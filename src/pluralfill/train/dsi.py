"""DSI's three training stages (seed 001, A-B).

1. `dsi-hvqvae`: the hierarchical VQ-VAE reconstructs images: MSE + 0.25 x commitment, EMA codebooks.
   Validation also logs how many top codes are in use and their entropy (bits), to see a collapse early.
2. `dsi-structure`: the VQ-VAE is frozen; the structure generator learns p(top codes | masked image, hole)
   by maximum likelihood. Logged in bits per code (NLL / ln 2, Table 3) beside the VQ-VAE's MSE.
3. `dsi-texture`: the texture generator paints the hole from the true structure (the photo's own top
   codes): L1 + hinge loss against an SN-PatchGAN + the structural feature loss, a cross-entropy that
   asks the VQ-VAE's top encoder to read the structure it was given back from the output.

Stage 2 exports a DSI without texture generator; stage 3 (first_stage= the stage-2 run) completes it.
`optim.polyak_decay` keeps an exponential moving average of the weights and exports that (Table 1-2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from pluralfill.errors import PluralfillError
from pluralfill.grid import grid_rows, masked_view
from pluralfill.geometry import token_hole
from pluralfill.losses.adversarial import hinge_discriminator_loss, hinge_generator_loss
from pluralfill.methods.dsi import DSIInpainter
from pluralfill.models.dsi import CONFIGS, DSI, DSIConfig, HVQVAEModel, fit_to_vqvae
from pluralfill.nn.discriminators import SNPatchGANDiscriminator
from pluralfill.pixels import to_uint8
from pluralfill.sampling.autoregressive import sample_raster
from pluralfill.train.config import OptimConfig, SecondStageConfig, Strict, TrainConfig, model_config
from pluralfill.train.loop import data, discriminator_step, first_stage, fit, optimizer, step_optimizer, unwrap
from pluralfill.train.run import seed_step, start
from pluralfill.train.transformer import VAL_SEED_STEP


class DSIOptim(OptimConfig):
    polyak_decay: float | None = None  # export an exponential moving average of the weights (0.9997 in seed 001)


class HVQVAELoss(Strict):
    commitment: float = 0.25


class HVQVAEStage(TrainConfig):
    stage: Literal["dsi-hvqvae"]
    loss: HVQVAELoss = HVQVAELoss()
    optim: DSIOptim = DSIOptim()


class StructureStage(SecondStageConfig):
    stage: Literal["dsi-structure"]  # maximum likelihood: no loss settings
    optim: DSIOptim = DSIOptim()


class TextureLoss(Strict):
    pixel: float = 1.0
    structural_feature: float = 1.0  # cross-entropy of the output's top codes against the structure
    adversarial: float = 0.1  # hinge loss against the SN-PatchGAN
    late_start_step: int = 10_000  # the adversarial term joins at this step
    disc_lr: float = 2e-4


class TextureStage(SecondStageConfig):
    stage: Literal["dsi-texture"]
    loss: TextureLoss = TextureLoss()


def dsi_config(cfg: TrainConfig) -> DSIConfig:
    return model_config(cfg, CONFIGS, DSIConfig)


def polyak(fabric, state: dict, model, cfg: HVQVAEStage | StructureStage):
    """An EMA copy of the weights (and buffers, so the codebooks follow), kept in the resumable state."""
    if cfg.optim.polyak_decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(unwrap(model), multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.polyak_decay), use_buffers=True)
    state["polyak"] = ema.to(fabric.device)
    return ema


def train_hvqvae(cfg: HVQVAEStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    vcfg = dsi_config(cfg).hvqvae
    model = HVQVAEModel(vcfg)
    model, opt = fabric.setup(model, optimizer(model.parameters(), cfg))
    state = {"model": model, "optimizer": opt, "step": 0, "best": math.inf}
    ema = polyak(fabric, state, model, cfg)
    run.restore(state)
    train, val = data(cfg, vcfg.resolution, fabric.global_rank, num_holes=0)
    last = {}

    def losses(x):
        rec, commitment, _ = model(x)
        mse = F.mse_loss(rec, x)
        last["rec"] = rec.detach()
        return {"loss": mse + cfg.loss.commitment * commitment, "mse": mse, "commitment": commitment}

    def step_fn(step, batch, lr):
        terms = losses(batch[0])
        step_optimizer(fabric, model, opt, terms["loss"], cfg, lr)
        if ema is not None:
            ema.update_parameters(unwrap(model))
        return terms

    def validate():
        net = ema.module.eval() if ema is not None else model
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
        return {"val/mse": float(torch.stack(mse).mean()), "val/top_codes_used": float((counts > 0).sum()),
                "val/top_code_bits": float(-(p * p.log2()).sum())}  # fmt: skip

    def sheet(step, batch):
        n = min(4, batch[0].shape[0])
        return grid_rows([[a, b] for a, b in zip(to_uint8(batch[0][:n]), to_uint8(last["rec"][:n]))])

    export = ema.module if ema is not None else unwrap(model)
    return fit(run, state, train, step_fn, export, [model], validate, sheet)


def _masked_batch(batch, device):
    x, known = (t.to(device) for t in batch[:2])
    return x, known, 1 - known


def train_structure(cfg: StructureStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    hvqvae = first_stage(cfg.first_stage, HVQVAEModel)
    dcfg = fit_to_vqvae(dsi_config(cfg), hvqvae.config)
    dcfg.texture = None
    dsi = DSI(dcfg)
    dsi.hvqvae.load_state_dict(hvqvae.state_dict())
    dsi.hvqvae.requires_grad_(False).eval().to(fabric.device)
    structure, opt = fabric.setup(dsi.structure, optimizer(dsi.structure.parameters(), cfg))
    state = {"structure": structure, "optimizer": opt, "step": 0, "best": math.inf}
    ema = polyak(fabric, state, structure, cfg)
    run.restore(state)
    train, val = data(cfg, dcfg.resolution, fabric.global_rank, num_holes=1)

    def nll_bits(net, x, hole, per_position: bool = False):
        codes = dsi.hvqvae.encode_top(x).reshape(x.shape[0], -1)
        logits = net(codes, net.condition(x, hole))
        nll = F.cross_entropy(logits.flatten(0, 1).float(), codes.reshape(-1), reduction="none") / math.log(2)
        return nll.reshape(codes.shape) if per_position else nll.mean()

    def step_fn(step, batch, lr):
        x, _, hole = _masked_batch(batch, fabric.device)
        loss = nll_bits(structure, x, hole)
        step_optimizer(fabric, structure, opt, loss, cfg, lr)
        if ema is not None:
            ema.update_parameters(unwrap(structure))
        return {"loss": loss, "nll_bits": loss}

    def validate():
        if not val:
            return {}
        net = ema.module.eval() if ema is not None else structure
        nll, nll_hole, mse = [], [], []
        for batch in val:
            x, known, hole = _masked_batch(batch, fabric.device)
            per_position = nll_bits(net, x, hole, per_position=True)
            in_hole = token_hole(known, dcfg.resolution // dcfg.structure.side)  # codes the condition cannot show
            nll.append(float(per_position.mean()))
            nll_hole.append(float(per_position[in_hole].mean()) if in_hole.any() else float("nan"))
            mse.append(float(F.mse_loss(dsi.hvqvae(x)[0], x)))
        # all codes (as trained), the codes under the hole alone, and the VQ-VAE's reconstruction error (Table 3)
        return {"val/nll_bits": float(np.mean(nll)), "val/nll_bits_hole": float(np.nanmean(nll_hole)),
                "val/vqvae_mse": float(np.mean(mse))}  # fmt: skip

    def sheet(step, batch):
        """Rows of: masked input, three sampled structures (the VQ-VAE decodes them with its own bottom codes
        of the masked photo), original."""
        x, known, hole = _masked_batch(val[0] if val else batch, fabric.device)
        rows = []
        net = ema.module.eval() if ema is not None else structure
        for i in range(min(3, x.shape[0])):
            xi, ki, hi = x[i : i + 1], known[i : i + 1], hole[i : i + 1]
            codes = dsi.hvqvae.encode_top(xi * ki).reshape(1, -1).expand(3, -1)
            gens = [torch.Generator(device=fabric.device).manual_seed(step * 10 + j) for j in range(3)]
            cond = net.condition(xi, hi).expand(3, -1, -1, -1)
            sampled = sample_raster(net, cond, codes, token_hole(ki, dcfg.resolution // dcfg.structure.side, 1)[0], gens)
            side = dcfg.structure.side
            decoded = decode_structure(dsi.hvqvae, xi * ki, sampled.reshape(3, side, side))
            rows.append([masked_view(to_uint8(xi)[0], (hi[0, 0] > 0.5).cpu().numpy()), *to_uint8(decoded), to_uint8(xi)[0]])
        return grid_rows(rows)

    export = DSI(dcfg)
    export.hvqvae = dsi.hvqvae
    export.structure = ema.module if ema is not None else unwrap(structure)
    return fit(run, state, train, step_fn, export, [structure], validate, sheet)


@torch.no_grad()
def decode_structure(hvqvae, x_known: torch.Tensor, top_codes: torch.Tensor) -> torch.Tensor:
    """Look at a top latent: decode it with the bottom codes the VQ-VAE picks for it and the masked photo."""
    top = hvqvae.top_vectors(top_codes)
    bottom = hvqvae.encoder_bottom(x_known).expand(top.shape[0], -1, -1, -1)
    bottom_z = hvqvae.pre_bottom(torch.cat([bottom, hvqvae.decoder_top(top)], 1))
    bq = hvqvae.quantize_bottom.lookup(hvqvae.quantize_bottom.tokens(bottom_z.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
    return hvqvae.decoder(torch.cat([bq, hvqvae.upsample_top(top)], 1))


def structure_scores(distance: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """Logits of the structural feature loss from squared distances (..., K) to the K codes: standardized
    over the codebook, squashed by -tanh, times 10, as the official code scores them; unlike raw distances
    this does not depend on how compact the codebook is."""
    std = distance.std(-1, keepdim=True, correction=0).clamp(min=1e-8)
    return -scale * torch.tanh((distance - distance.mean(-1, keepdim=True)) / std)


def train_texture(cfg: TextureStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    partial = first_stage(cfg.first_stage, DSI)
    dcfg = partial.config.model_copy(deep=True)
    dcfg.texture = dsi_config(cfg).texture
    if dcfg.texture is None:
        raise PluralfillError("the model config has no texture generator")
    dcfg = fit_to_vqvae(dcfg, dcfg.hvqvae)
    dsi = DSI(dcfg)
    dsi.hvqvae.load_state_dict(partial.hvqvae.state_dict())
    dsi.structure.load_state_dict(partial.structure.state_dict())
    for frozen in (dsi.hvqvae, dsi.structure):
        frozen.requires_grad_(False).eval().to(fabric.device)
    dsi.texture.standardize_like(dsi.hvqvae.quantize_top.embedding)
    texture, opt = fabric.setup(dsi.texture, optimizer(dsi.texture.parameters(), cfg))
    state = {"texture": texture, "optimizer": opt, "step": 0, "best": math.inf}
    lw = cfg.loss
    if lw.adversarial:
        disc = SNPatchGANDiscriminator(dcfg.disc_width)
        disc, dopt = fabric.setup(disc, torch.optim.Adam(disc.parameters(), lr=lw.disc_lr, betas=cfg.optim.betas))
        state |= {"disc": disc, "disc_optimizer": dopt}
    run.restore(state)
    train, val = data(cfg, dcfg.resolution, fabric.global_rank, num_holes=1)
    vq = dsi.hvqvae

    def generate(x, known):
        codes = vq.encode_top(x)  # the true structure
        return texture(x, known, vq.top_vectors(codes)), codes

    def losses(x, known, hole):
        fine, codes = generate(x, known)
        completed = fine * hole + x * known
        # the VQ-VAE's top encoder should read back the structure the texture generator was given: a
        # cross-entropy over the codes, scored by distance standardized over the codebook (official code)
        logits = structure_scores(vq.quantize_top.distance(vq.top_features(completed).permute(0, 2, 3, 1)))
        terms = {"pixel": (fine - x).abs().mean(), "structural": F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))}
        total = lw.pixel * terms["pixel"] + lw.structural_feature * terms["structural"]
        return total, terms, completed

    def step_fn(step, batch, lr):
        x, known, hole = _masked_batch(batch, fabric.device)
        total, terms, completed = losses(x, known, hole)
        adversarial = "disc" in state and step >= lw.late_start_step
        if adversarial:
            terms["adversarial"] = hinge_generator_loss(state["disc"](completed, hole))
            total = total + lw.adversarial * terms["adversarial"]
        step_optimizer(fabric, texture, opt, total, cfg, lr)
        if adversarial:
            terms["disc"] = discriminator_step(fabric, state, hinge_discriminator_loss, x, completed,
                                               lambda images: state["disc"](images, hole))  # fmt: skip
        return terms | {"loss": total}

    def validate():
        scores = []
        for batch in val:
            x, known, hole = _masked_batch(batch, fabric.device)
            fine, _ = generate(x, known)
            scores.append(float(((fine - x).abs() * hole).sum() / (3 * hole.sum()).clamp(min=1)))
        return {"val/hole_l1": float(np.mean(scores))} if scores else {}

    def sheet(step, batch):
        """Rows of: masked input, the fill from the true structure, two fills from sampled structures, original."""
        seed_step(cfg, VAL_SEED_STEP, 0)
        inpainter = DSIInpainter(dsi, fabric.device)
        x, known, hole = _masked_batch(val[0] if val else batch, fabric.device)
        rows = []
        for i in range(min(3, x.shape[0])):
            xi, ki, hi = x[i : i + 1], known[i : i + 1], hole[i : i + 1]
            true_fill = generate(xi, ki)[0] * hi + xi * ki
            sampled = inpainter.sample(xi, ki, [step * 10, step * 10 + 1]) * hi + xi * ki
            rows.append([masked_view(to_uint8(xi)[0], (hi[0, 0] > 0.5).cpu().numpy()), to_uint8(true_fill)[0], *to_uint8(sampled), to_uint8(xi)[0]])
        return grid_rows(rows)

    return fit(run, state, train, step_fn, dsi, [texture] + ([state["disc"]] if "disc" in state else []), validate, sheet)

"""PUT's two training stages (seed 000, section 2; DESIGN.md for the official details).

Stage 1 (`put-pvqvae`): the P-VQVAE reconstructs the masked image x * m from its tokens, the decoder's
reference masked further by m' (Eq. 1): pixel + 5 gradient + 0.1 adversarial + 0.1 perceptual + 250 style
+ 0.25 commitment, codebooks by EMA; the last three reconstruction terms start late.

Stage 2 (`put-transformer`): the P-VQVAE is frozen; the UQ-Transformer reads the un-quantized features of
the masked image (known ones swapped for their codes with p = 0.3) and is trained with cross-entropy on
the positions with missing pixels, against the tokens of the full image.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pluralfill.errors import PluralfillError
from pluralfill.grid import grid_rows, masked_view
from pluralfill.losses.adversarial import bce_discriminator_loss, bce_generator_loss
from pluralfill.losses.reconstruction import gradient_loss, pixel_loss
from pluralfill.models.put import PUT
from pluralfill.models.pvqvae import PVQVAE, masked_input
from pluralfill.models.put import CONFIGS, PUTConfig
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
from pluralfill.train.run import Run, make_fabric


def put_config(cfg: TrainConfig) -> PUTConfig:
    return model_config(cfg, CONFIGS, PUTConfig)


# ------------------------------------------------------------------------------------------------ stage 1


def train_pvqvae(cfg: TrainConfig, resume=None) -> Path:
    fabric = make_fabric(cfg)
    run = Run.create(cfg, fabric, resume)
    pcfg = put_config(cfg).pvqvae
    fabric.seed_everything(cfg.seed, verbose=False)  # the same initial weights on every rank
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


def train_transformer(cfg: TrainConfig, resume=None) -> Path:
    fabric = make_fabric(cfg)
    run = Run.create(cfg, fabric, resume)
    pvqvae = first_stage(cfg.first_stage, PVQVAE)
    put_cfg = put_config(cfg)
    put_cfg.pvqvae = pvqvae.config  # the transformer must fit the P-VQVAE it reads
    t = put_cfg.transformer
    t.in_dim, t.vocab_size = pvqvae.config.code_dim, pvqvae.num_known_codes
    t.seq_len = (pvqvae.config.resolution // pvqvae.config.patch_size) ** 2
    fabric.seed_everything(cfg.seed, verbose=False)
    model = PUT(put_cfg)
    model.pvqvae.load_state_dict(pvqvae.state_dict())
    model.pvqvae.requires_grad_(False).eval().to(fabric.device)
    pvq = model.pvqvae
    transformer, opt = fabric.setup(model.transformer, transformer_optimizer(model.transformer, cfg))
    state = {"transformer": transformer, "optimizer": opt, "step": 0, "best": math.inf}
    if run.resumed:
        run.load_state(state)
    train, val = data(cfg, pvq.config.resolution, fabric.global_rank, num_holes=1)

    def losses(x, known, random_quantize: float):
        with torch.no_grad():
            f = pvq.encode(x, known)
            b, c, h, w = f.shape
            types = pvq.token_types(known).reshape(b, h * w)
            seq = f.permute(0, 2, 3, 1).reshape(b, h * w, c)
            target = pvq.tokenize(pvq.encode(x)).reshape(b, h * w)
            if random_quantize > 0:  # known features swapped for their codes, as the sampler writes codes back
                swap = (types == 1) & (torch.rand(types.shape, device=x.device) < random_quantize)
                codes = pvq.quantizer.lookup(pvq.tokenize(f, types.reshape(b, h, w)).reshape(b, h * w))
                seq = torch.where(swap[..., None], codes, seq)
        logits = transformer(seq)
        missing = types != 1
        loss = F.cross_entropy(logits[missing].float(), target[missing])
        return {"loss": loss, "accuracy": (logits[missing].argmax(-1) == target[missing]).float().mean()}

    def step_fn(step, batch, lr):
        terms = losses(*batch, cfg.loss.random_quantize)
        step_optimizer(fabric, transformer, opt, terms["loss"], cfg, lr)
        return terms

    def validate():
        scores = [losses(*(t.to(fabric.device) for t in b), random_quantize=0.0) for b in val]
        return {f"val/{k}": float(np.mean([float(s[k]) for s in scores])) for k in ("loss", "accuracy")} if scores else {}

    inpainter = []

    def sheet(step, batch):
        from pluralfill.methods.put import PUTInpainter

        inpainter[:] = inpainter or [PUTInpainter(model, fabric.device)]
        fast = max(1, put_cfg.transformer.seq_len // 16)  # sheets every few hundred steps must be quick
        return sample_sheet(val[0] if val else batch, lambda x, k, seeds: inpainter[0].sample(x, k, seeds, tokens_per_step=fast),
                            step, fabric.device)  # fmt: skip

    return fit(run, state, train, step_fn, model, [transformer], validate, sheet)


def transformer_optimizer(transformer, cfg: TrainConfig):
    """AdamW without weight decay on biases, norms, embeddings and position embeddings (minGPT)."""
    decay, no_decay = [], []
    for name, p in transformer.named_parameters():
        (no_decay if p.ndim < 2 or name in ("pos_emb", "tok_emb.weight") else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=cfg.optim.betas)


def sample_sheet(batch, sample, step: int, device):
    """Rows of: masked input, three samples, original, for up to three images of a (x, known) batch."""
    xs, ks = batch[0], batch[1]
    rows = []
    for i in range(min(3, xs.shape[0])):
        xi, ki = xs[i : i + 1].to(device), ks[i : i + 1].to(device)
        ys = sample(xi, ki, [step * 10 + j for j in range(3)]) * (1 - ki) + xi * ki
        rows.append([masked_view(to_uint8(xi)[0], (ki[0, 0] < 0.5).cpu().numpy()), *to_uint8(ys), to_uint8(xi)[0]])
    return grid_rows(rows)

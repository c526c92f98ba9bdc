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
from pluralfill.grid import grid_rows, masked_view
from pluralfill.losses.adversarial import hinge_discriminator_loss, hinge_generator_loss
from pluralfill.losses.reconstruction import pixel_loss
from pluralfill.models.maskgit import CONFIGS, MaskGIT, MaskGITConfig, mvtm_loss
from pluralfill.models.vqgan import VQGAN
from pluralfill.train.config import TrainConfig, model_config
from pluralfill.train.loop import data, first_stage, loader, optimizer, progress, step_optimizer, to_uint8
from pluralfill.train.run import Run, lr_at, make_fabric, seed_step

LPIPS_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
VAL_SEED_STEP = 10**9  # validation masks are drawn from this fixed "step"


def maskgit_config(cfg: TrainConfig) -> MaskGITConfig:
    return model_config(cfg, CONFIGS, MaskGITConfig)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


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
    opt = optimizer(model.parameters(), cfg)
    model, opt = fabric.setup(model, opt)
    state = {"model": model, "optimizer": opt, "step": 0, "best": math.inf}
    if cfg.loss.adversarial:
        from pluralfill.nn.discriminators import EdgeConnectDiscriminator

        disc = EdgeConnectDiscriminator()
        dopt = torch.optim.Adam(disc.parameters(), lr=cfg.loss.disc_lr, betas=(0.5, 0.9))
        disc, dopt = fabric.setup(disc, dopt)
        state |= {"disc": disc, "disc_optimizer": dopt}
    if run.resumed:
        run.load_state(state)
    train, val = data(cfg, tcfg.resolution, fabric.global_rank, num_holes=0)
    start, lw = state["step"], cfg.loss

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
        return total, terms, rec

    with progress(run, cfg.steps, start) as bar:
        for step, (x,) in zip(range(start, cfg.steps), loader(fabric, train, start, cfg)):
            seed_step(cfg, step, fabric.global_rank)
            model.train()
            late = step >= lw.late_start_step
            lr = lr_at(step, cfg)
            total, terms, rec = losses(x, late)
            step_optimizer(fabric, model, opt, total, cfg, lr)
            if late and "disc" in state:
                d_loss = hinge_discriminator_loss(state["disc"](x), state["disc"](rec.detach()))
                state["disc_optimizer"].zero_grad(set_to_none=True)
                fabric.backward(d_loss)
                state["disc_optimizer"].step()
                terms["disc"] = d_loss
            state["step"] = done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                values = {f"train/{k}": float(v.detach()) for k, v in terms.items()} | {"train/loss": float(total.detach()), "lr": lr}
                values["images_per_s"] = run.throughput(done, cfg.batch_size)
                run.log(done, values)
                bar.update(0, completed=done, info=f"loss {values['train/loss']:.4f}  {values['images_per_s']:.1f} img/s")
            if val and (done % cfg.val_every == 0 or done == cfg.steps):
                model.eval()
                with torch.no_grad():
                    score = float(np.mean([float(losses(b[0].to(fabric.device), late=False)[1]["pixel"]) for b in val]))
                run.log(done, {"val/pixel": score})
                if score < state["best"]:
                    state["best"] = score
                    run.export(_unwrap(model), "best")
            if done % cfg.sample_every == 0 or done == cfg.steps:
                n = min(4, x.shape[0])
                run.save_grid(done, grid_rows([[a, b] for a, b in zip(to_uint8(x[:n]), to_uint8(rec[:n]))]))
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                run.save_state(state)
                run.export(_unwrap(model), "last")
    run.close()
    return run.folder


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
    decay, no_decay = [], []
    for name, p in model.transformer.named_parameters():  # no weight decay on biases, norms, embeddings
        (no_decay if p.ndim < 2 or "emb" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.optim.lr, betas=cfg.optim.betas)  # fmt: skip
    transformer, opt = fabric.setup(model.transformer, opt)
    state = {"transformer": transformer, "optimizer": opt, "step": 0, "best": math.inf}
    if run.resumed:
        run.load_state(state)
    train, val = data(cfg, mcfg.tokenizer.resolution, fabric.global_rank, num_holes=1)
    start = state["step"]

    def losses(x):
        with torch.no_grad():
            tokens = model.tokenizer.encode(x).reshape(x.shape[0], -1)
        return mvtm_loss(transformer, tokens, model.transformer.mask_id, cfg.loss.mask_schedule, cfg.loss.label_smoothing)

    inpainter = None
    with progress(run, cfg.steps, start) as bar:
        for step, (x, _known) in zip(range(start, cfg.steps), loader(fabric, train, start, cfg)):
            seed_step(cfg, step, fabric.global_rank)
            transformer.train()
            lr = lr_at(step, cfg)
            loss, accuracy = losses(x)
            step_optimizer(fabric, transformer, opt, loss, cfg, lr)
            state["step"] = done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                ips = run.throughput(done, cfg.batch_size)
                run.log(done, {"train/loss": float(loss.detach()), "train/accuracy": float(accuracy), "lr": lr, "images_per_s": ips})
                bar.update(0, completed=done, info=f"loss {float(loss.detach()):.4f}  acc {float(accuracy):.3f}  {ips:.1f} img/s")
            if val and (done % cfg.val_every == 0 or done == cfg.steps):
                transformer.eval()
                seed_step(cfg, VAL_SEED_STEP, 0)  # the same masks at every validation
                with torch.no_grad():
                    scores = [losses(b[0].to(fabric.device)) for b in val]
                val_loss = float(np.mean([float(s[0]) for s in scores]))
                run.log(done, {"val/loss": val_loss, "val/accuracy": float(np.mean([float(s[1]) for s in scores]))})
                if val_loss < state["best"]:
                    state["best"] = val_loss
                    run.export(model, "best")
            if run.is_main and (done % cfg.sample_every == 0 or done == cfg.steps):
                from pluralfill.methods.maskgit import MaskGITInpainter

                transformer.eval()
                inpainter = inpainter or MaskGITInpainter(model, fabric.device)
                xs, ks = val[0] if val else (x, _known)
                rows = []
                for i in range(min(3, xs.shape[0])):
                    xi, ki = xs[i : i + 1].to(fabric.device), ks[i : i + 1].to(fabric.device)
                    ys = inpainter.sample(xi, ki, [done * 10 + j for j in range(3)], steps=8) * (1 - ki) + xi * ki
                    rows.append([masked_view(to_uint8(xi)[0], (ki[0, 0] < 0.5).cpu().numpy()), *to_uint8(ys), to_uint8(xi)[0]])
                run.save_grid(done, grid_rows(rows))
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                run.save_state(state)
                run.export(model, "last")
    run.close()
    return run.folder

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
from pluralfill.train.loop import data, first_stage, loader, optimizer, progress, step_optimizer, to_uint8
from pluralfill.train.run import Run, lr_at, make_fabric, seed_step


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
    opt = optimizer(model.parameters(), cfg)
    model, opt = fabric.setup(model, opt)
    state = {"model": model, "optimizer": opt, "step": 0, "best": math.inf}
    if cfg.loss.adversarial:
        from pluralfill.nn.discriminators import EdgeConnectDiscriminator

        disc = EdgeConnectDiscriminator()
        dopt = torch.optim.Adam(disc.parameters(), lr=cfg.loss.disc_lr, betas=(0.0, 0.9))
        disc, dopt = fabric.setup(disc, dopt)
        state |= {"disc": disc, "disc_optimizer": dopt}
    if run.resumed:
        run.load_state(state)
    train, val = data(cfg, pcfg.resolution, fabric.global_rank, num_holes=2)
    start = state["step"]
    lw = cfg.loss

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
        return total, terms, rec, target

    with progress(run, cfg.steps, start) as bar:
        for step, (x, known, known_ref) in zip(range(start, cfg.steps), loader(fabric, train, start, cfg)):
            seed_step(cfg, step, fabric.global_rank)
            model.train()
            late = step >= lw.late_start_step
            lr = lr_at(step, cfg)
            total, terms, rec, target = losses(x, known, known_ref, late)
            step_optimizer(fabric, model, opt, total, cfg, lr)
            if late and "disc" in state:
                d_loss = bce_discriminator_loss(state["disc"](target), state["disc"](rec.detach()))
                state["disc_optimizer"].zero_grad(set_to_none=True)
                fabric.backward(d_loss)
                state["disc_optimizer"].step()
                terms["disc"] = d_loss
            state["step"] = done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                values = {f"train/{k}": float(v.detach()) for k, v in terms.items()} | {"train/loss": float(total.detach()), "lr": lr}
                values["images_per_s"] = run.throughput(done, cfg.batch_size)
                run.log(done, values)
                bar.update(0, completed=done, info=f"loss {float(total.detach()):.4f}  {values['images_per_s']:.1f} img/s")
            if val and (done % cfg.val_every == 0 or done == cfg.steps):
                model.eval()
                with torch.no_grad():
                    scores = [float(losses(*(t.to(fabric.device) for t in b), late=False)[1]["pixel"]) for b in val]
                score = float(np.mean(scores))
                run.log(done, {"val/pixel": score})
                if score < state["best"]:
                    state["best"] = score
                    run.export(model.module if hasattr(model, "module") else model, "best")
            if done % cfg.sample_every == 0 or done == cfg.steps:
                n = min(4, x.shape[0])
                holes = (known[:n, 0] < 0.5).cpu().numpy()
                rows = [[masked_view(i, h), r, t] for i, h, r, t in zip(to_uint8(x[:n]), holes, to_uint8(rec[:n]), to_uint8(target[:n]))]
                run.save_grid(done, grid_rows(rows))
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                run.save_state(state)
                run.export(model.module if hasattr(model, "module") else model, "last")
    run.close()
    return run.folder


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
    decay, no_decay = [], []
    for name, p in model.transformer.named_parameters():  # minGPT: no weight decay on biases, norms, positions
        (no_decay if p.ndim < 2 or name == "pos_emb" else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.optim.lr, betas=cfg.optim.betas)  # fmt: skip
    transformer, opt = fabric.setup(model.transformer, opt)
    state = {"transformer": transformer, "optimizer": opt, "step": 0, "best": math.inf}
    if run.resumed:
        run.load_state(state)
    train, val = data(cfg, pvq.config.resolution, fabric.global_rank, num_holes=1)
    start = state["step"]

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
        accuracy = (logits[missing].argmax(-1) == target[missing]).float().mean()
        return loss, accuracy

    sample_inpainter = None
    with progress(run, cfg.steps, start) as bar:
        for step, (x, known) in zip(range(start, cfg.steps), loader(fabric, train, start, cfg)):
            seed_step(cfg, step, fabric.global_rank)
            transformer.train()
            lr = lr_at(step, cfg)
            loss, accuracy = losses(x, known, cfg.loss.random_quantize)
            step_optimizer(fabric, transformer, opt, loss, cfg, lr)
            state["step"] = done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                ips = run.throughput(done, cfg.batch_size)
                run.log(done, {"train/loss": float(loss.detach()), "train/accuracy": float(accuracy), "lr": lr, "images_per_s": ips})
                bar.update(0, completed=done, info=f"loss {float(loss.detach()):.4f}  acc {float(accuracy):.3f}  {ips:.1f} img/s")
            if val and (done % cfg.val_every == 0 or done == cfg.steps):
                transformer.eval()
                with torch.no_grad():
                    scores = [losses(*(t.to(fabric.device) for t in b), random_quantize=0.0) for b in val]
                val_loss = float(np.mean([float(s[0]) for s in scores]))
                run.log(done, {"val/loss": val_loss, "val/accuracy": float(np.mean([float(s[1]) for s in scores]))})
                if val_loss < state["best"]:
                    state["best"] = val_loss
                    run.export(model, "best")
            if run.is_main and (done % cfg.sample_every == 0 or done == cfg.steps):
                from pluralfill.methods.put import PUTInpainter

                transformer.eval()
                sample_inpainter = sample_inpainter or PUTInpainter(model, fabric.device)
                xs, ks = (val[0] if val else (x, known))
                rows = []
                fast = max(1, put_cfg.transformer.seq_len // 16)  # sheets every few hundred steps must be quick
                for i in range(min(3, xs.shape[0])):
                    xi, ki = xs[i : i + 1].to(fabric.device), ks[i : i + 1].to(fabric.device)
                    ys = sample_inpainter.sample(xi, ki, [done * 10 + j for j in range(3)], tokens_per_step=fast)
                    ys = ys * (1 - ki) + xi * ki
                    rows.append([masked_view(to_uint8(xi)[0], (ki[0, 0] < 0.5).cpu().numpy()), *to_uint8(ys), to_uint8(xi)[0]])
                run.save_grid(done, grid_rows(rows))
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                run.save_state(state)
                run.export(model, "last")
    run.close()
    return run.folder



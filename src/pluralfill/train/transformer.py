"""The second stage of the token methods (PUT and MaskGIT): the first-stage model is frozen and a
transformer learns to predict the tokens of the hole. The methods differ in what the transformer reads and
what it is scored on (their `losses`), not in the loop.

    model  = build(cfg)                            # first stage loaded and frozen, transformer new
    terms  = losses(model, transformer, x, known, training)   # {"loss": ..., "accuracy": ...}
    sheets = inpainter(model).sample(...)          # rows of masked input, 3 samples, original
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pluralfill.grid import grid_rows, masked_view
from pluralfill.pixels import to_uint8
from pluralfill.train.config import SecondStageConfig
from pluralfill.train.loop import data, fit, step_optimizer
from pluralfill.train.run import seed_step, start

VAL_SEED_STEP = 10**9  # validation draws its random masks from this fixed "step"


def train_token_transformer(
    cfg: SecondStageConfig, resume, build: Callable, losses: Callable, inpainter: Callable, sheet_options: Callable
) -> Path:
    """build(cfg, device) -> the model (`.transformer`, `.config.resolution`); losses(model, transformer, x,
    known, training) -> {"loss", "accuracy"}; inpainter(model, device).sample(..., **sheet_options(model))
    draws the sample sheets."""
    fabric, run = start(cfg, resume)
    model = build(cfg, fabric.device)
    transformer, opt = fabric.setup(model.transformer, transformer_optimizer(model.transformer, cfg))
    state = {"transformer": transformer, "optimizer": opt, "step": 0, "best": math.inf}
    run.restore(state)
    train, val = data(cfg, model.config.resolution, fabric.global_rank, num_holes=1)

    def step_fn(step, batch, lr):
        terms = losses(model, transformer, *batch, training=True)
        step_optimizer(fabric, transformer, opt, terms["loss"], cfg, lr)
        return terms

    def validate():
        seed_step(cfg, VAL_SEED_STEP, 0)  # the same random draws at every validation
        scores = [losses(model, transformer, *(t.to(fabric.device) for t in b), training=False) for b in val]
        return (
            {f"val/{k}": float(np.mean([float(s[k]) for s in scores])) for k in ("loss", "accuracy")} if scores else {}
        )

    sampler = []  # made at the first sheet, not before: an inpainter puts its model in eval mode

    def sheet(step, batch):
        sampler[:] = sampler or [inpainter(model, fabric.device)]
        options = sheet_options(model)
        return sample_sheet(
            val[0] if val else batch, lambda x, k, seeds: sampler[0].sample(x, k, seeds, **options), step, fabric.device
        )

    return fit(run, state, train, step_fn, model, [transformer], validate, sheet)


def frozen_first_stage(model: torch.nn.Module, first: torch.nn.Module, device) -> None:
    """Copy the trained first stage into `model` and freeze it there."""
    model.load_state_dict(first.state_dict())
    model.requires_grad_(False).eval().to(device)


def transformer_optimizer(transformer, cfg):
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

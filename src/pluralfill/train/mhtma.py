"""MHTMA training (Zhou et al. 2023, III-B and IV-B): coarse and refinement networks end to end against the
global-local discriminator.

    L_G = coarse_pixel * |coarse - x|_1 + pixel * |fine - x|_1 + perceptual * VGG16(coarse, x) + adversarial * L_adv
    L_D = hinge on spectral-normalized D (HAL-SN, default) or WGAN-GP

The discriminator sees the completed image (the fine output in the hole, the photo elsewhere). The
learned temperatures of every head are logged each step (`train/temperature_k` in metrics.csv) and drawn
as RUN/temperatures.png, like Zhou et al. 2023, Fig. 6. The sketch-guided model gets the sketch of the training
photo inside the hole (masks/sketch.py).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pluralfill.grid import grid_rows, masked_view
from pluralfill.losses.adversarial import (
    gradient_penalty,
    hinge_discriminator_loss,
    hinge_generator_loss,
    wgan_discriminator_loss,
)
from pluralfill.losses.reconstruction import pixel_loss
from pluralfill.masks.sketch import extract_sketch
from pluralfill.models.mhtma import CONFIGS, MHTMA, MHTMAConfig
from pluralfill.nn.discriminators import GlobalLocalDiscriminator, hole_boxes
from pluralfill.pixels import to_uint8
from pluralfill.train.config import AdversarialOptim, Strict, TrainConfig, model_config
from pluralfill.train.loop import (
    add_discriminator,
    data,
    discriminator_step,
    fit,
    setup_generator,
    step_optimizer,
    unwrap,
    vgg_features,
)
from pluralfill.train.run import start

PERCEPTUAL_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # VGG-16


class MHTMALoss(Strict):
    pixel: float = 1.0  # L1 of the final output (Eq. 2)
    coarse_pixel: float = 1.0  # L1 of the coarse output (Eq. 2)
    perceptual: float = 0.1  # VGG-16 on the coarse output
    adversarial: float = 0.1
    gan: Literal["hinge", "wgan-gp"] = "hinge"  # HAL-SN (default) or WGAN-GP (Zhou et al. 2023, Table II)
    gradient_penalty: float = 10.0  # with gan=wgan-gp
    late_start_step: int = 10_000  # the adversarial term joins at this step
    vgg_weights: str | None = None  # VGG-16 file; default: cache, then download


class MHTMAOptim(AdversarialOptim):
    disc_lr: float | None = 2e-4
    temperature_lr_scale: float = 1.0  # the temperature network's learning rate relative to lr


class SketchConfig(Strict):
    """How the sketch-guided MHTMA gets its training sketches (Zhou et al. 2023, IV-F)."""

    threshold: float = 0.65
    min_area: int = 100  # px at 256x256, scaled with the training resolution
    pidinet: str | None = None  # PiDiNet weights (table5_pidinet.pth); without them the classical edge detector


class MHTMAStage(TrainConfig):
    stage: Literal["mhtma"]
    loss: MHTMALoss = MHTMALoss()
    optim: MHTMAOptim = MHTMAOptim()
    sketch: SketchConfig = SketchConfig()


def plot_temperatures(metrics_csv: Path, out: Path) -> Path | None:
    """Every head's mean temperature against the training step (Zhou et al. 2023, Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [k for k in (rows[0] if rows else {}) if k.startswith("train/temperature_")]
    if not columns:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for k in columns:
        points = [(int(r["step"]), float(r[k])) for r in rows if r.get(k) not in (None, "")]
        ax.plot(*zip(*points), label=f"head {k.rsplit('_', 1)[1]}")
    ax.set(xlabel="step", ylabel="temperature", title="learned temperatures (mean over the batch)")
    ax.legend()
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out


def train_mhtma(cfg: MHTMAStage, resume=None) -> Path:
    fabric, run = start(cfg, resume)
    mcfg: MHTMAConfig = model_config(cfg, CONFIGS, MHTMAConfig)
    lw, r = cfg.loss, mcfg.resolution
    model = MHTMA(mcfg)
    vgg = None
    if lw.perceptual:
        from pluralfill.losses.perceptual import VGGLoss

        features = vgg_features("vgg16", lw.vgg_weights, unless="loss.perceptual=0")
        vgg = VGGLoss(features, perceptual_layers=PERCEPTUAL_TAPS, style_layers=()).to(fabric.device)
    temperature = [p for n, p in model.named_parameters() if ".temperature." in n]
    rest = [p for n, p in model.named_parameters() if ".temperature." not in n]
    groups = [{"params": rest}] + (
        [{"params": temperature, "lr_scale": cfg.optim.temperature_lr_scale}] if temperature else []
    )
    state, modules = setup_generator(fabric, model, cfg, groups)
    model, opt = state["model"], state["optimizer"]
    if lw.adversarial:
        add_discriminator(
            fabric, state, modules, GlobalLocalDiscriminator(r, mcfg.disc_width, spectral=lw.gan == "hinge"), cfg
        )
    run.restore(state)
    train, val = data(cfg, r, fabric.global_rank, num_holes=1)
    detector = None
    if mcfg.sketch and cfg.sketch.pidinet:
        from pluralfill.nn.pidinet import load_pidinet

        detector = load_pidinet(cfg.sketch.pidinet, fabric.device)

    def sketches(x: torch.Tensor) -> torch.Tensor:
        lines = [extract_sketch(im, cfg.sketch.threshold, cfg.sketch.min_area, detector).lines for im in to_uint8(x)]
        return torch.from_numpy(np.stack(lines))[:, None].float().to(x.device)

    def generate(x, known):
        sketch = sketches(x) if mcfg.sketch else None
        noise = torch.randn_like(known) if mcfg.noise else None
        coarse, fine, temperatures = model(x, known, sketch, noise)
        return coarse, fine, temperatures, sketch

    def disc_step(x, completed, corners) -> torch.Tensor:
        def critic(images):
            return state["disc"](images, corners)

        def loss_fn(real, fake):
            if lw.gan == "hinge":
                return hinge_discriminator_loss(real, fake)
            return wgan_discriminator_loss(real, fake) + lw.gradient_penalty * gradient_penalty(critic, x, completed)

        return discriminator_step(fabric, state, loss_fn, x, completed, critic)

    def step_fn(step, batch, lr):
        x, known = batch
        hole = 1 - known
        coarse, fine, temperatures, _ = generate(x, known)
        completed = fine * hole + x * known
        terms = {"coarse_pixel": pixel_loss(coarse, x), "pixel": pixel_loss(fine, x)}
        total = lw.coarse_pixel * terms["coarse_pixel"] + lw.pixel * terms["pixel"]
        if vgg is not None:
            terms["perceptual"] = vgg(coarse, x)[0]
            total = total + lw.perceptual * terms["perceptual"]
        adversarial = "disc" in state and step >= lw.late_start_step
        corners = hole_boxes(hole, r // 2) if adversarial else None
        if adversarial:
            terms["adversarial"] = hinge_generator_loss(state["disc"](completed, corners))
            total = total + lw.adversarial * terms["adversarial"]
        step_optimizer(fabric, model, opt, total, cfg, lr)
        if adversarial:
            terms["disc"] = disc_step(x, completed, corners)
        for k, t in enumerate(temperatures.detach().float().mean(0)):
            terms[f"temperature_{k}"] = t
        return terms | {"loss": total}

    def validate():
        if not val:
            return {}
        errors, temperatures = [], []
        for x, known in val:
            x, known = x.to(fabric.device), known.to(fabric.device)
            _, fine, t, _ = generate(x, known)
            errors.append(float(((fine - x).abs() * (1 - known)).sum() / (3 * (1 - known).sum()).clamp(min=1)))
            temperatures.append(t.float().mean(0).cpu())
        t = torch.stack(temperatures).mean(0)
        return {"val/hole_l1": float(np.mean(errors))} | {f"val/temperature_{k}": float(v) for k, v in enumerate(t)}

    def sheet(step, batch):
        """Rows of: masked input, (sketch,) coarse, completed, original; and the temperature plot."""
        x, known = (t[:4].to(fabric.device) for t in (val[0] if val else batch))
        coarse, fine, _, sketch = generate(x, known)
        hole = 1 - known
        completed = fine * hole + x * known
        rows = []
        for i in range(x.shape[0]):
            row = [masked_view(to_uint8(x[i : i + 1])[0], (hole[i, 0] > 0.5).cpu().numpy())]
            if sketch is not None:
                row.append(
                    np.repeat(((sketch[i, 0] * hole[i, 0]).cpu().numpy() * 255).astype(np.uint8)[..., None], 3, 2)
                )
            row += [to_uint8(coarse[i : i + 1])[0], to_uint8(completed[i : i + 1])[0], to_uint8(x[i : i + 1])[0]]
            rows.append(row)
        if (run.folder / "metrics.csv").is_file():
            plot_temperatures(run.folder / "metrics.csv", run.folder / "temperatures.png")
        return grid_rows(rows)

    return fit(run, state, train, step_fn, unwrap(model), modules, validate, sheet)

"""What the training loops of every method share: data, optimizer steps, progress, first stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pluralfill.data import HoleSource, ImageList, StepBatches
from pluralfill.errors import PluralfillError
from pluralfill.train.config import TrainConfig
from pluralfill.train.run import Run


def first_stage(path: str | None, model_class):
    """The stage-1 model of a run folder (its best/, else last/) or a model folder."""
    if path is None:
        raise PluralfillError("this stage needs first_stage=RUN_DIR: the stage-1 run (or a model folder)")
    p = Path(path)
    for candidate in (p, p / "best", p / "last"):
        if (candidate / "config.json").is_file():
            return model_class.from_pretrained(candidate)
    raise PluralfillError(f"no {model_class.method} model in {p} (looked for config.json in it, best/ and last/)")


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def progress(run: Run, total: int, start: int) -> Progress:
    p = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                 disable=not run.is_main)  # fmt: skip
    p.add_task(run.cfg.stage, total=total, completed=start, info="")
    return p


def data(cfg: TrainConfig, resolution: int, rank: int, num_holes: int):
    """Training batches keyed by step, and a fixed list of validation batches."""
    images = ImageList(cfg.data.train)
    if cfg.data.val is not None:
        train_paths, val_paths = images.paths, ImageList(cfg.data.val).paths
    else:
        train_paths, val_paths = images.split(cfg.data.val_fraction, cfg.seed)
    holes = HoleSource(cfg.masks.preset, cfg.masks.folder, cfg.masks.invert)
    train = StepBatches(train_paths, holes, resolution, cfg.batch_size, cfg.seed, rank, num_holes)
    # validation batches are fixed: same images, crops and holes at every evaluation
    val = StepBatches(val_paths, holes, resolution, cfg.batch_size, cfg.seed + 1, 0, num_holes, augment=False)
    return train, [val[i] for i in range(cfg.val_batches)] if val_paths else []


def loader(fabric, data: StepBatches, start: int, cfg: TrainConfig):
    batches = torch.utils.data.DataLoader(data, batch_size=None, sampler=range(start, cfg.steps),
                                         num_workers=cfg.data.num_workers)  # fmt: skip
    return fabric.setup_dataloaders(batches, use_distributed_sampler=False)


def optimizer(params, cfg: TrainConfig):
    return torch.optim.AdamW(params, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)


def step_optimizer(fabric, model, opt, loss, cfg: TrainConfig, lr: float):
    """Set the learning rate, backpropagate, clip, step."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    fabric.backward(loss)
    if cfg.optim.grad_clip:
        fabric.clip_gradients(model, opt, max_norm=cfg.optim.grad_clip)
    opt.step()

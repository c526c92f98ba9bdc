"""A run folder and what every training loop needs from it: the resolved config, metrics (CSV and
TensorBoard), sample grids, the resumable `last.ckpt`, and `last/` + `best/` model folders for inference.

    RUN/config.yaml   RUN/metrics.csv   RUN/tb/   RUN/samples/step_000200.png
    RUN/last.ckpt     RUN/last/         RUN/best/
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
import yaml

from pluralfill.errors import PluralfillError
from pluralfill.io import write_image
from pluralfill.train.config import TrainConfig

if TYPE_CHECKING:
    from lightning.fabric import Fabric


def start(cfg: TrainConfig, resume: str | os.PathLike | None) -> tuple[Fabric, Run]:
    """What every stage does first: start Fabric (and its processes), create or reopen the run folder, and
    seed, so that every rank builds the same initial weights. A stage then builds its models and its
    state dict and calls `run.restore(state)`."""
    from lightning.fabric import Fabric  # imported here: it takes seconds, and inference never needs it

    from pluralfill.shards import launcher_world, resolve_world

    devices, num_nodes = cfg.devices, cfg.num_nodes
    if launcher_world() is not None and isinstance(
        devices, int
    ):  # under torchrun: its world, unless the config says otherwise
        devices, num_nodes = resolve_world(None if devices == 1 else devices, None if num_nodes == 1 else num_nodes)
    fabric = Fabric(
        accelerator=cfg.accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
    )
    fabric.launch()
    run = Run.create(cfg, fabric, resume)
    fabric.seed_everything(cfg.seed, verbose=False)
    return fabric, run


def lr_at(step: int, cfg: TrainConfig, lr: float | None = None) -> float:
    """The learning rate of step `step` (0-based) for a peak `lr` (default optim.lr).

    cosine: linear warm-up over warmup_steps, then cosine decay to the floor (min_lr, else min_lr_ratio * lr).
    put: the official PUT scheduler (CosineAnnealingLRWithWarmup stepped after every iteration): step k of
    the warm-up trains at k / warmup of lr, the first at 0, so the peak is (warmup + 1) / warmup of lr; then
    cosine from that peak over steps - warmup, never below min_lr.
    dsi: the official DSI structure schedule, lr min((k + 1)^-0.35, (k + 1) warmup^-1.5): linear warm-up until
    the two terms meet (near step 46,500 for warmup 16,000), then decay as (k + 1)^-0.35.
    """
    o = cfg.optim
    lr = o.lr if lr is None else lr
    floor = o.min_lr if o.min_lr is not None else o.min_lr_ratio * lr
    if o.schedule == "dsi":
        return lr * min((step + 1) ** -0.35, (step + 1) * max(1, o.warmup_steps) ** -1.5)
    if o.schedule == "put":
        w = max(1, o.warmup_steps)
        if step <= w + 1:
            return step * lr / w
        t = (step - w - 1) / max(1, cfg.steps - w)
        return max((w + 1) * lr / w * 0.5 * (1 + math.cos(math.pi * t)), floor)
    if step < o.warmup_steps:
        return lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return lr
    t = (step - o.warmup_steps) / max(1, cfg.steps - o.warmup_steps)
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def seed_step(cfg: TrainConfig, step: int, rank: int) -> None:
    """Every random draw of a step (dropout, random quantization) follows from (seed, step, rank)."""
    torch.manual_seed(int(np.random.SeedSequence([cfg.seed, step, rank, 1]).generate_state(1)[0]))


class Run:
    def __init__(self, cfg: TrainConfig, fabric: Fabric, folder: Path, resumed: bool):
        self.cfg, self.fabric, self.folder, self.resumed = cfg, fabric, folder, resumed
        self.is_main = fabric.global_rank == 0
        self._tb = None
        self._csv_keys: list[str] | None = None
        self._t0, self._last_step = time.perf_counter(), None
        if self.is_main:
            (folder / "samples").mkdir(parents=True, exist_ok=True)
            text, path = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), folder / "config.yaml"
            before = path.read_text() if path.is_file() else None
            if before != text:
                if before is not None:  # resumed with overrides: keep what ran before
                    k = next(i for i in range(1, 10_000) if not (folder / f"config.before-resume-{i}.yaml").exists())
                    path.replace(folder / f"config.before-resume-{k}.yaml")
                path.write_text(text)

    @classmethod
    def create(cls, cfg: TrainConfig, fabric: Fabric, resume: str | os.PathLike | None) -> Run:
        if resume is not None:
            return cls(cfg, fabric, Path(resume), resumed=True)
        if cfg.run_dir is not None:
            folder = Path(cfg.run_dir)
        else:
            name = cfg.model if isinstance(cfg.model, str) else cfg.model.get("name") or cfg.model.get("base", "model")
            folder = Path("runs") / f"{cfg.stage}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        # rank 0 decides, before anyone writes: every rank gets the same folder and the same verdict
        taken = folder.exists() and any(folder.iterdir())
        folder, taken = fabric.broadcast((str(folder), taken), src=0)
        folder = Path(folder)
        if taken:
            raise PluralfillError(
                f"run folder {folder} is not empty: continue it with --resume {folder}, or pick run_dir=..."
            )
        run = cls(cfg, fabric, folder, resumed=False)
        Run.fresh.append(run)
        return run

    fresh: ClassVar[list] = []  # the runs this process started anew, for `discard_unstarted`

    def discard_unstarted(self) -> None:
        """Remove this run's folder if no step was ever saved (a start that failed): it can then be reused."""
        if self.is_main and not (self.folder / "last.ckpt").exists() and self.folder.is_dir():
            shutil.rmtree(self.folder, ignore_errors=True)

    # -------------------------------------------------------------------------------- logging

    @property
    def tb(self):
        if self._tb is None and self.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.folder / "tb"))
            except ImportError:  # TensorBoard is optional; the CSV always exists
                self._tb = False
        return self._tb or None

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.is_main:
            return
        path = self.folder / "metrics.csv"
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        if self._csv_keys is None:
            self._csv_keys = list(csv.DictReader(open(path)).fieldnames or []) if path.exists() else []
        new_keys = [k for k in row if k not in self._csv_keys]
        if new_keys:  # a new column (validation appears later): rewrite the header, keep the rows
            rows = list(csv.DictReader(open(path))) if path.exists() else []
            self._csv_keys += new_keys
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, self._csv_keys)
                w.writeheader()
                w.writerows(rows)
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, self._csv_keys).writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, float(v), step)

    def throughput(self, step: int, batch_size: int) -> float:
        """Images per second since the last call (all ranks)."""
        now = time.perf_counter()
        done = step - (self._last_step if self._last_step is not None else step - 1)
        rate = done * batch_size * self.fabric.world_size / max(now - self._t0, 1e-9)
        self._t0, self._last_step = now, step
        return rate

    def save_grid(self, step: int, grid) -> Path | None:
        if not self.is_main:
            return None
        path = write_image(self.folder / "samples" / f"step_{step:06d}.png", grid, overwrite=True)
        if self.tb is not None:
            self.tb.add_image("samples", np.asarray(grid), step, dataformats="HWC")
        return path

    # -------------------------------------------------------------------------------- checkpoints

    def save_state(self, state: dict) -> None:
        """`last.ckpt`: everything needed to continue (models, optimizers, step, best score)."""
        tmp = self.folder / ".last.ckpt.tmp"
        self.fabric.save(tmp, state)
        if self.is_main:
            os.replace(tmp, self.folder / "last.ckpt")
        self.fabric.barrier()

    def restore(self, state: dict) -> None:
        """Load last.ckpt into `state` (models, optimizers, step, best score) when the run resumes."""
        if not self.resumed:
            return
        path = self.folder / "last.ckpt"
        if not path.is_file():
            raise PluralfillError(f"nothing to resume in {self.folder}: no last.ckpt")
        import pickle

        try:  # weights only, passed explicitly: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD never lets a file run code
            self.fabric.load(path, state, weights_only=True)
        except pickle.UnpicklingError:
            raise PluralfillError(
                f"{path} asks to build objects beyond tensors: refused, since unpickling it could run "
                "code; expected the last.ckpt pluralfill writes"
            ) from None
        except (RuntimeError, EOFError, KeyError, ValueError, OSError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise PluralfillError(
                f"cannot resume from {path} (truncated, or not a pluralfill last.ckpt): {first}"
            ) from None
        if int(state["step"]) >= self.cfg.steps:
            raise PluralfillError(
                f"{self.folder} is finished: it trained all {self.cfg.steps} steps (train longer with "
                f"--resume {self.folder} steps=N)"
            )
        if self.is_main:
            self._trim_metrics(int(state["step"]))

    def _trim_metrics(self, step: int) -> None:
        """Drop rows logged after the checkpoint a run resumes from: a stopped run logged them, and the
        resumed run logs those steps again."""
        path = self.folder / "metrics.csv"
        if not path.is_file():
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            keys, rows = reader.fieldnames or [], list(reader)
        kept = [r for r in rows if int(r["step"]) <= step]
        if len(kept) < len(rows):
            tmp = path.with_name(".metrics.csv.tmp")
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, keys)
                w.writeheader()
                w.writerows(kept)
            os.replace(tmp, path)

    def export(self, model, name: str) -> None:
        """`last/` or `best/`: a save_pretrained folder that `--checkpoint` loads. `model`: the model, or a
        function that builds it (e.g. from a moving average of the weights) when it is time."""
        if self.is_main:
            (model if isinstance(model, torch.nn.Module) else model()).save_pretrained(
                self.folder / name, overwrite=True
            )
        self.fabric.barrier()

    def close(self) -> None:
        if self._tb:
            self._tb.close()


def resolve_run_config(resume: str | os.PathLike) -> dict:
    path = Path(resume) / "config.yaml"
    if not path.is_file():
        raise PluralfillError(f"{resume} is not a run folder (no config.yaml)")
    from pluralfill.io import read_yaml

    tree = read_yaml(path, "run config")
    if not isinstance(tree, dict):
        raise PluralfillError(f"{path} is not a run config: a mapping of settings was expected")
    return tree

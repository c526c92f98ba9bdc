"""What the training stages of every method share: data, optimizer steps, the discriminator step, first
stages, and `fit`, the loop itself (logging, validation, sample sheets, checkpoints)."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pluralfill.data import HoleSource, ImageList, StepBatches
from pluralfill.errors import PluralfillError
from pluralfill.train.config import TrainConfig
from pluralfill.train.run import Run, lr_at, seed_step


def first_stage(path: str | None, model_class):
    """The stage-1 model of a run folder (its best/, else last/) or a model folder."""
    if path is None:
        raise PluralfillError("this stage needs first_stage=RUN_DIR: the stage-1 run (or a model folder)")
    p = Path(path)
    for candidate in (p, p / "best", p / "last"):
        if (candidate / "config.json").is_file():
            return model_class.from_pretrained(candidate)
    raise PluralfillError(f"no {model_class.method} model in {p} (looked for config.json in it, best/ and last/)")


def progress(run: Run, total: int, start: int) -> Progress:
    p = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not run.is_main,
    )
    p.add_task(run.cfg.stage, total=total, completed=start, info="")
    return p


def data(cfg: TrainConfig, resolution: int, rank: int, num_holes: int, holes: list[HoleSource] | None = None):
    """Training batches keyed by step, and a fixed list of validation batches. `holes`: a source for each
    hole (default: `num_holes` draws from the config's masks)."""
    images = ImageList(cfg.data.train, exclude=cfg.data.exclude)
    if cfg.data.val is not None:
        train_paths, val_paths = images.paths, ImageList(cfg.data.val, exclude=cfg.data.exclude).paths
    else:
        train_paths, val_paths = images.split(cfg.data.val_fraction, cfg.seed)
    holes = holes if holes is not None else HoleSource.from_config(cfg.masks)
    train = StepBatches(train_paths, holes, resolution, cfg.batch_size, cfg.seed, rank, num_holes)
    # validation batches are fixed: same images, crops and holes at every evaluation
    val = StepBatches(val_paths, holes, resolution, cfg.batch_size, cfg.seed + 1, 0, num_holes, augment=False)
    return train, [val[i] for i in range(cfg.val_batches)] if val_paths else []


def loader(fabric, data: StepBatches, start: int, cfg: TrainConfig):
    batches = torch.utils.data.DataLoader(
        data, batch_size=None, sampler=range(start, cfg.steps), num_workers=cfg.data.num_workers
    )
    return fabric.setup_dataloaders(batches, use_distributed_sampler=False)


def optimizer(params, cfg: TrainConfig):
    kind = torch.optim.Adam if cfg.optim.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)


def step_optimizer(fabric, model, opt, loss, cfg: TrainConfig, lr: float):
    """Set the learning rate, backpropagate, clip, step."""
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    opt.zero_grad(set_to_none=True)
    fabric.backward(loss)
    if cfg.optim.grad_clip:
        fabric.clip_gradients(model, opt, max_norm=cfg.optim.grad_clip)
    opt.step()


def setup_generator(fabric, model, cfg: TrainConfig, params=None, name: str = "model"):
    """The Fabric-wrapped network a stage trains and its optimizer (over `params`, default all), as a fresh
    state {name, "optimizer", "step", "best"} and the list of modules the run saves."""
    model, opt = fabric.setup(model, optimizer(model.parameters() if params is None else params, cfg))
    return {name: model, "optimizer": opt, "step": 0, "best": float("inf")}, [model]


def add_discriminator(fabric, state: dict, modules: list, disc, cfg: TrainConfig) -> None:
    """A discriminator with its own Adam (cfg.optim.disc_lr and disc_betas, else the generator's) into the
    state (as "disc" and "disc_optimizer", so last.ckpt holds both and a resumed GAN continues exactly) and the
    saved modules."""
    lr, betas = cfg.optim.disc_lr or cfg.optim.lr, cfg.optim.disc_betas or cfg.optim.betas
    disc, opt = fabric.setup(disc, torch.optim.Adam(disc.parameters(), lr=lr, betas=betas))
    state |= {"disc": disc, "disc_optimizer": opt}
    modules.append(disc)


def vgg_features(arch: str, weights, unless: str):
    """The frozen VGG a perceptual or style loss reads, from `weights` (else the cache, else a download); a
    missing file says which setting trains without it (`unless`)."""
    from pluralfill.hub import load_weights
    from pluralfill.nn.vgg import VGGFeatures

    try:
        return load_weights(VGGFeatures(arch), arch, weights, ignore=("classifier.",)).requires_grad_(False).eval()
    except PluralfillError as e:
        raise PluralfillError(f"{e} -- or train without it: {unless}") from None


def setup_autoencoder(fabric, run: Run, model, cfg: TrainConfig):
    """Fabric-wrapped autoencoder, its optimizer and, when the adversarial weight is set, a PatchGAN
    discriminator with its own Adam; restored from last.ckpt when the run resumes.
    Returns (model, optimizer, state, modules)."""
    from pluralfill.nn.discriminators import EdgeConnectDiscriminator

    state, modules = setup_generator(fabric, model, cfg)
    if cfg.loss.adversarial:
        add_discriminator(fabric, state, modules, EdgeConnectDiscriminator(), cfg)
    run.restore(state)
    return state["model"], state["optimizer"], state, modules


def discriminator_step(fabric, state: dict, loss_fn, real, fake, critic=None) -> torch.Tensor:
    """One step of the discriminator on real and (detached) fake images. `critic(images)` -> logits, for a
    discriminator that needs more than the images (default: state["disc"] itself)."""
    critic = critic or state["disc"]
    return discriminator_update(fabric, state, loss_fn(critic(real), critic(fake.detach())))


def discriminator_update(fabric, state: dict, loss: torch.Tensor, lr: float | None = None) -> torch.Tensor:
    """Backpropagate a discriminator loss and step its optimizer (at `lr`, if given)."""
    opt = state["disc_optimizer"]
    if lr is not None:
        for group in opt.param_groups:
            group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    fabric.backward(loss)
    opt.step()
    return loss


def unwrap(model):
    """The module inside a Fabric/DDP wrapper."""
    return model.module if hasattr(model, "module") else model


def fit(run: Run, state: dict, train_batches: StepBatches, step_fn, export, modules, validate=None, sheet=None) -> Path:
    """The loop every stage shares: from state["step"] to cfg.steps, with logging, validation (the first
    value `validate()` returns is the score; lower is better and becomes best/), sample sheets, and
    checkpoints (last.ckpt and last/).

    step_fn(step, batch, lr) -> {name: scalar} runs one optimisation step; its "loss" is shown in the bar.
    sheet(step, batch) -> image runs on the main process only.
    """
    cfg, fabric = run.cfg, run.fabric
    start = state["step"]

    def mode(train: bool):
        for m in modules:
            m.train(train)

    with progress(run, cfg.steps, start) as bar:
        for step, batch in zip(range(start, cfg.steps), loader(fabric, train_batches, start, cfg)):
            seed_step(cfg, step, fabric.global_rank)
            mode(True)
            lr = lr_at(step, cfg)
            terms = step_fn(step, batch, lr)
            state["step"] = done = step + 1
            last = done == cfg.steps
            if done % cfg.log_every == 0 or last:
                values = {f"train/{k}": float(v.detach() if torch.is_tensor(v) else v) for k, v in terms.items()}
                values |= {"lr": lr, "images_per_s": run.throughput(done, cfg.batch_size)}
                run.log(done, values)
                shown = "  ".join(
                    f"{k} {values[f'train/{k}']:.4f}" for k in ("loss", "accuracy") if f"train/{k}" in values
                )
                bar.update(0, completed=done, info=f"{shown}  {values['images_per_s']:.1f} img/s")
            if validate is not None and (done % cfg.val_every == 0 or last):
                mode(False)
                with torch.no_grad():
                    metrics = validate()
                if metrics:
                    run.log(done, metrics)
                    score = next(iter(metrics.values()))
                    if score < state["best"]:
                        state["best"] = score
                        run.export(export, "best")
            if sheet is not None and run.is_main and (done % cfg.sample_every == 0 or last):
                mode(False)
                with torch.no_grad():
                    run.save_grid(done, sheet(done, batch))
            if done % cfg.checkpoint_every == 0 or last:
                run.save_state(state)
                run.export(export, "last")
    run.close()
    return run.folder

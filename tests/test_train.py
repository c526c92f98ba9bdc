"""Training both PUT stages at toy size: losses fall, runs resume exactly, DDP runs on CPU."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import SCENES
from safetensors.torch import load_file

from pluralfill.errors import PluralfillError
from pluralfill.registry import load_config, train

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "pluralfill" / "configs"


def _cfg(stage_file, images, run_dir, *extra):
    return load_config(
        CONFIGS / stage_file,
        [
            f"data.train={images}",
            f"run_dir={run_dir}",
            "data.num_workers=0",
            "batch_size=4",
            "log_every=2",
            "val_every=5",
            "sample_every=5",
            "checkpoint_every=5",
            "val_batches=1",
            *extra,
        ],
    )


def _metric(run, key):
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return [float(r[key]) for r in rows if r.get(key)]


@pytest.mark.slow
def test_both_stages_train_and_resume_exactly(images, tmp_path):
    stage1 = train(_cfg("put-tiny-pvqvae.yaml", images, tmp_path / "s1", "steps=15", "optim.warmup_steps=2"))
    pixel = _metric(stage1, "train/pixel")
    assert pixel[-1] < pixel[0]  # the reconstruction improves
    for name in (
        "config.yaml",
        "last.ckpt",
        "metrics.csv",
        "best/config.json",
        "last/model.safetensors",
        "samples/step_000015.png",
    ):
        assert (stage1 / name).exists(), name
    assert list((stage1 / "tb").iterdir())

    stage2 = train(
        _cfg(
            "put-tiny-transformer.yaml",
            images,
            tmp_path / "s2",
            f"first_stage={stage1}",
            "steps=10",
            "optim.warmup_steps=2",
        )
    )
    loss = _metric(stage2, "train/loss")
    assert loss[-1] < loss[0]
    # the stage-2 folder is an inpainting checkpoint
    from pluralfill import load_inpainter

    put = load_inpainter(stage2)
    photo = np.zeros((80, 80, 3), np.uint8)
    hole = np.zeros((80, 80), bool)
    hole[20:50, 20:50] = True
    assert len(put.inpaint(photo, hole, num_samples=2, seed=0)) == 2

    # 5 steps, stop, resume to 10 == 10 steps straight
    a = train(_cfg("put-tiny-transformer.yaml", images, tmp_path / "a", f"first_stage={stage1}", "steps=10"))
    b = train(_cfg("put-tiny-transformer.yaml", images, tmp_path / "b", f"first_stage={stage1}", "steps=5"))
    cfg_b = _cfg("put-tiny-transformer.yaml", images, tmp_path / "b", f"first_stage={stage1}", "steps=10")
    with open(b / "metrics.csv", newline="") as f:
        keys = csv.DictReader(f).fieldnames
    with open(b / "metrics.csv", "a", newline="") as f:  # a row a killed run logged after its last checkpoint
        csv.DictWriter(f, keys).writerow({"step": 7, "train/loss": 99.0})
    train(cfg_b, resume=b)
    logged = [int(float(r["step"])) for r in csv.DictReader(open(b / "metrics.csv")) if r.get("train/loss")]
    assert 99.0 not in _metric(b, "train/loss") and logged == sorted(
        set(logged)
    )  # the stale row is gone, no step twice
    wa, wb = load_file(a / "last" / "model.safetensors"), load_file(b / "last" / "model.safetensors")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert _metric(a, "train/loss")[-1] == _metric(b, "train/loss")[-1]
    # resumed with other settings: config.yaml says what ran last, the one before is kept
    assert yaml.safe_load((b / "config.yaml").read_text())["steps"] == 10
    assert yaml.safe_load((b / "config.before-resume-1.yaml").read_text())["steps"] == 5


def test_a_nested_override_changes_one_field_of_a_named_model():
    from pluralfill.models.put import CONFIGS as MODELS
    from pluralfill.models.put import PUTConfig
    from pluralfill.train.config import model_config

    cfg = load_config(
        CONFIGS / "put-scenes-small-pvqvae.yaml", ["model.pvqvae.patch_size=8", "model.transformer.num_layers=4"]
    )
    got, named = model_config(cfg, MODELS, PUTConfig), MODELS["put-scenes-small"]
    assert (got.pvqvae.patch_size, got.transformer.num_layers) == (8, 4)
    assert got.pvqvae.model_copy(update={"patch_size": 16}) == named.pvqvae  # the other fields stay the named model's
    assert got.transformer.model_copy(update={"num_layers": 6}) == named.transformer


def test_a_moved_setting_still_loads_with_a_note(caplog):
    """loss.disc_lr (where pluralfill read it before) is read as optim.disc_lr, the one place every stage reads."""
    import logging

    with caplog.at_level(logging.WARNING, logger="pluralfill"):
        cfg = load_config(CONFIGS / "mhtma-tiny.yaml", ["loss.disc_lr=0.005"])
    assert cfg.optim.disc_lr == 0.005 and "loss.disc_lr is now optim.disc_lr" in caplog.text
    assert load_config(CONFIGS / "mhtma-tiny.yaml").optim.disc_lr == 1e-3  # the configs say it where it lives
    assert load_config(CONFIGS / "maskgit-tiny-tokenizer.yaml").optim.disc_betas == (0.5, 0.9)


def test_second_stage_configs_derive_what_they_read_of_the_first():
    from pluralfill.models.maskgit import CONFIGS as MASKGIT
    from pluralfill.models.put import CONFIGS as PUT_CONFIGS
    from pluralfill.models.put import PUT

    put = PUT_CONFIGS["put-tiny"]
    pvqvae = put.pvqvae.model_copy(update={"code_dim": 48, "num_codes": 96, "resolution": 128})
    fitted = put.fit_to(pvqvae).transformer
    assert (fitted.in_dim, fitted.vocab_size, fitted.seq_len) == (
        48,
        pvqvae.known_codes,
        (128 // pvqvae.patch_size) ** 2,
    )
    PUT(put.fit_to(pvqvae))  # its invariants hold
    mg = MASKGIT["maskgit-tiny"]
    tokenizer = mg.tokenizer.model_copy(update={"num_codes": 77})
    assert mg.fit_to(tokenizer).transformer.vocab_size == 77


def test_config_errors_are_clear(tmp_path, images):
    with pytest.raises(PluralfillError, match="config error: at optim.lrr"):
        load_config(CONFIGS / "put-tiny-pvqvae.yaml", ["optim.lrr=1"])
    with pytest.raises(PluralfillError, match="config not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(PluralfillError, match="needs first_stage=RUN_DIR"):
        train(_cfg("put-tiny-transformer.yaml", images, tmp_path / "x", "steps=1"))
    with pytest.raises(PluralfillError, match="loss.perceptual=0 loss.style=0"):
        train(_cfg("put-tiny-pvqvae.yaml", images, tmp_path / "y", "steps=1", "loss.perceptual=0.1"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(PluralfillError, match="not empty"):
        train(_cfg("put-tiny-pvqvae.yaml", images, tmp_path / "full", "steps=1"))


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(images, tmp_path):
    """The same command on 2 processes (gloo): Fabric launches the second one."""
    import socket

    with socket.socket() as sock:  # a free port for the process group, so parallel runs cannot collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # a clean launch: nothing left in the environment by the in-process runs of other tests
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PL_", "LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_"))
    }
    env |= {"PYTHONUNBUFFERED": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    cmd = [
        sys.executable,
        "-m",
        "pluralfill.cli",
        "train",
        str(CONFIGS / "put-tiny-pvqvae.yaml"),
        f"data.train={images}",
        f"run_dir={tmp_path / 'ddp'}",
        "steps=4",
        "batch_size=2",
        "data.num_workers=0",
        "accelerator=cpu",
        "devices=2",
        "strategy=ddp",
        "log_every=2",
        "val_every=4",
        "sample_every=4",
        "checkpoint_every=4",
        "val_batches=1",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    (tmp_path / "ddp.log").write_text(r.stdout + r.stderr)
    assert r.returncode == 0, f"exit {r.returncode}: {(r.stdout + r.stderr)[-3000:]}"
    rows = list(csv.DictReader(open(tmp_path / "ddp" / "metrics.csv")))
    assert [r["step"] for r in rows if r["train/loss"]] == ["2", "4"]  # one writer: rank 0
    assert (tmp_path / "ddp" / "last" / "model.safetensors").exists()


@pytest.mark.slow
def test_stage1_with_gan_perceptual_style_file_list_and_mask_folder(images, tmp_path):
    """All of Eq. 8 from the first step, VGG-19 from the cache (random weights in the torchvision layout),
    images from a text file of paths and holes from a folder of mask PNGs."""
    from PIL import Image

    from pluralfill import hub
    from pluralfill.nn.vgg import VGGFeatures

    cache = hub.cache_dir()
    cache.mkdir(parents=True)
    state = VGGFeatures("vgg19").state_dict() | {"classifier.0.weight": torch.zeros(2, 2)}
    torch.save(state, cache / hub.WEIGHTS["vgg19"].filename)
    listing = tmp_path / "train.txt"
    listing.write_text("\n".join(str(p) for p in sorted(images.iterdir())) + "\n")
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(3):
        hole = np.zeros((40, 40), np.uint8)
        hole[5 + 5 * i : 25 + 5 * i, 10:30] = 255
        Image.fromarray(hole).save(masks / f"m{i}.png")
    run = train(
        _cfg(
            "put-tiny-pvqvae.yaml",
            listing,
            tmp_path / "run",
            "steps=3",
            "loss.late_start_step=0",
            "loss.adversarial=0.1",
            "loss.perceptual=0.1",
            "loss.style=250",
            f"masks.folder={masks}",
            "masks.preset=null",
        )
    )
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    logged = {k for r in rows for k, v in r.items() if v}
    assert {"train/perceptual", "train/style", "train/adversarial", "train/disc"} <= logged
    assert all(np.isfinite(float(r["train/loss"])) for r in rows if r["train/loss"])


def test_train_cli_errors(tmp_path, capsys):
    from pluralfill.cli import main

    for args, message in [
        (["train"], "give a config (a name from `pluralfill info`, or a YAML file), or --resume RUN_DIR"),
        (["train", "--resume", str(tmp_path)], "not a run folder"),
        (["train", str(tmp_path / "none.yaml")], "config not found"),
        (["train", str(CONFIGS / "put-tiny-pvqvae.yaml"), "steps"], "key=value"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_maskgit_stages_train(images, tmp_path):
    from pluralfill import hub
    from pluralfill.nn.vgg import VGGFeatures

    hub.cache_dir().mkdir(parents=True)  # random VGG-16 in the torchvision layout
    torch.save(VGGFeatures("vgg16").state_dict(), hub.cache_dir() / hub.WEIGHTS["vgg16"].filename)
    tok = train(
        _cfg(
            "maskgit-tiny-tokenizer.yaml",
            images,
            tmp_path / "tok",
            "steps=10",
            "optim.warmup_steps=2",
            "loss.perceptual=0.1",
            "loss.adversarial=0.1",
            "loss.late_start_step=5",
        )
    )
    pixel = _metric(tok, "train/pixel")
    assert pixel[-1] < pixel[0]
    logged = {k for r in csv.DictReader(open(tok / "metrics.csv")) for k, v in r.items() if v}
    assert {"train/perceptual", "train/adversarial", "train/disc"} <= logged
    assert (tok / "best" / "config.json").exists() and (tok / "samples" / "step_000010.png").exists()
    mg = train(
        _cfg(
            "maskgit-tiny-transformer.yaml",
            images,
            tmp_path / "mg",
            f"first_stage={tok}",
            "steps=10",
            "optim.warmup_steps=2",
        )
    )
    loss = _metric(mg, "train/loss")
    assert loss[-1] < loss[0]
    from pluralfill import load_inpainter

    inpainter = load_inpainter(mg)
    assert inpainter.name == "maskgit-tiny" and (mg / "samples" / "step_000010.png").exists()


def test_held_out_sources_and_mixed_mask_presets(tmp_path):
    """`data.exclude` leaves whole source images out (the bundled model's held-out split); a list of mask
    presets draws one per hole."""
    from pluralfill.data import HoleSource, ImageList
    from pluralfill.train.loop import data

    cfg = load_config(CONFIGS / "put-scenes-small-pvqvae.yaml", [f"data.train={SCENES}", "val_batches=1"])
    kept = ImageList(SCENES, exclude=cfg.data.exclude).paths
    assert 0 < len(kept) < len(ImageList(SCENES).paths)
    assert not any(p.name.startswith(("skimage-coffee_", "mate-aqua_")) for p in kept)
    assert any(p.name.startswith("mate-garden_") for p in kept)
    train_batches, _ = data(cfg, 64, 0, num_holes=1)
    assert set(train_batches.paths) < set(kept)  # the rest of `kept` is the validation part
    from pluralfill.masks import generate_hole

    center, rng = generate_hole("center", 64), np.random.default_rng(0)
    is_center = [np.array_equal(HoleSource(["center", "box"])(rng, 64), center) for _ in range(20)]
    assert 0 < sum(is_center) < 20  # both presets occur

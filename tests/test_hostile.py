"""Hostile input: files that ask to run code, outputs that would swallow inputs or the user's files, folders
replaced halfway, and requests to the server from other sites, other names or with bodies too large."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED, square_hole
from conftest import run_cli as _cli

from pluralfill.errors import PluralfillError

FIXTURE_PTH = SHARED / "fixtures" / "put_official_tiny" / "transformer_official_format.pth"


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_resume_never_runs_the_code_in_a_crafted_checkpoint(tmp_path, monkeypatch, capsys):
    """Even with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (common where older code runs), `train --resume` refuses
    a last.ckpt that asks to build objects, in one line, and runs nothing."""
    scenes = SHARED / "data" / "scenes256" / "train"
    run = tmp_path / "run"
    short = ["steps=1", "val_every=1", "sample_every=1", "checkpoint_every=1", "val_batches=1", "data.num_workers=0"]
    code, _, err = _cli(["train", "put-tiny-pvqvae", f"data.train={scenes}", f"run_dir={run}", *short], capsys)
    assert code == 0, err
    marker = tmp_path / "ran"
    torch.save({"step": 0, "model": _Payload(marker)}, run / "last.ckpt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    code, _, err = _cli(["train", "--resume", run, "steps=2"], capsys)
    assert code == 2 and "refused, since unpickling it could run code" in err and err.count("\n") == 1
    assert not marker.exists()
    (run / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = _cli(["train", "--resume", run, "steps=2"], capsys)
    assert code == 2 and "cannot resume from" in err and err.count("\n") == 1


def test_an_output_that_is_or_holds_an_input_is_refused(tmp_path, capsys):
    """`convert dsi-official DIR DIR --overwrite` once deleted the official checkpoint it read."""
    import shutil

    official = tmp_path / "official"
    shutil.copytree(SHARED / "fixtures" / "dsi_official_tiny", official)
    before = sorted(p.name for p in official.iterdir())
    for output in (official, tmp_path):  # the input itself, and a folder around it
        code, _, err = _cli(["convert", "dsi-official", official, output, "--resolution", "64", "--overwrite"], capsys)
        assert code == 2 and "the input" in err and err.count("\n") == 1
    assert sorted(p.name for p in official.iterdir()) == before


def test_overwrite_never_deletes_the_users_own_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = _cli(["convert", "put-official", FIXTURE_PTH, mine, "--num-heads", "4", "--overwrite"], capsys)
    assert code == 2 and "holds files that are not a model folder (notes.txt)" in err
    assert (mine / "notes.txt").read_text() == "keep me"
    pytest.importorskip("onnxruntime")
    code, _, err = _cli(["export", "put-scenes-small", "--onnx", mine, "--overwrite"], capsys)
    assert code == 2 and "not a model export" in err and (mine / "notes.txt").read_text() == "keep me"


def test_a_replaced_model_folder_is_never_missing_and_leaves_nothing(tmp_path):
    from pluralfill.io import clean_leftovers, replace_folder
    from pluralfill.models.put import PUT, put_tiny_config

    folder = tmp_path / "m"
    PUT(put_tiny_config()).save_pretrained(folder)
    first = (folder / "model.safetensors").read_bytes()
    torch.manual_seed(1)
    PUT(put_tiny_config()).save_pretrained(folder, overwrite=True)
    assert (folder / "model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no .m.old, no staging folder left
    new = tmp_path / "new"
    new.mkdir()
    (new / "x").write_text("new")
    replace_folder(new, folder)
    assert (folder / "x").read_text() == "new" and not new.exists()
    stale = tmp_path / ".m.old.abc"
    stale.mkdir()
    (tmp_path / ".p.png.x1.tmp").write_text("half")
    os.utime(stale, (0, 0))
    os.utime(tmp_path / ".p.png.x1.tmp", (0, 0))
    clean_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_leftover_install_is_never_a_method(tmp_path, capsys):
    from pluralfill.hub import installed_models, models_dir
    from pluralfill.models.put import PUT, put_tiny_config

    PUT(put_tiny_config()).save_pretrained(models_dir() / ".put-ffhq.old")  # what a kill between renames left
    assert ".put-ffhq.old" not in installed_models()
    code, out, _ = _cli(["info"], capsys)
    assert ".put-ffhq.old" not in out


# ------------------------------------------------------------------------------------------------ the server


@pytest.fixture
def server():
    from fastapi.testclient import TestClient

    from pluralfill.app.server import create_app

    return TestClient(create_app(), base_url="http://127.0.0.1:7860")


def _files(photo):
    import io

    from PIL import Image

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    hole = square_hole(frac=0.2)
    return {
        "image": ("i.png", png(photo), "image/png"),
        "mask": ("m.png", png(hole.astype(np.uint8) * 255), "image/png"),
    }


def test_only_the_page_itself_submits_jobs(server, photo):
    data = {"method": "telea", "num_samples": "1"}
    r = server.post("/api/inpaint", files=_files(photo), data=data, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = server.post("/api/inpaint", files=_files(photo), data=data, headers={"Host": "rebound.example:7860"})
    assert r.status_code == 421
    r = server.post("/api/inpaint", files=_files(photo), data=data, headers={"Origin": "http://127.0.0.1:7860"})
    assert r.status_code == 200 and json.loads(r.text.splitlines()[-1])["type"] == "done"


def test_a_body_over_the_cap_is_refused_before_it_is_read(server):
    from pluralfill.app.server import MAX_REQUEST_MB

    r = server.post(
        "/api/inpaint",
        content=b"x" * 10,
        headers={"Content-Length": str(MAX_REQUEST_MB * 2**20 + 1), "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 413

    def stream():  # no Content-Length: counted while it streams, an image part that never ends
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="i.png"\r\n\r\n'
        for _ in range(MAX_REQUEST_MB + 2):
            yield b"y" * 2**20

    r = server.post("/api/inpaint", content=stream(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413


def test_deeply_nested_options_are_a_bad_request(server, photo):
    r = server.post(
        "/api/inpaint", files=_files(photo), data={"method": "telea", "options": "[" * 100_000 + "]" * 100_000}
    )
    assert r.status_code == 400 and r.json()["detail"] == "options must be a JSON object"


def test_one_broken_model_is_listed_as_broken_not_a_500():
    from fastapi.testclient import TestClient

    from pluralfill.app.server import create_app
    from pluralfill.hub import models_dir

    broken = models_dir() / "half-dsi"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text(json.dumps({"method": "dsi", "name": "half-dsi"}))
    r = TestClient(create_app(), base_url="http://127.0.0.1").get("/api/methods")
    assert r.status_code == 200
    listed = {m["name"]: m for m in r.json()}
    assert (
        listed["half-dsi"]["kind"] == "broken" and not listed["half-dsi"]["available"] and listed["half-dsi"]["reason"]
    )
    assert listed["telea"]["available"]


def test_the_api_docs_load_nothing_from_outside(server):
    page = server.get("/docs").text
    assert "<script" not in page and "cdn" not in page.lower() and "POST /api/inpaint" in page


def test_a_crafted_checkpoint_is_refused_whatever_the_environment(tmp_path, monkeypatch):
    from pluralfill.hub import read_pickle

    marker = tmp_path / "ran"
    torch.save({"model": _Payload(marker)}, tmp_path / "evil.pth")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(PluralfillError, match="refused, since unpickling it could run code"):
        read_pickle(tmp_path / "evil.pth", "a checkpoint")
    assert not marker.exists()


# ------------------------------------------------------------------------------------- values where they enter


@pytest.mark.parametrize("config", ["[]", "null", '"put"'])
def test_a_config_json_that_is_no_config_is_named(tmp_path, config, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(config)
    code, _, err = _cli(["info", tmp_path / "m"], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not a model config" in err


def test_a_config_json_that_lies_about_the_model_is_named(tmp_path, capsys):
    from pluralfill.models.put import PUT, put_tiny_config

    PUT(put_tiny_config()).save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["transformer"]["num_heads"] = 0
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    code, _, err = _cli(["info", tmp_path / "m"], capsys)
    assert code == 2 and err.count("\n") == 1 and "num_heads must divide the width" in err


@pytest.mark.parametrize("heads", ["3", "-1"])
def test_a_head_count_that_cannot_work_is_refused_at_install(heads, capsys):
    code, _, err = _cli(["models", "add", FIXTURE_PTH, "--name", "bad", "--num-heads", heads], capsys)
    assert code == 2 and err.count("\n") == 1 and "num_heads must divide the width" in err
    from pluralfill.hub import installed_models

    assert "bad" not in installed_models()


def test_a_yaml_alias_is_refused_not_expanded(tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\nstage: put-pvqvae\n")
    code, _, err = _cli(["train", config, "data.train=x"], capsys)
    assert code == 2 and "uses a YAML alias" in err
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "configs").mkdir()
    (run / "configs" / "config.yaml").write_text("model: &m {params: *m}\n")  # refers to itself
    import shutil

    shutil.copy(FIXTURE_PTH, run / "checkpoint" / "last.pth")
    code, _, err = _cli(["models", "add", run / "checkpoint" / "last.pth", "--name", "loop"], capsys)
    assert code == 2 and "uses a YAML alias" in err and err.count("\n") == 1


def test_every_bad_training_setting_is_named_at_once(capsys):
    args = ["train", "put-tiny-pvqvae", "data.train=x", "optim.lr=-1", "batch_size=0", "precision=fp8", "log_every=0"]
    code, _, err = _cli(args, capsys)
    assert code == 2 and err.count("\n") == 1
    for where in ("at optim.lr:", "at batch_size:", "at precision:", "at log_every:"):
        assert where in err, where
    code, _, err = _cli(["train", "put-tiny-pvqvae", "data.train=x", "optim.lr=nan"], capsys)
    assert code == 2 and "at optim.lr: should be a finite number" in err


def test_unbounded_requests_are_refused_in_one_line(tmp_path, photo, capsys):
    from PIL import Image

    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.2)).save(tmp_path / "p_mask.png")
    code, _, err = _cli(["inpaint", tmp_path / "p.png", "-n", "1000000000", "-o", tmp_path / "o"], capsys)
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "o").exists()
    code, _, err = _cli(["inpaint", tmp_path / "p.png", "--num-nodes", "2", "-o", tmp_path / "o"], capsys)
    assert code == 2 and "needs a launcher on every machine" in err
    import pluralfill

    with pytest.raises(PluralfillError, match="num_samples must be from 1 to 1000"):
        pluralfill.load_inpainter("telea").inpaint(photo, square_hole(frac=0.2), num_samples=10**6)


def test_a_checkpoint_that_would_unpack_out_of_all_proportion_is_refused(tmp_path):
    import zipfile

    from pluralfill.hub import read_pickle

    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/0", b"\0" * (100 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(PluralfillError, match="would unpack to .* a checkpoint does not compress like that"):
        read_pickle(bomb, "a checkpoint")


def test_a_msgpack_nested_beyond_any_checkpoint_is_one_line(tmp_path):
    import msgpack

    from pluralfill.pretrained.maskgit_official import read_flax_checkpoint

    tree: dict = {}
    node = tree
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    (tmp_path / "deep.msgpack").write_bytes(msgpack.packb({"params": tree}))
    with pytest.raises(PluralfillError, match="nests deeper than any flax checkpoint"):
        read_flax_checkpoint(tmp_path / "deep.msgpack", "transformer")
    (tmp_path / "deeper.msgpack").write_bytes(b"\x91" * 5000 + b"\xc0")  # 5,000 arrays in arrays
    with pytest.raises(PluralfillError, match="cannot read"):
        read_flax_checkpoint(tmp_path / "deeper.msgpack", "transformer")


def test_an_interrupt_says_what_was_kept_and_how_to_go_on(tmp_path, photo, capsys, monkeypatch):
    from PIL import Image

    from pluralfill import runner

    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.2)).save(tmp_path / "p_mask.png")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "fill_jobs", interrupted)
    code, _, err = _cli(["inpaint", tmp_path / "p.png", "-o", tmp_path / "o", "--seed", "1"], capsys)
    assert code == 130 and err.strip().startswith("interrupted: every file written is whole and kept")
    assert "--resume" in err


def test_small_files_cannot_ask_for_huge_work(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("1", (8000, 8000)).save(tmp_path / "imgs" / "huge.png")  # 64 MP from a file of a few KB
    assert (tmp_path / "imgs" / "huge.png").stat().st_size < 100_000
    code, _, err = _cli(["masks", "generate", "--for-images", tmp_path / "imgs", "-o", tmp_path / "m"], capsys)
    assert code == 2 and "over the limit of 50 MP" in err and not (tmp_path / "m").exists()
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    code, _, err = _cli(["sketch", tmp_path / "one.png", "-o", tmp_path / "s.png"], capsys)
    assert code == 2 and "at least 16x16" in err


@pytest.mark.parametrize(
    "args, says",
    [
        (["bench", "--method", "precision", "--backend", "tensorrt"], "--backend must be torch or onnx"),
        (["bench", "--method", "put", "--resolution", "72"], "a multiple of 16"),
        (["bench", "--method", "put", "--device", "banana"], "unknown device 'banana'"),
        (["serve", "--device", "banana"], "unknown device 'banana'"),
        (["masks", "generate", "-o", "m", "--seed", "-1"], "--seed"),
        (["masks", "generate", "-o", "m", "--size", "1000000"], "--size"),
    ],
)
def test_values_that_would_fail_later_are_refused_first(args, says, capsys):
    code, _, err = _cli(args, capsys)
    assert code == 2 and says in err and err.count("\n") == 1


def test_evaluate_says_when_it_scores_fewer_images_than_the_truth_holds(tmp_path, photo, capsys):
    from PIL import Image

    for d in ("gt", "masks", "pred"):
        (tmp_path / d).mkdir()
    for i in range(3):
        Image.fromarray(photo).save(tmp_path / "gt" / f"g{i}.png")
        Image.fromarray(square_hole(frac=0.2)).save(tmp_path / "masks" / f"g{i}.png")
    Image.fromarray(photo).save(tmp_path / "pred" / "g0.png")
    code, _, err = _cli(
        [
            "evaluate",
            "--pred",
            tmp_path / "pred",
            "--gt",
            tmp_path / "gt",
            "--masks",
            tmp_path / "masks",
            "--metrics",
            "mae",
            "--bins",
            "none",
        ],
        capsys,
    )
    assert code == 0 and "2 of 3 ground-truth image(s) with no prediction" in err


def test_a_failed_start_leaves_no_run_folder(tmp_path, capsys):
    scenes = SHARED / "data" / "scenes256" / "train"
    run = tmp_path / "run"
    code, _, err = _cli(
        ["train", "put-tiny-pvqvae", f"data.train={scenes}", "model.pvqvae.patch_size=7", f"run_dir={run}"], capsys
    )
    assert code == 2 and "patch_size must be a power of two" in err and err.count("\n") == 1
    assert not run.exists()  # so the same command, fixed, can use it


def test_a_smaller_mask_set_over_a_larger_one_leaves_no_stale_masks(tmp_path, capsys):
    out = tmp_path / "m"
    assert _cli(["masks", "generate", "-n", "5", "--size", "64", "-o", out], capsys)[0] == 0
    assert _cli(["masks", "generate", "-n", "2", "--size", "64", "-o", out, "--overwrite"], capsys)[0] == 0
    listed = (out / "masks.csv").read_text().splitlines()[1:]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(line.split(",")[0] for line in listed)


def test_a_full_disk_while_installing_is_one_line_and_replaces_nothing(monkeypatch, capsys):
    from pluralfill.models import base

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(base, "save_file", full)
    code, _, err = _cli(["models", "add", FIXTURE_PTH, "--name", "full-disk", "--num-heads", "4"], capsys)
    assert code == 2 and "No space left on device" in err and "nothing was replaced" in err
    from pluralfill.hub import installed_models, models_dir

    assert "full-disk" not in installed_models() and not any(models_dir().glob(".full-disk*"))


def test_a_damaged_tensorflow_index_is_named(tmp_path, capsys):
    import shutil

    official = tmp_path / "dsi"
    shutil.copytree(SHARED / "fixtures" / "dsi_official_tiny", official)
    index = next(official.glob("*.index"))
    data = bytearray(index.read_bytes())
    damaged = 0
    for i in range(0, len(data), max(1, len(data) // 64)):  # one byte at a time, at 64 places
        data[i] ^= 0xFF
        index.write_bytes(bytes(data))
        code, _, err = _cli(["convert", "dsi-official", official, tmp_path / "out", "--resolution", "64"], capsys)
        assert code in (0, 2) and "Traceback" not in err and err.count("\n") <= 1, err
        damaged += code == 2
        data[i] ^= 0xFF
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
    assert damaged > 0


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_training_image_is_skipped_with_a_note_not_a_worker_traceback(tmp_path, capfd, workers):
    import shutil

    from pluralfill.cli import main

    images = tmp_path / "images"
    images.mkdir()
    for p in sorted((SHARED / "data" / "scenes256" / "train").iterdir())[:2]:
        shutil.copy(p, images / p.name)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    short = [
        "steps=2",
        "val_every=2",
        "sample_every=2",
        "checkpoint_every=2",
        "val_batches=1",
        "data.val_fraction=0",
        "batch_size=8",
        f"data.num_workers={workers}",
    ]
    with pytest.raises(SystemExit) as e:
        main(["train", "put-tiny-pvqvae", f"data.train={images}", f"run_dir={tmp_path / 'run'}", *short])
    err = capfd.readouterr().err
    assert e.value.code in (0, None), err
    assert "note: skipping a training image" in err and "broken.png" in err and "Traceback" not in err

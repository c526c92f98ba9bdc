"""What a new user meets first: the default pluralistic PatchMatch, the model store, and the rough edges a
first session hit (typed options, grey and transparent photos, unwritable folders, files given as folders,
empty folders, finished runs, help text)."""

import json

import numpy as np
import pytest
import torch
from conftest import SHARED, square_hole
from conftest import run_cli as _cli
from PIL import Image

import pluralfill
from pluralfill.errors import PluralfillError
from pluralfill.methods.classical import left_out

PUT_FIXTURE = SHARED / "fixtures" / "put_official_tiny" / "transformer_official_format.pth"


def _spread(samples, hole) -> float:
    a = [np.asarray(s, np.float32)[hole] for s in samples]
    return float(np.mean([np.abs(a[i] - a[j]).mean() for i in range(len(a)) for j in range(i + 1, len(a))]))


@pytest.mark.slow
def test_pluralistic_patchmatch_differs_more_than_plain_and_keeps_the_photo(photo):
    hole = square_hole(frac=0.35)
    plural, plain = pluralfill.load_inpainter("patchmatch-plural"), pluralfill.load_inpainter("patchmatch")
    a, b = plural.inpaint(photo, hole, 3, seed=0), plain.inpaint(photo, hole, 3, seed=0)
    for s in a:
        np.testing.assert_array_equal(np.asarray(s)[~hole], photo[~hole])
    assert _spread(a, hole) > 1.3 * _spread(b, hole)
    again = plural.inpaint(photo, hole, 3, seed=0)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, again))  # seeded: repeatable


def test_left_out_spares_the_band_around_the_hole_and_keeps_a_sector():
    hole = np.zeros((200, 240), bool)
    hole[80:120, 90:150] = True
    side = round(0.1 * 240)
    near = np.zeros_like(hole)
    near[80 - side // 4 : 120 + side // 4, 90 - side // 4 : 150 + side // 4] = True
    blocks = left_out(hole, 0.5, 0.1, seed=3)
    assert not (blocks & near).any()
    assert 0.3 < blocks[~near].mean() < 0.7  # about half of the rest
    assert not np.array_equal(blocks, left_out(hole, 0.5, 0.1, seed=4))  # every sample its own
    sector = left_out(hole, 0.0, 0.1, seed=3, view=0.25)
    assert not (sector & near).any() and 0.6 < sector[~near].mean() < 0.9  # three quarters of the directions hidden


@pytest.mark.parametrize(
    "option, message",
    [
        ({"patch_size": "abc"}, 'option patch_size="abc": should be a valid integer'),
        ({"patch_size": 0}, "option patch_size=0: should be greater than or equal to 1"),
        ({"leave_out": 1.5}, "option leave_out=1.5: should be less than 1"),
        ({"block": 0}, "option block=0: should be greater than 0"),
        ({"view": 0}, "option view=0: should be greater than 0"),
    ],
)
def test_bad_option_values_are_one_line(photo, option, message):
    with pytest.raises(PluralfillError, match=message):
        pluralfill.load_inpainter("patchmatch-plural").inpaint(photo, square_hole(frac=0.2), 1, seed=0, **option)


def test_option_types_from_the_command_line(tmp_path, photo, capsys):
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.3)).save(tmp_path / "h.png")
    common = ["inpaint", str(tmp_path / "p.png"), "--mask", str(tmp_path / "h.png"), "-o", str(tmp_path / "out")]
    code, _, err = _cli([*common, "--option", "patch_size=abc"], capsys)
    assert code == 2 and 'option patch_size="abc"' in err and "Traceback" not in err
    code, _, err = _cli([*common, "--method", "put-scenes-small", "--option", "top_k=abc"], capsys)
    assert code == 2 and 'option top_k="abc"' in err and len(err.strip().splitlines()) == 1


def test_grey_photos_stay_grey_and_alpha_is_kept(tmp_path, photo, capsys):
    grey = Image.fromarray(photo).convert("L")
    grey.save(tmp_path / "grey.png")
    rgba = Image.fromarray(photo).convert("RGBA")
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:40] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "rgba.png")
    Image.fromarray(square_hole(frac=0.3)).save(tmp_path / "h.png")
    code, _, err = _cli(
        [
            "inpaint",
            str(tmp_path / "grey.png"),
            str(tmp_path / "rgba.png"),
            "--mask",
            str(tmp_path / "h.png"),
            "-o",
            str(tmp_path / "out"),
            "-n",
            "2",
        ],
        capsys,
    )
    assert code == 0, err
    out_grey = Image.open(tmp_path / "out" / "grey_sample0.png")
    assert out_grey.mode == "L"
    np.testing.assert_array_equal(
        np.asarray(out_grey)[~square_hole(frac=0.3)], np.asarray(grey)[~square_hole(frac=0.3)]
    )
    out_rgba = Image.open(tmp_path / "out" / "rgba_sample1.png")
    assert out_rgba.mode == "RGBA" and np.array_equal(np.asarray(out_rgba)[..., 3], alpha)
    assert "alpha channel" in err and "transparent pixels" in err


def test_unwritable_output_names_the_folder(tmp_path, photo, capsys):
    import os

    if os.geteuid() == 0:  # root writes anywhere: a file in place of the folder's parent does it
        blocked = tmp_path / "file"
        blocked.write_text("x")
        target = blocked / "out"
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o500)
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.3)).save(tmp_path / "h.png")
    code, _, err = _cli(
        ["inpaint", str(tmp_path / "p.png"), "--mask", str(tmp_path / "h.png"), "-o", str(target)], capsys
    )
    assert (
        code != 0
        and str(target.parent if target.name == "out" else target) in err
        and ".tmp" not in err
        and "Traceback" not in err
    )


def test_a_checkpoint_file_an_empty_folder_and_a_finished_run(tmp_path, photo, capsys):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(PluralfillError, match="is a file"):
        pluralfill.load_inpainter(weights)
    (tmp_path / "empty").mkdir()
    code, _, err = _cli(["inpaint", str(tmp_path / "empty"), "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and "holds no images" in err


def test_resuming_a_finished_run_says_so(images, tmp_path, capsys):
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "src" / "pluralfill" / "configs"
    args = [
        "train",
        str(configs / "put-tiny-pvqvae.yaml"),
        f"data.train={images}",
        "data.num_workers=0",
        "batch_size=2",
        "steps=2",
        "val_every=2",
        "sample_every=2",
        "checkpoint_every=2",
        "val_batches=1",
        "log_every=1",
        f"run_dir={tmp_path / 'run'}",
    ]
    code, _, err = _cli(args, capsys)
    assert code == 0, err
    code, _, err = _cli(["train", "--resume", str(tmp_path / "run")], capsys)
    assert code == 2 and "finished" in err


def test_help_shows_flags_as_flags_and_says_defaults(capsys):
    code, out, _ = _cli(["inpaint", "--help"], capsys)
    assert (
        code == 0 and "<bool>" not in out and "--grid " in out and "patchmatch-plural" in out and "seed 00" not in out
    )
    code, out, _ = _cli(["demo", "--help"], capsys)
    assert "Samples to draw" in out and "the same grid" in out
    for command in ("sketch", "evaluate", "train", "bench", "serve", "convert", "info", "models"):
        code, out, _ = _cli([command, "--help"], capsys)
        assert code == 0 and "seed 00" not in out and "<bool>" not in out, command


def _random_put_checkpoint(path):
    state = torch.load(PUT_FIXTURE, weights_only=True)["model"]
    g = torch.Generator().manual_seed(0)
    torch.save(
        {
            "model": {
                k: torch.randn(v.shape, generator=g) * 0.02 if v.is_floating_point() else v for k, v in state.items()
            }
        },
        path,
    )
    return path


def test_the_model_store_installs_lists_uses_and_removes(tmp_path, photo, capsys):
    ckpt = _random_put_checkpoint(tmp_path / "downloaded.pth")
    code, out, err = _cli(["models", "add", str(ckpt), "--name", "put-mine"], capsys)
    assert code == 0, err
    assert "installed put-mine (put-official)" in out and "--method put-mine" in out
    code, out, _ = _cli(["models"], capsys)
    assert (
        "put-mine" in out and "put-scenes-small" in out and "github.com/liuqk3/PUT" in out and "USTC-JialunPeng" in out
    )
    assert "put-mine" in pluralfill.available_methods()
    code, _, err = _cli(["models", "add", str(ckpt), "--name", "put-mine"], capsys)
    assert code == 2 and "installed already" in err
    code, _, err = _cli(["models", "add", str(ckpt), "--name", "patchmatch"], capsys)
    assert code == 2 and "already a method" in err
    garbage = tmp_path / "notes.pth"
    garbage.write_bytes(b"not a checkpoint")
    code, _, err = _cli(["models", "add", str(garbage)], capsys)
    assert code == 2 and "is not an official checkpoint pluralfill knows" in err and len(err.strip().splitlines()) == 1
    # inpaint --method NAME and the web app use it
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.3)).save(tmp_path / "h.png")
    code, _, err = _cli(
        [
            "inpaint",
            str(tmp_path / "p.png"),
            "--mask",
            str(tmp_path / "h.png"),
            "--method",
            "put-mine",
            "-n",
            "2",
            "-o",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 0, err
    assert len(list((tmp_path / "out").glob("p_sample*.png"))) == 2
    from fastapi.testclient import TestClient

    from pluralfill.app.server import create_app

    client = TestClient(create_app(), base_url="http://127.0.0.1")
    names = [m["name"] for m in client.get("/api/methods").json()]
    assert names[0] == "patchmatch-plural" and "put-mine" in names
    small, hole = np.ascontiguousarray(photo[::4, ::4]), square_hole(64, 64, 0.3)
    buf_i, buf_m = (__import__("io").BytesIO() for _ in range(2))
    Image.fromarray(small).save(buf_i, format="PNG")
    Image.fromarray(hole.astype(np.uint8) * 255).save(buf_m, format="PNG")
    r = client.post(
        "/api/inpaint",
        files={"image": ("i.png", buf_i.getvalue(), "image/png"), "mask": ("m.png", buf_m.getvalue(), "image/png")},
        data={"method": "put-mine", "num_samples": "1", "seed": "1"},
    )
    assert r.status_code == 200 and json.loads(r.text.splitlines()[-1])["type"] == "done"
    code, out, _ = _cli(["models", "remove", "put-mine"], capsys)
    assert code == 0 and "removed put-mine" in out
    assert "put-mine" not in pluralfill.available_methods()
    code, _, err = _cli(["models", "remove", "put-mine"], capsys)
    assert code == 2 and "no installed model named 'put-mine'" in err

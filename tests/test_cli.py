import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import square_hole
from PIL import Image

from pluralfill import __version__
from pluralfill.cli import main


def run(capsys, *args):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def folder(tmp_path, photos):
    """Three small images, two with LaMa-style masks beside them."""
    d = tmp_path / "in"
    d.mkdir()
    for i, p in enumerate(photos[:3]):
        Image.fromarray(p[::2, ::2]).save(d / f"img{i}.jpg")
    for i in range(2):
        Image.fromarray(square_hole(128, 128, 0.3).astype(np.uint8) * 255).save(d / f"img{i}_mask.png")
    return d


def test_version_and_help(capsys):
    assert run(capsys, "--version") == (0, f"pluralfill {__version__}\n", "")
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "inpaint" in out and "evaluate" in out and "masks" in out


def test_inpaint_one_photo_with_grid(capsys, tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "photo.jpg")
    Image.fromarray(square_hole(frac=0.25).astype(np.uint8) * 255).save(tmp_path / "hole.png")
    o = tmp_path / "out"
    code, _, err = run(
        capsys,
        "inpaint",
        tmp_path / "photo.jpg",
        "--mask",
        tmp_path / "hole.png",
        "--method",
        "telea",
        "-n",
        "3",
        "--seed",
        "0",
        "-o",
        o,
        "--grid",
    )
    assert code == 0, err
    assert "deterministic" in err  # telea writes one sample and says so
    assert sorted(p.name for p in o.iterdir()) == ["photo_grid.png", "photo_sample0.png"]
    # running again refuses to overwrite, and leaves the files alone
    before = (o / "photo_sample0.png").read_bytes()
    code, _, err = run(
        capsys, "inpaint", tmp_path / "photo.jpg", "--mask", tmp_path / "hole.png", "--method", "telea", "-o", o
    )
    assert code == 2 and err.startswith("error: output exists") and "--overwrite" in err
    assert (o / "photo_sample0.png").read_bytes() == before


def test_inpaint_folder_lists_unpaired_and_writes_samples(capsys, folder, tmp_path):
    o = tmp_path / "out"
    code, _, err = run(capsys, "inpaint", folder, "-o", o, "--method", "patchmatch", "-n", "2", "--seed", "1")
    assert code == 0, err
    assert "skipped 1 image(s) with no mask: img2.jpg" in err
    assert sorted(p.name for p in o.iterdir()) == [f"img{i}_sample{k}.png" for i in range(2) for k in range(2)]


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png", "--mask", "hole.png"], "image not found"),
        (["photo.png", "--mask", "missing.png"], "mask not found"),
        (["photo.png", "--mask", "small.png"], "is 16x16 but its image is 256x256"),
        (["photo.png", "--mask", "empty.png"], "nothing to fill"),
        (["photo.png", "--mask", "full.png", "--method", "patchmatch"], "every pixel"),
        (["corrupt.png", "--mask", "hole.png"], "cannot read image"),
        (["photo.png", "--mask", "hole.png", "--max-pixels", "1000"], "--max-pixels"),
        (["photo.png", "--mask", "hole.png", "--method", "nope"], "unknown method"),
        (["photo.png", "--mask", "hole.png", "--checkpoint", "."], "not a checkpoint folder"),
    ],
)
def test_bad_inputs_give_one_line_errors(capsys, tmp_path, photo, args, message):
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(square_hole().astype(np.uint8) * 255).save(tmp_path / "hole.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(np.full((256, 256), 255, np.uint8)).save(tmp_path / "full.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG garbage")
    args = [tmp_path / a if a.endswith(".png") else a for a in args]
    code, out, err = run(capsys, "inpaint", *args, "-o", tmp_path / "out")
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_resize_and_invert_mask(capsys, tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "photo.png")
    known = ~square_hole(64, 64, 0.5)  # white = known, at a quarter of the size
    Image.fromarray(known.astype(np.uint8) * 255).save(tmp_path / "known.png")
    code, _, err = run(
        capsys,
        "inpaint",
        tmp_path / "photo.png",
        "--mask",
        tmp_path / "known.png",
        "--invert-mask",
        "--resize-mask",
        "--method",
        "telea",
        "-o",
        tmp_path / "o",
    )
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "o" / "photo_sample0.png"))
    hole = square_hole(256, 256, 0.5)
    np.testing.assert_array_equal(out[~hole], photo[~hole])


def test_errors_never_show_a_traceback(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pluralfill.cli",
            "inpaint",
            str(tmp_path / "x.png"),
            "--mask",
            str(tmp_path / "y.png"),
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error: image not found")


def test_masks_generate_and_stats(capsys, tmp_path):
    o = tmp_path / "m"
    code, out, err = run(
        capsys,
        "masks",
        "generate",
        "--preset",
        "lama-thick",
        "--size",
        "64",
        "--ratio",
        "0.3-0.5",
        "-n",
        "12",
        "--seed",
        "0",
        "-o",
        o,
    )
    assert code == 0, err
    rows = list(csv.DictReader(open(o / "masks.csv")))
    assert len(rows) == 12 and all(0.3 < float(r["ratio"]) <= 0.5 for r in rows)
    for r in rows:  # the csv tells the truth about each file
        hole = np.asarray(Image.open(o / r["file"])) >= 128
        assert hole.mean() == pytest.approx(float(r["ratio"]), abs=1e-6)
    first = (o / rows[0]["file"]).read_bytes()
    assert (
        run(
            capsys,
            "masks",
            "generate",
            "--preset",
            "lama-thick",
            "--size",
            "64",
            "--ratio",
            "0.3-0.5",
            "-n",
            "12",
            "--seed",
            "0",
            "-o",
            tmp_path / "again",
        )[0]
        == 0
    )
    assert (tmp_path / "again" / rows[0]["file"]).read_bytes() == first  # deterministic
    code, out, _ = run(capsys, "masks", "stats", o)
    assert code == 0 and "(0.3, 0.4]" in out and "12 masks" in out

    code, _, err = run(
        capsys, "masks", "generate", "--preset", "put", "--size", "32", "--bins", "-n", "2", "-o", tmp_path / "b"
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "b").iterdir())[:2] == ["0-0.1", "0.1-0.2"]
    code, _, err = run(
        capsys, "masks", "generate", "--preset", "center", "--ratio", "0.5-0.6", "-n", "1", "-o", tmp_path / "c"
    )
    assert code == 2 and "did not give a hole fraction" in err
    code, _, err = run(capsys, "masks", "generate", "--preset", "nope", "-o", tmp_path / "d")
    assert code == 2 and "unknown mask preset" in err


def _results(tmp_path, photos, n_samples=2):
    """A ground-truth folder, masks in two bins, and telea/patchmatch-like results with N samples."""
    gt, masks, pred = tmp_path / "gt", tmp_path / "masks", tmp_path / "pred"
    for d in (gt, masks, pred):
        d.mkdir()
    rng = np.random.default_rng(0)
    for i, p in enumerate(photos[:4]):
        p = np.ascontiguousarray(p[::4, ::4])
        Image.fromarray(p).save(gt / f"im{i}.png")
        hole = square_hole(64, 64, 0.28 if i % 2 else 0.6)  # ratios 0.0784... and 0.36
        Image.fromarray(hole.astype(np.uint8) * 255).save(masks / f"im{i}.png")
        for k in range(n_samples):
            noisy = np.clip(p.astype(int) + rng.integers(-20, 21, p.shape) * hole[..., None], 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(pred / f"im{i}_sample{k}.png")
    return gt, masks, pred


def test_evaluate_tables_and_plot(capsys, tmp_path, photos):
    gt, masks, pred = _results(tmp_path, photos)
    code, out, err = run(capsys, "evaluate", "--pred", pred, "--gt", gt, "--masks", masks, "--plot", tmp_path / "c.png")
    assert code == 0, err
    assert "| metric | (0, 0.1] |" in out and "| all |" in out.splitlines()[0] + " |"
    assert "skipping lpips" in err  # no weights cached: said, not silently wrong
    assert (tmp_path / "c.png").stat().st_size > 1000
    code, out, _ = run(capsys, "evaluate", "--pred", pred, "--gt", gt, "--masks", masks, "--format", "json")
    table = json.loads(out)
    assert table["images"]["(0, 0.1]"] == 2 and table["images"]["(0.3, 0.4]"] == 2 and table["images"]["all"] == 4
    ssim_all = table["metrics"]["ssim"]["all"]
    assert 0.5 < ssim_all < 1.0
    assert table["metrics"]["mae"]["(0, 0.1]"] < table["metrics"]["mae"]["(0.3, 0.4]"]  # bigger holes, more error
    assert table["metrics"]["diversity-pixel"]["all"] > 0
    code, out, _ = run(
        capsys, "evaluate", "--pred", pred, "--gt", gt, "--masks", masks, "--format", "csv", "--bins", "none"
    )
    assert out.splitlines()[0] == "metric,all" and out.splitlines()[1] == "images,4"


@pytest.mark.slow
def test_evaluate_with_lpips_and_fid_weights(capsys, tmp_path, photos):
    from pluralfill import hub
    from pluralfill.metrics.lpips import LPIPS
    from pluralfill.nn.inception import FIDInceptionV3

    gt, masks, pred = _results(tmp_path, photos)
    cache = hub.cache_dir()
    cache.mkdir(parents=True)
    torch.manual_seed(0)
    lp = LPIPS("alex")
    torch.save(lp.net.state_dict(), cache / hub.WEIGHTS["alexnet"].filename)
    torch.save(
        {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(lp.net.channels)},
        cache / hub.WEIGHTS["lpips-alex"].filename,
    )
    inception = FIDInceptionV3()
    for m in inception.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(1.0)
    torch.save(inception.state_dict(), cache / hub.WEIGHTS["inception-fid"].filename)
    code, out, err = run(
        capsys, "evaluate", "--pred", pred, "--gt", gt, "--masks", masks, "--format", "json", "--bins", "none"
    )
    assert code == 0, err
    m = json.loads(out)["metrics"]
    assert set(m) == {"mae", "psnr", "ssim", "diversity-pixel", "lpips", "diversity-lpips", "fid", "p-ids", "u-ids"}
    assert m["lpips"]["all"] > 0 and m["diversity-lpips"]["all"] > 0 and np.isfinite(m["fid"]["all"])


def test_info(capsys):
    code, out, _ = run(capsys, "info", "patchmatch", "--json")
    d = json.loads(out)
    assert code == 0 and {k: d[k] for k in ("name", "method", "resolution", "parameters")} == {
        "name": "patchmatch",
        "method": "patchmatch",
        "resolution": "any",
        "parameters": {},
    }
    assert [o["name"] for o in d["options"]] == ["patch_size", "leave_out", "block", "view"]
    code, out, _ = run(capsys, "info", "patchmatch-plural")
    assert code == 0 and "leave_out" in out and "0.5" in out and "what it does" in out
    code, out, _ = run(capsys, "info", "maskgit-tiny", "--json")  # a named config: its method's options, no weights
    options = {o["name"]: o for o in json.loads(out)["options"]}
    assert options["blend"]["choices"] == ["paste", "official"] and options["steps"]["default"] == 12
    code, out, _ = run(capsys, "info")
    assert code == 0 and "telea" in out and "navier-stokes" in out
    code, _, err = run(capsys, "info", "nope")
    assert code == 2 and "unknown method" in err


def test_demo(capsys, tmp_path):
    code, out, err = run(capsys, "demo", "-o", tmp_path / "demo", "-n", "2", "--method", "telea")
    assert code == 0, err
    grid = Image.open(tmp_path / "demo" / "coffee_grid.png")
    assert grid.width > 3 * 256 - 10 and "coffee_grid.png" in out


def test_compare_methods_and_masks_for_images(capsys, tmp_path, photos):
    gt, _, pred = _results(tmp_path, photos, n_samples=1)
    code, _, err = run(capsys, "masks", "generate", "--preset", "box", "--for-images", gt, "-o", tmp_path / "m2")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "m2").iterdir()) == [
        "im0.png",
        "im1.png",
        "im2.png",
        "im3.png",
        "masks.csv",
    ]
    code, out, err = run(
        capsys,
        "evaluate",
        "--pred",
        pred,
        "--pred",
        gt,
        "--gt",
        gt,
        "--masks",
        tmp_path / "m2",
        "--format",
        "json",
        "--plot",
        tmp_path / "cmp.png",
    )
    assert code == 0, err

    def strict(x):
        raise ValueError(f"not JSON: {x}")

    both = json.loads(out, parse_constant=strict)  # NaN would not be valid JSON
    assert set(both) == {"pred", "gt"}
    assert both["gt"]["metrics"]["psnr"]["all"] == 100.0  # ground truth against itself
    assert both["pred"]["metrics"]["psnr"]["all"] < 100.0
    assert both["pred"]["metrics"]["diversity-pixel"]["all"] is None  # one sample: no diversity
    assert (tmp_path / "cmp.png").exists()


def test_outputs_get_normal_file_permissions(tmp_path, photo):
    import os
    import stat

    from pluralfill.io import write_image

    write_image(tmp_path / "a.png", photo)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o666 & ~umask

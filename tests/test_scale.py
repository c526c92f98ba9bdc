"""Evaluation at the papers' scale on CPU: inpaint and evaluate split over 2 processes (gloo) give exactly the
files and numbers of 1 process, a killed run resumes to the same files, and the protocol presets check their
masks and write how a number was made."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.io import write_hole
from pluralfill.masks import generate_hole

SCENES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scenes256" / "train"
PLURALFILL = [sys.executable, "-m", "pluralfill"]


def _images(folder: Path, n: int, side: int = 96) -> Path:
    folder.mkdir(parents=True)
    for i, p in enumerate(sorted(SCENES.iterdir())[::97][:n]):
        Image.open(p).convert("RGB").resize((side, side)).save(folder / f"img{i:02d}.png")
    return folder


def _masks(images: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, p in enumerate(sorted(images.iterdir())):
        write_hole(folder / p.name, generate_hole("lama-medium", 96, 0, i, ratio=(0.1, 0.4)))
    return folder


def _run(args, threads: int | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLURALFILL_OFFLINE": "1"} | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    return subprocess.run([*PLURALFILL, *map(str, args)], capture_output=True, text=True, env=env, timeout=600, **kw)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    images = _images(root / "gt", 8)
    return images, _masks(images, root / "masks")


@pytest.mark.slow
def test_two_processes_write_exactly_the_files_of_one(data, tmp_path):
    images, masks = data
    common = ["inpaint", images, "--mask-dir", masks, "--method", "patchmatch-plural", "-n", "2", "--seed", "5"]
    one, two = _run([*common, "-o", tmp_path / "one"]), _run([*common, "-o", tmp_path / "two", "--devices", "2"])
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert "in 2 processes" in two.stderr
    assert len(_files(tmp_path / "one")) == 16 and _files(tmp_path / "one") == _files(tmp_path / "two")


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_files(data, tmp_path):
    images, masks = data
    common = ["inpaint", images, "--mask-dir", masks, "--method", "patchmatch-plural", "-n", "2", "--seed", "5", "-o"]
    reference = _run([*common, tmp_path / "ref"])
    assert reference.returncode == 0, reference.stderr
    env = {**os.environ, "PLURALFILL_OFFLINE": "1"}
    proc = subprocess.Popen(
        [*PLURALFILL, *map(str, common), str(tmp_path / "run")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list((tmp_path / "run").glob("*.png"))) < 4 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # midway, as a preempted job dies
    proc.wait()
    written = len(list((tmp_path / "run").glob("*.png")))
    again = _run([*common, tmp_path / "run"])
    assert again.returncode == 2 and "output exists" in again.stderr  # without --resume nothing is replaced
    resumed = _run([*common, tmp_path / "run", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written // 2} of 8 image(s) done already" in resumed.stderr or written % 2
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")


def _random_weights(folder: Path) -> list[str]:
    from pluralfill.metrics.lpips import LPIPS
    from pluralfill.nn.inception import FIDInceptionV3

    torch.manual_seed(0)
    inception = FIDInceptionV3()
    for m in inception.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(1.0)
    torch.save(inception.state_dict(), folder / "inception.pth")
    ref = LPIPS("alex")
    torch.save(ref.net.state_dict(), folder / "alexnet.pth")
    torch.save(
        {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(ref.net.channels)}, folder / "heads.pth"
    )
    return [
        "--inception",
        folder / "inception.pth",
        "--lpips-backbone",
        folder / "alexnet.pth",
        "--lpips-heads",
        folder / "heads.pth",
    ]


@pytest.mark.slow
def test_two_processes_give_the_numbers_of_one(data, tmp_path):
    images, masks = data
    done = _run(
        [
            "inpaint",
            images,
            "--mask-dir",
            masks,
            "--method",
            "patchmatch-plural",
            "-n",
            "2",
            "--seed",
            "1",
            "-o",
            tmp_path / "pred",
        ]
    )
    assert done.returncode == 0, done.stderr
    weights = _random_weights(tmp_path)
    common = [
        "evaluate",
        "--pred",
        tmp_path / "pred",
        "--gt",
        images,
        "--masks",
        masks,
        "--format",
        "json",
        "--metrics",
        "mae,psnr,ssim,lpips,fid,u-ids",
        "--bins",
        "0.1-0.25,0.25-0.4",
        *weights,
    ]
    # one thread a process in both runs: a convolution's sums are ordered by its thread count, and the check is exact
    one, two = _run(common, threads=1), _run([*common, "--devices", "2"], threads=1)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert a == b and a["images"]["all"] == 8 and a["metrics"]["fid"]["all"] > 0


def _fake_pconv(folder: Path, n: int = 24) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        write_hole(folder / f"{i:05d}.png", generate_hole("lama-thick", 512, 3, i, ratio=(0.1, 0.6)))
    return folder


@pytest.mark.slow
def test_protocol_masks_are_checked_and_the_results_say_how_they_were_made(data, tmp_path, capsys):
    from pluralfill.cli import main

    def cli(*args):
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
        got = capsys.readouterr()
        return e.value.code, got.out, got.err

    images, _ = data
    source = _fake_pconv(tmp_path / "testing_mask_dataset")
    code, out, err = cli(
        "masks", "protocol", "put", "pconv", "--for-images", images, "--source", source, "-o", tmp_path / "put-masks"
    )
    assert code == 0, err
    manifest = json.loads((tmp_path / "put-masks" / "protocol.json").read_text())
    assert manifest["protocol"] == "put" and len(manifest["masks"]) == 8
    code, _, err = cli(
        "inpaint",
        images,
        "--mask-dir",
        tmp_path / "put-masks",
        "--protocol",
        "put",
        "--method",
        "telea",
        "--seed",
        "0",
        "-o",
        tmp_path / "pred",
    )
    assert code == 0, err
    weights = _random_weights(tmp_path)
    code, out, err = cli(
        "evaluate",
        "--pred",
        tmp_path / "pred",
        "--gt",
        images,
        "--masks",
        tmp_path / "put-masks",
        "--protocol",
        "put",
        *weights,
        "-o",
        tmp_path / "put.md",
    )
    assert code == 0, err
    for expected in (
        "protocol: put",
        "mask_set: pconv",
        f"mask_fingerprint: {manifest['fingerprint'][:12]}",
        "weights_sha256",
        "images: 8",
        "ssim: luma",
        "pluralfill: ",
        "(0.2, 0.4]",
        "fid",
    ):
        assert expected in out, expected
    assert (tmp_path / "put.md").read_text().strip() == out.strip()
    # the wrong masks, changed masks, or none prepared: one line each
    code, _, err = cli("masks", "protocol", "lama", "thin-256", "--for-images", images, "-o", tmp_path / "lama-masks")
    assert code == 0, err
    code, _, err = cli(
        "evaluate",
        "--pred",
        tmp_path / "pred",
        "--gt",
        images,
        "--masks",
        tmp_path / "lama-masks",
        "--protocol",
        "put",
        *weights,
    )
    assert code == 2 and "holds masks for protocol 'lama', not put" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(
        "evaluate", "--pred", tmp_path / "pred", "--gt", images, "--masks", data[1], "--protocol", "lama", *weights
    )
    assert code == 2 and "was not prepared for a protocol" in err
    hole = np.asarray(Image.open(tmp_path / "put-masks" / "img03.png"))
    Image.fromarray(255 - hole).save(tmp_path / "put-masks" / "img03.png")
    code, _, err = cli(
        "evaluate",
        "--pred",
        tmp_path / "pred",
        "--gt",
        images,
        "--masks",
        tmp_path / "put-masks",
        "--protocol",
        "put",
        *weights,
    )
    assert code == 2 and "img03.png changed since it was prepared for put" in err
    code, _, err = cli(
        "masks", "protocol", "put", "pconv", "--for-images", images, "--source", images, "-o", tmp_path / "x"
    )
    assert code == 2 and "holds no files like pconv" in err


def test_generated_protocol_masks_are_drawn_again_to_check_them(data, tmp_path):
    from pluralfill.metrics.protocols import get_protocol, prepare, verify

    images, _ = data
    lama = get_protocol("lama")
    manifest = prepare(lama, lama.mask_set("medium-256"), images, tmp_path / "m")
    names = [p.stem for p in sorted(images.iterdir())]
    assert verify(lama, tmp_path / "m", names)["fingerprint"] == manifest["fingerprint"]
    recorded = json.loads((tmp_path / "m" / "protocol.json").read_text())
    recorded["masks"]["img00.png"]["index"] = 5  # the file is intact, but not the mask it claims to be
    (tmp_path / "m" / "protocol.json").write_text(json.dumps(recorded))
    with pytest.raises(PluralfillError, match="img00.png is not the medium-256 mask it claims to be"):
        verify(lama, tmp_path / "m", names)


def test_the_world_comes_from_torchrun_when_not_given(monkeypatch):
    from pluralfill.shards import resolve_world

    assert resolve_world(None, None) == (1, 1) and resolve_world(4, None) == (4, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resolve_world(None, None) == (2, 2) and resolve_world(2, 2) == (2, 2)
    with pytest.raises(
        PluralfillError, match=r"--devices 3 but the launcher started 2 \(WORLD_SIZE=4, LOCAL_WORLD_SIZE=2\)"
    ):
        resolve_world(3, None)


@pytest.mark.slow
def test_torchrun_without_devices(data, tmp_path):
    """`torchrun --nproc-per-node 2 -m pluralfill inpaint ...` with no --devices: two ranks, the files of one
    process; --devices that contradicts torchrun is one line and exit 2 on every rank."""
    images, masks = data
    common = ["inpaint", images, "--mask-dir", masks, "--method", "patchmatch-plural", "-n", "2", "--seed", "5"]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29531",
        "-m",
        "pluralfill",
    ]
    env = {**os.environ, "PLURALFILL_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [*torchrun, *map(str, [*common, "-o", tmp_path / "two"])], capture_output=True, text=True, env=env, timeout=600
    )
    assert two.returncode == 0, two.stderr[-2000:]
    assert "in 2 processes" in two.stderr and "Traceback" not in two.stderr
    one = _run([*common, "-o", tmp_path / "one"])
    assert one.returncode == 0, one.stderr
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    bad = subprocess.run(
        [*torchrun, *map(str, [*common, "-o", tmp_path / "bad", "--devices", "3"])],
        capture_output=True,
        text=True,
        env={**env, "MASTER_PORT": "29532"},
        timeout=600,
    )
    # torchrun itself reports a failed child with its own traceback; ours is the one line, from no frame of ours
    assert bad.returncode != 0 and "error: --devices 3 but the launcher started 2" in bad.stderr
    assert not re.search(r"pluralfill/[\w/]+\.py\", line", bad.stderr), bad.stderr[-2000:]
    assert not (tmp_path / "bad").exists()


_SLOW_RANK = """\
import os, sys, time
import pluralfill.registry as registry

load = registry.load_inpainter


def slow_load(*args, **kwargs):  # one rank reaches the output check seconds after the other has written
    if os.environ["RANK"] == os.environ["SLOW_RANK"]:
        time.sleep(float(os.environ["SLOW_SECONDS"]))
    return load(*args, **kwargs)


registry.load_inpainter = slow_load
from pluralfill.cli import main

sys.exit(main())
"""


def _torchrun_with_a_slow_rank(tmp_path: Path, slow_rank: int, args: list, port: int) -> subprocess.CompletedProcess:
    script = tmp_path / "slow_rank.py"
    script.write_text(_SLOW_RANK)
    env = {
        **os.environ,
        "PLURALFILL_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "SLOW_RANK": str(slow_rank),
        "SLOW_SECONDS": "4",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(port),
        str(script),
    ]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("slow_rank", [0, 1])
def test_a_slow_rank_never_refuses_the_fresh_output_of_a_fast_one(data, tmp_path, slow_rank):
    """Every rank judges the outputs that existed before the run: a rank that starts seconds late does not find
    the other rank's new files and refuse them as 'output exists'."""
    images, masks = data
    common = ["inpaint", images, "--mask-dir", masks, "--method", "telea", "-o"]
    run = _torchrun_with_a_slow_rank(tmp_path, slow_rank, [*common, tmp_path / "two"], 29533 + slow_rank)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "output exists" not in run.stderr and "inpainted 8 image(s) with telea" in run.stderr
    one = _run([*common, tmp_path / "one"])
    assert one.returncode == 0, one.stderr
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    # outputs there before the run are refused, in one line, on every rank, and nothing is written
    (tmp_path / "clash").mkdir()
    (tmp_path / "clash" / "img05_sample0.png").write_bytes(b"mine")
    clash = _torchrun_with_a_slow_rank(tmp_path, slow_rank, [*common, tmp_path / "clash"], 29535 + slow_rank)
    assert clash.returncode != 0 and clash.stderr.count("error: output exists: ") == 2, clash.stderr[-3000:]
    assert _files(tmp_path / "clash") == {"img05_sample0.png": b"mine"}


@pytest.mark.slow
@pytest.mark.parametrize("slow_rank", [0, 1])
def test_a_slow_rank_resumes_the_same_images_as_a_fast_one(data, tmp_path, slow_rank):
    """--resume: what counts as done is decided before anyone writes, so a late rank takes the same share of
    the remaining images and none is skipped."""
    images, masks = data
    common = ["inpaint", images, "--mask-dir", masks, "--method", "patchmatch-plural", "-n", "2", "--seed", "3", "-o"]
    one = _run([*common, tmp_path / "one"])
    assert one.returncode == 0, one.stderr
    (tmp_path / "two").mkdir()
    for name in ("img00_sample0.png", "img00_sample1.png", "img03_sample0.png", "img03_sample1.png"):  # two images done
        (tmp_path / "two" / name).write_bytes((tmp_path / "one" / name).read_bytes())
    run = _torchrun_with_a_slow_rank(tmp_path, slow_rank, [*common, tmp_path / "two", "--resume"], 29537 + slow_rank)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resuming: 2 of 8 image(s) done already" in run.stderr and "inpainted 6 image(s)" in run.stderr
    assert _files(tmp_path / "two") == _files(tmp_path / "one")

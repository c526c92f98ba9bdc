"""The package as users install and meet it: what the wheel holds, the version, configs by name, one meaning per
name, devices and ports in one line, and what a user is told to do next."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import SHARED
from conftest import run_cli as _cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pluralfill"


@pytest.mark.slow
def test_the_wheel_holds_every_file_the_package_uses(tmp_path):
    """Every tracked file under src/pluralfill (the page's scripts, styles, assets, bundled weights, configs), and
    the licence and metadata a release needs."""
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, ROOT]
    subprocess.run(build, check=True, capture_output=True)
    wheel = next(tmp_path.glob("pluralfill-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "src/pluralfill"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    wanted = {p.removeprefix("src/") for p in tracked.stdout.split() if not p.endswith(".pyc")}
    assert wanted - names == set()
    assert any(n.startswith("pluralfill/app/static/js/") for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta and "Project-URL" in meta and "Classifier:" in meta
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_the_version_lives_in_one_place(capsys):
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    code, out, _ = _cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"pluralfill {version}"
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()


def test_configs_go_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    from pluralfill.registry import load_config

    monkeypatch.chdir(tmp_path)
    cfg = load_config("put-tiny-pvqvae", ["data.train=photos/"])
    assert cfg.stage == "put-pvqvae" and cfg.data.train == "photos/"
    assert load_config("mhtma-tiny.yaml").stage == "mhtma"
    code, _, err = _cli(["train", "put-tiny-pvqvae"], capsys)
    assert code == 2 and err.strip() == (
        "error: no training images: pass data.train=DIR (a folder of images, searched recursively, or a text file "
        "of paths)"
    )
    code, _, err = _cli(["train", "put-tiny-pvqvea"], capsys)
    assert code == 2 and "not a file, nor a packaged config" in err
    code, out, _ = _cli(["info"], capsys)
    assert "training configs" in out and "put-tiny-pvqvae" in out and "mhtma-tiny-sketch" in out


def test_info_groups_the_methods_and_keeps_names_whole(capsys):
    code, out, _ = _cli(["info"], capsys)
    assert code == 0
    ready, rest = out.split("\ndemo", 1)
    demo, waiting = rest.split("\nneeds weights", 1)
    assert "patchmatch-plural" in ready and "put-scenes-small" not in ready
    assert "put-scenes-small" in demo and "not the papers' quality" in demo
    assert "put-tpami-naturalscene-seg-sketch-256" in waiting and "https://github.com/liuqk3/PUT" in waiting
    rows = json.loads(_cli(["info", "--json"], capsys)[1])
    assert {r["name"]: r["status"] for r in rows}["put-scenes-small"] == "demo"


def test_an_installed_model_takes_its_name_everywhere(tmp_path, capsys):
    """`models add --name put-ffhq` installs a 1.7 M-parameter model under the name of a 103 M architecture:
    `info`, `inpaint`, the web app and the catalogue all mean the installed one, and `add` says so."""
    from pluralfill.registry import catalogue, describe

    code, _, err = _cli(["demo", "--method", "put-ffhq", "-o", tmp_path / "demo"], capsys)
    assert code == 2 and "pluralfill models add FILE --name put-ffhq" in err and "github.com/liuqk3/PUT" in err
    before = sum(describe("put-ffhq")["parameters"].values())
    pth = SHARED / "fixtures" / "put_official_tiny" / "transformer_official_format.pth"
    code, out, err = _cli(["models", "add", pth, "--name", "put-ffhq", "--num-heads", "4"], capsys)
    assert code == 0 and "put-ffhq is also a named architecture" in out + err
    after = sum(describe("put-ffhq")["parameters"].values())
    assert before > 100e6 > after
    assert [(r["status"], r["kind"]) for r in catalogue() if r["name"] == "put-ffhq"] == [("ready", "installed")]
    code, out, _ = _cli(["info", "put-ffhq", "--json"], capsys)
    assert sum(json.loads(out)["parameters"].values()) == after
    from fastapi.testclient import TestClient

    from pluralfill.app.server import create_app

    served = {m["name"]: m for m in TestClient(create_app(), base_url="http://127.0.0.1").get("/api/methods").json()}
    assert served["put-ffhq"]["available"] and served["put-ffhq"]["kind"] == "installed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU has cuda")
@pytest.mark.parametrize(
    "args",
    [
        ["inpaint", "x.png", "-o", "o", "--device", "cuda"],
        ["inpaint", "x.png", "-o", "o", "--device", "cuda:7"],
        ["inpaint", "x.png", "-o", "o", "--device", "mps"],
        ["serve", "--device", "cuda"],
        ["bench", "--method", "put", "--device", "cuda"],
    ],
)
def test_a_device_this_machine_lacks_is_one_line(args, capsys):
    code, out, err = _cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and "devices here: cpu" in err and "Traceback" not in err
    with pytest.raises(Exception, match="devices here: cpu"):
        __import__("pluralfill").load_inpainter("patchmatch", device="cuda")


def test_a_taken_port_is_one_line_before_any_url(capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        code, out, err = _cli(["serve", "--port", str(port)], capsys)
    finally:
        taken.close()
    assert code == 2 and "http://" not in out + err
    assert err.strip() == f"error: port {port} on 127.0.0.1 is in use: pass --port N, or --port 0 for a free one"


@pytest.mark.slow
def test_port_zero_serves_on_a_free_port_it_prints(tmp_path):
    import re
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, "-m", "pluralfill", "serve", "--port", "0"], stderr=subprocess.PIPE, text=True
    )
    try:
        url = re.search(r"http://\S+/", server.stderr.readline()).group(0)
        for _ in range(100):
            try:
                with urllib.request.urlopen(url + "static/js/main.js", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                __import__("time").sleep(0.2)
        else:
            pytest.fail(f"nothing answered on {url}")
    finally:
        server.terminate()
        server.wait(10)


def test_help_reads_as_users_type(capsys):
    from pluralfill.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "..." not in top.split("Commands:")[1].replace("IMAGES...", "")  # whole first sentences
    with pytest.raises(SystemExit):
        main(["inpaint", "--help"])
    text = capsys.readouterr().out
    assert "Usage: pluralfill inpaint [OPTIONS] IMAGES..." in text and "<int" not in text and "list[" not in text
    assert "-n, --num-samples N" in text and text.rstrip().splitlines()[-1].strip().startswith("pluralfill inpaint")


def test_errors_name_the_flag_the_user_typed(tmp_path, photo, capsys):
    from PIL import Image

    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(photo[..., 0] > 200).save(tmp_path / "p_mask.png")
    args = ["inpaint", tmp_path / "p.png", "--method", "put-scenes-small", "-o", tmp_path / "out"]
    code, _, err = _cli([*args, "--top-k", "-3", "--option", "temperature=0"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert (
        "--top-k -3: should be greater than or equal to 0" in err
        and "option temperature=0: should be greater than 0" in err
    )

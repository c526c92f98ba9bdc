"""The method boundary: a method is its own code and one declaration. A toy method declared only here (a weightless
inpainter with one bounded option, one guide, one extra picture and one exportable network) reaches every front
end: `pluralfill info`, `--option`, `--guide`, the runner's extra file, `/api/methods` and `pluralfill export`.
And the front ends name no method family."""

from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli as _cli
from conftest import square_hole
from PIL import Image

from pluralfill.methods.base import Inpainter, Network
from pluralfill.methods.options import Guide, Options, option

SRC = Path(__file__).resolve().parents[1] / "src" / "pluralfill"


class ToyOptions(Options):
    strength: float = option(0.5, "how much of the guide shows in the fill", ge=0, le=1, step=0.1)
    glow: bool = option(False, "also return a picture of the fill's glow")


class ToyInpainter(Inpainter):
    """Fills the hole with the guide's grey (or mid grey) times `strength`; its one network doubles an image."""

    name, Options, deterministic = "toy", ToyOptions, True
    guides = (Guide("tint", "grey", "the grey the fill takes"),)
    pictures = ("glow",)

    def __init__(self):
        self.net = torch.nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.net.weight.copy_(2 * torch.eye(3)[..., None, None])

    def _fill(self, image, hole, seeds, strength: float, glow: bool, tint=None):
        grey = np.full(hole.shape, 128, np.uint8) if tint is None else tint
        out = image.copy()
        out[hole] = (grey[hole, None] * strength).astype(np.uint8)
        extras = {"glow": Image.fromarray(out[..., 0])} if glow else {}
        return [out], extras

    def export_networks(self, batch: int = 2) -> dict[str, Network]:
        return {"doubler": Network(self.net, self.net, {"x": torch.rand(batch, 3, 8, 8)}, "y")}


@pytest.fixture
def toy(monkeypatch):
    from pluralfill import registry

    spec = registry.MethodSpec(name="toy", summary="a toy for the method contract", inpainter=ToyInpainter)
    monkeypatch.setitem(registry.methods(), "toy", spec)
    return spec


@pytest.fixture
def toy_photo(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.2).astype(np.uint8) * 255).save(tmp_path / "p_mask.png")
    Image.fromarray(np.full(photo.shape[:2], 200, np.uint8)).save(tmp_path / "tint.png")
    return tmp_path


def test_a_toy_method_reaches_info_options_guides_pictures_and_export(toy, toy_photo, capsys):
    d = toy_photo
    code, out, err = _cli(["info", "toy", "--json"], capsys)
    assert code == 0, err
    described = json.loads(out)
    strength = next(o for o in described["options"] if o["name"] == "strength")
    assert (strength["min"], strength["max"], strength["step"], strength["default"]) == (0, 1, 0.1, 0.5)
    assert described["guides"] == [{"name": "tint", "kind": "grey", "help": "the grey the fill takes"}]
    code, out, _ = _cli(["info"], capsys)
    assert code == 0 and "toy" in out

    # a bound broken: one line naming the option, the value and the rule
    code, _, err = _cli(["inpaint", d / "p.png", "--method", "toy", "--option", "strength=2", "-o", d / "bad"], capsys)
    assert code == 2 and err.strip() == "error: option strength=2: should be less than or equal to 1"
    assert not (d / "bad").exists()

    # the guide from a file, the extra picture written by the runner
    code, _, err = _cli(
        [
            "inpaint",
            d / "p.png",
            "--method",
            "toy",
            "--guide",
            f"tint={d / 'tint.png'}",
            "--option",
            "strength=0.5",
            "--option",
            "glow=true",
            "-o",
            d / "out",
        ],
        capsys,
    )
    assert code == 0, err
    filled = np.asarray(Image.open(d / "out" / "p_sample0.png"))
    assert (filled[square_hole(frac=0.2)] == 100).all()  # 200 x 0.5
    assert np.array_equal(np.asarray(Image.open(d / "out" / "p_glow.png")), filled[..., 0])
    code, _, err = _cli(
        ["inpaint", d / "p.png", "--method", "toy", "--guide", f"shade={d / 'tint.png'}", "-o", d / "o2"], capsys
    )
    assert code == 2 and "toy takes no shade guide; its guides: tint" in err

    # its network, exported and checked against onnxruntime
    pytest.importorskip("onnxruntime")
    code, out, err = _cli(["export", "toy", "--onnx", d / "onnx"], capsys)
    assert code == 0, err
    manifest = json.loads((d / "onnx" / "manifest.json").read_text())
    assert list(manifest["networks"]) == ["doubler"] and manifest["networks"]["doubler"]["inputs"] == {"x": [3, 8, 8]}


def test_a_toy_method_reaches_the_web_api(toy, photo):
    from fastapi.testclient import TestClient

    from pluralfill.app.server import create_app

    client = TestClient(create_app(), base_url="http://127.0.0.1")
    described = {m["name"]: m for m in client.get("/api/methods").json()}["toy"]
    strength = next(o for o in described["options"] if o["name"] == "strength")
    assert (strength["type"], strength["min"], strength["max"], strength["step"]) == ("float", 0, 1, 0.1)
    assert described["guides"][0]["name"] == "tint"

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    hole = square_hole(frac=0.2)
    files = [
        ("image", ("i.png", png(photo), "image/png")),
        ("mask", ("m.png", png(hole.astype(np.uint8) * 255), "image/png")),
        ("guides", ("tint.png", png(np.full(hole.shape, 60, np.uint8)), "image/png")),
    ]
    r = client.post(
        "/api/inpaint", files=files, data={"method": "toy", "options": json.dumps({"strength": 1, "glow": "yes"})}
    )
    events = [json.loads(line) for line in r.text.splitlines()]
    assert events[-1]["type"] == "done" and events[-1]["guides"] == ["tint"], events[-1]
    sample = np.asarray(Image.open(io.BytesIO(__import__("base64").b64decode(events[1]["png"]))))
    assert (sample[hole] == 60).all()
    # every bad field at once: in the message and, by field, in a header the page reads
    r = client.post(
        "/api/inpaint",
        files=files[:2],
        data={"method": "toy", "options": json.dumps({"strength": -1, "glow": "maybe"})},
    )
    assert r.status_code == 400
    assert set(json.loads(r.headers["X-Bad-Fields"])) == {"strength", "glow"}
    assert "option strength=-1" in r.json()["detail"] and 'option glow="maybe"' in r.json()["detail"]


FAMILIES = ("put", "maskgit", "dsi", "mhtma")
FRONT_ENDS = [
    "runner.py",
    "export.py",
    "bench/__init__.py",
    *(f"cli/{p.name}" for p in (SRC / "cli").glob("*.py")),
    *(f"app/{p.name}" for p in (SRC / "app").glob("*.py")),
]


def _words(identifier: str) -> list[str]:
    """snake_case and CamelCase words, lowered: PUTInpainter -> put, inpainter; bench_dsi -> bench, dsi."""
    return [w.lower() for part in identifier.split("_") for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", part)]


@pytest.mark.parametrize("path", FRONT_ENDS)
def test_the_front_ends_name_no_method_family(path):
    """No identifier, import or whole string literal names a family: the front ends read declarations. Prose
    (help text, docstrings) may mention a paper."""
    found, previous = [], None
    with open(SRC / path, "rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type == tokenize.NAME and not (previous == "." and tok.string == "put"):  # queue.put is a queue's
                lowered = tok.string.lower()
                if {"put", "dsi"} & set(_words(tok.string)) or "maskgit" in lowered or "mhtma" in lowered:
                    found.append(tok.string)
            elif tok.type == tokenize.STRING:
                text = tok.string.strip("rbfRBF").strip("\"'")
                if text.lower() in FAMILIES or re.fullmatch(
                    rf"pluralfill\.(methods|models|train|bench)\.({'|'.join(FAMILIES)})\w*", text
                ):
                    found.append(tok.string)
            previous = tok.string
    assert not found, f"{path} names {found}"

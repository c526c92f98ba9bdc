"""`pluralfill models add` on the official tiny checkpoints installs models that run as the authors' code does:
the head count and the resolution come from where the files record them, from --num-heads / --resolution, or
are said as assumed."""

import json
import shutil

import pytest
import torch
import yaml
from conftest import SHARED
from conftest import run_cli as _cli
from safetensors.torch import load_file

import pluralfill
from pluralfill.hub import installed_models

PUT_TINY = SHARED / "fixtures" / "put_official_tiny"
DSI_TINY = SHARED / "fixtures" / "dsi_official_tiny"


def _put_logits(name):
    """The installed model's transformer on the fixture's inputs, as its inpainter holds it."""
    model = pluralfill.load_inpainter(name).model
    inputs = load_file(PUT_TINY / "inputs.safetensors")
    x, known = inputs["image"] / 127.5 - 1, inputs["mask"].float()
    with torch.no_grad():
        seq = model.pvqvae.encode(x, known).permute(0, 2, 3, 1).reshape(2, 64, -1)
        return model.transformer(seq)


def test_put_heads_from_the_flag_or_said_as_assumed(capsys):
    official = load_file(PUT_TINY / "outputs.safetensors")["transformer.logits"]
    code, out, err = _cli(
        ["models", "add", str(PUT_TINY / "transformer_official_format.pth"), "--name", "put-guess"], capsys
    )
    assert code == 0, err
    assert "assumed num_heads = 1 " in out and "--num-heads" in out  # width 64: the official configs' 64-wide heads
    assert (_put_logits("put-guess") - official).abs().max() > 1e-4  # the wrong count shows in the logits
    code, out, err = _cli(
        ["models", "add", str(PUT_TINY / "transformer_official_format.pth"), "--name", "put-four", "--num-heads", "4"],
        capsys,
    )
    assert code == 0 and "assumed" not in out, err
    torch.testing.assert_close(_put_logits("put-four"), official, atol=1e-5, rtol=0)


def test_put_heads_from_the_official_run_config(tmp_path, capsys):
    """The official layout, <run>/checkpoint/last.pth beside <run>/configs/config.yaml: its n_head is read."""
    run = tmp_path / "tiny_run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "configs").mkdir()
    shutil.copy(PUT_TINY / "transformer_official_format.pth", run / "checkpoint" / "last.pth")
    official_configs = json.loads((PUT_TINY / "config.json").read_text())["official_configs"]
    (run / "configs" / "config.yaml").write_text(
        yaml.safe_dump({"model": {"params": {"transformer_config": official_configs["transformer"]}}})
    )
    code, out, err = _cli(["models", "add", str(run / "checkpoint" / "last.pth")], capsys)
    assert code == 0 and "assumed" not in out, err
    name = "put-tiny_run"
    assert name in installed_models()
    torch.testing.assert_close(
        _put_logits(name), load_file(PUT_TINY / "outputs.safetensors")["transformer.logits"], atol=1e-5, rtol=0
    )


def test_dsi_resolution_from_the_flag_or_said_as_assumed(tmp_path, capsys):
    code, out, err = _cli(["models", "add", str(DSI_TINY), "--name", "dsi-guess"], capsys)
    assert code == 0 and "assumed resolution = 256" in out, err
    assert pluralfill.load_inpainter("dsi-guess").resolution == 256
    code, out, err = _cli(["models", "add", str(DSI_TINY), "--name", "dsi-tiny64", "--resolution", "64"], capsys)
    assert code == 0 and "assumed" not in out, err
    dsi = pluralfill.load_inpainter("dsi-tiny64")
    assert dsi.resolution == 64 and dsi.model.config.structure.side == 8


def test_a_flag_for_another_format_is_one_line(capsys):
    """--resolution is DSI's: a PUT file given with it is tried as DSI only, and refused in one line."""
    code, _, err = _cli(
        ["models", "add", str(PUT_TINY / "transformer_official_format.pth"), "--resolution", "64"], capsys
    )
    assert code == 2 and "dsi-official" in err and "put-official" not in err and len(err.strip().splitlines()) == 1


def _official_run(root, fixture, transformer_config: dict):
    """<run>/checkpoint/last.pth beside <run>/configs/config.yaml, as the authors' training writes them."""
    (root / "checkpoint").mkdir(parents=True)
    (root / "configs").mkdir()
    shutil.copy(fixture / "transformer_official_format.pth", root / "checkpoint" / "last.pth")
    (root / "configs" / "config.yaml").write_text(
        yaml.safe_dump({"model": {"params": {"transformer_config": transformer_config}}})
    )
    return root / "checkpoint" / "last.pth"


def _heads(name) -> int:
    return json.loads((installed_models()[name] / "config.json").read_text())["transformer"]["num_heads"]


def test_put_heads_flag_wins_over_the_run_config_and_tpami_reads_num_heads(tmp_path, capsys):
    """--num-heads over the run's config; CVPR configs say `n_head`, TPAMI's `num_heads`."""
    cvpr = json.loads((PUT_TINY / "config.json").read_text())["official_configs"]["transformer"]
    ckpt = _official_run(tmp_path / "cvpr_run", PUT_TINY, cvpr)
    assert _cli(["models", "add", str(ckpt), "--name", "from-config"], capsys)[0] == 0 and _heads("from-config") == 4
    code, out, err = _cli(["models", "add", str(ckpt), "--name", "from-flag", "--num-heads", "2"], capsys)
    assert code == 0 and "assumed" not in out and _heads("from-flag") == 2, err
    tpami_tiny = SHARED / "fixtures" / "put_tpami_official_tiny"
    tpami = json.loads((tpami_tiny / "config.json").read_text())["official_configs"]["transformer"]
    assert tpami["params"]["num_heads"] == 4 and "n_head" not in json.dumps(tpami)
    ckpt = _official_run(tmp_path / "tpami_run", tpami_tiny, tpami)
    code, out, err = _cli(["models", "add", str(ckpt), "--name", "tpami-from-config"], capsys)
    assert code == 0 and "assumed" not in out and _heads("tpami-from-config") == 4, err  # width 64 alone would say 1


@pytest.mark.parametrize(
    "name, ok",
    [
        ("a", True),
        ("put-ffhq.v2_b", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("Put", False),
        ("-put", False),
        (".put", False),
        ("../put", False),
        ("put ffhq", False),
        ("telea", False),
        ("put-scenes-small", False),
        ("", False),
    ],
)
def test_models_add_names(name, ok, capsys):
    code, out, err = _cli(["models", "add", str(DSI_TINY), "--name", name, "--resolution", "64"], capsys)
    assert (code == 0) == ok, err
    assert (name in installed_models()) == ok
    if not ok:
        assert len(err.strip().splitlines()) == 1 and ("model name" in err or "already a method" in err), err

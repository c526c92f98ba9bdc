"""What a new user trips over: `info` on every kind of model folder, any integer as a seed, a hostile pickle
refused in one line."""

import json
import os
import pickle

import numpy as np
import pytest
from conftest import SHARED
from conftest import run_cli as _cli
from PIL import Image

FIXTURES = SHARED / "fixtures"


def _folders(root):
    """One model folder of every kind the project writes: converted from each family, each first stage, each
    method's own, and the bundled model by name."""
    from pluralfill.models.dsi import CONFIGS as DSI_CONFIGS
    from pluralfill.models.dsi import DSI, HVQVAEModel
    from pluralfill.models.maskgit import MaskGIT, maskgit_tiny_config
    from pluralfill.models.mhtma import CONFIGS as MHTMA_CONFIGS
    from pluralfill.models.mhtma import MHTMA
    from pluralfill.models.put import PUT, put_tiny_config
    from pluralfill.models.pvqvae import PVQVAE
    from pluralfill.models.vqgan import VQGAN

    put = PUT(put_tiny_config())
    dsi = DSI(DSI_CONFIGS["dsi-tiny"])
    mg = MaskGIT(maskgit_tiny_config())
    saved = {
        "put": put,
        "pvqvae": put.pvqvae,
        "dsi": dsi,
        "dsi-hvqvae": HVQVAEModel(dsi.config.hvqvae),
        "maskgit": mg,
        "vqgan": mg.tokenizer,
        "mhtma": MHTMA(MHTMA_CONFIGS["mhtma-tiny"]),
    }
    assert isinstance(put.pvqvae, PVQVAE) and isinstance(mg.tokenizer, VQGAN)
    for name, model in saved.items():
        model.save_pretrained(root / name)  # what the training stages write
    return saved


@pytest.mark.parametrize(
    "converter,files,flags",
    [
        ("put-official", ["put_official_tiny/transformer_official_format.pth"], ["--num-heads", "4"]),
        ("put-official", ["put_tpami_official_tiny/transformer_official_format.pth"], ["--num-heads", "4"]),
        (
            "maskgit-official",
            [
                "maskgit_official_tiny/tokenizer_imagenet128_checkpoint",
                "maskgit_official_tiny/maskgit_imagenet128_checkpoint",
            ],
            [],
        ),
        ("dsi-official", ["dsi_official_tiny"], ["--resolution", "64"]),
    ],
)
def test_info_on_converted_folders(tmp_path, capsys, converter, files, flags):
    code, _, err = _cli(["convert", converter, *[FIXTURES / f for f in files], tmp_path / "m", *flags], capsys)
    assert code == 0, err
    for args in (["info", tmp_path / "m"], ["info", tmp_path / "m", "--json"]):
        code, out, err = _cli(args, capsys)
        assert code == 0 and "Traceback" not in err, err
    described = json.loads(out)
    assert described["method"] in ("put", "maskgit", "dsi") and sum(described["parameters"].values()) > 0


def test_info_on_every_kind_of_folder(tmp_path, capsys):
    saved = _folders(tmp_path)
    for name in [*saved, "put-scenes-small"]:
        target = tmp_path / name if name in saved else name
        code, out, err = _cli(["info", target, "--json"], capsys)
        assert code == 0, (name, err)
        d = json.loads(out)
        assert sum(d["parameters"].values()) > 0, name
        assert d.get("first_stage", False) == (name in ("pvqvae", "dsi-hvqvae", "vqgan")), name
        code, out, err = _cli(["info", target], capsys)
        assert code == 0 and "total" in out, (name, err)


def test_any_integer_is_a_seed(tmp_path, capsys, photo):
    from pluralfill.methods.base import sample_seed

    assert sample_seed(-1, 0) != sample_seed(1, 0) and sample_seed(-1, 0) == sample_seed(-1, 0)
    assert sample_seed(5, 2) == int(np.random.SeedSequence([5, 2]).generate_state(1)[0])  # non-negative seeds unchanged
    Image.fromarray(photo).resize((64, 64)).save(tmp_path / "a.png")
    hole = np.zeros((64, 64), np.uint8)
    hole[20:40, 20:40] = 255
    Image.fromarray(hole).save(tmp_path / "a_mask.png")
    for method in ("telea", "patchmatch", "put-scenes-small"):
        code, _, err = _cli(
            ["inpaint", tmp_path / "a.png", "--method", method, "--seed", "-1", "-o", tmp_path / method], capsys
        )
        assert code == 0, (method, err)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload", [_RunsCode(), {"state_dict": {"w": __import__("datetime").date(2020, 1, 1)}}])
def test_hostile_pickle_is_refused_in_one_line(tmp_path, capsys, payload):
    bad = tmp_path / "last.pth"
    bad.write_bytes(pickle.dumps(payload))
    for args in (["models", "add", bad, "--name", "x"], ["convert", "put-official", bad, tmp_path / "out"]):
        code, out, err = _cli(args, capsys)
        assert code == 2 and err.strip().count("\n") == 0, err
        assert str(bad) in err and "refused" in err and "expected" in err and "weights_only" not in err, err
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args,says",
    [
        (["inpaint", "x.png", "-o", "o", "-n", "0"], "Invalid value for '-n' / '--num-samples'"),
        (["inpaint", "--nope"], "No such option: --nope"),
        (["train", "{config}"], "is not a training config: expected a YAML mapping"),
        (["serve", "--port", "99999999"], "Invalid value for '--port'"),
        (["export", "put-scenes-small", "--onnx", "{config}"], "--onnx must be a folder"),
        (["bench", "--method", "precision", "--precision", "fp16"], "precision must be one of fp32, bf16, int8, auto"),
        (["inpaint", "{config}", "--mask", "{config}", "-o", "out"], "cannot read image"),
    ],
)
def test_wrong_input_is_one_line_and_exit_2(tmp_path, capsys, args, says):
    config = tmp_path / "not-a-config.yaml"
    config.write_text("- a list\n- not a mapping\n")
    before = config.read_bytes()
    code, out, err = _cli([a.format(config=config) for a in args], capsys)
    assert code == 2 and says in err and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert config.read_bytes() == before and not (tmp_path / "out").exists()


def test_one_vqgan_config_reads_both_tokenizers_and_old_folders():
    from pluralfill.models.maskgit import CONFIGS
    from pluralfill.models.vqgan import VQGANConfig

    official = CONFIGS["maskgit-imagenet-256"].tokenizer
    assert isinstance(official, VQGANConfig) and official.kind == "official" and official.attn_resolutions == ()
    assert official.tokens_per_side == 16 and CONFIGS["maskgit-tiny"].tokenizer.kind == "ours"
    # a folder converted before the two were one names the official fields as the official code does
    old = {
        "kind": "official",
        "resolution": 128,
        "filters": 32,
        "channel_multipliers": [1, 1, 1, 1, 2],
        "num_res_blocks": 1,
        "embedding_dim": 16,
        "num_codes": 64,
    }
    assert VQGANConfig.model_validate(old) == CONFIGS["maskgit-official-tiny"].tokenizer

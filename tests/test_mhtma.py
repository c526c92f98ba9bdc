"""MHTMA (Zhou et al. 2023): the masked temperature attention, the networks, the inpainter, sketches, PiDiNet,
and training both tiny variants."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SCENES, square_hole
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.losses.adversarial import gradient_penalty
from pluralfill.masks.sketch import extract_sketch
from pluralfill.models.mhtma import CONFIGS, MHTMA
from pluralfill.nn.discriminators import GlobalLocalDiscriminator, hole_boxes
from pluralfill.nn.patch_attention import PatchAttention, TemperatureNet, hole_keys
from pluralfill.nn.pidinet import PiDiNet, PixelDifferenceConv2d, load_pidinet
from pluralfill.registry import load_inpainter

CONFIG_DIR = Path(__file__).resolve().parents[1] / "src" / "pluralfill" / "configs"


def _hole(b=2, size=48, box=(10, 30, 12, 36)):
    hole = torch.zeros(b, 1, size, size)
    hole[:, :, box[0] : box[1], box[2] : box[3]] = 1
    return hole


@pytest.mark.parametrize("kind", ["mhtma", "vanilla", "atma", "contextual"])
def test_attention_rebuilds_from_known_patches_only(kind):
    """Known region constant, hole random: every output patch is a mix of known patches, so the output is
    that constant (through the embedding for mhtma) whatever the hole holds."""
    torch.manual_seed(0)
    att = PatchAttention(8, kind, num_heads=2)
    hole = _hole()
    small = F.adaptive_max_pool2d(hole, (12, 12))
    x = torch.full((2, 8, 12, 12), 0.5) * (1 - small) + torch.randn(2, 8, 12, 12) * 5 * small
    y, tau = att(x, hole)
    if kind in ("mhtma", "vanilla"):  # values are the embedded features of the constant
        expected = att.embed(torch.full((1, 8, 1, 1), 0.5)).reshape(1, 8, 1, 1)
    else:
        expected = torch.full((1, 8, 1, 1), 0.5)
        expected = att.merge(expected.repeat(1, 2, 1, 1)) if kind == "atma" else expected
    torch.testing.assert_close(y, expected.expand_as(y), atol=1e-5, rtol=1e-5)
    assert tau.shape == (2, 1 if kind in ("contextual", "vanilla") else 2)
    if kind == "vanilla":  # one constant temperature, nothing learned
        assert torch.equal(tau, torch.full((2, 1), 0.1)) and not hasattr(att, "temperature")


def test_vanilla_is_one_mhtma_head_at_a_constant_temperature():
    """Table I's "vanilla masked self-attention" differs from MHTMA only by the learned temperatures and heads."""
    torch.manual_seed(0)
    vanilla, one_head = PatchAttention(8, "vanilla"), PatchAttention(8, "mhtma", num_heads=1)
    one_head.embed.load_state_dict(vanilla.embed.state_dict())
    one_head.temperatures = lambda x: x.new_full((x.shape[0], 1), 0.1)
    x, hole = torch.randn(2, 8, 12, 12), _hole()
    torch.testing.assert_close(vanilla(x, hole)[0], one_head(x, hole)[0])


def test_no_attention_is_the_convolution_branch_alone():
    """Table I's floor: `attention=none` builds no attention layer, and its fill does not change when the
    (absent) attention branch is switched off; the full model's does."""
    torch.manual_seed(0)
    x, known = torch.rand(1, 3, 64, 64) * 2 - 1, 1 - _hole(1, 64, (16, 48, 16, 48))
    plain = MHTMA(CONFIGS["mhtma-tiny"].model_copy(update={"attention": "none"})).eval()
    assert not hasattr(plain.refine, "attention") and plain.parameter_counts()["attention"] == 0
    _, fine, tau = plain(x, known)
    assert tau.shape == (1, 0)
    torch.testing.assert_close(plain(x, known, attention_branch="off")[1], fine)
    full = MHTMA(CONFIGS["mhtma-tiny"]).eval()
    assert not torch.allclose(full(x, known, attention_branch="off")[1], full(x, known)[1])


def test_hole_keys_mark_every_patch_touching_the_hole():
    hole = torch.zeros(1, 1, 8, 8)
    hole[0, 0, 3, 3] = 1
    m = hole_keys(hole, (8, 8), 3).reshape(6, 6)
    expected = torch.zeros(6, 6)
    expected[1:4, 1:4] = 1  # key patches with top-left corner within 2 px above/left of (3, 3)
    assert torch.equal(m, expected)


def test_temperatures_softplus_positive_atma_can_go_negative():
    x = torch.randn(4, 8, 16, 16) * 50
    soft, leaky = TemperatureNet(8, 3, activation="softplus"), TemperatureNet(8, 3, activation="leaky_relu")
    for net in (soft, leaky):
        torch.nn.init.normal_(net.fc.weight, std=1.0)
        torch.nn.init.constant_(net.fc.bias, -20.0)
    assert (soft(x) > 0).all()
    assert (leaky(x) < 0).any()  # the instability Zhou et al. 2023 (III-D) removes
    start = TemperatureNet(8, 2, init_temperature=0.3)
    torch.nn.init.zeros_(start.fc.weight)
    torch.testing.assert_close(start(x), torch.tensor([[0.15, 0.6]]).expand(4, 2))  # spread around 0.3


def test_lower_temperature_is_closer_to_the_best_match():
    """mode='low' gives every head the lowest temperature: the output moves towards hard nearest-patch copying."""
    torch.manual_seed(1)
    att = PatchAttention(8, "mhtma", num_heads=2)
    x, hole = torch.randn(1, 8, 12, 12), _hole(1)
    with torch.no_grad():
        att.temperature.fc.bias.copy_(torch.tensor([-3.0, 2.0]))  # heads at ~0.06 and ~2.1
        low, tau = att(x, hole, "low")
        high, _ = att(x, hole, "high")
        learned, _ = att(x, hole)
    assert tau[0, 0] < tau[0, 1]
    assert not torch.allclose(low, high)
    # head 0 (the cold one) is the same under "learned" and "low"; head 1 (warm) the same under "learned" and "high"
    torch.testing.assert_close(learned[:, :4], low[:, :4])
    torch.testing.assert_close(learned[:, 4:], high[:, 4:])


def test_generator_shapes_and_sketch_channel():
    torch.manual_seed(0)
    model = _lively(MHTMA(CONFIGS["mhtma-tiny-sketch"])).eval()
    x, known = torch.rand(2, 3, 64, 64) * 2 - 1, 1 - _hole(2, 64, (16, 48, 16, 48))
    sketch = torch.zeros(2, 1, 64, 64)
    sketch[:, :, 32, 10:54] = 1
    with torch.no_grad():
        coarse, fine, tau = model(x, known)
        _, fine_sketch, _ = model(x, known, sketch)
    assert coarse.shape == fine.shape == x.shape and tau.shape == (2, 2)
    assert coarse.abs().max() <= 1 and (tau > 0).all()
    assert (fine - fine_sketch).abs().max() > 1e-2  # the lines reach the output
    counts = model.parameter_counts()
    assert set(counts) == {"coarse", "refine", "attention"} and all(v > 0 for v in counts.values())


def test_global_local_discriminator_and_hole_windows():
    hole = torch.zeros(2, 1, 64, 64)
    hole[0, :, 0:10, 0:10] = 1  # corner: the window is kept inside the image
    hole[1, :, 30:40, 20:30] = 1
    corners = hole_boxes(hole, 32)
    assert corners == [(0, 0), (19, 9)]
    d = GlobalLocalDiscriminator(64, 8)
    assert d(torch.randn(2, 3, 64, 64), corners).shape == (2, 1)
    spectral = [n for n, _ in d.named_parameters() if n.endswith("weight_orig")]
    assert spectral and not [
        n for n, _ in GlobalLocalDiscriminator(64, 8, spectral=False).named_parameters() if "orig" in n
    ]


def test_gradient_penalty_of_a_linear_critic():
    w = torch.randn(1, 3, 4, 4)

    def critic(x):
        return (x * w).flatten(1).sum(1, keepdim=True)

    gp = gradient_penalty(critic, torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4))
    torch.testing.assert_close(gp, (w.norm() - 1) ** 2)


# ------------------------------------------------------------------------------------------------ inpainter


def _lively(model: MHTMA) -> MHTMA:
    """Default initialisation through ~30 gated layers gives a near-constant output, identical after rounding
    to uint8; larger weights let every input reach the pixels, as trained weights do."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.normal_(m.weight, std=2.0 / (m.weight[0].numel() ** 0.5))
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("mhtma")
    torch.manual_seed(0)
    _lively(MHTMA(CONFIGS["mhtma-tiny"])).save_pretrained(root / "plain")
    _lively(MHTMA(CONFIGS["mhtma-tiny-sketch"])).save_pretrained(root / "sketch")
    _lively(MHTMA(CONFIGS["mhtma-tiny"].model_copy(update={"noise": True}))).save_pretrained(root / "noise")
    return root


def test_inpainter_is_deterministic_unless_trained_with_noise(checkpoints, photo):
    hole = square_hole(frac=0.3)
    plain = load_inpainter(checkpoints / "plain")
    assert plain.deterministic and len(plain.inpaint(photo, hole, 4, seed=0)) == 1
    noisy = load_inpainter(checkpoints / "noise")
    a = noisy.inpaint(photo, hole, 3, seed=0)
    b = noisy.inpaint(photo, hole, 1, seed=0, first_sample=2)
    assert len(a) == 3 and not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))
    # sample i on its own: the same noise; convolutions of batch 3 and batch 1 may round differently
    assert np.abs(np.asarray(a[2]).astype(int) - np.asarray(b[0]).astype(int)).max() <= 2
    for s in a:  # known pixels exactly as given
        assert np.array_equal(np.asarray(s)[~hole], photo[~hole])


def test_attention_branch_and_sketch_options(checkpoints, photo):
    hole = square_hole(frac=0.3)
    plain = load_inpainter(checkpoints / "plain")
    outs = {b: np.asarray(plain.inpaint(photo, hole, seed=0, attention_branch=b)[0]) for b in ("on", "off")}
    assert not np.array_equal(outs["on"], outs["off"])
    with pytest.raises(
        PluralfillError, match="option attention_branch=\"sideways\": should be 'on', 'off', 'high' or 'low'"
    ):
        plain.inpaint(photo, hole, attention_branch="sideways")
    with pytest.raises(PluralfillError, match="mhtma-tiny takes no sketch guide; its guides: none"):
        plain.inpaint(photo, hole, sketch=np.zeros_like(hole))
    guided = load_inpainter(checkpoints / "sketch")
    lines = np.zeros_like(hole)
    lines[128, :] = True
    with_lines = np.asarray(guided.inpaint(photo, hole, seed=0, sketch=lines)[0])
    without = np.asarray(guided.inpaint(photo, hole, seed=0)[0])
    assert not np.array_equal(with_lines, without)
    with pytest.raises(PluralfillError, match="sketch is 10x10"):
        guided.inpaint(photo, hole, sketch=np.zeros((10, 10), bool))


# ------------------------------------------------------------------------------------------------ sketches


def test_sketch_steps_on_a_drawn_square():
    image = np.zeros((256, 256, 3), np.uint8)
    image[64:192, 64:192] = 255  # a big square: a long outline
    image[20:23, 220:223] = 255  # a dot: edges under min_area, removed by the area opening
    s = extract_sketch(image, threshold=0.5, min_area=100)
    assert s.binary[15:28, 215:228].any() and not s.opened[15:28, 215:228].any()
    assert s.lines[60:68, 64:192].any() and not s.lines[100:150, 100:150].any()  # the outline, not the inside
    assert s.lines.sum() < s.opened.sum()  # thinned
    assert not (s.lines[:-1, :-1] & s.lines[1:, :-1] & s.lines[:-1, 1:] & s.lines[1:, 1:]).any()  # 1 px wide
    assert [a.dtype for a in s.steps()] == [np.uint8] * 4


def _direct_difference(kind, x, w):
    """Pixel difference convolutions written from their definition, on 3x3 (cd, ad) and 5x5 (rd) neighbourhoods."""
    if kind == "cd":
        p = F.unfold(x, 3, padding=1).reshape(x.shape[0], x.shape[1], 9, -1)
        diff = p - p[:, :, 4:5]
        return torch.einsum("oik,bikl->bol", w.reshape(w.shape[0], w.shape[1], 9), diff).reshape(
            x.shape[0], -1, *x.shape[2:]
        )
    if kind == "rd":
        p = F.unfold(x, 5, padding=2).reshape(x.shape[0], x.shape[1], 25, -1)
        outer, inner = [0, 2, 4, 10, 14, 20, 22, 24], [6, 7, 8, 11, 13, 16, 17, 18]
        diff = p[:, :, outer] - p[:, :, inner]
        return torch.einsum("oik,bikl->bol", w.reshape(w.shape[0], w.shape[1], 9)[:, :, 1:], diff).reshape(
            x.shape[0], -1, *x.shape[2:]
        )
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["cd", "rd"])
def test_pixel_difference_convolutions_match_their_definition(kind):
    torch.manual_seed(0)
    conv = PixelDifferenceConv2d(kind, 3, 5)
    x = torch.randn(2, 3, 9, 11)
    torch.testing.assert_close(conv(x), _direct_difference(kind, x, conv.weight), atol=1e-5, rtol=1e-4)
    # a flat image has no differences
    assert conv(torch.ones(1, 3, 9, 9))[..., 2:-2, 2:-2].abs().max() < 1e-5


def test_pidinet_loads_an_official_style_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = PiDiNet()
    assert 700_000 < sum(p.numel() for p in net.parameters()) < 720_000  # PiDiNet: 710K parameters
    state = {f"module.{k}": v for k, v in net.state_dict().items()}  # as DataParallel saved it
    torch.save({"epoch": 14, "state_dict": state}, tmp_path / "table5_pidinet.pth")
    loaded = load_pidinet(tmp_path / "table5_pidinet.pth")
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net.eval()(x))
        assert loaded(x).shape == (1, 1, 40, 48)
    torch.save({"state_dict": {k: v for k, v in state.items() if "classifier" not in k}}, tmp_path / "bad.pth")
    with pytest.raises(PluralfillError, match="missing classifier"):
        load_pidinet(tmp_path / "bad.pth")
    with pytest.raises(PluralfillError, match="table5_pidinet.pth"):  # offline in tests: names the file and URL
        load_pidinet()


def test_cli_sketch(tmp_path, capsys):
    from pluralfill.cli import main

    src = SCENES / "lomiri-bridge_003.jpg"
    with pytest.raises(SystemExit) as e:
        main(["sketch", str(src), "-o", str(tmp_path / "lines.png")])
    assert e.value.code == 0
    lines = np.asarray(Image.open(tmp_path / "lines.png"))
    strip = Image.open(tmp_path / "lines_steps.png")
    assert lines.shape == (256, 256) and 0 < (lines > 127).mean() < 0.1 and strip.width > 4 * 256
    for args, message in [([], "output exists"), (["--threshold", "1.5", "--overwrite"], "--threshold must be")]:
        with pytest.raises(SystemExit) as e:
            main(["sketch", str(src), "-o", str(tmp_path / "lines.png"), *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------ training


def _metric(run, key):
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [float(r[key]) for r in rows if r.get(key)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, extra",
    [("mhtma-tiny.yaml", []), ("mhtma-tiny-sketch.yaml", ["loss.gan=wgan-gp", "model.attention=atma"])],
)
def test_train_and_inpaint_from_the_cli(images, tmp_path, photo, capsys, variant, extra):
    from pluralfill.cli import main
    from pluralfill.registry import load_config, train

    cfg = load_config(
        CONFIG_DIR / variant,
        [
            f"data.train={images}",
            f"run_dir={tmp_path / 'run'}",
            "data.num_workers=0",
            "batch_size=3",
            "steps=6",
            "log_every=1",
            "val_every=3",
            "sample_every=3",
            "checkpoint_every=3",
            "val_batches=1",
            "optim.warmup_steps=1",
            *extra,
        ],
    )
    run = train(cfg)
    for name in ("temperatures.png", "samples/step_000006.png", "best/config.json", "last/model.safetensors"):
        assert (run / name).exists(), name
    temps = _metric(run, "train/temperature_0") + _metric(run, "train/temperature_1")
    assert len(temps) == 12 and len(set(temps)) > 2  # logged every step, and they move
    assert all(t > 0 for t in _metric(run, "val/temperature_0"))
    assert _metric(run, "train/disc")  # the discriminator trained
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.3).astype(np.uint8) * 255).save(tmp_path / "h.png")
    args = [
        "inpaint",
        str(tmp_path / "p.png"),
        "--mask",
        str(tmp_path / "h.png"),
        "--checkpoint",
        str(run),
        "-n",
        "4",
        "--trace",
        "-o",
        str(tmp_path / "out"),
    ]
    if "sketch" in variant:
        lines = np.zeros((256, 256), np.uint8)
        lines[128, 40:220] = 255
        Image.fromarray(lines).save(tmp_path / "lines.png")
        args += ["--method", "mhtma-sketch", "--sketch", str(tmp_path / "lines.png"), "--attention-branch", "low"]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 0, err
    assert "deterministic" in err  # -n 4 gives one result and says so
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p_sample0.png", "p_trace.png"]
    if "sketch" not in variant:
        with pytest.raises(SystemExit) as e:
            main([*args[:-2], "-o", str(tmp_path / "out2"), "--method", "mhtma-sketch"])
        assert e.value.code == 2 and "holds a mhtma model" in capsys.readouterr().err

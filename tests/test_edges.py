"""Behaviour users rely on without seeing it, pinned at its edges through the paths they call: the precision
bounds and what `auto` picks, the window a fixed-resolution method works on and where each image's fill goes,
the ONNX export's axes and the `--backend onnx` cache, MaskGIT's official composite, torchrun's world, the
runner's options and resume, holes and text outputs in io, top_k=0, and the bin of a ratio on an edge."""

import json
import time

import numpy as np
import pytest
import torch
from conftest import SHARED, square_hole
from conftest import run_cli as _cli
from PIL import Image

import pluralfill
from pluralfill import precision as P
from pluralfill.errors import PluralfillError

FIXTURES = SHARED / "fixtures"


@pytest.fixture(scope="module")
def tiny_put(tmp_path_factory):
    """A random-weight PUT at 64 px, saved as a user's run would save it."""
    from pluralfill.models.put import PUT, put_tiny_config

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("edges") / "put-tiny"
    PUT(put_tiny_config()).save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------------ precision


@pytest.mark.parametrize("precision, psnr_db, tv", [("bf16", 35.0, 0.02), ("int8", 30.0, 0.05)])
def test_a_bound_holds_exactly_at_its_value_and_misses_just_past_it(precision, psnr_db, tv):
    at = P.Verdict(precision, psnr_db, 0.5, 1.0, 2.0, tv)  # greedy agreement is reported, never judged
    assert at.holds and "holds" in at.line()
    assert not P.Verdict(precision, np.nextafter(psnr_db, 0), 1.0, 1.0, 2.0, tv).holds
    assert not P.Verdict(precision, psnr_db, 1.0, 1.0, 2.0, np.nextafter(tv, 1)).holds
    assert P.Verdict(precision, psnr_db, None, 1.0, 2.0, None).holds  # a method without tokens: the image bound alone


def test_the_tv_distance_is_the_chance_coupled_draws_differ():
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = torch.tensor([[0.5, 0.4, 0.1], [0.0, 1.0, 0.0]])
    assert P.tv_distance(p, q) == pytest.approx((0.1 + 1.0) / 2)
    assert P.tv_distance(p, q, torch.tensor([True, False])) == pytest.approx(0.1)


def test_agreement_counts_exactly():
    """38 of 40 equal tokens is 95%, which int8's bound accepts (a float32 mean made it 0.9499999)."""
    reference = torch.zeros(1, 40, 5)
    reference[..., 0] = 1
    got = reference.clone()
    got[0, :2] = torch.tensor([0.0, 1, 0, 0, 0])
    assert P.agreement(got, reference) == 0.95


def test_agreement_is_judged_on_the_hidden_positions_only():
    reference = torch.zeros(1, 8, 4)
    reference[..., 0] = 1
    got = reference.clone()
    got[0, :4] = torch.tensor([0.0, 1, 0, 0])  # the known half disagrees: it is never sampled
    hidden = torch.tensor([[False] * 4 + [True] * 4])
    assert P.agreement(got, reference, hidden) == 1.0
    got[0, 4] = torch.tensor([0.0, 1, 0, 0])
    assert P.agreement(got, reference, hidden) == 0.75
    draw = torch.softmax(got, -1)
    verdict = P.judge(
        "int8",
        {"logits": got, "image": torch.zeros(1, 3, 4, 4), "draw": draw},
        {"logits": reference, "image": torch.zeros(1, 3, 4, 4), "hidden": hidden, "draw": torch.softmax(reference, -1)},
    )
    assert verdict.agreement == 0.75
    assert verdict.tv == pytest.approx(P.tv_distance(draw, torch.softmax(reference, -1), hidden))


def test_probes_hide_the_token_hole_of_the_input(tiny_put):
    """What agreement is judged on is where the sampler fills: the tokens under the hole."""
    put = pluralfill.load_inpainter(tiny_put)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    known = torch.ones(1, 1, 64, 64)
    known[..., 8:24, 40:56] = 0  # 2x2 tokens of 8 px
    hidden = put.probe(x, known)["hidden"].reshape(8, 8)
    want = torch.zeros(8, 8, dtype=torch.bool)
    want[1:3, 5:7] = True
    assert torch.equal(hidden, want)


def _verdicts(**speed):
    return [P.Verdict("fp32", float("inf"), 1.0, 1.0, 1.0, 0.0)] + [
        P.Verdict(p, 99.0, 1.0, 1.0 / s, s, 0.0) for p, s in speed.items()
    ]


def test_auto_picks_the_fastest_that_holds_and_beats_fp32():
    assert P.choose(_verdicts(bf16=2.0, int8=1.5)).precision == "bf16"
    assert P.choose(_verdicts(bf16=1.5, int8=2.0)).precision == "int8"
    assert P.choose(_verdicts(bf16=1.0, int8=1.0)).precision == "fp32"  # as fast as fp32 is not faster
    assert P.choose(_verdicts(bf16=1.01)).precision == "bf16"
    missing = _verdicts(bf16=1.5, int8=3.0)
    missing[2].tv = 0.5  # the fastest misses its bound: the next fastest that holds
    assert P.choose(missing).precision == "bf16"


def test_a_device_is_offered_what_it_runs_well(monkeypatch):
    engine = P.int8_engine
    monkeypatch.setattr(P, "native_bf16", lambda device: False)
    assert P.supported("cpu") == ("fp32", "int8")
    monkeypatch.setattr(P, "native_bf16", lambda device: True)
    assert P.supported("cpu") == ("fp32", "bf16", "int8")
    monkeypatch.setattr(P, "int8_engine", lambda: None)
    assert P.supported("cpu") == ("fp32", "bf16")
    with pytest.raises(PluralfillError, match="quantized CPU engines"):
        P.check("int8", "cpu")
    monkeypatch.setattr(P, "int8_engine", engine)
    monkeypatch.setattr(P, "native_bf16", lambda device: device.type == "cuda")
    assert P.supported("cuda") == ("fp32", "bf16")  # int8 kernels are CPU kernels
    assert P.supported("meta") == ("fp32",)
    with pytest.raises(PluralfillError, match="bf16 runs on cpu and cuda here, not on mps"):
        P.check("bf16", "mps")


# ------------------------------------------------------------------------------------------------ window and paste-back


def test_the_window_takes_half_the_hole_as_context_on_each_side():
    from pluralfill.geometry import Box, square_window

    hole = np.zeros((1000, 1200), bool)
    hole[400:500, 300:460] = True  # 100 x 160
    assert square_window(hole, 64) == Box(290, 610, 220, 540)  # 160 * 2 = 320, centred on the hole
    assert square_window(hole, 400) == Box(250, 650, 180, 580)  # at least the model's side
    hole[:] = False
    hole[0:10, 1190:1200] = True  # in a corner: shifted inside the image, never cut
    assert square_window(hole, 64) == Box(0, 64, 1136, 1200)
    assert square_window(np.ones((40, 90), bool), 64) == Box(0, 40, 0, 64 + 26)  # narrower where the image is


def test_fills_stay_in_their_window_and_each_image_gets_its_own(tiny_put, photos):
    """Without compositing, only the window around each hole changes; filled in one batch, each image's
    samples are those it gets alone, pasted into its own window."""
    put = pluralfill.load_inpainter(tiny_put)
    put.batch_size = 4  # rows of both images meet in one batch
    images = [np.ascontiguousarray(photos[0][:200, :160]), np.ascontiguousarray(photos[1][:120, :240])]
    holes = [np.zeros(im.shape[:2], bool) for im in images]
    holes[0][20:40, 100:130] = True  # window 60 x 60 -> 64: rows 0:64, cols 83:147
    holes[1][70:100, 10:50] = True  # window 80: rows 45:125 -> 40:120, cols 0:80
    windows = [(slice(0, 64), slice(83, 147)), (slice(40, 120), slice(0, 80))]
    opts = {"sampler": "parallel", "steps": 2}
    together = put.inpaint_many(images, holes, num_samples=2, seed=1, composite=False, **opts)
    for image, hole, window, many in zip(images, holes, windows, together):
        alone = put.inpaint(image, hole, num_samples=2, seed=1, composite=False, **opts)
        outside = np.ones(hole.shape, bool)
        outside[window] = False
        for a, b in zip(many, alone):
            a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
            assert np.abs(a - b).max() <= 1  # rounding of other batch shapes
            assert np.array_equal(a[outside], image[outside]) and np.abs(a[window] - image[window]).mean() > 1


# ------------------------------------------------------------------------------------------------ ONNX


@pytest.fixture(scope="module")
def exported(tiny_put, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from pluralfill.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx") / "put"
    export_onnx(pluralfill.load_inpainter(tiny_put), folder)
    return folder


def test_every_input_and_output_of_an_export_has_a_dynamic_batch(exported):
    import onnx

    manifest = json.loads((exported / "manifest.json").read_text())
    assert set(manifest["networks"]) == {"pvqvae_encoder", "pvqvae_decoder", "transformer"}
    for name, net in manifest["networks"].items():
        graph = onnx.load(str(exported / net["file"])).graph
        assert [i.name for i in graph.input] == list(net["inputs"]) and [o.name for o in graph.output] == [
            net["output"]
        ]
        for value in [*graph.input, *graph.output]:
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_param == "batch", (name, value.name)
        for value in graph.input:  # the rest of an input is the model's size
            assert all(d.dim_value > 0 for d in value.type.tensor_type.shape.dim[1:]), (name, value.name)


def test_the_onnx_cache_follows_every_weight(tiny_put, tmp_path):
    """--backend onnx exports once per model: the same weights reuse the export, a change to any one weight
    (the last value of the last tensor too) exports anew."""
    pytest.importorskip("onnxruntime")
    from pluralfill.export import onnx_backend

    first = onnx_backend(pluralfill.load_inpainter(tiny_put), cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    onnx_backend(pluralfill.load_inpainter(tiny_put), cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    changed = pluralfill.load_inpainter(tiny_put)
    state = changed.model.state_dict()
    last = sorted(state)[-1]
    with torch.no_grad():
        state[last].view(-1)[-1] += 1.0
    onnx_backend(changed, cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    assert first.name == changed.name


# ------------------------------------------------------------------------------------- MaskGIT, official composite


@pytest.fixture(scope="module")
def official_maskgit(tmp_path_factory):
    from pluralfill.pretrained.maskgit_official import convert

    folder = tmp_path_factory.mktemp("maskgit") / "mg"
    tiny = FIXTURES / "maskgit_official_tiny"
    convert(tiny / "tokenizer_imagenet128_checkpoint", tiny / "maskgit_imagenet128_checkpoint").save_pretrained(folder)
    return pluralfill.load_inpainter(folder)


def test_the_official_composite_blurs_the_token_hole_over_the_input():
    """y over x through the token hole, resized and blurred with radius R / 16 - 1 (7 px at 128)."""
    from pluralfill.methods.maskgit import official_composite

    hole = torch.zeros(1, 1, 8, 8)
    hole[..., :, 4:] = 1  # the right half: an edge at x = 64
    m = official_composite(torch.ones(1, 3, 128, 128), torch.zeros(1, 3, 128, 128), hole)[0, 0, 64]
    assert m[:40].max() == 0 and m[90:].min() == 1  # far from the edge: the input, and the output
    assert 0.4 < m[63:65].mean() < 0.6
    assert 0.08 < m[64 - 8] < 0.22 and 0.78 < m[64 + 7] < 0.92  # one radius out: about a standard deviation
    assert m[64 - 16] < 0.03


def test_blend_official_keeps_the_input_away_from_the_hole_and_never_sees_inside_it(official_maskgit):
    mg = official_maskgit
    image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
    hole = np.zeros((128, 128), bool)
    hole[48:80, 48:80] = True
    official = np.asarray(
        mg.inpaint(image, hole, seed=3, class_label=5, blend="official", composite=False)[0], dtype=int
    )
    paste = np.asarray(mg.inpaint(image, hole, seed=3, class_label=5, blend="paste", composite=False)[0], dtype=int)
    far = np.ones((128, 128), bool)
    far[8:120, 8:120] = False  # beyond the token hole (grown by a token) and its blur
    assert np.abs(official[far] - image[far]).max() <= 1 and np.abs(paste[far] - image[far]).mean() > 10
    inside = (slice(56, 72), slice(56, 72))
    assert np.abs(official[inside] - paste[inside]).max() <= 2  # inside the token hole: the decoded image
    covered = image.copy()
    covered[hole] = 255 - covered[hole]
    other = np.asarray(
        mg.inpaint(covered, hole, seed=3, class_label=5, blend="official", composite=False)[0], dtype=int
    )
    assert np.array_equal(other, official)  # what the hole holds reaches no pixel


# ------------------------------------------------------------------------------------------------ torchrun


def test_a_launcher_without_local_world_size_is_one_node(monkeypatch):
    from pluralfill.shards import launcher_world, resolve_world

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launcher_world() == (4, 1) and resolve_world(None, None) == (4, 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launcher_world() is None and resolve_world(None, None) == (1, 1)
    monkeypatch.setenv("WORLD_SIZE", "6")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert launcher_world() == (2, 3)


# ------------------------------------------------------------------------------------------------ runner


@pytest.fixture
def one_photo(tmp_path, photo):
    folder = tmp_path / "in"
    folder.mkdir()
    small = np.ascontiguousarray(photo[::4, ::4])
    for name in ("a", "b", "c"):
        Image.fromarray(small).save(folder / f"{name}.png")
        Image.fromarray(square_hole(64, 64, 0.4).astype(np.uint8) * 255).save(folder / f"{name}_mask.png")
    return folder


def _pngs(folder):
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def test_option_names_take_dashes_or_underscores(one_photo, tmp_path, capsys):
    common = ["inpaint", one_photo / "a.png", "--method", "patchmatch-plural", "-n", "2", "--seed", "4"]
    for spelling in ("leave-out", "leave_out"):
        code, _, err = _cli([*common, "--option", f"{spelling}=0.9", "-o", tmp_path / spelling], capsys)
        assert code == 0, err
    code, _, err = _cli([*common, "-o", tmp_path / "default"], capsys)
    assert code == 0, err
    dashed, underscored = _pngs(tmp_path / "leave-out"), _pngs(tmp_path / "leave_out")
    assert all(np.array_equal(dashed[k], underscored[k]) for k in dashed)
    assert not np.array_equal(dashed["a_sample0.png"], _pngs(tmp_path / "default")["a_sample0.png"])
    code, _, err = _cli([*common, "--option", "leave-outt=0.9", "-o", tmp_path / "typo"], capsys)
    assert code == 2 and "has no option 'leave_outt'" in err


def test_resume_redoes_an_image_with_any_output_missing(one_photo, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["inpaint", one_photo, "--method", "patchmatch-plural", "-n", "2", "--seed", "4", "--grid", "-o", out]
    code, _, err = _cli(common, capsys)
    assert code == 0, err
    whole = _pngs(out)
    (out / "b_sample1.png").unlink()  # b lacks a sample, c its grid; a temporary file is no output
    (out / "c_grid.png").rename(out / ".c_grid.png.x1.tmp")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(0.01)
    code, _, err = _cli([*common, "--resume"], capsys)
    assert code == 0 and "resuming: 1 of 3 image(s) done already" in err, err
    after = _pngs(out)
    assert set(after) == set(whole) and all(np.array_equal(after[k], whole[k]) for k in whole)
    assert (out / "a_sample0.png").stat().st_mtime_ns == before["a_sample0.png"]  # a was done: not rewritten


# ------------------------------------------------------------------------------------------------ io


def test_float_holes_are_zero_one_up_to_exactly_one(photo):
    from pluralfill.io import hole_from_array

    zero_one = square_hole(256, 256, 0.3).astype(np.float32)
    assert zero_one.max() == 1.0 and np.array_equal(hole_from_array(zero_one), zero_one > 0)
    assert np.array_equal(hole_from_array(zero_one.astype(np.float64) * 255), zero_one > 0)  # 0-255 floats
    assert not hole_from_array(np.full((4, 4), 0.49, np.float32)).any() and hole_from_array(np.full((4, 4), 0.5)).all()
    telea = pluralfill.load_inpainter("telea")
    by_float = telea.inpaint(photo, zero_one)[0]
    assert np.array_equal(np.asarray(by_float), np.asarray(telea.inpaint(photo, zero_one > 0)[0]))


def test_text_outputs_are_refused_unless_overwrite(tmp_path, photos, capsys):
    from pluralfill.io import write_text

    write_text(tmp_path / "t.md", "first")
    with pytest.raises(PluralfillError, match="output exists"):
        write_text(tmp_path / "t.md", "second")
    assert (tmp_path / "t.md").read_text() == "first"
    write_text(tmp_path / "t.md", "second", overwrite=True)
    assert (tmp_path / "t.md").read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["t.md"]
    # through `evaluate -o`
    gt, masks = tmp_path / "gt", tmp_path / "masks"
    gt.mkdir(), masks.mkdir()
    Image.fromarray(photos[0][:64, :64]).save(gt / "x.png")
    Image.fromarray(square_hole(64, 64, 0.3).astype(np.uint8) * 255).save(masks / "x.png")
    table = tmp_path / "table.md"
    table.write_text("mine")
    args = ["evaluate", "--pred", gt, "--gt", gt, "--masks", masks, "--metrics", "mae", "--bins", "none", "-o", table]
    code, _, err = _cli(args, capsys)
    assert code == 2 and "output exists" in err and table.read_text() == "mine"
    code, _, err = _cli([*args, "--overwrite"], capsys)
    assert code == 0 and "mae" in table.read_text(), err


# ------------------------------------------------------------------------------------------------ sampling


def test_top_k_zero_means_every_code(tiny_put, photo):
    put = pluralfill.load_inpainter(tiny_put)
    image, hole = np.ascontiguousarray(photo[::4, ::4]), square_hole(64, 64, 0.4)
    vocab = put.model.config.transformer.vocab_size
    for sampler in ("put", "parallel", "put-tpami"):

        def run(k, sampler=sampler):
            return [np.asarray(s) for s in put.inpaint(image, hole, 2, seed=2, sampler=sampler, top_k=k)]

        every, zero, one = run(vocab), run(0), run(1)
        assert all(np.array_equal(a, b) for a, b in zip(every, zero)), sampler
        assert not all(np.array_equal(a, b) for a, b in zip(every, one)), sampler


# ------------------------------------------------------------------------------------------------ evaluation


def test_a_ratio_on_a_bin_edge_falls_in_the_lower_bin():
    """Bins are (lo, hi]: a hole of exactly 10% is in (0, 0.1], one of 10% and a pixel in (0.1, 0.2]."""
    from pluralfill.metrics.evaluate import ItemScores, aggregate, parse_bins

    bins = parse_bins("0-0.1,0.1-0.2")
    items = [
        ItemScores(ratio, {"mae": value})
        for ratio, value in ((10 / 100, 1.0), (101 / 1000, 3.0), (0.2, 5.0), (0.0, 7.0))
    ]
    table = aggregate(items, ["mae"], bins)
    assert table.counts == {"(0, 0.1]": 1, "(0.1, 0.2]": 2, "all": 4}
    assert table.values["mae"]["(0, 0.1]"] == 1.0 and table.values["mae"]["(0.1, 0.2]"] == 4.0


# ------------------------------------------------------------------------------------------------ results of a call


def test_two_threads_on_one_inpainter_get_what_they_get_one_after_the_other(tiny_put, photos):
    """An inpainter keeps nothing of a call: its extras (window, trace) come back with its samples, so two fills
    at once on one inpainter (the web app shares one) each get their own."""
    from concurrent.futures import ThreadPoolExecutor

    put = pluralfill.load_inpainter(tiny_put)
    a, b = np.ascontiguousarray(photos[0][:200, :160]), np.ascontiguousarray(photos[1][:120, :240])
    hole_a, hole_b = np.zeros(a.shape[:2], bool), np.zeros(b.shape[:2], bool)
    hole_a[20:40, 100:130] = True
    hole_b[70:100, 10:50] = True
    fills = [
        lambda: put.inpaint(a, hole_a, 2, seed=1, sampler="put", tokens_per_step=2, trace=True),
        lambda: put.inpaint(b, hole_b, 3, seed=2, sampler="parallel", steps=3, trace=True),
    ]
    alone = [fill() for fill in fills]
    with ThreadPoolExecutor(2) as pool:
        together = [f.result() for f in [pool.submit(fill) for fill in fills]]
    for one, both in zip(alone, together):
        assert len(one) == len(both) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(one, both))
        assert one.extras["window"] == both.extras["window"]
        assert np.array_equal(np.asarray(one.extras["trace"]), np.asarray(both.extras["trace"]))
    assert together[0].extras["window"] != together[1].extras["window"]
    assert not any(k.startswith("last_") for k in vars(put))


def test_the_bound_judges_the_distribution_each_sampler_draws_from():
    """The TPAMI sampler multiplies the logits by its temperature after top-k, the others divide them: the TV
    bound compares what the sampler the inpainter runs would draw."""
    from pluralfill.methods.put import PUTInpainter
    from pluralfill.models.put import CONFIGS, PUT
    from pluralfill.sampling.base import top_k_filter

    torch.manual_seed(0)
    put = PUTInpainter(PUT(CONFIGS["put-tpami-tiny"]))  # a TPAMI generation: its default sampler is put-tpami
    logits = torch.randn(1, 4, put.model.config.transformer.vocab_size)
    put.default_options = {"temperature": 2.0, "top_k": 5}
    torch.testing.assert_close(put.draw_probs(logits), torch.softmax(top_k_filter(logits, 5) * 2.0, -1))
    put.default_options = {"temperature": 2.0, "top_k": 5, "sampler": "parallel"}
    torch.testing.assert_close(put.draw_probs(logits), torch.softmax(top_k_filter(logits / 2.0, 5), -1))

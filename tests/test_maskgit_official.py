"""The official MaskGIT against its own numbers (../shared/fixtures/maskgit_official_tiny): the tokenizer, the
transformer, the whole parallel decoding with the recorded noise, the schedules in float32, and the converter."""

import json

import numpy as np
import pytest
import torch
from conftest import SHARED, Replay, square_hole
from safetensors.torch import load_file

from pluralfill.errors import PluralfillError
from pluralfill.geometry import token_hole
from pluralfill.methods.maskgit import MaskGITOptions
from pluralfill.pretrained.maskgit_official import convert, read_flax_checkpoint
from pluralfill.sampling.parallel import mask_ratio, masked_count, parallel_decode

FIXTURE = SHARED / "fixtures" / "maskgit_official_tiny"
ATOL = 1e-5  # the transformer's logits
# the tokenizer's float32 features (scale ~2.5) and images (~4.5) after 20 GroupNorm-conv layers: torch and XLA sum
# in different orders (in float64 ours is 3e-6 from the official float32 numbers, in float32 4e-5)
TOKENIZER_ATOL = 1e-4


@pytest.fixture(scope="module")
def model():
    return convert(FIXTURE / "tokenizer_imagenet128_checkpoint", FIXTURE / "maskgit_imagenet128_checkpoint")


def nchw(images):  # official NHWC [0, 1] -> ours NCHW [-1, 1]
    return images.permute(0, 3, 1, 2) * 2 - 1


def test_the_container_reads_like_the_safetensors_copy():
    flat = read_flax_checkpoint(FIXTURE / "tokenizer_imagenet128_checkpoint", "tokenizer")
    ref = load_file(FIXTURE / "tokenizer_params.safetensors")
    assert set(flat) == {k.removeprefix("params/") for k in ref}
    for k, v in ref.items():
        assert np.array_equal(flat[k.removeprefix("params/")], v.numpy()), k


def test_converted_config_is_the_named_tiny_one(model):
    assert model.config.name == "maskgit-official-tiny" and model.config.official


def test_tokenizer_encode_codes_decode(model):
    io = load_file(FIXTURE / "tokenizer_io.safetensors")
    tok = model.tokenizer
    with torch.no_grad():
        x = nchw(io["images"])
        torch.testing.assert_close(
            tok.features(x).permute(0, 2, 3, 1), io["encoder_output"], atol=TOKENIZER_ATOL, rtol=0
        )
        codes = tok.encode(x)
        assert torch.equal(codes, io["codes"].long())
        torch.testing.assert_close(tok.codebook[codes], io["quantized"], atol=0, rtol=0)
        rec = (tok.decode(codes) + 1) / 2  # ours is [-1, 1]; the official [0, 1], unclipped
        torch.testing.assert_close(rec.permute(0, 2, 3, 1), io["reconstruction"], atol=TOKENIZER_ATOL, rtol=0)


def test_transformer_logits_for_generation_and_editing_inputs(model):
    io = load_file(FIXTURE / "transformer_io.safetensors")
    with torch.no_grad():
        logits = model.transformer.forward_ids(io["input_ids"].long())  # -1 wraps to the last row
        torch.testing.assert_close(logits, io["logits"], atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(
            model.transformer.forward_ids(io["input_ids_mask_as_last_index"].long()), io["logits"], atol=ATOL, rtol=1e-5
        )
        # the inpainting call: image tokens + a class label, logits of the image positions over the codes
        ids = io["input_ids"].long()
        images = torch.where(ids[:, 1:] < 0, model.transformer.mask_id, ids[:, 1:])
        labels = ids[:, 0] - 64
        per_row = torch.cat([model.transformer(images[i : i + 1], labels[i]) for i in range(4)])
        torch.testing.assert_close(per_row, io["logits"][:, 1:, :64], atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("run", ["generate", "edit"])
def test_official_decoding_replayed_step_by_step(model, run):
    """The recorded Gumbel noise injected: tokens, logits, masked counts and re-masked positions at every step."""
    d = load_file(FIXTURE / "decode.safetensors")
    g = {k.split("/", 1)[1]: v for k, v in d.items() if k.startswith(run + "/")}
    steps, start = (16, 0) if run == "generate" else (12, 2)
    inputs = g["input_tokens"].long()
    label = inputs[:, :1] - 64
    tokens, unknown = inputs[:, 1:], inputs[:, 1:] < 0
    seen, logits, trace = [], [], []

    def logits_fn(tok, hidden):
        seen.append(torch.where(hidden, -1, tok))
        logits.append(model.transformer(torch.where(hidden, model.transformer.mask_id, tok), label[:, 0]))
        return logits[-1]

    with torch.no_grad():
        out = parallel_decode(
            logits_fn,
            torch.where(unknown, 0, tokens),
            unknown,
            _official_noise(run),
            steps=steps,
            start_step=start,
            trace=trace,
        )
    record = [step.details for step in trace]
    f32 = np.float32
    for j in range(steps - start):
        assert torch.equal(seen[j], g["step_input_tokens"][j, :, 1:].long()), j
        torch.testing.assert_close(logits[j], g["step_logits"][j, :, 1:], atol=ATOL, rtol=1e-5)
        assert torch.equal(record[j]["sampled_ids"], g["step_sampled_ids"][j, :, 1:].long()), j
        assert torch.equal(record[j]["sampled"], g["final_seqs"][:, start + j, 1:].long()), (
            j
        )  # every slot of final_seqs
        if j < steps - start - 1:  # the last step keeps every sample (the official re-masks one, unused)
            torch.testing.assert_close(
                record[j]["selected_probs"], g["step_selected_probs"][j, :, 1:], atol=1e-6, rtol=1e-5
            )
            assert (
                f32(record[j]["ratio"]) == g["step_ratio"][j].numpy()
                and f32(record[j]["mask_ratio"]) == g["step_mask_ratio"][j].numpy()
            )
            assert f32(record[j]["choice_temperature"]) == pytest.approx(
                float(g["step_choice_temperature"][j]), rel=1e-6
            )
            assert torch.equal(record[j]["mask_len"], g["step_mask_len"][j].long()), j
            assert torch.equal(trace[j].unknown, g["step_remask"][j, :, 1:].bool()), j
            assert torch.equal(trace[j].unknown.sum(1), g["step_mask_len"][j].long()), j
            assert torch.equal(
                torch.where(trace[j].unknown, -1, trace[j].tokens), g["step_output_tokens"][j, :, 1:].long()
            ), j
    assert torch.equal(
        g["final_seqs"][:, :start, 1:], g["input_tokens"][:, None, 1:].expand(-1, start, -1)
    )  # slots before the start
    assert torch.equal(out, g["final_seqs"][:, -1, 1:].long())
    with torch.no_grad():
        images = (model.tokenizer.decode(out.reshape(2, 8, 8)) + 1) / 2
    torch.testing.assert_close(images.permute(0, 2, 3, 1), g["images"], atol=TOKENIZER_ATOL, rtol=0)


def _official_noise(run):
    """The recorded Gumbel draws of an official decode, in the order parallel_decode asks for them (class token
    dropped: our sequences hold the image tokens only)."""
    g = load_file(FIXTURE / "decode.safetensors")
    draws = {
        "sample": iter(g[f"{run}/step_sample_gumbel"][:, :, 1:]),
        "choice": iter(g[f"{run}/step_choice_gumbel"][:, :, 1:]),
    }
    return Replay(gumbel=lambda kind, shape: next(draws[kind]), rows=2)


@pytest.fixture
def editor(model, tmp_path, monkeypatch):
    """The inpainter a user loads from a converted folder; each of its calls draws the official editing's noise."""
    import pluralfill

    model.save_pretrained(tmp_path / "mg")
    monkeypatch.setattr("pluralfill.methods.maskgit.randomness", lambda seeds, device: _official_noise("edit"))
    return pluralfill.load_inpainter(tmp_path / "mg")


def _edit_inputs():
    """Image 0 and Bbox("32_32_64_64") of the official editing run: 64x64 px missing from (32, 32)."""
    x = nchw(load_file(FIXTURE / "tokenizer_io.safetensors")["images"][:1])
    known = torch.ones(1, 1, 128, 128)
    known[..., 32:96, 32:96] = 0
    return x, known


def test_inpainter_sample_is_the_official_editing(editor):
    """`sample` with hole_pixels="image" and the default start step: the official edit/images, both rows."""
    x, known = _edit_inputs()
    trace = []
    with torch.no_grad():
        y = editor.sample(x, known, [0, 1], trace=trace, class_label=5, hole_pixels="image", **editor.default_options)
    d = load_file(FIXTURE / "decode.safetensors")
    assert len(trace) == 10  # steps 2..11 of 12, as the official editing
    assert torch.equal(trace[-1].tokens, d["edit/final_seqs"][:, -1, 1:].long())
    torch.testing.assert_close(((y + 1) / 2).permute(0, 2, 3, 1), d["edit/images"], atol=TOKENIZER_ATOL, rtol=0)


def test_inpainter_with_the_hole_missing_starts_from_other_tokens(editor):
    """hole_pixels="missing" (the default) tokenizes the image with the hole grey: the known tokens the
    official editing keeps are not all the same, so the result differs from edit/images."""
    x, known = _edit_inputs()
    inputs = load_file(FIXTURE / "decode.safetensors")["edit/input_tokens"][0, 1:].long()
    kept = inputs >= 0
    grey = editor.model.tokenizer.encode(x * known).flatten()
    assert 0 < int((grey[kept] != inputs[kept]).sum()) < int(kept.sum())
    with torch.no_grad():
        y = editor.sample(x, known, [0, 1], class_label=5, **editor.default_options)
    d = load_file(FIXTURE / "decode.safetensors")
    assert (((y + 1) / 2).permute(0, 2, 3, 1) - d["edit/images"]).abs().max() > 0.1


def test_inpaint_api_is_the_official_editing(editor):
    """The whole user path, `inpaint` on a uint8 picture: the official editing to 8-bit rounding."""
    x, known = _edit_inputs()
    image = load_file(FIXTURE / "tokenizer_io.safetensors")["images"][0]
    photo = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    hole = known[0, 0].numpy() < 0.5
    out = editor.inpaint(photo, hole, num_samples=2, seed=0, class_label=5, hole_pixels="image", composite=False)
    ref = load_file(FIXTURE / "decode.safetensors")["edit/images"]
    for sample, want in zip(out, ref):
        got = torch.from_numpy(np.asarray(sample).astype(np.float32) / 255)
        assert (got - want.clamp(0, 1)).abs().max() <= 1 / 255 + 1e-6


def test_only_the_official_editing_sees_what_is_under_the_hole(editor, monkeypatch):
    """hole_pixels="missing" gives the same fill whatever the hole holds (an object to remove, the truth of a
    benchmark); "image" does not."""
    from pluralfill.sampling.base import randomness

    monkeypatch.setattr("pluralfill.methods.maskgit.randomness", randomness)  # the seeds' own draws
    image = load_file(FIXTURE / "tokenizer_io.safetensors")["images"]
    photo, other = ((image[i].clamp(0, 1) * 255).round().to(torch.uint8).numpy() for i in (0, 1))
    hole = np.zeros((128, 128), bool)
    hole[32:96, 32:96] = True
    covered = np.where(hole[..., None], other, photo)
    for hole_pixels, same in (("missing", True), ("image", False)):
        a, b = (
            np.asarray(editor.inpaint(p, hole, seed=3, class_label=5, hole_pixels=hole_pixels)[0])
            for p in (photo, covered)
        )
        assert np.array_equal(a, b) == same, hole_pixels


def test_hole_pixels_is_checked(editor):
    x, known = _edit_inputs()
    with pytest.raises(PluralfillError, match="option hole_pixels=\"grey\": should be 'missing' or 'image'"):
        editor.sample(x, known, [0], class_label=5, hole_pixels="grey")


def test_editing_token_hole_is_the_official_latent_mask(model):
    """Bbox("32_32_64_64") at 128 px: the official editing mask is the box's tokens grown by one on every side;
    the inpainter's token hole of that pixel box (grown by `dilate`=1, its default) is the same 6x6 block."""
    known = torch.ones(1, 1, 128, 128)
    known[..., 32:96, 32:96] = 0
    dilate = MaskGITOptions().dilate
    ours = token_hole(known, model.config.tokenizer.factor, dilate).reshape(8, 8)
    assert torch.equal(ours, load_file(FIXTURE / "transformer_io.safetensors")["edit_latent_mask"][0].bool())
    assert torch.equal(ours.expand(2, 8, 8), load_file(FIXTURE / "decode.safetensors")["edit/latent_mask"].bool())


def test_schedules_in_float32_with_the_official_counts():
    table = json.loads((FIXTURE / "mask_schedule.json").read_text())
    gamma = table["gamma"]
    official = {
        "uniform": "linear",
        "cosine": "cosine",
        "log": "log",
        "exp": "exp",
        "pow2": "pow2",
        "pow2.5": "pow2.5",
        "pow3": "pow3",
    }
    for theirs, ours in official.items():
        for n, values in gamma["gamma"][theirs].items():
            got = np.float32([mask_ratio(ours, r, int(n)) for r in gamma["r"]])
            # XLA's log2 is not correctly rounded (the log schedule divides two of them: 2 ulps); the others match
            # exactly
            ulps = np.abs(got.view(np.int32) - np.float32(values).view(np.int32))
            assert ulps.max() <= (2 if theirs == "log" else 0), (theirs, n)
    flagged = 0
    for case in table["decode_step_counts"]:
        method, start = official[case["method"]], case["start_iter"]
        got = [masked_count(method, start + j, case["T"], case["N"]) for j in range(len(case["ratio"]))]
        assert got == case["floor_N_times_mask_ratio"], (case["method"], case["N"], case["T"], start)
        flagged += len(case["floor_differs_in_float64"])
    assert flagged > 0  # the float32 floors the official decoder takes were exercised


def test_full_size_manifests_equal_the_named_configs():
    from pluralfill.registry import describe

    for res in (256, 512):
        tokenizer = json.loads((FIXTURE / f"manifest_imagenet{res}_tokenizer.json").read_text())
        transformer = json.loads((FIXTURE / f"manifest_imagenet{res}_transformer.json").read_text())
        counts = describe(f"maskgit-imagenet-{res}")["parameters"]
        assert counts["tokenizer"] == tokenizer["total_params"]
        assert counts["transformer"] + counts["transformer_pos_emb"] == transformer["total_params"]


def test_bad_files_are_named_in_one_line(tmp_path):
    tok, tr = FIXTURE / "tokenizer_imagenet128_checkpoint", FIXTURE / "maskgit_imagenet128_checkpoint"
    with pytest.raises(
        PluralfillError, match="is the MaskGIT transformer, given as the tokenizer .*TOKENIZER TRANSFORMER"
    ):
        convert(tr, tok)
    (tmp_path / "cut").write_bytes(tok.read_bytes()[:5000])
    with pytest.raises(PluralfillError, match="cannot read .*cut as a flax msgpack checkpoint"):
        convert(tmp_path / "cut", tr)
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    with pytest.raises(PluralfillError, match="cannot read .*png|no 'params' tree"):
        convert(tmp_path / "png", tr)
    with pytest.raises(PluralfillError, match="do not match maskgit-imagenet-256"):
        convert(tok, tr, config="imagenet-256")


def test_class_conditional_inpainting(model, photo, tmp_path):
    import pluralfill

    model.save_pretrained(tmp_path / "mg")
    mg = pluralfill.load_inpainter(tmp_path / "mg")
    assert mg.default_options == {"start_step": 2}  # the official editing start
    hole = square_hole(frac=0.3)
    with pytest.raises(PluralfillError, match="class-conditional: give --class-label"):
        mg.inpaint(photo, hole, seed=0)
    with pytest.raises(PluralfillError, match="option class_label=10: should be less than or equal to 9"):
        mg.inpaint(photo, hole, seed=0, class_label=10)
    a = np.asarray(mg.inpaint(photo, hole, seed=0, class_label=3, num_samples=2)[1])
    b = np.asarray(mg.inpaint(photo, hole, seed=0, class_label=3, first_sample=1)[0])
    assert np.abs(a.astype(int) - b).max() <= 1  # sample i on its own (convolutions of batch 2 and 1 may round apart)
    blended = np.asarray(mg.inpaint(photo, hole, seed=0, class_label=3, blend="official", composite=False)[0])
    far = ~square_hole(frac=0.7)
    np.testing.assert_allclose(blended[far], photo[far], atol=2)  # the blurred mask leaves far pixels alone


def write_flax_checkpoint(path, params: dict):
    """A file in the official container (flax msgpack, ndarray leaves as ext type 1) from {"a/b/c": array}."""
    import msgpack

    tree: dict = {}
    for name, value in params.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        payload = msgpack.packb([list(value.shape), value.dtype.name, value.tobytes()])
        node[leaf] = msgpack.ExtType(1, payload)
    path.write_bytes(msgpack.packb({"params": tree}))


@pytest.mark.slow
def test_full_size_official_checkpoints_convert_and_inpaint(tmp_path, photo, capsys):
    """Random weights of the released ImageNet-256 models' shapes, in their container: convert, then inpaint
    a photo with a class label from the command line (random weights: the picture means nothing)."""
    from PIL import Image

    from pluralfill.cli import main

    rng = np.random.default_rng(0)
    for part in ("tokenizer", "transformer"):
        manifest = json.loads((FIXTURE / f"manifest_imagenet256_{part}.json").read_text())
        params = {
            k.removeprefix("params/"): rng.standard_normal(shape, dtype=np.float32) * 0.02
            for k, shape in manifest["params"].items()
        }
        write_flax_checkpoint(tmp_path / manifest["checkpoint"], params)
    with pytest.raises(SystemExit) as e:
        main(
            [
                "convert",
                "maskgit-official",
                str(tmp_path / "tokenizer_imagenet256_checkpoint"),
                str(tmp_path / "maskgit_imagenet256_checkpoint"),
                str(tmp_path / "mg"),
            ]
        )
    assert e.value.code == 0 and "maskgit-imagenet-256" in capsys.readouterr().out
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray((square_hole(frac=0.4) * 255).astype(np.uint8)).save(tmp_path / "hole.png")
    with pytest.raises(SystemExit) as e:
        main(
            [
                "inpaint",
                str(tmp_path / "p.png"),
                "--mask",
                str(tmp_path / "hole.png"),
                "--checkpoint",
                str(tmp_path / "mg"),
                "--class-label",
                "207",
                "-n",
                "4",
                "-o",
                str(tmp_path / "out"),
            ]
        )
    assert e.value.code == 0 and len(list((tmp_path / "out").glob("p_sample*.png"))) == 4

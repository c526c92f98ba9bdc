"""PUT TPAMI-2024 against the official code's tensors (../shared/fixtures/put_tpami_official_tiny): the
P-VQVAE (both normalizations), the ViT transformer, its loss, and the official sampler step by step."""

import json

import numpy as np
import pytest
import torch
from conftest import SHARED, Replay, square_hole
from safetensors.torch import load_file

from pluralfill.errors import PluralfillError
from pluralfill.losses.poly import poly_loss
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put import CONFIGS, PUT
from pluralfill.models.pvqvae import masked_input
from pluralfill.pretrained.put_official import convert, generation
from pluralfill.sampling.put_tpami import pass_counts, sample_put_tpami

FIXTURE = SHARED / "fixtures" / "put_tpami_official_tiny"
ATOL, IMAGE_ATOL = 1e-5, 1e-3  # the fixture README's tolerances: features / logits / raw decoder, images on 0..255
RUNS = {"greedy_n20": (1, 20), "greedy_all": (1, -1), "greedy_cosine4": (1, "cosine_4"), "topk8_n4_seed0": (8, 4)}


@pytest.fixture(scope="module")
def official():
    model = convert(FIXTURE / "transformer_official_format.pth", num_heads=4)
    inputs, out = load_file(FIXTURE / "inputs.safetensors"), load_file(FIXTURE / "outputs.safetensors")
    return model, inputs["image"] / 127.5 - 1, inputs["mask"].float(), out


def close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def to_pixels(x):
    return ((x + 1) * 127.5).clamp(0, 255)


def test_converter_reads_the_tpami_layout(official):
    model, *_ = official
    cfg = model.config
    assert cfg.generation == "tpami2024" and cfg.pvqvae.upsample == "nearest" and cfg.pvqvae.stage_res_blocks == 2
    assert (cfg.pvqvae.num_codes, cfg.pvqvae.known_codes, cfg.transformer.vocab_size) == (40, 32, 32)
    assert cfg.transformer.mask_embedding and not cfg.transformer.key_bias
    assert (
        cfg.pvqvae.model_dump() == CONFIGS["put-tpami-tiny"].pvqvae.model_dump()
    )  # the named tiny config is this file's


def test_encoder_quantizer_match(official):
    model, x, known, out = official
    m = model.pvqvae
    with torch.no_grad():
        close(m.normalize(x), out["codec.preprocessed"])
        close(m.normalize(masked_input(x, known)), out["codec.masked_input"])
        f = m.encode(x, known)
        close(
            m.quantizer.lookup(m.tokenize(f, m.token_types(known))).permute(0, 3, 1, 2),
            out["codec.masked.feature_quantize"],
        )
        close(m.encoder(m.normalize(masked_input(x, known))), out["codec.masked.encoder_out"])
        close(f, out["codec.masked.feature"])
        types = m.token_types(known)
        assert torch.equal(types, out["codec.masked.token_type"][:, 0])
        close(m.known_fraction(known), out["codec.masked.unmask_ratio"][:, 0])
        assert torch.equal(m.tokenize(f, types), out["codec.masked.token"])
        close(m.quantizer.distance(f.permute(0, 2, 3, 1)), out["codec.masked.distance"])
        full = m.encode(x)
        close(full, out["codec.full.feature"])
        close(m.quantizer.distance(full.permute(0, 2, 3, 1)), out["codec.full.distance"])
        assert torch.equal(m.tokenize(full), out["codec.full.token"])
        zq = m.quantizer.lookup(m.tokenize(full)).permute(0, 3, 1, 2)
        close(full + (zq - full), out["codec.full.feature_quantize"])


def test_decoder_and_its_reference_branch_match(official):
    model, x, known, out = official
    m = model.pvqvae
    tokens = out["codec.full.token"]
    with torch.no_grad():
        z = m.post_quant_conv(m.quantizer.lookup(tokens).permute(0, 3, 1, 2))
        close(z, out["codec.decoder_in"])
        close(m.decoder.trunk(z), out["codec.decoder.pre_up"])
        refs = m.decoder.reference(m.normalize(masked_input(x, known)))
        for size in (64, 32, 16):  # rectified by the next residual block in place (quirk 1): channels 0-7 stored
            close(refs[(size, size)][:, :8], out[f"codec.decoder.ref_used.{size}x{size}"])
            close(refs[(size, size)][:, :8], out[f"codec.decoder.ref_pre_inplace.{size}x{size}"].relu())
        close(refs[(8, 8)], out["codec.decoder.ref_used.8x8"])  # the last one is used as it is
        raw = m.decode(tokens, x, known)
        close(raw, out["codec.decoder_out_raw"])
        close(to_pixels(raw), out["codec.reconstruction"], IMAGE_ATOL)


def test_imagenet_normalization_variant_matches(official):
    model, x, known, out = official
    m = PUT(
        model.config.model_copy(update={"pvqvae": model.config.pvqvae.model_copy(update={"normalization": "imagenet"})})
    )
    m.load_state_dict(model.state_dict())
    m = m.pvqvae.eval()
    with torch.no_grad():
        close(m.normalize(masked_input(x, known)), out["imagenet_norm.masked_input"])
        f = m.encode(x, known)
        close(f, out["imagenet_norm.masked.feature"])
        assert torch.equal(m.tokenize(f, m.token_types(known)), out["imagenet_norm.masked.token"])
        tokens = m.tokenize(m.encode(x))
        assert torch.equal(tokens, out["imagenet_norm.full.token"])
        close(to_pixels(m.decode(tokens, x, known)), out["imagenet_norm.reconstruction"], IMAGE_ATOL)


def test_transformer_logits_and_poly_loss_match(official):
    model, x, known, out = official
    m, t = model.pvqvae, model.transformer
    with torch.no_grad():
        f = m.encode(x, known).permute(0, 2, 3, 1).reshape(2, 64, -1)
        ratio = m.known_fraction(known).reshape(2, 64)
        close(ratio.reshape(2, 8, 8), out["transformer.unmask_ratio"])
        close(t.embed(f, ratio), out["transformer.input_embedding"].reshape(2, 64, -1))
        logits = t.forward_embedded(t.embed(f, ratio))
        close(logits, out["transformer.logits"].reshape(2, 64, -1))
        target = m.tokenize(m.encode(x)).reshape(2, 64)
        assert torch.equal(target, out["transformer.token_target"].reshape(2, 64))
        types = m.token_types(known).reshape(2, 64)
        for name, where in [("", types != 1), ("partial_", types == 2), ("fully_", types == 0)]:
            terms = poly_loss(logits[where], target[where], epsilon=1.0)
            torch.testing.assert_close(terms["loss"], out[f"transformer.{name}loss"], rtol=1e-5, atol=0)
            torch.testing.assert_close(terms["ce_loss"], out[f"transformer.{name}ce_loss"], rtol=1e-5, atol=0)
        torch.testing.assert_close(
            poly_loss(logits[types != 1], target[types != 1])["poly_n_loss"],
            out["transformer.poly_n_loss"],
            rtol=1e-5,
            atol=0,
        )
        picked = logits[types != 1]
        accuracy = (picked.argmax(-1) == target[types != 1]).float().mean()
        probability = picked.softmax(-1).gather(-1, target[types != 1][:, None]).mean()
        torch.testing.assert_close(accuracy, out["transformer.pred_acc"], rtol=1e-5, atol=0)
        torch.testing.assert_close(probability, out["transformer.pred_prob"], rtol=1e-5, atol=0)
        # ffhq-style decoding pastes the known pixels back before post-processing
        raw = m.decode(out["codec.full.token"], x, known)
        pasted = to_pixels(raw * (1 - known) + masked_input(x, known) * known)
        close(pasted, out["transformer.codec_decode_pasted"], IMAGE_ATOL)


@pytest.mark.parametrize("tag", list(RUNS))
def test_official_sampler_step_by_step(official, tag):
    """Each run replayed with the fixture's recorded draws: the inputs of the first block and the logits at
    every pass, the positions committed, the final tokens and the completed images."""
    model, x, known, out = official
    m, t = model.pvqvae, model.transformer
    top_k, schedule = RUNS[tag]
    draws = iter(out[f"sampler.{tag}.draws"].reshape(-1, 2, 64))
    inputs, logits, trace = [], [], []
    forward = t.forward_embedded

    def recording(x_):
        inputs.append(x_.clone())
        logits.append(forward(x_))
        return logits[-1]

    t.forward_embedded = recording
    try:
        with torch.no_grad():
            f = m.encode(x, known)
            types = m.token_types(known).reshape(2, 64)
            ratio = m.known_fraction(known).reshape(2, 64)
            tokens = sample_put_tpami(
                t,
                m.quantizer.embedding,
                t.embed(f.permute(0, 2, 3, 1).reshape(2, 64, -1), ratio),
                m.tokenize(f, m.token_types(known)).reshape(2, 64),
                types == 1,
                Replay(multinomial=lambda probs: next(draws), rows=2),
                top_k=top_k,
                schedule=schedule,
                trace=trace,
            )
    finally:
        t.forward_embedded = forward
    steps = out[f"sampler.{tag}.logits"].shape[0]
    assert len(logits) == steps
    for i in range(steps):
        close(inputs[i], out[f"sampler.{tag}.input_embedding"][i].reshape(2, 64, -1))
        close(logits[i], out[f"sampler.{tag}.logits"][i].reshape(2, 64, -1))
        missing_before = trace[i - 1].unknown if i else types != 1
        committed = missing_before & ~trace[i].unknown
        assert torch.equal(committed, out[f"sampler.{tag}.positions"][i].reshape(2, 64).bool()), i
    assert torch.equal(tokens.reshape(2, 8, 8), out[f"sampler.{tag}.final_token"])
    raw = m.decode(tokens.reshape(2, 8, 8), x, known)
    close(to_pixels(raw * (1 - known) + masked_input(x, known) * known), out[f"sampler.{tag}.completed"], IMAGE_ATOL)


def test_seeded_run_draws_what_the_official_rng_stream_draws(official):
    """torch.manual_seed(0) before the official call, then one multinomial over all B x L positions a pass:
    the same stream from a Generator seeded with 0 reproduces the recorded draws."""
    model, x, known, out = official
    m, t = model.pvqvae, model.transformer
    g = torch.Generator().manual_seed(0)

    def draw(probs):
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=g).reshape(probs.shape[:-1])

    with torch.no_grad():
        f = m.encode(x, known)
        types = m.token_types(known).reshape(2, 64)
        tokens = sample_put_tpami(
            t,
            m.quantizer.embedding,
            t.embed(f.permute(0, 2, 3, 1).reshape(2, 64, -1), m.known_fraction(known).reshape(2, 64)),
            m.tokenize(f, m.token_types(known)).reshape(2, 64),
            types == 1,
            Replay(multinomial=draw, rows=2),
            top_k=8,
            schedule=4,
        )
    assert torch.equal(tokens.reshape(2, 8, 8), out["sampler.topk8_n4_seed0.final_token"])


def test_pass_counts_follow_the_official_schedules():
    assert pass_counts(20, 25) == [20, 5] and pass_counts(-1, 25) == [-1] and pass_counts(4, 25) == [4] * 6 + [1]
    assert pass_counts("cosine_4", 25) == [10, 9, 5, 1]
    assert sum(pass_counts("linear_5", 101)) == 101 and pass_counts("linear-1_3", 6) == [1, 2, 3]
    assert sum(pass_counts("average_7", 50)) == 50
    with pytest.raises(PluralfillError, match="unknown schedule 'cosine'"):
        pass_counts("cosine", 10)


def test_named_configs_match_the_official_manifests():
    manifests = json.loads((FIXTURE / "full_size_manifests.json").read_text())
    from pluralfill.registry import describe

    for data in ("ffhq", "imagenet", "naturalscene"):
        for res in (256, 512):
            counts = describe(f"put-tpami-{data}-{res}")["parameters"]
            vit = manifests[f"configs/put_tpami2024/{data}/vit_base_{data}_res{res}.yaml"]
            pvq = manifests[f"configs/put_tpami2024/{data}/p_vqvae_{data}_res{res}.yaml"]
            assert sum(counts.values()) == vit["total_parameters"], (data, res)
            assert counts["pvqvae"] == pvq["total_parameters"]
            assert counts["transformer"] + counts["transformer_pos_emb"] == vit["elements_without_codecs"]


def random_official_checkpoint(manifest: dict, path, seed: int = 0):
    """A checkpoint in the official layout (container and key order) with random values of the manifest's shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {
        k: (torch.randn(shape, generator=g) * 0.02).to(getattr(torch, dtype))
        for k, shape, dtype, _ in manifest["state_dict"]
    }
    torch.save({"last_epoch": 0, "last_iter": 0, "model": state}, path)
    return state


@pytest.mark.slow
@pytest.mark.parametrize(
    "data, res",
    [("ffhq", 256), ("ffhq", 512), ("imagenet", 256), ("imagenet", 512), ("naturalscene", 256), ("naturalscene", 512)],
)
def test_full_size_checkpoints_convert_with_every_key_used(tmp_path, data, res):
    manifests = json.loads((FIXTURE / "full_size_manifests.json").read_text())
    run = tmp_path / f"tpami2024_vit_base_{data}_res{res}" / "checkpoint"
    run.mkdir(parents=True)
    state = random_official_checkpoint(
        manifests[f"configs/put_tpami2024/{data}/vit_base_{data}_res{res}.yaml"], run / "last.pth"
    )
    assert generation(state) == "tpami2024"
    model = convert(run / "last.pth")
    assert model.config.pvqvae.normalization == ("imagenet" if data == "imagenet" else "symmetric")
    assert model.config.name == f"put-tpami2024_vit_base_{data}_res{res}"
    ours = model.state_dict()
    assert sum(v.numel() for v in ours.values()) == sum(v.numel() for v in state.values())  # every element used once
    named = convert(run / "last.pth", config=f"tpami-{data}-{res}")
    assert named.config.name == f"put-tpami-{data}-{res}"


def test_bad_files_get_one_line_that_says_what_they_are(tmp_path, official):
    state = torch.load(FIXTURE / "transformer_official_format.pth", weights_only=True)["model"]
    torch.save(
        {"model": {k[len("content_codec.") :]: v for k, v in state.items() if k.startswith("content_codec.")}},
        tmp_path / "pvq.pth",
    )
    with pytest.raises(PluralfillError, match="is a P-VQVAE checkpoint"):
        convert(tmp_path / "pvq.pth")
    raw = (FIXTURE / "transformer_official_format.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PluralfillError, match="cannot read .*cut.pth as an official PUT checkpoint .*truncated"):
        convert(tmp_path / "cut.pth")
    torch.save({"model": {"fc.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(PluralfillError, match="no content_codec.* keys: not a PUT transformer checkpoint"):
        convert(tmp_path / "other.pth")
    with pytest.raises(PluralfillError, match="is a PUT tpami2024 checkpoint but put-ffhq is a cvpr2022 model"):
        convert(FIXTURE / "transformer_official_format.pth", config="ffhq")
    with pytest.raises(PluralfillError, match="does not match put-tpami-ffhq-256"):
        convert(FIXTURE / "transformer_official_format.pth", config="tpami-ffhq-256")


def test_tpami_inpainter_defaults_to_the_tpami_sampler(official, photo, tmp_path):
    model, *_ = official
    model.save_pretrained(tmp_path / "tpami")
    put = PUTInpainter.from_pretrained(tmp_path / "tpami")
    hole = square_hole(frac=0.4)
    a = np.asarray(put.inpaint(photo, hole, num_samples=2, seed=3)[1])
    b = np.asarray(
        put.inpaint(photo, hole, num_samples=2, seed=3, sampler="put-tpami", tokens_per_step=20, top_k=200)[1]
    )
    np.testing.assert_array_equal(a, b)
    alone = np.asarray(put.inpaint(photo, hole, seed=3, first_sample=1)[0])
    np.testing.assert_array_equal(a, alone)  # sample i on its own
    c = np.asarray(put.inpaint(photo, hole, seed=3, schedule="cosine_3", tokens_per_step=-1)[0])
    assert c.shape == photo.shape
    with pytest.raises(PluralfillError, match="unknown schedule"):
        put.inpaint(photo, hole, seed=3, schedule="sometimes")


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    from pluralfill.models.put_conditional import CONFIGS as GUIDED
    from pluralfill.models.put_conditional import PUTConditional

    torch.manual_seed(0)
    model = PUTConditional(GUIDED["put-tpami-conditional-tiny"])
    with torch.no_grad():  # guidance that matters: defaults and features far apart
        model.seg_default.normal_()
        model.sketch_default.normal_()
    folder = tmp_path_factory.mktemp("guided") / "put-guided"
    model.save_pretrained(folder)
    return folder


def test_conditional_model_runs_with_and_without_guidance(conditional, photo):
    import pluralfill

    put = pluralfill.load_inpainter(conditional)
    assert put.name == "put-tpami-conditional-tiny" and [g.name for g in put.guides] == ["segmentation", "sketch"]
    hole = square_hole(frac=0.4)
    labels = np.zeros(hole.shape, np.int64)
    labels[:, 128:] = 120  # two regions
    edges = np.zeros(hole.shape, np.uint8)
    edges[100:110, :] = 255
    plain = np.asarray(put.inpaint(photo, hole, seed=1)[0])
    guided = np.asarray(put.inpaint(photo, hole, seed=1, segmentation=labels, sketch=edges)[0])
    np.testing.assert_array_equal(guided[~hole], photo[~hole])
    # through the inpainter: refresh 1 is the plain guided sampler; refresh 3 fills the hole only
    for refresh in (1, 3):
        cached = put.inpaint(photo, hole, seed=1, segmentation=labels, sketch=edges, cache="known", refresh=refresh)
        cached = np.asarray(cached[0])
        np.testing.assert_array_equal(cached[~hole], photo[~hole])
        if refresh == 1:
            np.testing.assert_array_equal(cached, guided)
    assert plain.shape == guided.shape
    # the guidance reaches the transformer: its logits move when a map is given
    m, t = put.model, put.model.transformer
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        inputs = t.embed(m.pvqvae.encode(x).permute(0, 2, 3, 1).reshape(1, 64, -1))
        seg = torch.from_numpy(labels[::4, ::4].copy())[None, None]
        by_default, by_map = (t.forward_embedded(inputs, m.guidance(g, None, 1)) for g in (None, seg))
    assert (by_default - by_map).abs().max() > 1e-3
    with pytest.raises(PluralfillError, match="segmentation is 10x10 but the image is 256x256"):
        put.inpaint(photo, hole, segmentation=np.zeros((10, 10), np.int64))


def test_conditional_from_the_cli_with_guidance_files(conditional, tmp_path, photo, capsys):
    from PIL import Image

    from pluralfill.cli import main

    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray((square_hole(frac=0.4) * 255).astype(np.uint8)).save(tmp_path / "p_mask.png")
    Image.fromarray(np.full((256, 256), 7, np.uint8)).save(tmp_path / "seg.png")
    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(tmp_path / "rgb.png")
    main_args = [
        "inpaint",
        str(tmp_path / "p.png"),
        "--checkpoint",
        str(conditional),
        "-n",
        "2",
        "-o",
        str(tmp_path / "out"),
    ]
    with pytest.raises(SystemExit) as e:
        main(main_args + ["--segmentation", str(tmp_path / "seg.png")])
    assert e.value.code == 0 and len(list((tmp_path / "out").glob("p_sample*.png"))) == 2
    with pytest.raises(SystemExit) as e:
        main(main_args + ["--segmentation", str(tmp_path / "rgb.png"), "--overwrite"])
    assert e.value.code == 2 and "is a RGB image: a label map has one channel of class ids" in capsys.readouterr().err


@pytest.mark.slow
def test_full_size_conditional_checkpoint_converts(tmp_path):
    from pluralfill.pretrained.put_official import convert_conditional

    manifests = json.loads((FIXTURE / "full_size_manifests.json").read_text())
    manifest = manifests["configs/put_tpami2024_conditional/imagenet/vit_base_imagenet_seg_sketch_res256.yaml"]
    run = tmp_path / "tpami2024_vit_base_imagenet_seg_sketch_dual_encoder_res256" / "checkpoint"
    run.mkdir(parents=True)
    state = random_official_checkpoint(manifest, run / "last.pth")
    model = convert_conditional(run / "last.pth")
    assert model.config.pvqvae.normalization == "imagenet"
    assert sum(v.numel() for v in model.state_dict().values()) == sum(v.numel() for v in state.values())
    assert sum(model.parameter_counts().values()) == manifest["total_parameters"]
    with pytest.raises(
        PluralfillError, match="conditional .* convert it with `pluralfill convert put-tpami-conditional`"
    ):
        convert(run / "last.pth")


def test_the_official_run_config_says_which_normalization(tmp_path):
    run = tmp_path / "tpami2024_vit_base_x_res256"
    (run / "checkpoint").mkdir(parents=True)
    (run / "configs").mkdir()
    (run / "checkpoint" / "last.pth").write_bytes((FIXTURE / "transformer_official_format.pth").read_bytes())
    (run / "configs" / "config.yaml").write_text(
        "model:\n  params:\n    content_codec_config:\n      params:\n        im_process_info:\n"
        "          scale: 255.0\n          mean: [0.485, 0.456, 0.406]\n          std: [0.229, 0.224, 0.225]\n"
    )
    model = convert(run / "checkpoint" / "last.pth", num_heads=4)
    assert model.config.pvqvae.normalization == "imagenet" and model.config.name == "put-tpami2024_vit_base_x_res256"

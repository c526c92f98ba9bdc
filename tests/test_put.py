"""PUT against the official code's tensors (../shared/fixtures/put_official_tiny), and as an Inpainter."""

import json

import numpy as np
import pytest
import torch
from conftest import SHARED, square_hole
from safetensors.torch import load_file

from pluralfill.errors import PluralfillError
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put import CONFIGS, PUT, put_tiny_config
from pluralfill.models.pvqvae import masked_input
from pluralfill.pretrained.put_official import convert
from pluralfill.sampling.base import Randomness
from pluralfill.sampling.put import sample_put

FIXTURE = SHARED / "fixtures" / "put_official_tiny"
ATOL = 1e-5


@pytest.fixture(scope="module")
def official():
    """Our PUT converted from the official .pth, the fixture inputs (x in [-1, 1], known) and outputs."""
    model = convert(FIXTURE / "transformer_official_format.pth", num_heads=4)
    inputs, outputs = load_file(FIXTURE / "inputs.safetensors"), load_file(FIXTURE / "outputs.safetensors")
    x, known = inputs["image"] / 127.5 - 1, inputs["mask"].float()
    return model, x, known, outputs


def test_pvqvae_matches_official_encoder_quantizer_decoder(official):
    model, x, known, out = official
    m = model.pvqvae
    from pluralfill.pixels import to_tensor

    photo = load_file(FIXTURE / "inputs.safetensors")["image"].permute(0, 2, 3, 1).to(torch.uint8).numpy()
    torch.testing.assert_close(to_tensor(photo), out["codec.preprocessed"], atol=1e-6, rtol=0)  # what inpaint feeds
    with torch.no_grad():
        torch.testing.assert_close(masked_input(x, known), out["codec.masked_input"], atol=0, rtol=0)
        f = m.encode(x, known)
        zq = m.quantizer.lookup(m.tokenize(f, m.token_types(known))).permute(0, 3, 1, 2)
        torch.testing.assert_close(zq, out["codec.masked.feature_quantize"], atol=ATOL, rtol=0)
        torch.testing.assert_close(f, out["codec.masked.feature"], atol=ATOL, rtol=0)
        types = m.token_types(known)
        assert torch.equal(types, out["codec.masked.token_type"][:, 0])
        assert torch.equal(m.tokenize(f, types), out["codec.masked.token"])
        torch.testing.assert_close(
            m.quantizer.distance(f.permute(0, 2, 3, 1)), out["codec.masked.distance"], atol=ATOL, rtol=0
        )
        full = m.encode(x)
        torch.testing.assert_close(full, out["codec.full.feature"], atol=ATOL, rtol=0)
        tokens = m.tokenize(full)
        assert torch.equal(tokens, out["codec.full.token"])
        z = m.post_quant_conv(m.quantizer.lookup(tokens).permute(0, 3, 1, 2))
        torch.testing.assert_close(z, out["codec.decoder_in"], atol=ATOL, rtol=0)
        torch.testing.assert_close(m.decoder.trunk(z), out["codec.decoder.pre_up"], atol=ATOL, rtol=0)
        refs = m.decoder.reference(masked_input(x, known))
        torch.testing.assert_close(refs[(8, 8)], out["codec.decoder.ref_feat_8x8"], atol=ATOL, rtol=0)
        raw = m.decode(tokens, x, known)
        torch.testing.assert_close(raw, out["codec.decoder_out_raw"], atol=ATOL, rtol=0)
        torch.testing.assert_close(((raw + 1) * 127.5).clamp(0, 255), out["codec.reconstruction"], atol=1e-3, rtol=0)


def test_transformer_matches_official_logits_and_loss(official):
    model, x, known, out = official
    m, t = model.pvqvae, model.transformer
    with torch.no_grad():
        seq = m.encode(x, known).permute(0, 2, 3, 1).reshape(2, 64, -1)
        torch.testing.assert_close(t.embed(seq), out["transformer.input_embedding"], atol=ATOL, rtol=0)
        logits = t(seq)
        torch.testing.assert_close(logits, out["transformer.logits"], atol=ATOL, rtol=0)
        types = m.token_types(known).reshape(2, 64)
        assert torch.equal(types.long(), out["codec.masked.token_type"].reshape(2, 64).long())
        target = m.tokenize(m.encode(x)).reshape(2, 64)
        assert torch.equal(target, out["transformer.token_target"])


def test_the_transformer_training_step_is_the_official_loss(official):
    """`train.put.transformer_losses`, what `pluralfill train` steps on: the official loss (cross-entropy over
    the positions of types 0 and 2) and its gradient at the output bias, mean(softmax - onehot) over them."""
    from pluralfill.train.put import transformer_losses

    model, x, known, out = official
    t = model.transformer
    t.zero_grad()
    terms = transformer_losses(model, t, x, known, training=True, random_quantize=0.0)
    torch.testing.assert_close(terms["loss"], out["transformer.loss"], rtol=1e-5, atol=0)
    terms["loss"].backward()
    logits, target = out["transformer.logits"], out["transformer.token_target"]
    scored = out["codec.masked.token_type"].reshape(2, 64) != 1
    expected = (logits.softmax(-1) - torch.nn.functional.one_hot(target, logits.shape[-1]))[scored].mean(0)
    torch.testing.assert_close(t.head.bias.grad, expected, rtol=1e-4, atol=1e-7)
    t.zero_grad()


class LogitsSpy:
    """The transformer as the sampler calls it, keeping the logits of every pass."""

    def __init__(self, transformer):
        self.transformer, self.logits = transformer, []

    def __getattr__(self, name):
        return getattr(self.transformer, name)

    def forward_embedded(self, x):
        self.logits.append(self.transformer.forward_embedded(x))
        return self.logits[-1]


def test_greedy_sampler_reproduces_the_official_order_and_image(official):
    model, x, known, out = official
    m = model.pvqvae
    with torch.no_grad():
        f = m.encode(x, known)
        types = m.token_types(known)
        tokens = m.tokenize(f, types).reshape(2, 64)
        trace = []
        spy = LogitsSpy(model.transformer)
        final = sample_put(
            spy,
            m.quantizer.embedding,
            f.permute(0, 2, 3, 1).reshape(2, 64, -1),
            tokens,
            (types == 1).reshape(2, 64),
            Randomness([0, 0]),
            top_k=1,
            position_by="logit",
            trace=trace,
        )
        assert torch.equal(final, out["sampler.final_token"])
        torch.testing.assert_close(spy.logits[0], out["sampler.step1.logits"], atol=ATOL, rtol=0)
        torch.testing.assert_close(
            spy.logits[1], out["sampler.step2.logits"], atol=ATOL, rtol=0
        )  # after the first code went in
        first = trace[0].details
        assert torch.equal(first["positions"][:, 0], out["sampler.step1.position"]) and torch.equal(
            first["codes"][:, 0], out["sampler.step1.token"]
        )
        order = torch.full((2, 25), -1)
        codes = torch.full((2, 25), -1)
        for step, record in enumerate(trace):
            pos, new, valid = record.details["positions"], record.details["codes"], record.details["valid"]
            order[:, step] = torch.where(valid[:, 0], pos[:, 0], -1)
            codes[:, step] = torch.where(valid[:, 0], new[:, 0], -1)
        assert torch.equal(order, out["sampler.order_position"])
        assert torch.equal(codes, out["sampler.order_token"])
        completed = ((m.decode(final.reshape(2, 8, 8), x, known) + 1) * 127.5).clamp(0, 255)
        torch.testing.assert_close(completed, out["sampler.completed"], atol=1e-3, rtol=0)


def test_converter_reports_unknown_and_missing_keys(tmp_path):
    obj = torch.load(FIXTURE / "transformer_official_format.pth", weights_only=True)
    state = dict(obj["model"])
    state["blocks.0.attn.mystery.weight"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "extra.pth")
    with pytest.raises(PluralfillError, match="unknown entries in .*: blocks.0.attn.mystery.weight"):
        convert(tmp_path / "extra.pth", num_heads=4)
    state = dict(obj["model"])
    del state["blocks.1.ln2.bias"]
    torch.save({"model": state}, tmp_path / "missing.pth")
    with pytest.raises(PluralfillError, match="missing.*transformer.blocks.1.ln2.bias"):
        convert(tmp_path / "missing.pth", num_heads=4)
    with pytest.raises(PluralfillError, match="does not match put-ffhq"):
        convert(FIXTURE / "transformer_official_format.pth", config="ffhq")
    with pytest.raises(PluralfillError, match="P-VQVAE checkpoint"):
        torch.save({"model": load_file(FIXTURE / "pvqvae_state_dict.safetensors")}, tmp_path / "pvqvae.pth")
        convert(tmp_path / "pvqvae.pth")


def test_named_configs_match_table_3():
    for name, expected in [("put-ffhq", 95.0e6), ("put-places2", 110.7e6), ("put-imagenet", 441.7e6)]:
        with torch.device("meta"):
            counts = PUT(CONFIGS[name]).parameter_counts()
        assert abs(counts["transformer"] - expected) < 0.05e6, (name, counts)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = PUT(put_tiny_config())
    folder = tmp_path_factory.mktemp("ckpt") / "put-tiny"
    model.save_pretrained(folder)
    return folder, model


def test_save_and_load_round_trip(tiny_checkpoint):
    folder, model = tiny_checkpoint
    assert json.loads((folder / "config.json").read_text())["method"] == "put"
    loaded = PUT.from_pretrained(folder)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    with pytest.raises(PluralfillError, match="output exists"):
        model.save_pretrained(folder)


def test_put_inpainter_samples(tiny_checkpoint, photo):
    folder, _ = tiny_checkpoint
    put = PUTInpainter.from_pretrained(folder)
    hole = square_hole(frac=0.4)
    a = [np.asarray(s) for s in put.inpaint(photo, hole, num_samples=3, seed=0)]
    b = [np.asarray(s) for s in put.inpaint(photo, hole, num_samples=3, seed=0)]
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s, t)  # seeded
        np.testing.assert_array_equal(s[~hole], photo[~hole])  # known pixels untouched
    assert not np.array_equal(a[0][hole], a[1][hole])  # different samples
    # sample 2 of the run, drawn alone with its own seed, is the same: samples do not depend on the batch
    from pluralfill.methods.base import sample_seed

    x = torch.rand(1, 3, 64, 64) * 2 - 1
    known = torch.ones(1, 1, 64, 64)
    known[..., 16:48, 16:48] = 0
    together = put.sample(x, known, [sample_seed(0, i) for i in range(3)])
    alone = put.sample(x, known, [sample_seed(0, 2)])
    torch.testing.assert_close(together[2:], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sampler", ["put", "parallel"])
def test_samples_of_several_images_share_batches_and_match_one_by_one(tiny_checkpoint, photos, sampler):
    folder, _ = tiny_checkpoint
    put = PUTInpainter.from_pretrained(folder)
    put.batch_size = 4  # 3 images x 2 samples: rows of different images meet in one batch
    images = [np.ascontiguousarray(p[::4, ::4]) for p in photos[:3]]
    holes = [square_hole(64, 64, f) for f in (0.3, 0.4, 0.5)]
    opts = {"sampler": sampler, "tokens_per_step": 4} if sampler == "put" else {"sampler": sampler, "steps": 4}
    together = put.inpaint_many(images, holes, num_samples=2, seed=5, **opts)
    for image, hole, many in zip(images, holes, together):
        alone = put.inpaint(image, hole, num_samples=2, seed=5, **opts)
        for a, b in zip(many, alone):
            assert np.abs(np.asarray(a, dtype=int) - np.asarray(b)).max() <= 1  # rounding of other batch shapes
    assert not np.array_equal(np.asarray(together[0][0]), np.asarray(together[0][1]))


def test_inpaint_folder_batches_images_and_reports_a_bad_one(tiny_checkpoint, photos, tmp_path):
    from PIL import Image

    from pluralfill.cli import main

    folder, _ = tiny_checkpoint
    src = tmp_path / "in"
    src.mkdir()
    for i, p in enumerate(photos[:4]):
        Image.fromarray(np.ascontiguousarray(p[::4, ::4])).save(src / f"im{i}.png")
        Image.fromarray(square_hole(64, 64, 0.3 + 0.05 * i)).save(src / f"im{i}_mask.png")
    (src / "im2_mask.png").write_bytes(b"not a png")  # reported; the other three fill in one batch

    def run(*args):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            return e.code or 0
        return 0

    assert run("inpaint", src, "--checkpoint", folder, "-n", "2", "--seed", "3", "-o", tmp_path / "all") == 1
    written = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert written == [f"im{i}_sample{k}.png" for i in (0, 1, 3) for k in (0, 1)]
    assert (
        run("inpaint", src / "im3.png", "--checkpoint", folder, "-n", "2", "--seed", "3", "-o", tmp_path / "one") == 0
    )
    for k in (0, 1):
        a = np.asarray(Image.open(tmp_path / "all" / f"im3_sample{k}.png"), dtype=int)
        assert np.abs(a - np.asarray(Image.open(tmp_path / "one" / f"im3_sample{k}.png"))).max() <= 1


def test_put_sampler_options(tiny_checkpoint):
    folder, model = tiny_checkpoint
    put = PUTInpainter.from_pretrained(folder)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    known = torch.ones(1, 1, 64, 64)
    known[..., :, 24:] = 0
    for opts in [dict(tokens_per_step=5), dict(position_by="logit", top_k=3), dict(temperature=0.5, top_k=None)]:
        y = put.sample(x, known, [1, 2], **opts)
        assert y.shape == (2, 3, 64, 64) and torch.isfinite(y).all()
    # every filled token is one of the top-k candidates of its step
    m = model.pvqvae
    f = m.encode(x, known)
    types = m.token_types(known).reshape(1, -1)
    trace = []
    toks = sample_put(
        model.transformer,
        m.quantizer.embedding,
        f.permute(0, 2, 3, 1).reshape(1, 64, -1),
        m.tokenize(f, m.token_types(known)).reshape(1, 64),
        types == 1,
        Randomness([0]),
        top_k=2,
        trace=trace,
    )
    assert len(trace) == int((types != 1).sum()) and (toks < model.config.transformer.vocab_size)[types != 1].all()
    assert torch.equal(toks[types == 1], m.tokenize(f, m.token_types(known)).reshape(1, 64)[types == 1])


def test_put_from_the_cli(tiny_checkpoint, tmp_path, photo, capsys):
    from PIL import Image

    from pluralfill.cli import main

    folder, _ = tiny_checkpoint
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.3).astype(np.uint8) * 255).save(tmp_path / "h.png")
    with pytest.raises(SystemExit) as e:
        main(
            [
                "inpaint",
                str(tmp_path / "p.png"),
                "--mask",
                str(tmp_path / "h.png"),
                "--checkpoint",
                str(folder),
                "-n",
                "3",
                "--seed",
                "0",
                "-o",
                str(tmp_path / "o"),
                "--option",
                "top_k=10",
                "--option",
                "tokens_per_step=4",
            ]
        )
    assert e.value.code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"p_sample{k}.png" for k in range(3)]
    with pytest.raises(SystemExit):
        main(
            [
                "inpaint",
                str(tmp_path / "p.png"),
                "--mask",
                str(tmp_path / "h.png"),
                "--method",
                "put-ffhq",
                "-o",
                str(tmp_path / "x"),
            ]
        )
    assert "needs trained weights" in capsys.readouterr().err


@pytest.mark.parametrize("change", [dict(encoder="conv"), dict(codebook="one"), dict(reference=False)])
def test_ablation_variants_build_and_run(change):
    from pluralfill.models.pvqvae import PVQVAE, PVQVAEConfig

    cfg = PVQVAEConfig(resolution=32, channels=16, code_dim=8, num_codes=16, num_res_blocks=1, **change)
    m = PVQVAE(cfg)
    x, known = torch.rand(2, 3, 32, 32) * 2 - 1, torch.ones(2, 1, 32, 32)
    known[:, :, 8:20, 8:20] = 0
    rec, commitment, tokens, target = m(x, torch.ones_like(known), erase=known)  # types from the erase mask m'
    assert rec.shape == x.shape and tokens.shape == (2, 4, 4) and commitment.item() >= 0
    assert torch.equal(target[:, :, 8:20, 8:20], torch.full_like(target[:, :, 8:20, 8:20], -1))  # erased: black
    rec.mean().backward()
    if change.get("codebook") == "one":
        assert m.num_known_codes == 16 and (tokens < 16).all()
    else:
        types = m.token_types(known)
        assert (tokens[types == 1] < 8).all() and (tokens[types != 1] >= 8).all()  # e for known, e' for the rest
    if change.get("reference") is False:
        assert m.decoder.reference is None


def test_ema_codebook_update_follows_eq_2():
    from pluralfill.nn.quantizer import DualCodebook

    cb = DualCodebook(num_codes=4, dim=2, split=2, decay=0.9, eps=0.0)
    cb.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [0.0, 0.0], [10.0, 10.0]]))
    cb.embedding_avg.copy_(cb.embedding)
    cb.cluster_size.fill_(1.0)
    z = torch.tensor([[1.0, 1.0], [3.0, 3.0]])
    cb.ema_update(z, torch.tensor([0, 0]))
    # n_0 = 0.9 * 1 + 0.1 * 2 = 1.1; avg_0 = 0.9 * 0 + 0.1 * (4, 4) = (0.4, 0.4); e_0 = avg / n
    assert cb.cluster_size[0].item() == pytest.approx(1.1)
    torch.testing.assert_close(cb.embedding[0], torch.tensor([0.4, 0.4]) / 1.1)
    torch.testing.assert_close(cb.embedding[1], torch.tensor([10.0, 10.0]))  # untouched codes keep their value


def _algorithm1_by_the_book(model, x, known, seed, top_k):
    """Algorithm 1 written plainly for one sample: full forward, pick the most probable unfilled position,
    draw its code from the top-K with the sample's own generator, write e_k back, repeat."""
    m, t = model.pvqvae, model.transformer
    f = m.encode(x, known)
    types = m.token_types(known).reshape(-1)
    tokens = m.tokenize(f, m.token_types(known)).reshape(-1).clone()
    inputs = t.embed(f.permute(0, 2, 3, 1).reshape(1, types.numel(), -1))[0].clone()
    filled = types == 1
    g = torch.Generator().manual_seed(seed)
    while not filled.all():
        logits = t.forward_embedded(inputs[None])[0]
        best = torch.softmax(logits, -1).max(-1).values.masked_fill(filled, -1.0)
        pos = int(best.argmax())
        row = logits[pos]
        kth = row.topk(top_k).values[-1]
        row = row.masked_fill(row < kth, float("-inf"))
        u = torch.rand((1, row.numel()), generator=g)[0]
        code = int((row - torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-7)))).argmax())
        tokens[pos], filled[pos] = code, True
        inputs[pos] = t.embed_codes(m.quantizer.embedding[code], torch.tensor(pos))
    return tokens


def test_batched_algorithm_1_gives_the_tokens_of_the_plain_one(tiny_checkpoint):
    _, model = tiny_checkpoint
    torch.manual_seed(3)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    known = torch.ones(1, 1, 64, 64)
    known[..., 8:40, 16:56] = 0
    m = model.pvqvae
    with torch.no_grad():
        f = m.encode(x, known)
        types = m.token_types(known).reshape(1, -1)
        tokens = m.tokenize(f, m.token_types(known)).reshape(1, -1)
        seeds = [11, 22, 33]
        fast = sample_put(
            model.transformer,
            m.quantizer.embedding,
            f.permute(0, 2, 3, 1).reshape(1, 64, -1).expand(3, -1, -1),
            tokens.expand(3, -1),
            (types == 1).expand(3, -1),
            Randomness(seeds),
            top_k=5,
        )
        for i, s in enumerate(seeds):
            assert torch.equal(fast[i], _algorithm1_by_the_book(model, x, known, s, top_k=5)), i

"""DSI (Peng et al. 2021): the hierarchical VQ-VAE, the structure generator and its cached sampling, the inpainter
with its entropy map and both ways of choosing the sampled positions, and the three training stages. Parity
with the official networks is in test_dsi_official.py."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import square_hole
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.models.dsi import CONFIGS, DSI
from pluralfill.models.structure_generator import StructureGenerator, StructureGeneratorConfig
from pluralfill.registry import load_inpainter
from pluralfill.sampling.autoregressive import sample_raster
from pluralfill.sampling.base import Randomness

CONFIG_DIR = Path(__file__).resolve().parents[1] / "src" / "pluralfill" / "configs"
SMALL = StructureGeneratorConfig(
    side=8,
    num_codes=16,
    code_dim=6,
    channels=16,
    res_channels=8,
    num_resnets=4,
    num_attention=2,
    num_heads=2,
    num_out_resnets=2,
    cond_channels=2,
    cond_res_channels=2,
    dropout=0.0,
)


def _generator(dtype=torch.float32):
    torch.manual_seed(0)
    model = StructureGenerator(SMALL).to(dtype).eval()
    for p in model.parameters():  # biases and gains away from 0 and 1, so that every layer matters
        p.data += torch.randn_like(p) * 0.1
    image, hole = torch.rand(2, 3, 64, 64, dtype=dtype), torch.zeros(2, 1, 64, 64, dtype=dtype)
    hole[:, :, 16:48, 16:48] = 1
    codebook = torch.randn(16, 6, dtype=dtype)
    return model, model.condition(image * (1 - hole), hole), codebook


def _vectors(codebook, tokens):
    return codebook[tokens].transpose(1, 2).reshape(tokens.shape[0], -1, 8, 8)


def test_paper_sizes():
    with torch.device("meta"):
        dsi = DSI(CONFIGS["dsi"])
    q = dsi.hvqvae.quantize_top
    assert (q.num_codes, q.dim) == (512, 64) and dsi.config.hvqvae.top_side == 32
    s = dsi.config.structure
    assert (s.channels, s.res_channels, s.num_resnets, s.num_attention, s.num_heads, s.num_out_resnets) == (
        128,
        128,
        20,
        4,
        8,
        20,
    )
    assert sum(b.attention is not None for b in dsi.structure.ul_stream) == 4
    assert 8 * s.cond_channels == 256 and dsi.config.texture.width == 64 and dsi.config.disc_width == 64


def test_hvqvae_latents_are_32_and_64_for_256_px():
    from pluralfill.models.hvqvae import HVQVAE, HVQVAEConfig

    vq = HVQVAE(HVQVAEConfig(hidden=16, residual=8, num_codes=32, code_dim=8)).eval()
    rec, commitment, (top, bottom) = vq(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert rec.shape == (1, 3, 256, 256) and top.shape == (1, 32, 32) and bottom.shape == (1, 64, 64)
    assert commitment.item() >= 0


def test_structure_generator_is_causal_and_the_cache_is_exact():
    model, cond, codebook = _generator(torch.float64)
    tokens = torch.randint(0, 16, (2, 64))
    logits = model(_vectors(codebook, tokens), cond).flatten(2).transpose(1, 2)  # (B, L, K)
    changed = tokens.clone()
    changed[:, 30] = (changed[:, 30] + 1) % 16
    after = model(_vectors(codebook, changed), cond).flatten(2).transpose(1, 2)
    assert torch.equal(after[:, :31], logits[:, :31])  # no position sees its own code or later ones
    assert not torch.allclose(after[:, 31:], logits[:, 31:])
    cache, stepped = model.new_cache(cond), []
    for p in range(64):
        stepped.append(model.step(cache, *divmod(p, 8)))
        model.write(cache, *divmod(p, 8), codebook[tokens[:, p]])
    torch.testing.assert_close(torch.stack(stepped, 1), logits, rtol=0, atol=1e-12)
    # prefilled with wrong codes from 30 on, then stepped from 30: the wrong codes leave no trace
    cache, wrong = model.new_cache(cond), tokens.clone()
    wrong[:, 30:] = 0
    model.prefill(cache, _vectors(codebook, wrong), cond, 30)
    stepped = []
    for p in range(30, 64):
        stepped.append(model.step(cache, *divmod(p, 8)))
        model.write(cache, *divmod(p, 8), codebook[tokens[:, p]])
    torch.testing.assert_close(torch.stack(stepped, 1), logits[:, 30:], rtol=0, atol=1e-12)


def test_cached_sampling_draws_the_same_codes_and_keeps_known_ones():
    model, cond, codebook = _generator()
    known_codes = torch.randint(0, 16, (1, 64)).expand(3, -1)
    unknown = torch.zeros(64, dtype=torch.bool)
    unknown[18:46] = True

    def draw(cache, seeds=(1, 2, 3), entropy=None):
        return sample_raster(
            model,
            cond[:1].expand(len(seeds), -1, -1, -1),
            codebook,
            known_codes[: len(seeds)],
            unknown,
            Randomness(seeds),
            top_k=8,
            cache=cache,
            entropy=entropy,
        )

    bits = torch.zeros(64)
    fast = draw(True, entropy=bits)
    assert torch.equal(fast, draw(False))
    assert torch.equal(fast[:, ~unknown], known_codes[:, ~unknown])
    assert not torch.equal(fast[0], fast[1])
    assert torch.equal(draw(True, seeds=(3,))[0], fast[2])  # sample i does not depend on the others
    assert (bits[~unknown] == 0).all() and (bits[unknown] > 0).all() and (bits <= math.log2(16) + 1e-5).all()


def test_feature_scores_rank_codes_by_distance_whatever_the_codebook_scale():
    from pluralfill.losses.dsi import feature_scores

    torch.manual_seed(0)
    codebook, features = torch.randn(16, 8), torch.randn(5, 8)
    scores = [feature_scores(features * s, codebook * s) for s in (1.0, 1e-3)]
    torch.testing.assert_close(
        scores[0], scores[1], atol=1e-4, rtol=1e-4
    )  # a compact codebook is scored like a spread one
    assert torch.equal(scores[0].argmax(-1), torch.cdist(features, codebook).argmin(-1))
    assert scores[0].abs().max() <= 10.0


@pytest.mark.slow
def test_top_latent_carries_the_structure_after_a_little_training(images):
    """With ReLUs the toy VQ-VAE's top codes collapsed and the decoder ignored them, so DSI's samples all
    looked alike (swapping top codes between images changed nothing); with the official ELUs they matter."""
    from pluralfill.models.hvqvae import HVQVAE, HVQVAEConfig
    from pluralfill.train.dsi import decode_structure

    torch.manual_seed(0)
    x = (
        torch.stack(
            [
                torch.from_numpy(np.array(Image.open(p).convert("RGB").resize((64, 64)))).permute(2, 0, 1)
                for p in sorted(images.iterdir())[:8]
            ]
        ).float()
        / 127.5
        - 1
    )
    model = HVQVAE(HVQVAEConfig(resolution=64, hidden=32, residual=16, num_codes=32, code_dim=16))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(100):
        rec, commitment, _ = model(x)
        loss = F.mse_loss(rec, x) + 0.25 * commitment
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    codes = model.encode_top(x)
    own, swapped = (F.mse_loss(decode_structure(model, x, c), x) for c in (codes, codes.roll(1, 0)))
    assert swapped > 1.2 * own  # ReLUs: 1.00 (collapsed); ELUs: 2.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("dsi") / "dsi-tiny"
    DSI(CONFIGS["dsi-tiny"]).save_pretrained(folder)
    return folder


def test_inpainter_entropy_map_and_cache_option(checkpoint, photo):
    dsi = load_inpainter(checkpoint)
    hole = square_hole(frac=0.4)
    a = dsi.inpaint(photo, hole, 2, seed=0, entropy=True, top_k=20)
    assert a.extras["entropy"].width > 300 and a.extras["entropy_bits"].ndim == 2
    b = dsi.inpaint(photo, hole, 2, seed=0, cache=False, top_k=20)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    for s in a:
        assert np.array_equal(np.asarray(s)[~hole], photo[~hole])


def test_sampled_positions_all_as_the_official_sampler_or_the_hole(checkpoint):
    dsi = load_inpainter(checkpoint)
    assert dsi.model.config.positions == "hole"
    torch.manual_seed(0)
    x, known = torch.rand(1, 3, 64, 64) * 2 - 1, torch.ones(1, 1, 64, 64)
    known[..., 16:48, 16:48] = 0  # the centre 4x4 of the 8x8 top cells
    codes = {}
    for positions in ("hole", "all"):
        trace = []
        dsi.sample(x, known, [3], trace=trace, top_k=20, positions=positions)
        codes[positions] = trace[-1].tokens[0].reshape(8, 8)
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[1:7, 1:7] = False  # the hole's cells and, by default (dilate=1), their neighbours are sampled
    encoded = dsi.model.hvqvae.encode_top(x * known)[0]
    assert torch.equal(codes["hole"][outside], encoded[outside])  # hole: the encoder's codes outside
    assert not torch.equal(codes["all"][outside], encoded[outside])  # all: those are sampled too
    with pytest.raises(PluralfillError, match="option positions=\"some\": should be 'all' or 'hole'"):
        dsi.sample(x, known, [0], positions="some")


def test_structure_only_checkpoint_says_what_is_missing(tmp_path):
    cfg = CONFIGS["dsi-tiny"].model_copy(deep=True)
    cfg.texture = None
    DSI(cfg).save_pretrained(tmp_path / "partial")
    with pytest.raises(PluralfillError, match="no texture generator yet"):
        load_inpainter(tmp_path / "partial")


@pytest.mark.slow
def test_three_stages_train_and_inpaint_from_the_cli(images, tmp_path, photo, capsys):
    from pluralfill.cli import main

    common = [
        f"data.train={images}",
        "data.num_workers=0",
        "batch_size=4",
        "log_every=1",
        "val_every=4",
        "sample_every=4",
        "checkpoint_every=4",
        "val_batches=1",
        "optim.warmup_steps=1",
        "steps=8",
    ]
    runs = {}
    for stage, extra in [
        ("hvqvae", ["optim.polyak_decay=0.9"]),
        ("structure", [f"first_stage={tmp_path / 'hvqvae'}"]),
        ("texture", [f"first_stage={tmp_path / 'structure'}"]),
    ]:
        with pytest.raises(SystemExit) as e:
            main(["train", str(CONFIG_DIR / f"dsi-tiny-{stage}.yaml"), *common, f"run_dir={tmp_path / stage}", *extra])
        assert e.value.code == 0, capsys.readouterr().err
        runs[stage] = tmp_path / stage
    with open(runs["hvqvae"] / "metrics.csv", newline="") as f:
        used = [float(r["val/top_codes_used"]) for r in csv.DictReader(f) if r.get("val/top_codes_used")]
    assert used and all(1 <= u <= 128 for u in used)
    with open(runs["structure"] / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    nll = [float(r["train/nll_bits"]) for r in rows if r.get("train/nll_bits")]
    assert (
        nll[-1] < nll[0] <= math.log2(128) + 3
    )  # starts a little above uniform over 128 codes (the official init), falls
    assert any(r.get("val/vqvae_mse") for r in rows) and any(r.get("val/nll_bits_hole") for r in rows)
    with open(runs["texture"] / "metrics.csv", newline="") as f:
        assert {"train/pixel", "train/feature_top", "train/feature_bottom", "train/adversarial", "train/disc"} <= set(
            csv.DictReader(f).fieldnames
        )
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.4).astype(np.uint8) * 255).save(tmp_path / "h.png")
    with pytest.raises(SystemExit) as e:
        main(
            [
                "inpaint",
                str(tmp_path / "p.png"),
                "--mask",
                str(tmp_path / "h.png"),
                "--method",
                "dsi",
                "--checkpoint",
                str(runs["texture"]),
                "-n",
                "3",
                "--entropy",
                "--trace",
                "-o",
                str(tmp_path / "out"),
            ]
        )
    assert e.value.code == 0, capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["p_entropy.png", "p_sample0.png", "p_sample1.png", "p_sample2.png", "p_trace.png"]

"""DSI (seed 001): the hierarchical VQ-VAE, the structure generator and its cached sampling, the texture
generator's structural attention, the inpainter with its entropy map, and the three training stages."""

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
from pluralfill.registry import load_inpainter
from pluralfill.models.dsi import CONFIGS, DSI
from pluralfill.models.structure_generator import StructureGenerator, StructureGeneratorConfig
from pluralfill.nn.patch_attention import structural_attention
from pluralfill.sampling.autoregressive import sample_raster

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SMALL = StructureGeneratorConfig(resolution=32, side=8, num_codes=16, hidden=32, residual=16, cond_hidden=8, cond_residual=8,
                                 num_layers=4, attention_layers=2, num_heads=4, output_layers=2, dropout=0.0)  # fmt: skip


def _generator(dtype=torch.float32):
    torch.manual_seed(0)
    model = StructureGenerator(SMALL).to(dtype).eval()
    image, hole = torch.rand(2, 3, 32, 32, dtype=dtype), torch.zeros(2, 1, 32, 32, dtype=dtype)
    hole[:, :, 8:24, 8:24] = 1
    return model, model.condition(image, hole)


def test_paper_sizes():
    with torch.device("meta"):
        dsi = DSI(CONFIGS["dsi"])
    q = dsi.hvqvae.quantize_top
    assert (q.num_codes, q.dim) == (512, 64) and dsi.config.hvqvae.top_side == 32
    s = dsi.config.structure
    assert (s.hidden, s.num_layers, s.attention_layers, s.num_heads, s.output_layers) == (128, 20, 4, 8, 20)
    assert sum(type(m).__name__ == "CausalAttention" for m in dsi.structure.layers) == 4


def test_hvqvae_latents_are_32_and_64_for_256_px():
    from pluralfill.models.hvqvae import HVQVAE, HVQVAEConfig

    vq = HVQVAE(HVQVAEConfig(hidden=16, residual=8, num_codes=32, code_dim=8))
    rec, commitment, (top, bottom) = vq(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert rec.shape == (1, 3, 256, 256) and top.shape == (1, 32, 32) and bottom.shape == (1, 64, 64)
    assert commitment.item() >= 0


def test_structure_generator_is_causal_and_the_cache_is_exact():
    model, cond = _generator(torch.float64)
    tokens = torch.randint(0, 16, (2, 64))
    logits = model(tokens, cond)
    changed = tokens.clone()
    changed[:, 30] = (changed[:, 30] + 1) % 16
    after = model(changed, cond)
    assert torch.equal(after[:, :31], logits[:, :31])  # no position sees its own code or later ones
    assert not torch.equal(after[:, 31:], logits[:, 31:])
    caches = model.new_cache(cond)
    stepped = torch.stack([model.step(tokens[:, p - 1] if p else None, p, cond, caches) for p in range(64)], dim=1)
    torch.testing.assert_close(stepped, logits, rtol=0, atol=1e-12)
    # prefilled with wrong codes from 30 on, then stepped from 30: the wrong codes leave no trace
    caches, wrong = model.new_cache(cond), tokens.clone()
    wrong[:, 30:] = 0
    model.prefill(wrong, cond, caches)
    stepped = torch.stack([model.step(tokens[:, p - 1], p, cond, caches) for p in range(30, 64)], dim=1)
    torch.testing.assert_close(stepped, logits[:, 30:], rtol=0, atol=1e-12)


def test_cached_sampling_draws_the_same_codes_and_keeps_known_ones():
    model, cond = _generator()
    known_codes = torch.randint(0, 16, (1, 64)).expand(3, -1)
    unknown = torch.zeros(64, dtype=torch.bool)
    unknown[18:46] = True

    def draw(cache, seeds=(1, 2, 3), entropy=None):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return sample_raster(model, cond[:1].expand(len(seeds), -1, -1, -1), known_codes[: len(seeds)], unknown, gens,
                             top_k=8, cache=cache, entropy=entropy)  # fmt: skip

    bits = torch.zeros(64)
    fast = draw(True, entropy=bits)
    assert torch.equal(fast, draw(False))
    assert torch.equal(fast[:, ~unknown], known_codes[:, ~unknown])
    assert not torch.equal(fast[0], fast[1])
    assert torch.equal(draw(True, seeds=(3,))[0], fast[2])  # sample i does not depend on the others
    assert (bits[~unknown] == 0).all() and (bits[unknown] > 0).all() and (bits <= math.log2(16) + 1e-5).all()


def test_structural_attention_copies_texture_by_structure():
    values = torch.randn(1, 4, 4, 4)
    structure = torch.randn(1, 8, 4, 4)
    structure[..., 0, 0] = structure[..., 3, 3]  # the missing cell (0, 0) has the structure of the known (3, 3)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., 0, 0] = 1
    out = structural_attention(values, structure, hole, temperature=0.01)
    torch.testing.assert_close(out[..., 0, 0], values[..., 3, 3], atol=1e-4, rtol=1e-4)


def test_structural_feature_scores_rank_codes_by_distance_whatever_the_codebook_scale():
    from pluralfill.train.dsi import structure_scores

    torch.manual_seed(0)
    codebook, features = torch.randn(16, 8), torch.randn(5, 8)
    scores = [structure_scores(torch.cdist(features * s, codebook * s).pow(2)) for s in (1.0, 1e-3)]
    torch.testing.assert_close(scores[0], scores[1])  # a compact codebook is scored like a spread one
    assert torch.equal(scores[0].argmax(-1), torch.cdist(features, codebook).argmin(-1))
    assert scores[0].abs().max() <= 10.0


@pytest.mark.slow
def test_top_latent_carries_the_structure_after_a_little_training(images):
    """With ReLUs the toy VQ-VAE's top codes collapsed and the decoder ignored them, so DSI's samples all
    looked alike (swapping top codes between images changed nothing); with the official ELUs they matter."""
    from pluralfill.models.hvqvae import HVQVAE, HVQVAEConfig
    from pluralfill.train.dsi import decode_structure

    torch.manual_seed(0)
    x = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB").resize((64, 64)))).permute(2, 0, 1)
                     for p in sorted(images.iterdir())[:8]]).float() / 127.5 - 1  # fmt: skip
    model = HVQVAE(HVQVAEConfig(resolution=64, hidden=32, residual=16, num_codes=32, code_dim=16))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(100):
        rec, commitment, _ = model(x)
        loss = F.mse_loss(rec, x) + 0.25 * commitment
        opt.zero_grad()
        loss.backward()
        opt.step()
    codes = model.encode_top(x)
    own, swapped = (F.mse_loss(decode_structure(model, x, c), x) for c in (codes, codes.roll(1, 0)))
    assert swapped > 1.2 * own  # ReLUs: 1.00 (collapsed); ELUs: 1.6-1.7

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
    assert dsi.last_entropy is not None and dsi.last_entropy.width > 300
    b = dsi.inpaint(photo, hole, 2, seed=0, cache=False, top_k=20)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    for s in a:
        assert np.array_equal(np.asarray(s)[~hole], photo[~hole])


def test_structure_only_checkpoint_says_what_is_missing(tmp_path):
    cfg = CONFIGS["dsi-tiny"].model_copy(deep=True)
    cfg.texture = None
    DSI(cfg).save_pretrained(tmp_path / "partial")
    with pytest.raises(PluralfillError, match="no texture generator yet"):
        load_inpainter(tmp_path / "partial")


@pytest.mark.slow
def test_three_stages_train_and_inpaint_from_the_cli(images, tmp_path, photo, capsys):
    from pluralfill.cli import main

    common = [f"data.train={images}", "data.num_workers=0", "batch_size=4", "log_every=1", "val_every=4", "sample_every=4",
              "checkpoint_every=4", "val_batches=1", "optim.warmup_steps=1", "steps=8"]  # fmt: skip
    runs = {}
    for stage, extra in [("hvqvae", ["optim.polyak_decay=0.9"]), ("structure", [f"first_stage={tmp_path / 'hvqvae'}"]),
                         ("texture", [f"first_stage={tmp_path / 'structure'}"])]:  # fmt: skip
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
    assert nll[-1] < nll[0] <= math.log2(128) + 1  # starts near uniform over 128 codes, falls
    assert any(r.get("val/vqvae_mse") for r in rows) and any(r.get("val/nll_bits_hole") for r in rows)
    with open(runs["texture"] / "metrics.csv", newline="") as f:
        assert {"train/pixel", "train/structural", "train/adversarial", "train/disc"} <= set(csv.DictReader(f).fieldnames)
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.4).astype(np.uint8) * 255).save(tmp_path / "h.png")
    with pytest.raises(SystemExit) as e:
        main(["inpaint", str(tmp_path / "p.png"), "--mask", str(tmp_path / "h.png"), "--method", "dsi", "--checkpoint",
              str(runs["texture"]), "-n", "3", "--entropy", "--trace", "-o", str(tmp_path / "out")])  # fmt: skip
    assert e.value.code == 0, capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["p_entropy.png", "p_sample0.png", "p_sample1.png", "p_sample2.png", "p_trace.png"]

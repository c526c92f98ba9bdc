"""The official DSI networks against their own numbers (../shared/fixtures/dsi_official_tiny): the TensorFlow
checkpoint reader, the converter (EMA values from training checkpoints), the VQ-VAE, the condition network and
structure logits, the whole raster sampling loop replayed from the recorded codes (plain and cached), the
texture generator and its attention transfer, every training loss term and the codebook EMA update.

The fixture is NHWC; ours NCHW. Tolerances are float32 round-off: 1e-4 on activations of scale ~1-10 after
dozens of layers (max seen: 1.2e-5 on the logits), relative 1e-5 on the summed cross-entropy (562)."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import SHARED, Replay
from safetensors.torch import load_file
from tf_bundle import write_checkpoint

from pluralfill.errors import PluralfillError
from pluralfill.losses.dsi import texture_discriminator_loss
from pluralfill.pretrained.dsi_official import convert, convert_discriminator
from pluralfill.pretrained.tf_checkpoint import TFCheckpoint

FIXTURE = SHARED / "fixtures" / "dsi_official_tiny"
TOL = {"atol": 1e-4, "rtol": 1e-4}


@pytest.fixture(scope="module")
def model():
    return convert(FIXTURE, resolution=64)


@pytest.fixture(scope="module")
def io():
    return load_file(FIXTURE / "inputs.safetensors") | load_file(FIXTURE / "outputs.safetensors")


def nchw(t):
    return t.permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def close(ours, ref, **tol):
    torch.testing.assert_close(ours, ref, **(tol or TOL))


def test_the_tf_checkpoint_reads_like_the_safetensors_copy():
    ckpt, params = TFCheckpoint(FIXTURE), load_file(FIXTURE / "params.safetensors")
    assert sorted(ckpt.names) == sorted(params)
    for name, value in params.items():
        assert np.array_equal(ckpt.read(name), value.numpy()), name
    train = TFCheckpoint(FIXTURE / "structure_train_ckpt" / "model.ckpt.index")  # a file of the checkpoint names it too
    assert len(train.names) == 1002 and math.isclose(float(train.read("beta1_power")), 0.9**11, rel_tol=1e-6)


def test_converted_config_and_counts(model):
    manifest = json.loads((FIXTURE / "manifest_tiny.json").read_text())
    cfg = model.config
    assert (cfg.resolution, cfg.structure.side, cfg.structure.num_heads, cfg.structure.num_attention) == (64, 8, 2, 2)
    assert (cfg.structure.num_out_resnets, cfg.texture.width, cfg.disc_width, cfg.positions) == (2, 8, 4, "all")
    counts = model.parameter_counts()
    codebooks = 2 * (8 * 32 + 32 + 8 * 32)  # variables in TF, buffers here
    per = manifest["per_network"]

    def total(scope):
        return per[scope]["num_params"]

    assert counts["hvqvae"] + codebooks == total("vq_encoder") + total("vq_decoder")
    assert counts["structure_generator"] == total("structure_condition") + total("structure_pixelcnn")
    assert counts["texture_generator"] == total("texture_generator")


def test_vqvae_features_codes_and_decoder(model, io):
    with torch.no_grad():
        enc = model.hvqvae.encode(nchw(io["image"]))
        close(nhwc(enc["enc_t"]), io["vq/enc_t"])
        close(nhwc(enc["enc_b"]), io["vq/enc_b"])
        assert torch.equal(enc["idx_t"], io["vq/idx_t"]) and torch.equal(enc["idx_b"], io["vq/idx_b"])
        close(nhwc(enc["quant_t"]), io["vq/quant_t"])
        close(nhwc(enc["quant_b"]), io["vq/quant_b"])
        close(model.hvqvae.quantize_top.embedding.t(), io["vq/embed_t"], atol=0, rtol=0)
        close(model.hvqvae.quantize_bottom.embedding.t(), io["vq/embed_b"], atol=0, rtol=0)
        close(0.25 * enc["commitment"], io["vq/commit_loss_weighted"], atol=1e-8, rtol=1e-5)
        close(nhwc(model.hvqvae.decode(enc["quant_t"], enc["quant_b"])), io["vq/dec_b"])
        looked_up = model.hvqvae.decode(
            model.hvqvae.top_vectors(io["vq/idx_t"]),
            model.hvqvae.quantize_bottom.lookup(io["vq/idx_b"]).permute(0, 3, 1, 2),
        )
        close(nhwc(looked_up), io["vq/dec_from_idx"])


def test_condition_and_structure_logits(model, io):
    image, hole = nchw(io["image"]), nchw(io["mask"])
    masked = image * (1 - hole)
    close(nhwc(masked), io["structure/masked_image"], atol=0, rtol=0)
    with torch.no_grad():
        cond = model.structure.condition(masked, hole)
        close(nhwc(cond), io["structure/cond"])
        close(nhwc(model.hvqvae.top_vectors(io["vq/idx_t"])), io["structure/e_given"], atol=0, rtol=0)
        close(nhwc(model.structure(nchw(io["structure/e_given"]), cond)), io["structure/logits_given"])


def _forcing(codes):
    """Draws that make each of the sampler's the code the official run drew there (teacher forcing through
    the shipped sampler): position t of the raster gets Gumbel noise one-hot far above any logit."""
    order = iter(codes.flatten(1).T)  # (L, B): the codes of position t for every row

    def noise(kind, shape):
        return torch.nn.functional.one_hot(next(order), shape[-1]).float() * 1e4

    return Replay(gumbel=noise, rows=codes.shape[0])


def test_the_network_reads_the_code_vectors_written_so_far(model, io):
    """The e fed at steps 0, 1, 9 and 63 of test.py's loop (zeros after the position) and the whole logit map."""
    s, codes = model.config.structure, io["sample/codes"]
    image, hole = nchw(io["image"]), nchw(io["mask"])
    with torch.no_grad():
        cond = model.structure.condition(image * (1 - hole), hole)
        for t in (0, 1, 9, 63):
            before = (torch.arange(s.side**2) < t).reshape(1, 1, s.side, s.side)
            e = model.hvqvae.top_vectors(codes) * before
            close(nhwc(e), io[f"sample/e_input_step{t:02d}"], atol=0, rtol=0)
            close(nhwc(model.structure(e, cond)), io[f"sample/logits_full_step{t:02d}"])


@pytest.mark.parametrize("cache", [False, True])
def test_the_shipped_sampler_replays_the_official_loop(model, io, cache):
    """`sample_raster` (plain: test.py's whole-map pass per position; cached: ours) from an empty map, every
    position in raster order (test.py:168-177): the logits at every step and the codes and vectors written."""
    from pluralfill.sampling.autoregressive import sample_raster

    s, codes = model.config.structure, io["sample/codes"]
    image, hole = nchw(io["image"]), nchw(io["mask"])
    trace = []
    with torch.no_grad():
        cond = model.structure.condition(image * (1 - hole), hole)
        out = sample_raster(
            model.structure,
            cond,
            model.hvqvae.quantize_top.embedding,
            torch.zeros(2, s.side**2, dtype=torch.long),
            torch.ones(s.side**2, dtype=torch.bool),
            _forcing(codes),
            cache=cache,
            trace=trace,
        )
    assert [step.details["position"] for step in trace] == list(range(s.side**2))
    for t, step in enumerate(trace):
        close(step.details["logits"], io["sample/step_logits"][t])
    assert torch.equal(out.reshape(codes.shape), codes)
    close(nhwc(model.hvqvae.top_vectors(out.reshape(codes.shape))), io["sample/e_gen_final"], atol=0, rtol=0)


@pytest.fixture
def dsi_inpainter(model, tmp_path):
    import pluralfill

    model.save_pretrained(tmp_path / "dsi")
    return pluralfill.load_inpainter(tmp_path / "dsi")


@pytest.mark.parametrize("cache", [False, True])
def test_the_inpainter_is_the_official_test_py(dsi_inpainter, io, cache, monkeypatch):
    """`DSIInpainter.sample` (what `inpaint` calls) with the official run's draws: test.py's gen_out per image."""
    assert dsi_inpainter.model.config.positions == "all"  # converted models sample as test.py does
    for b in range(2):
        monkeypatch.setattr(
            "pluralfill.methods.dsi.randomness", lambda seeds, device, b=b: _forcing(io["sample/codes"][b : b + 1])
        )
        x, known = nchw(io["image"])[b : b + 1], 1 - nchw(io["mask"])[b : b + 1]
        with torch.no_grad():
            y = dsi_inpainter.sample(x, known, [0], cache=cache)
        close(nhwc(y), io["texture/out_sampled"][b : b + 1])


def test_inpaint_api_is_the_official_img_gen(dsi_inpainter, io, monkeypatch):
    """The whole user path: `inpaint` on the uint8 pictures gives test.py's img_gen, rounded to 8 bits."""
    for b in range(2):
        monkeypatch.setattr(
            "pluralfill.methods.dsi.randomness", lambda seeds, device, b=b: _forcing(io["sample/codes"][b : b + 1])
        )
        hole = io["mask"][b, :, :, 0].numpy() > 0.5
        (out,) = dsi_inpainter.inpaint(io["image_uint8"][b].numpy(), hole, seed=0)
        ref = (io["texture/complete_sampled"][b] + 1) * 127.5
        assert (torch.from_numpy(np.asarray(out).astype(np.float32)) - ref).abs().max() <= 0.5 + 1e-3


@pytest.mark.parametrize("tag", ["gt", "sampled", "pattern"])
def test_texture_generator_and_attention_transfer(model, io, tag):
    image, hole = nchw(io["image"]), nchw(io["mask"])
    masked = image * (1 - hole)
    structure = {
        "gt": nchw(io["structure/e_given"]),
        "sampled": nchw(io["sample/e_gen_final"]),
        "pattern": model.hvqvae.top_vectors(io["texture/idx_pattern"]),
    }[tag]
    model.texture.keep_attention = True
    try:
        with torch.no_grad():
            out = model.texture(masked, hole, structure)
    finally:
        model.texture.keep_attention = False
    b1, b2, y1, y2 = model.texture.last_attention
    for name, ours in (("b1", b1), ("b2", b2), ("y1", y1), ("y2", y2)):
        close(nhwc(ours), io[f"texture/at_{name}_{tag}"])
    close(nhwc(out), io[f"texture/out_{tag}"])
    close(nhwc(out * hole + masked * (1 - hole)), io[f"texture/complete_{tag}"])
    if tag == "pattern":  # the structure repeats, so the attention really averages patches
        assert (y1 - b1).abs().max() > 1


def test_the_three_training_steps_are_the_official_losses(model, io):
    """The step functions `pluralfill train` runs for dsi-hvqvae, dsi-structure and dsi-texture, on the fixture
    batch with the stages' default weights (the official ones): every recorded loss and its inputs."""
    from pluralfill.train.dsi import (
        HVQVAELoss,
        StructureLoss,
        TextureLoss,
        hvqvae_losses,
        structure_losses,
        structure_step_loss,
        texture_losses,
    )

    image, hole = nchw(io["image"]), nchw(io["mask_train"]).expand(2, -1, -1, -1)
    masked = image * (1 - hole)
    vq = model.hvqvae
    with torch.no_grad():
        terms, rec = hvqvae_losses(vq, image, HVQVAELoss())
        close(nhwc(rec), io["loss/vq_dec_train"])
        close(terms["mse"], io["loss/vq_recons_loss"], atol=1e-7, rtol=1e-5)
        close(HVQVAELoss().commitment * terms["commitment"], io["loss/vq_commit_loss"], atol=1e-8, rtol=1e-5)
        close(terms["loss"], io["loss/vq_loss"], atol=1e-7, rtol=1e-5)
        close(nhwc(model.structure.condition(masked, hole)), io["loss/s_cond"])
        enc = vq.encode(image)
        close(nhwc(model.structure(enc["quant_t"], model.structure.condition(masked, hole))), io["loss/s_logits"])
        ce = structure_losses(model.structure, vq, image, hole, masked)
        close(ce, io["loss/s_ce"])
        # one process, one tower: the summed cross-entropy (the official sums per tower, over 2 GPUs)
        close(structure_step_loss(ce, StructureLoss(towers=1)), io["loss/s_loss"], atol=0, rtol=1e-5)
        close(ce.sum() / (math.log(2) * 64 * 2), io["loss/s_bpd"], atol=0, rtol=1e-5)
    disc = convert_discriminator(FIXTURE).train()  # one power iteration per call, as the official graph
    calls = []

    def critic(completed):  # real and completed in one call, as the official graph; the generator reads rows 2-3
        calls.append(disc(torch.cat([image, completed]), hole.repeat(2, 1, 1, 1)))
        return calls[-1][2:]

    with torch.no_grad():
        terms, total, completed = texture_losses(model.texture, vq, image, hole, masked, TextureLoss(), critic)
    close(nhwc(completed), io["loss/texture_complete"])
    seen = vq.encode(completed)
    close(nhwc(seen["enc_t"]), io["loss/enc_complete_t"])
    close(nhwc(seen["enc_b"]), io["loss/enc_complete_b"])
    close(terms["pixel"], io["loss/ae_loss"], atol=1e-6, rtol=1e-5)
    close(TextureLoss().feature * terms["feature_top"], io["loss/fea_loss1"], atol=1e-6, rtol=1e-5)
    close(TextureLoss().feature * terms["feature_bottom"], io["loss/fea_loss2"], atol=1e-6, rtol=1e-5)
    close(
        TextureLoss().feature * (terms["feature_top"] + terms["feature_bottom"]),
        io["loss/fea_loss"],
        atol=1e-6,
        rtol=1e-5,
    )
    close(terms["adversarial"], io["loss/gen_adv"], atol=1e-6, rtol=1e-5)
    close(total, io["loss/gen_loss"], atol=1e-6, rtol=1e-5)
    (d,) = calls
    close(d, io["loss/dis_out"])
    real, fake = d[:2], d[2:]
    close(F_relu_mean(1 - real), io["loss/hinge_pos"], atol=1e-6, rtol=1e-5)
    close(F_relu_mean(1 + fake), io["loss/hinge_neg"], atol=1e-6, rtol=1e-5)
    close(texture_discriminator_loss(real, fake), io["loss/dis_loss"], atol=1e-6, rtol=1e-5)
    for i, conv in enumerate(disc.convs):
        close(conv.weight_u, io[f"loss/u_after/texture_discriminator/snconv2d_{i}/u"][0], atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        out = model.texture(masked, hole, enc["quant_t"])
    close(nhwc(out), io["loss/texture_out"])


def F_relu_mean(t):
    return torch.relu(t).mean()


def test_codebook_ema_update_two_steps(io):
    model = convert(FIXTURE, resolution=64)
    vq = model.hvqvae.train()
    for step in (1, 2):
        with torch.no_grad():
            commit = 0.25 * vq.encode(nchw(io["image"]))["commitment"]
        close(commit, io[f"codebook_update/commit_loss_weighted_step{step}"], atol=1e-8, rtol=1e-5)
        for q, book in ((0, vq.quantize_top), (1, vq.quantize_bottom)):
            ref = f"codebook_update/step{step}/vq_encoder/vector_quantize_{q}"
            close(book.cluster_size, io[f"{ref}/ema_cluster_size"], atol=1e-4, rtol=1e-5)
            close(book.embedding_avg.t(), io[f"{ref}/ema_dw"], atol=1e-4, rtol=1e-5)
            close(book.embedding.t(), io[f"{ref}/embedding"], atol=1e-5, rtol=1e-4)


def test_training_checkpoint_converts_to_its_ema_values(model):
    """A structure-training checkpoint holds raw, EMA and Adam values: the EMA ones are the released ones."""
    trained = convert(FIXTURE / "structure_train_ckpt", resolution=64)
    assert trained.texture is None  # vq + structure only: the texture stage can go on from it
    ours, released = trained.structure.state_dict(), model.structure.state_dict()
    assert all(torch.equal(ours[k], released[k]) for k in released)
    raw = load_file(FIXTURE / "structure_train_ckpt" / "raw_structure_variables.safetensors")
    assert not np.allclose(raw["structure_condition/wnconv2d_0/b"].numpy(), ours["condition.layers.0.bias"].numpy())


def _copy_checkpoint(tmp_path, name="ckpt"):
    folder = tmp_path / name
    folder.mkdir()
    for f in ("checkpoint", "model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        shutil.copy(FIXTURE / f, folder / f)
    return folder


def test_wrong_truncated_and_foreign_files_get_one_line(tmp_path):
    broken = _copy_checkpoint(tmp_path)
    data = broken / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(PluralfillError, match="is truncated"):
        convert(broken, resolution=64)
    with pytest.raises(PluralfillError, match="no TensorFlow checkpoint"):
        convert(FIXTURE / "params.safetensors")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.ckpt.index").write_bytes(b"\x00" * 100)
    with pytest.raises(PluralfillError, match="not a TensorFlow checkpoint index"):
        convert(garbage / "model.ckpt")
    foreign = write_checkpoint(
        tmp_path / "foreign" / "model.ckpt", {"generator/conv/kernel": np.zeros((3, 3, 3, 8), np.float32)}
    )
    with pytest.raises(PluralfillError, match="is not a DSI checkpoint"):
        convert(foreign)
    params = {k: v.numpy() for k, v in load_file(FIXTURE / "params.safetensors").items()}
    vq_only = write_checkpoint(tmp_path / "vq" / "model.ckpt", {k: v for k, v in params.items() if k.startswith("vq_")})
    with pytest.raises(PluralfillError, match="VQ-VAE training checkpoint"):
        convert(vq_only)
    params["structure_pixelcnn/wnconv2d_5/V"] = params["structure_pixelcnn/wnconv2d_5/V"][:, :, :4]
    with pytest.raises(PluralfillError, match=r"structure_pixelcnn/wnconv2d_5/V is \[2, 2, 4, 8\]"):
        convert(write_checkpoint(tmp_path / "shape" / "model.ckpt", params), resolution=64)
    params = {k: v.numpy() for k, v in load_file(FIXTURE / "params.safetensors").items()} | {
        "extra/thing": np.zeros(3, np.float32)
    }
    with pytest.raises(PluralfillError, match="unknown entries .* extra/thing"):
        convert(write_checkpoint(tmp_path / "extra" / "model.ckpt", params), resolution=64)
    with pytest.raises(PluralfillError, match="does not match dsi"):
        convert(FIXTURE, config="dsi", resolution=64)


def _full_size_checkpoint(folder):
    manifest = json.loads((FIXTURE / "manifest_full_256.json").read_text())
    rng = np.random.default_rng(0)
    tensors = {}
    for name, shape in manifest["variables"].items():
        if name.endswith("/g"):
            tensors[name] = rng.uniform(0.7, 1.3, shape).astype(np.float32)
        elif "/ema_cluster_size" in name:
            tensors[name] = np.ones(shape, np.float32)
        else:
            tensors[name] = (rng.standard_normal(shape, dtype=np.float32) * 0.05).astype(np.float32)
    return write_checkpoint(folder / "model.ckpt", tensors), manifest


@pytest.mark.slow
def test_a_full_size_official_checkpoint_converts_and_inpaints_from_the_cli(tmp_path, photo, capsys):
    """Random values in the official layout (manifest_full_256.json): the converter takes every variable,
    the counts are the published architecture's (76.26 M with the discriminator), and the CLI runs it."""
    from PIL import Image

    prefix, manifest = _full_size_checkpoint(tmp_path / "CelebA-HQ_center")
    code, err = _cli(
        ["convert", "dsi-official", str(prefix.parent), str(tmp_path / "dsi-celeba"), "--config", "dsi"], capsys
    )
    assert code == 0, err
    from pluralfill.models.dsi import DSI

    model = DSI.from_pretrained(tmp_path / "dsi-celeba")
    assert model.config.name == "dsi-celeba-hq-center" and model.config.positions == "all"
    disc = sum(int(np.prod(s)) for n, s in manifest["variables"].items() if n.startswith("texture_discriminator"))
    codebooks = sum(int(np.prod(s)) for n, s in manifest["variables"].items() if "vector_quantize" in n)
    assert sum(model.parameter_counts().values()) + codebooks + disc == manifest["total_params"] == 76_263_558
    Image.fromarray(photo).save(tmp_path / "photo.png")
    hole = np.zeros((256, 256), np.uint8)
    hole[96:160, 96:160] = 255
    Image.fromarray(hole).save(tmp_path / "hole.png")
    code, err = _cli(
        [
            "inpaint",
            str(tmp_path / "photo.png"),
            "--mask",
            str(tmp_path / "hole.png"),
            "--checkpoint",
            str(tmp_path / "dsi-celeba"),
            "-n",
            "2",
            "-o",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo_sample0.png", "photo_sample1.png"]


def _cli(args, capsys) -> tuple[int, str]:
    from pluralfill.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr().err


def test_convert_and_inpaint_from_the_cli(tmp_path, photo, capsys):
    """`pluralfill convert dsi-official` on the fixture's checkpoint, then inpaint with it as a user would."""
    from PIL import Image

    from pluralfill.models.dsi import DSI

    code, err = _cli(["convert", "dsi-official", str(FIXTURE), str(tmp_path / "tiny"), "--resolution", "64"], capsys)
    assert code == 0, err
    assert torch.equal(
        DSI.from_pretrained(tmp_path / "tiny").structure.head.weight_v,
        convert(FIXTURE, resolution=64).structure.head.weight_v,
    )
    code, err = _cli(["convert", "dsi-official", str(FIXTURE), str(tmp_path / "tiny")], capsys)
    assert code == 2 and "output exists" in err
    code, err = _cli(["convert", "dsi-official", str(FIXTURE), str(tmp_path / "x"), "--num-heads", "2"], capsys)
    assert code == 2 and "takes no --num-heads" in err
    Image.fromarray(photo).save(tmp_path / "photo.png")
    hole = np.zeros((256, 256), np.uint8)
    hole[64:192, 64:192] = 255
    Image.fromarray(hole).save(tmp_path / "hole.png")
    code, err = _cli(
        [
            "inpaint",
            str(tmp_path / "photo.png"),
            "--mask",
            str(tmp_path / "hole.png"),
            "--checkpoint",
            str(tmp_path / "tiny"),
            "-n",
            "2",
            "-o",
            str(tmp_path / "out"),
            "--entropy",
        ],
        capsys,
    )
    assert code == 0, err
    a, b = (np.asarray(Image.open(tmp_path / "out" / f"photo_sample{i}.png")) for i in (0, 1))
    assert a.shape == (256, 256, 3) and not np.array_equal(a, b)
    assert np.array_equal(a[hole == 0], np.asarray(Image.open(tmp_path / "photo.png"))[hole == 0])


def test_the_official_recipes_are_the_configs():
    from pathlib import Path

    from pluralfill.models.dsi import CONFIGS
    from pluralfill.registry import load_config
    from pluralfill.train.run import lr_at

    configs = Path(__file__).resolve().parents[1] / "src" / "pluralfill" / "configs"
    vq, st, tx = (load_config(configs / f"dsi-{s}.yaml") for s in ("hvqvae", "structure", "texture"))
    for cfg in (vq, st, tx):
        assert (
            cfg.batch_size == 8
            and cfg.steps == 1_000_000
            and cfg.optim.optimizer == "adam"
            and cfg.optim.grad_clip is None
        )
    assert (vq.optim.lr, vq.optim.betas, vq.optim.polyak_decay, vq.loss.commitment) == (
        1e-4,
        (0.9, 0.999),
        0.9997,
        0.25,
    )
    assert math.isclose(st.optim.lr, 0.18 * 128**-0.5) and st.optim.polyak_decay == 0.9997 and st.loss.towers == 2
    assert CONFIGS["dsi"].structure.dropout == 0.1 and CONFIGS["dsi"].hvqvae.ema_decay == 0.99
    meet = 16000 ** (1.5 / 1.35)  # where the warm-up line meets the decay
    assert lr_at(0, st) == pytest.approx(st.optim.lr * 16000**-1.5)
    assert lr_at(int(meet) - 1000, st) < lr_at(int(meet), st) > lr_at(int(meet) + 1000, st)
    assert lr_at(999_999, st) == pytest.approx(st.optim.lr * 1_000_000**-0.35)
    assert (tx.optim.lr, tx.optim.betas, tx.loss.feature, tx.loss.adversarial, tx.loss.late_start_step) == (
        1e-4,
        (0.5, 0.999),
        0.1,
        1.0,
        0,
    )
    assert st.masks.preset == tx.masks.preset == "center"


def test_one_adam_for_both_texture_networks_counts_both_updates():
    """The official texture script steps the generator and the discriminator through one Adam object."""
    from pluralfill.train.dsi import _shared_adam_steps

    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w], lr=0.1, betas=(0.5, 0.999))
    for t in (1, 3, 5):  # the generator's updates are the odd ones
        _shared_adam_steps(opt, t)
        w.grad = torch.ones(3)
        opt.step()
        assert int(opt.state[w]["step"]) == t

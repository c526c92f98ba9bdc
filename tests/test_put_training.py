"""PUT's training as the official code runs it (../shared/fixtures/put_official_loss_tiny): the stage-1 loss term
by term, the discriminator's step, the codebook update, the scheduler, and the paper-size configs against the
official recipe."""

import json

import pytest
import torch
from conftest import SHARED
from safetensors.torch import load_file

from pluralfill.hub import load_state_dict
from pluralfill.losses.edge_connect import EdgeConnectLoss, absolute_gradients, to_unit
from pluralfill.models.pvqvae import PVQVAE, PVQVAEConfig, masked_input
from pluralfill.nn.discriminators import EdgeConnectDiscriminator
from pluralfill.nn.vgg import VGGFeatures
from pluralfill.pretrained.put_official import rename_pvqvae
from pluralfill.registry import load_config

FIXTURE = SHARED / "fixtures" / "put_official_loss_tiny"
CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "src" / "pluralfill" / "configs"
RTOL = 1e-5  # each loss term, as the fixture's README suggests


@pytest.fixture(scope="module")
def official():
    cfg = PVQVAEConfig(
        resolution=32,
        channels=32,
        code_dim=32,
        num_codes=32,
        num_res_blocks=2,
        restart_dead_codes=False,
        data_init=False,
    )
    model = PVQVAE(cfg)
    state = load_file(SHARED / "fixtures" / "put_official_tiny" / "pvqvae_state_dict.safetensors")
    model.load_state_dict({rename_pvqvae(k, cfg, tpami=False): v for k, v in state.items()})
    vgg = VGGFeatures("vgg19")
    vgg.load_state_dict(load_state_dict(FIXTURE / "vgg19_features.safetensors.xz"))  # the .xz file reads as it is
    disc_state = load_state_dict(FIXTURE / "discriminator.safetensors.xz")
    inputs, out = load_file(FIXTURE / "inputs.safetensors"), load_file(FIXTURE / "outputs.safetensors")
    scalars = json.loads((FIXTURE / "config.json").read_text())["scalars"]
    x = inputs["image"] / 127.5 - 1  # erased already; passing m' again blacks out the same pixels
    return model, vgg, disc_state, x, inputs["mask"].float(), inputs["erase_mask"], out, scalars


def fresh(official):
    model, vgg, disc_state, x, known, erase, out, scalars = official
    pvqvae = PVQVAE(model.config)
    pvqvae.load_state_dict(model.state_dict())
    disc = EdgeConnectDiscriminator()
    disc.load_state_dict({k.removeprefix("discriminator."): v for k, v in disc_state.items()})
    return pvqvae.train(), EdgeConnectLoss(vgg, start_step=5000), disc.train()


def test_official_pvqvae_training_forward(official):
    _, _, _, x, known, erase, out, _ = official
    pvqvae, _, _ = fresh(official)
    for name in (
        "embedding",
        "embedding_avg",
        "cluster_size",
    ):  # the converted codebook is the official one before the step
        assert torch.equal(getattr(pvqvae.quantizer, name), out[f"pvqvae.codebook_before.{name}"]), name
    raw = load_file(FIXTURE / "inputs.safetensors")["image_raw"] / 127.5 - 1
    torch.testing.assert_close(
        masked_input(raw, erase), x, atol=1e-6, rtol=0
    )  # the dataset's erase: m' blacks out pixels
    target = masked_input(x, erase)
    torch.testing.assert_close(masked_input(target, known), out["pvqvae.masked_reference"], atol=0, rtol=0)
    with torch.no_grad():  # the quantizer's output with the codebook before its update
        zq = pvqvae.quantizer.lookup(pvqvae.tokenize(pvqvae.encode(target), pvqvae.token_types(erase)))
    torch.testing.assert_close(zq.permute(0, 3, 1, 2), out["pvqvae.z_q"], atol=1e-5, rtol=0)
    rec, commitment, tokens, target = pvqvae(x, known, erase)
    torch.testing.assert_close(target, out["pvqvae.input_pre"], atol=1e-6, rtol=0)
    torch.testing.assert_close(pvqvae.encode(target), out["pvqvae.feature"], atol=1e-5, rtol=0)
    assert torch.equal(pvqvae.token_types(erase), out["pvqvae.token_type_erase"][:, 0])  # types from m', not m
    assert torch.equal(tokens, out["pvqvae.index"])
    torch.testing.assert_close(rec, out["pvqvae.rec_raw"], atol=1e-5, rtol=0)
    # the EMA update ran in the forward, from the official all-zero counts (the codes blow up: compare relatively)
    for name in ("embedding", "embedding_avg", "cluster_size"):  # the forward updates it the same at either step
        for step in (4999, 5000):
            torch.testing.assert_close(
                getattr(pvqvae.quantizer, name), out[f"step{step}.codebook_after_gen.{name}"], rtol=RTOL, atol=1e-6
            )


@pytest.mark.parametrize("step", [4999, 5000])
def test_every_loss_term_and_the_totals(official, step):
    _, _, _, x, known, erase, out, scalars = official
    pvqvae, loss_fn, disc = fresh(official)
    rec, commitment, _, target = pvqvae(x, known, erase)
    rec.retain_grad()
    assert to_unit(rec).sub(out["loss_in.rec01"]).abs().max() < 1e-6
    assert to_unit(target).sub(out["loss_in.image01"]).abs().max() < 1e-6
    terms = loss_fn.terms(rec, target, known, step, disc)
    names = {
        "pixel": "rec_loss",
        "gradient": "grad_loss",
        "perceptual": "content_loss",
        "style": "style_loss",
        "adversarial": "adv_loss",
    }
    expected = {
        ours: scalars[f"step{step}.gen.{theirs}"]
        for ours, theirs in names.items()
        if f"step{step}.gen.{theirs}" in scalars
    }
    assert set(terms) == set(expected)  # the late terms join at 5000, not before
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=RTOL), name
    total = sum(terms.values()) + commitment
    assert commitment.item() == pytest.approx(scalars[f"step{step}.gen.quantize_loss"], rel=1e-5)
    assert total.item() == pytest.approx(scalars[f"step{step}.gen.loss"], rel=RTOL)
    total.backward()  # what the generator's step gets: d loss / d rec_raw
    grad = out[f"step{step}.gen.grad_total_wrt_rec_raw"]
    torch.testing.assert_close(rec.grad, grad, rtol=RTOL, atol=RTOL * grad.abs().max().item())
    # the discriminator's own step, on [-1, 1] images (official quirk), at zero weight before the start
    d = loss_fn.discriminator_loss(disc, target, rec, step)
    assert d["loss"].item() == pytest.approx(scalars[f"step{step}.disc.loss"], rel=RTOL, abs=1e-12)
    if step == 5000:
        assert d["real"].item() == pytest.approx(scalars["step5000.disc.real_loss"], rel=RTOL)
        assert d["fake"].item() == pytest.approx(scalars["step5000.disc.fake_loss"], rel=RTOL)
    # spectral norm advanced once per discriminator call, as in the official order of calls
    calls = 1 if step == 4999 else 3
    for layer in range(1, 6):
        sn = getattr(disc, f"conv{layer}")[0]
        torch.testing.assert_close(
            sn.weight_u, out[f"step{step}.disc_call{calls}.conv{layer}.u_after"], atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            sn.weight_v, out[f"step{step}.disc_call{calls}.conv{layer}.v_after"], atol=1e-6, rtol=0
        )


@pytest.mark.parametrize("step", [4999, 5000])
def test_the_training_step_is_the_official_generator_step(official, step):
    """`train.put.pvqvae_losses` with the loss `pluralfill train` builds from the stage's default weights (the
    official ones): every term, the total and d total / d rec_raw on the fixture batch."""
    from pluralfill.train.put import PVQVAELoss, pvqvae_loss, pvqvae_losses

    _, vgg, _, x, known, erase, out, scalars = official
    pvqvae, _, disc = fresh(official)
    loss_fn = pvqvae_loss(PVQVAELoss(), vgg)
    total, terms, rec, target = pvqvae_losses(pvqvae, loss_fn, x, known, erase, step, disc, PVQVAELoss().commitment)
    rec.retain_grad()
    names = {
        "pixel": "rec_loss",
        "gradient": "grad_loss",
        "perceptual": "content_loss",
        "style": "style_loss",
        "adversarial": "adv_loss",
        "commitment": "quantize_loss",
    }
    expected = {
        ours: scalars[f"step{step}.gen.{theirs}"]
        for ours, theirs in names.items()
        if f"step{step}.gen.{theirs}" in scalars
    }
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=RTOL), name
    assert total.item() == pytest.approx(scalars[f"step{step}.gen.loss"], rel=RTOL)
    total.backward()
    grad = out[f"step{step}.gen.grad_total_wrt_rec_raw"]
    torch.testing.assert_close(rec.grad, grad, rtol=RTOL, atol=RTOL * grad.abs().max().item())


class DiscriminatorCalls(torch.nn.Module):
    """The discriminator as the losses call it, keeping each call's logits and spectral-norm vectors after it."""

    def __init__(self, disc):
        super().__init__()
        self.disc, self.calls = disc, []

    def forward(self, x):
        logit = self.disc(x)
        sn = {
            f"conv{i}": (
                getattr(self.disc, f"conv{i}")[0].weight_u.clone(),
                getattr(self.disc, f"conv{i}")[0].weight_v.clone(),
            )
            for i in range(1, 6)
        }
        self.calls.append((logit.detach(), sn))
        return logit


@pytest.mark.parametrize("step", [4999, 5000])
def test_every_discriminator_call_of_the_step(official, step):
    """The generator's and the discriminator's losses of one stage-1 step call D in the official order (5000:
    D(rec01) for the generator, then D(real) and D(fake) on [-1, 1]; 4999: D(real) alone, at weight 0): each
    call's logits, sigmoid probabilities and spectral-norm u and v after it."""
    from pluralfill.train.put import PVQVAELoss, pvqvae_loss, pvqvae_losses

    _, vgg, disc_state, x, known, erase, out, _ = official
    pvqvae, _, disc = fresh(official)
    for i in range(1, 6):  # the loaded state is the official one before any call
        conv = getattr(disc, f"conv{i}")[0]
        assert torch.equal(conv.weight_u, out[f"disc.sn.call0.conv{i}.u"]) and torch.equal(
            conv.weight_v, out[f"disc.sn.call0.conv{i}.v"]
        )
    spy = DiscriminatorCalls(disc)
    loss_fn = pvqvae_loss(PVQVAELoss(), vgg)
    _, _, rec, target = pvqvae_losses(pvqvae, loss_fn, x, known, erase, step, spy, PVQVAELoss().commitment)
    loss_fn.discriminator_loss(spy, target, rec, step)
    names = ["disc_real_pm1"] if step == 4999 else ["gen_fake01", "disc_real_pm1", "disc_fake_pm1"]
    assert len(spy.calls) == len(names)
    for k, (name, (logit, sn)) in enumerate(zip(names, spy.calls), start=1):
        ref = f"step{step}.disc_call{k}"
        torch.testing.assert_close(logit, out[f"{ref}.{name}.logit"], atol=1e-5, rtol=RTOL)
        torch.testing.assert_close(torch.sigmoid(logit), out[f"{ref}.{name}.prob"], atol=1e-6, rtol=RTOL)
        for conv, (u, v) in sn.items():
            torch.testing.assert_close(u, out[f"{ref}.{conv}.u_after"], atol=1e-6, rtol=0)
            torch.testing.assert_close(v, out[f"{ref}.{conv}.v_after"], atol=1e-6, rtol=0)


def test_gradient_term_uses_absolute_differences(official):
    *_, out, _ = official
    dx, dy = absolute_gradients(out["loss_in.rec01"])
    torch.testing.assert_close(dx, out["grad.fake_dx"], atol=1e-7, rtol=0)
    torch.testing.assert_close(dy, out["grad.fake_dy"], atol=1e-7, rtol=0)
    dx, dy = absolute_gradients(out["loss_in.image01"])
    torch.testing.assert_close(dx, out["grad.real_dx"], atol=1e-7, rtol=0)
    torch.testing.assert_close(dy, out["grad.real_dy"], atol=1e-7, rtol=0)


class VGGCalls(torch.nn.Module):
    """The VGG as the loss calls it, keeping each call's input and features."""

    def __init__(self, vgg):
        super().__init__()
        self.vgg, self.calls = vgg, []

    def forward(self, x, layers):
        features = self.vgg(x, layers)
        self.calls.append((x.detach(), dict(zip(layers, (f.detach() for f in features)))))
        return features


def test_the_loss_feeds_the_official_vgg_inputs_and_gets_its_features(official):
    """Through the step's loss at 5000: the perceptual term's VGG inputs and its five layers, the style term's
    inputs (times M = 1 - m) and four layers, and the gram matrices (full, diagonal, top-left 64x64 block)."""
    from pluralfill.losses.perceptual import gram
    from pluralfill.train.put import PVQVAELoss, pvqvae_loss, pvqvae_losses

    _, vgg, _, x, known, erase, out, _ = official
    ref = load_state_dict(FIXTURE / "vgg_intermediates.safetensors.xz")
    pvqvae, _, disc = fresh(official)
    loss_fn = pvqvae_loss(PVQVAELoss(), vgg)
    loss_fn.vgg = spy = VGGCalls(vgg)
    with torch.no_grad():
        pvqvae_losses(pvqvae, loss_fn, x, known, erase, 5000, disc)
    (prec, pf_x), (pimg, pf_y), (srec, sf_x), (simg, sf_y) = spy.calls
    tol = {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(prec, out["perc.vgg_in.x_rec01"], **tol)
    torch.testing.assert_close(pimg, out["perc.vgg_in.y_image01"], **tol)
    torch.testing.assert_close(srec, out["style.vgg_in.x_rec01_times_style_mask"], **tol)
    torch.testing.assert_close(simg, out["style.vgg_in.y_image01_times_style_mask"], **tol)
    torch.testing.assert_close(simg, pimg * out["loss_in.style_mask"], atol=1e-7, rtol=0)  # M = 1 - m
    for side, feats in (("x", pf_x), ("y", pf_y)):
        for layer, f in feats.items():
            torch.testing.assert_close(f, ref[f"perc.{side}.{layer}"], **tol)
    for side, feats in (("x", sf_x), ("y", sf_y)):
        for layer, f in feats.items():
            torch.testing.assert_close(f, ref[f"style.{side}.{layer}"], **tol)
            g = gram(f)
            if layer == "relu2_2":
                torch.testing.assert_close(g, ref[f"style.gram.{side}.{layer}"], **tol)
            else:
                torch.testing.assert_close(
                    torch.diagonal(g, dim1=1, dim2=2), ref[f"style.gram_diag.{side}.{layer}"], **tol
                )
                torch.testing.assert_close(g[:, :64, :64], ref[f"style.gram_block64.{side}.{layer}"], **tol)


def test_official_scheduler_reproduces_the_worked_example():
    from pluralfill.train.run import lr_at

    recipe = json.loads((FIXTURE / "recipe.json").read_text())["scheduler_semantics_example"]
    cfg = load_config(
        CONFIGS / "put-ffhq-pvqvae.yaml",
        ["data.train=x", "steps=20", "optim.warmup_steps=5", "optim.lr=2e-4", "optim.min_lr=1e-6"],
    )
    got = [lr_at(k, cfg) for k in range(22)]
    assert got == pytest.approx(recipe["lr_used_at_iteration_0_to_21"], rel=1e-9, abs=1e-12)


def _value(node):
    return node["value"] if isinstance(node, dict) and "value" in node else node


@pytest.mark.parametrize("data, ours", [("ffhq", "ffhq"), ("naturalscene", "places2"), ("imagenet", "imagenet")])
def test_paper_configs_follow_the_official_recipe(data, ours):
    recipe = json.loads((FIXTURE / "recipe.json").read_text())
    one = {k: _value(v) for k, v in recipe["stage1_pvqvae"][data].items()}
    cfg = load_config(CONFIGS / f"put-{ours}-pvqvae.yaml", ["data.train=x"])
    o, lw = cfg.optim, cfg.loss
    assert (o.optimizer, tuple(o.betas), o.weight_decay, o.schedule) == (
        "adam",
        tuple(one["generator_betas"]),
        0.0,
        "put",
    )
    assert (o.lr, o.warmup_steps, o.min_lr) == (
        one["generator_warmup_lr"],
        one["generator_warmup"],
        one["generator_min_lr"],
    )
    assert (o.disc_lr, tuple(o.disc_betas)) == (one["discriminator_warmup_lr"], tuple(one["discriminator_betas"]))
    assert (
        lw.late_start_step == one["disc_start"] == one["content_start"] == one["style_start"] == one["gradient_start"]
    )
    assert (lw.pixel, lw.gradient, lw.perceptual, lw.style, lw.adversarial, lw.commitment) == (
        1.0,
        one["g_gradient_loss_weight"],
        0.1,
        250.0,
        0.1,
        1.0,
    )
    assert cfg.batch_size == one["batch_size_per_gpu"] and o.grad_clip is None
    assert cfg.erase_probability == one["erase_image_with_mask"] and cfg.masks.zero_probability == one["zero_mask"]
    assert cfg.masks.folder_probability == one["use_provided_mask"] and cfg.masks.preset == "put-keep-0-0.5"
    model = cfg.model if isinstance(cfg.model, str) else cfg.model["base"]
    from pluralfill.models.put import CONFIGS as MODELS

    assert not MODELS[model].pvqvae.restart_dead_codes and not MODELS[model].pvqvae.data_init  # the paper has neither

    two = {k: _value(v) for k, v in recipe["stage2_transformer"][data].items()}
    cfg = load_config(CONFIGS / f"put-{ours}-transformer.yaml", ["data.train=x"])
    o = cfg.optim
    assert (o.optimizer, tuple(o.betas), o.weight_decay, o.schedule) == (
        "adamw",
        tuple(two["betas"]),
        two["weight_decay"],
        "put",
    )
    assert (o.lr, o.warmup_steps, o.min_lr) == (two["warmup_lr"], two["warmup"], two["min_lr"])
    assert (
        cfg.batch_size == two["batch_size_per_gpu"]
        and cfg.loss.random_quantize == two["random_quantize"]
        and o.grad_clip is None
    )
    assert cfg.masks.folder_probability == two["use_provided_mask"] and cfg.masks.zero_probability == two["zero_mask"]
    assert cfg.masks.low_resolution_probability == two["mask_low_to_high"]
    assert MODELS[model].transformer.num_layers == two["n_layer"] and MODELS[model].transformer.dim == two["n_embd"]


def _cfg(name, images, run, *extra):
    return load_config(
        CONFIGS / name,
        [
            f"data.train={images}",
            f"run_dir={run}",
            "data.num_workers=0",
            "batch_size=2",
            "log_every=1",
            "val_every=3",
            "sample_every=3",
            "checkpoint_every=3",
            "val_batches=1",
            *extra,
        ],
    )


@pytest.mark.slow
def test_stage1_resumes_the_gan_exactly(images, tmp_path):
    """The discriminator and its optimizer are in last.ckpt: 3 steps, stop, resume to 6 == 6 steps straight."""
    from pluralfill.registry import train

    gan = [
        "loss.adversarial=0.1",
        "loss.perceptual=0",
        "loss.style=0",
        "loss.late_start_step=1",
        "optim.warmup_steps=2",
    ]
    a = train(_cfg("put-tiny-pvqvae.yaml", images, tmp_path / "a", "steps=6", *gan))
    b = train(_cfg("put-tiny-pvqvae.yaml", images, tmp_path / "b", "steps=3", *gan))
    train(_cfg("put-tiny-pvqvae.yaml", images, tmp_path / "b", "steps=6", *gan), resume=b)
    sa, sb = (torch.load(r / "last.ckpt", weights_only=True) for r in (a, b))
    for part in ("model", "disc"):
        for k, v in sa[part].items():
            assert torch.equal(v, sb[part][k]), (part, k)
    assert sa["disc_optimizer"]["state"][0]["step"] == sb["disc_optimizer"]["state"][0]["step"] == 6
    rows = list(__import__("csv").DictReader(open(b / "metrics.csv")))
    assert any(r.get("train/adversarial") for r in rows) and any(r.get("train/disc") for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("override", ["model.transformer.input=quantized", "model.transformer.input=tokens"])
def test_transformer_ablations_train_and_sample(images, tmp_path, override):
    """Liu et al. 2022, Table 2: ^qua0 reads quantized features, ^tok token ids; each is one override and samples."""
    import numpy as np

    from pluralfill import load_inpainter
    from pluralfill.registry import train

    first = train(_cfg("put-tiny-pvqvae.yaml", images, tmp_path / "s1", "steps=2"))
    run = train(_cfg("put-tiny-transformer.yaml", images, tmp_path / "s2", f"first_stage={first}", "steps=3", override))
    put = load_inpainter(run)
    assert put.model.config.transformer.input == override.split("=")[1]
    hole = np.zeros((64, 64), bool)
    hole[16:40, 16:40] = True
    for sampler in ("put", "put-tpami", "parallel"):
        assert (
            len(put.inpaint(np.zeros((64, 64, 3), np.uint8), hole, num_samples=2, seed=0, sampler=sampler, steps=3))
            == 2
        )

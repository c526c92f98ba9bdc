"""The kept keys and values (nn.kv_cache) and the token samplers' cached passes (sampling.cache), through the
networks and the inpainters the CLI calls."""

import numpy as np
import pytest
import torch
from conftest import square_hole
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.methods.maskgit import MaskGITInpainter
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.maskgit import (
    CONFIGS as MASKGIT_CONFIGS,
)
from pluralfill.models.maskgit import (
    MaskGIT,
    MaskGITBert,
    MaskGITTransformer,
    MaskGITTransformerConfig,
    maskgit_tiny_config,
)
from pluralfill.models.put import CONFIGS as PUT_CONFIGS
from pluralfill.models.put import PUT, put_tiny_config
from pluralfill.models.uq_transformer import UQTransformer, UQTransformerConfig
from pluralfill.nn.kv_cache import KeptKV
from pluralfill.sampling.cache import Passes, missing_rows

L = 16
UNKNOWN = torch.zeros(3, L, dtype=torch.bool)
UNKNOWN[0, 5:9], UNKNOWN[1, 6:8], UNKNOWN[2, 5:9] = True, True, True  # rows of different counts: padded rows


def _network(kind: str, layers: int = 2):
    """(run(inputs, cache=None) -> logits, inputs, inputs changed at the hole) of a random-weight network."""
    torch.manual_seed(0)
    tokens = torch.randint(0, 20, (3, L))
    changed = torch.where(UNKNOWN, (tokens + 7) % 20, tokens)
    if kind == "uq":
        t = UQTransformer(
            UQTransformerConfig(seq_len=L, in_dim=8, dim=32, num_layers=layers, num_heads=4, vocab_size=20)
        )
        features = torch.randn(3, L, 8)
        moved = features + UNKNOWN[..., None]
        return (lambda f, cache=None: t.forward_embedded(t.embed(f), cache=cache)), features, moved
    if kind == "uq-guided":  # the conditional TPAMI model: guidance features joined to every position's input
        cfg = UQTransformerConfig(
            seq_len=L, in_dim=24, dim=32, num_layers=layers, num_heads=4, vocab_size=20, guidance_dim=8
        )
        t, guidance = UQTransformer(cfg), torch.randn(1, L, 8)
        features = torch.randn(3, L, 24)
        moved = features + UNKNOWN[..., None]
        return (lambda f, cache=None: t.forward_embedded(t.embed(f), guidance, cache)), features, moved
    if kind == "maskgit":
        cfg = MaskGITTransformerConfig(seq_len=L, vocab_size=20, dim=32, num_layers=layers, num_heads=4)
        t = MaskGITTransformer(cfg).eval()
        return (lambda tok, cache=None: t(tok, cache=cache)), tokens, changed
    cfg = MASKGIT_CONFIGS["maskgit-official-tiny"].transformer.model_copy(
        update={"seq_len": L, "num_codes": 20, "num_layers": layers}
    )
    t = MaskGITBert(cfg).eval()
    label = torch.tensor([1, 4, 9])
    return (lambda tok, cache=None: t(tok, label, cache=cache)), tokens, changed


@pytest.mark.parametrize("kind", ["uq", "uq-guided", "maskgit", "maskgit-official"])
def test_a_partial_pass_over_the_inputs_of_the_full_pass_is_the_full_pass_at_its_rows(kind):
    run, inputs, _ = _network(kind)
    kept = KeptKV()
    with torch.no_grad():
        full = run(inputs, cache=kept.full_pass())
        at = missing_rows(UNKNOWN)
        part = run(inputs, cache=kept.partial_pass(at))
    assert at.tolist()[1] == [6, 7, 6, 6]  # the short row repeats its first position
    torch.testing.assert_close(part, full.gather(1, at[..., None].expand(-1, -1, full.shape[-1])), atol=1e-5, rtol=0)
    torch.testing.assert_close(full, run(inputs), atol=1e-6, rtol=0)  # keeping the keys changes nothing


@pytest.mark.parametrize("kind", ["uq", "maskgit", "maskgit-official"])
def test_with_one_layer_the_known_keys_are_exact_and_with_two_they_are_stale(kind):
    """In the first layer a known position's key depends on its own input only, so a partial pass after the hole's
    inputs change is exact; deeper, the kept keys saw the old hole."""
    for layers, exact in [(1, True), (2, False)]:
        run, inputs, changed = _network(kind, layers)
        kept, at = KeptKV(), missing_rows(UNKNOWN)
        with torch.no_grad():
            run(inputs, cache=kept.full_pass())
            part = run(changed, cache=kept.partial_pass(at))
            truth = run(changed).gather(1, at[..., None].expand(-1, -1, part.shape[-1]))
        assert torch.allclose(part, truth, atol=1e-5) == exact, (kind, layers)


def _put(name: str, layers: int | None = None):
    cfg = PUT_CONFIGS[name] if name != "put-tiny" else put_tiny_config()
    if layers is not None:
        cfg = cfg.model_copy(update={"transformer": cfg.transformer.model_copy(update={"num_layers": layers})})
    torch.manual_seed(0)
    model = PUT(cfg).eval()
    torch.nn.init.normal_(model.transformer.head.weight, std=1.0)  # spread logits: no near-ties between codes
    return PUTInpainter(model)


def _maskgit(name: str, layers: int | None = None):
    cfg = MASKGIT_CONFIGS[name] if name != "maskgit-tiny" else maskgit_tiny_config()
    if layers is not None:
        cfg = cfg.model_copy(update={"transformer": cfg.transformer.model_copy(update={"num_layers": layers})})
    torch.manual_seed(0)
    return MaskGITInpainter(MaskGIT(cfg).eval())


SAMPLERS = [
    ("put-tiny", {"sampler": "put", "tokens_per_step": 3}),
    ("put-tpami-tiny", {"sampler": "put-tpami", "tokens_per_step": 4}),
    ("put-tiny", {"sampler": "parallel", "steps": 5}),
    ("maskgit-tiny", {"steps": 5}),
    ("maskgit-official-tiny", {"steps": 6, "start_step": 2, "class_label": 3}),
]


def _inputs(inpainter, frac=0.3):
    r = inpainter.resolution
    torch.manual_seed(1)
    x = torch.rand(1, 3, r, r) * 2 - 1
    known = torch.from_numpy(1 - square_hole(r, r, frac).astype(np.float32))[None, None]
    return x, known


@pytest.mark.parametrize("name, options", SAMPLERS, ids=[f"{n}-{o.get('sampler', 'parallel')}" for n, o in SAMPLERS])
def test_cache_with_refresh_1_is_the_plain_sampler_and_with_one_layer_any_refresh_is(name, options):
    build = _put if name.startswith("put") else _maskgit
    inpainter = build(name)
    x, known = _inputs(inpainter)
    plain = inpainter.sample(x, known, [0, 1], **options)
    assert torch.equal(inpainter.sample(x, known, [0, 1], cache="known", refresh=1, **options), plain)
    one_layer = build(name, layers=1)
    plain = one_layer.sample(x, known, [0, 1], **options)
    torch.testing.assert_close(one_layer.sample(x, known, [0, 1], cache="known", refresh=100, **options), plain)


def test_cached_passes_skip_the_known_rows_and_their_logits_stay_close_to_exact(monkeypatch):
    """Two layers, a full pass every 3, through the inpainter: the partial passes compute the hole of the last full
    pass only, and `compare` sees each beside the exact pass for the same inputs."""
    import pluralfill.methods.put as put_method

    inpainter = _put("put-tiny")
    x, known = _inputs(inpainter)
    calls, diffs = [], []
    forward = inpainter.model.transformer.forward_embedded

    def counting(x_, guidance=None, cache=None):
        out = forward(x_, guidance, cache)
        calls.append(out.shape[1])
        return out

    def compare(exact, cached, unknown):
        diffs.append((exact[unknown] - cached[unknown]).abs().max().item())

    monkeypatch.setattr(inpainter.model.transformer, "forward_embedded", counting)
    monkeypatch.setattr(put_method, "Passes", lambda cache, refresh: Passes(cache, refresh, compare=compare))
    inpainter.sample(x, known, [0], sampler="parallel", steps=7, cache="known", refresh=3)
    # passes 0, 3, 6 in full; 1, 2, 4, 5 partial (each followed by the exact pass `compare` is given)
    assert [c == 64 for c in calls] == [True, False, True, False, True, True, False, True, False, True, True]
    assert calls[1] == calls[3] == 16 > calls[6] == calls[8] > 0  # the hole at pass 0, then the smaller one at 3
    assert len(diffs) == 4 and 0 < max(diffs) < 1.0


def test_a_sample_under_the_cache_does_not_depend_on_what_it_is_batched_with():
    inpainter = _put("put-tiny")
    r = inpainter.resolution
    x, _ = _inputs(inpainter)
    xs = torch.cat([x, x.flip(-1)])
    knowns = torch.stack([torch.from_numpy(1 - square_hole(r, r, f).astype(np.float32))[None] for f in (0.2, 0.45)])
    options = {"sampler": "parallel", "steps": 6, "cache": "known", "refresh": 3}
    both = inpainter.sample(xs, knowns, [0, 1], **options)
    alone = inpainter.sample(xs[:1], knowns[:1], [0], **options)
    torch.testing.assert_close(both[:1], alone, atol=1e-4, rtol=0)


def test_bad_cache_values_and_an_exported_pass_are_one_line_errors(tmp_path, photo, capsys):
    from pluralfill.cli import main

    folder = tmp_path / "put"
    PUT(put_tiny_config()).save_pretrained(folder)
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.3).astype(np.uint8) * 255).save(tmp_path / "h.png")
    base = ["inpaint", str(tmp_path / "p.png"), "--mask", str(tmp_path / "h.png"), "--checkpoint", str(folder)]
    for extra, code, message in [
        (["--cache", "known", "--refresh", "2", "-n", "2", "-o", str(tmp_path / "ok")], 0, None),
        (["--refresh", "0", "-o", str(tmp_path / "a")], 2, "--refresh 0: should be greater than or equal to 1"),
        (["--cache", "all", "-o", str(tmp_path / "b")], 2, "--cache"),
        (
            ["--cache", "known", "--backend", "onnx", "-o", str(tmp_path / "c")],
            2,
            "--cache known needs --backend torch",
        ),
    ]:
        with pytest.raises(SystemExit) as e:
            main(base + extra)
        err = capsys.readouterr().err
        assert e.value.code == code, err
        if message:
            assert message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["p_sample0.png", "p_sample1.png"]
    with pytest.raises(PluralfillError, match="refresh must be at least 1"):
        Passes("known", refresh=0)

"""MaskGIT: schedules, parallel decoding, the VQGAN tokenizer, MVTM, the Inpainter, and PUT's parallel sampler."""

import math

import numpy as np
import pytest
import torch
from conftest import square_hole
from PIL import Image

from pluralfill.errors import PluralfillError
from pluralfill.geometry import token_hole
from pluralfill.methods.maskgit import MaskGITInpainter
from pluralfill.models.maskgit import MaskGIT, maskgit_tiny_config
from pluralfill.sampling.base import Randomness
from pluralfill.sampling.parallel import SCHEDULES, mask_ratio, parallel_decode
from pluralfill.train.maskgit import mvtm_loss


def test_schedules():
    for s in ("cosine", "linear", "square", "cubic", "arccos", "pow2", "pow0.5", "log", "exp"):
        values = [mask_ratio(s, r / 10, 256) for r in range(1, 11)]
        assert all(a >= b for a, b in zip(values, values[1:])), s  # masks only ever shrink
        assert values[-1] == pytest.approx(1e-6) and 0 < values[0] <= 1  # clipped to [1e-6, 1], as the official code
    assert mask_ratio("square", 0.5) == 0.75 and mask_ratio("linear", 0.3) == pytest.approx(0.7)
    assert mask_ratio("cosine", 0.5) == pytest.approx(math.cos(math.pi / 4), rel=1e-6)
    with pytest.raises(PluralfillError, match="unknown schedule"):
        mask_ratio("zigzag", 0.5)
    assert "pow<k>" in SCHEDULES


def _toy_logits(vocab=16, length=64):
    torch.manual_seed(0)
    table = torch.randn(length, vocab)

    def fn(tokens, unknown):
        return table[None].expand(tokens.shape[0], -1, -1) + 0.1 * unknown[..., None].float()

    return fn


def test_parallel_decoding_follows_the_schedule_and_keeps_known_tokens():
    tokens = torch.randint(0, 16, (3, 64))
    unknown = torch.zeros(3, 64, dtype=torch.bool)
    unknown[0, 10:50] = True
    unknown[1, ::2] = True
    trace = []
    out = parallel_decode(_toy_logits(), tokens, unknown, Randomness(range(3)), steps=8, schedule="cosine", trace=trace)
    assert torch.equal(out[~unknown], tokens[~unknown])  # known tokens never change
    assert len(trace) == 8 and not trace[-1].unknown.any()  # all filled after T steps
    for row in range(2):
        n0 = int(unknown[row].sum())
        hidden = [int(step.unknown[row].sum()) for step in trace[:-1]]
        expected = [
            max(1, min(math.floor(n0 * mask_ratio("cosine", (t + 1) / 8)), h_prev - 1))
            for t, h_prev in zip(range(7), [n0] + hidden)
        ]
        assert hidden == expected
        for before, after in zip(trace, trace[1:]):
            assert not (after.unknown[row] & ~before.unknown[row]).any()  # a revealed token is never masked again
    assert not trace[0].unknown[2].any() and torch.equal(out[2], tokens[2])  # nothing to fill: untouched


def test_parallel_decoding_is_seeded_per_sample():
    tokens, unknown = torch.zeros(3, 64, dtype=torch.long), torch.ones(3, 64, dtype=torch.bool)
    fn = _toy_logits()
    a = parallel_decode(fn, tokens, unknown, Randomness([1, 2, 3]), steps=6)
    b = parallel_decode(fn, tokens[:1], unknown[:1], Randomness([3]), steps=6)
    assert torch.equal(a[2:], b)  # sample 2 alone == sample 2 in a batch
    assert not torch.equal(a[0], a[1])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = MaskGIT(maskgit_tiny_config())
    folder = tmp_path_factory.mktemp("ckpt") / "maskgit-tiny"
    model.save_pretrained(folder)
    return folder, model


def test_tokenizer_and_save_load(tiny):
    folder, model = tiny
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    tokens = model.tokenizer.encode(x)
    assert tokens.shape == (2, 8, 8) and tokens.max() < 256
    assert model.tokenizer.decode(tokens).shape == (2, 3, 64, 64)
    loaded = MaskGIT.from_pretrained(folder)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    with pytest.raises(PluralfillError, match="not 'put'"):
        from pluralfill.models.put import PUT

        PUT.from_pretrained(folder)


def test_mvtm_masks_and_scores_only_masked_tokens(tiny):
    _, model = tiny
    tokens = torch.randint(0, 256, (4, 64))
    seen = {}

    def forward(ids):
        seen["ids"] = ids
        return model.transformer(ids)

    loss, accuracy = mvtm_loss(forward, tokens, model.transformer.mask_id, "cosine", label_smoothing=0.1)
    masked = seen["ids"] == model.transformer.mask_id
    assert masked.any(1).all() and torch.equal(seen["ids"][~masked], tokens[~masked])
    assert torch.isfinite(loss) and 0 <= accuracy <= 1
    loss.backward()


def test_maskgit_inpainter(tiny, photo):
    folder, _ = tiny
    mg = MaskGITInpainter.from_pretrained(folder)
    hole = square_hole(frac=0.4)
    a = mg.inpaint(photo, hole, num_samples=3, seed=0, steps=5, trace=True)
    b = mg.inpaint(photo, hole, num_samples=3, seed=0, steps=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        np.testing.assert_array_equal(np.asarray(x)[~hole], photo[~hole])
    assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))
    assert a.extras["trace"].width > 5 * 64  # one column per step
    # the token hole grows by one token around the pixel hole
    known = torch.ones(1, 1, 64, 64)
    known[..., 24:32, 24:32] = 0  # exactly token (3, 3)
    assert int(token_hole(known, 8, 0).sum()) == 1 and int(token_hole(known, 8, 1).sum()) == 9


def test_soft_edge_blends_a_band_and_keeps_the_rest(tiny, photo):
    folder, _ = tiny
    mg = MaskGITInpainter.from_pretrained(folder)
    hole = square_hole(frac=0.3)
    out = np.asarray(mg.inpaint(photo, hole, seed=0, steps=3, soft_edge=6)[0])
    from pluralfill.geometry import grow

    band = grow(hole, 6) & ~hole
    np.testing.assert_array_equal(out[~grow(hole, 6)], photo[~grow(hole, 6)])
    assert (out[band] != photo[band]).any()


def test_cli_maskgit_trace_and_put_parallel(tiny, tmp_path, photo, capsys):
    from pluralfill.cli import main
    from pluralfill.models.put import PUT, put_tiny_config

    folder, _ = tiny
    put_folder = tmp_path / "put-checkpoint"
    PUT(put_tiny_config()).save_pretrained(put_folder)
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(square_hole(frac=0.3).astype(np.uint8) * 255).save(tmp_path / "h.png")
    for ckpt, extra, out in [
        (folder, ["--steps", "6", "--schedule", "square"], "mg"),
        (put_folder, ["--sampler", "parallel", "--steps", "4"], "put"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(
                [
                    "inpaint",
                    str(tmp_path / "p.png"),
                    "--mask",
                    str(tmp_path / "h.png"),
                    "--checkpoint",
                    str(ckpt),
                    "-n",
                    "2",
                    "--seed",
                    "0",
                    "--trace",
                    "-o",
                    str(tmp_path / out),
                    *extra,
                ]
            )
        assert e.value.code == 0, capsys.readouterr().err
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == ["p_sample0.png", "p_sample1.png", "p_trace.png"]
    with pytest.raises(SystemExit):
        main(
            [
                "inpaint",
                str(tmp_path / "p.png"),
                "--mask",
                str(tmp_path / "h.png"),
                "--method",
                "telea",
                "--steps",
                "3",
                "-o",
                str(tmp_path / "x"),
            ]
        )
    assert "telea has no option 'steps'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--schedule", "zigzag"], "unknown schedule 'zigzag'"),
        (["--steps", "0"], "--steps 0: should be greater than or equal to 1"),
        (["--temperature", "0"], "--temperature 0.0: should be greater than 0"),
    ],
)
def test_bad_decoding_options_are_one_line_errors(tiny, tmp_path, photo, capsys, args, message):
    from pluralfill.cli import main

    folder, _ = tiny
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
                *args,
                "-o",
                str(tmp_path / "o"),
            ]
        )
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_the_halton_order_spreads_each_pass_over_the_grid_and_fills_everything():
    """order="halton" (Besnier et al., ICLR 2025): a pass keeps the next positions of the 2-D Halton sequence,
    whatever their confidence; the first positions are spread over the grid, and every token is filled."""
    from pluralfill.sampling.parallel import halton_order

    order = halton_order(64)
    assert sorted(order.tolist()) == list(range(64))
    first = order[:8]
    rows, cols = first // 8, first % 8
    assert len(set(rows.tolist())) >= 6 and len(set(cols.tolist())) >= 6  # no clump in the first passes
    tokens, unknown = torch.randint(0, 16, (2, 64)), torch.ones(2, 64, dtype=torch.bool)
    trace = []
    out = parallel_decode(_toy_logits(), tokens, unknown, Randomness([0, 1]), steps=8, trace=trace, order="halton")
    kept = ~trace[0].unknown[0]
    assert set(torch.nonzero(kept).flatten().tolist()) == set(order[: int(kept.sum())].tolist())
    assert not trace[-1].unknown.any() and out.shape == (2, 64)
    with pytest.raises(PluralfillError, match="order must be"):
        parallel_decode(_toy_logits(), tokens, unknown, Randomness([0, 1]), steps=8, order="spiral")

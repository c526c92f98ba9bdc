"""Every record of the fixtures is read by a test, or said here why it needs none.

A record counts as read when a test file names it in quotes, or when it belongs to a family of names a test
builds (an f-string or a loop over the file): FAMILIES gives each family's pattern and the piece of test code
that builds those names, which must be in a test file. UNREAD lists the rest with the reason."""

import lzma
import re
from pathlib import Path

import pytest
from conftest import SHARED
from safetensors.torch import load, load_file

TESTS = Path(__file__).resolve().parent
FIXTURES = SHARED / "fixtures"
RECORDS = [  # the files of numbers; parameter files are read whole by the converters' tests
    "put_official_tiny/outputs.safetensors",
    "put_official_tiny/inputs.safetensors",
    "put_official_loss_tiny/outputs.safetensors",
    "put_official_loss_tiny/inputs.safetensors",
    "put_official_loss_tiny/vgg_intermediates.safetensors.xz",
    "put_official_loss_tiny/discriminator.safetensors.xz",
    "put_official_loss_tiny/vgg19_features.safetensors.xz",
    "put_tpami_official_tiny/outputs.safetensors",
    "put_tpami_official_tiny/inputs.safetensors",
    "maskgit_official_tiny/decode.safetensors",
    "maskgit_official_tiny/tokenizer_io.safetensors",
    "maskgit_official_tiny/transformer_io.safetensors",
    "dsi_official_tiny/outputs.safetensors",
    "dsi_official_tiny/inputs.safetensors",
]

FAMILIES = {  # file -> [(regex of record names, test code that builds them)]
    "put_official_loss_tiny/outputs.safetensors": [
        (r"step(4999|5000)\.disc_call\d\..*", 'ref = f"step{step}.disc_call{k}"'),
        (r"step(4999|5000)\.codebook_after_gen\..*", 'out[f"step{step}.codebook_after_gen.{name}"]'),
        (r"pvqvae\.codebook_before\..*", 'out[f"pvqvae.codebook_before.{name}"]'),
        (r"disc\.sn\.call0\.conv\d\.[uv]", 'out[f"disc.sn.call0.conv{i}.u"]'),
        (r"step(4999|5000)\.gen\.grad_total_wrt_rec_raw", 'out[f"step{step}.gen.grad_total_wrt_rec_raw"]'),
    ],
    "put_official_loss_tiny/vgg_intermediates.safetensors.xz": [
        (r"perc\.[xy]\.relu\d_\d", 'ref[f"perc.{side}.{layer}"]'),
        (r"style\.[xy]\.relu\d_\d", 'ref[f"style.{side}.{layer}"]'),
        (r"style\.gram(_diag|_block64)?\.[xy]\.relu\d_\d", 'ref[f"style.gram_block64.{side}.{layer}"]'),
    ],
    "put_official_loss_tiny/discriminator.safetensors.xz": [(r"discriminator\..*", 'k.removeprefix("discriminator.")')],
    "put_official_loss_tiny/vgg19_features.safetensors.xz": [
        (
            r"features\.\d+\.(weight|bias)",
            'vgg.load_state_dict(load_state_dict(FIXTURE / "vgg19_features.safetensors.xz"))',
        )
    ],
    "put_tpami_official_tiny/outputs.safetensors": [
        (
            r"sampler\.\w+\.(draws|final_token|completed|input_embedding|logits|positions)",
            'out[f"sampler.{tag}.logits"]',
        ),
        (r"codec\.decoder\.ref_(pre_inplace|used)\.\d+x\d+", 'f"codec.decoder.ref_'),
        (r"transformer\.(partial_|fully_)?(ce_)?loss", 'out[f"transformer.{name}ce_loss"]'),
    ],
    "maskgit_official_tiny/decode.safetensors": [
        (
            r"(generate|edit)/(input_tokens|final_seqs|images|step_\w+)",
            'g = {k.split("/", 1)[1]: v for k, v in d.items() if k.startswith(run + "/")}',
        ),
    ],
    "dsi_official_tiny/outputs.safetensors": [
        (r"codebook_update/.*", 'ref = f"codebook_update/step{step}/vq_encoder/vector_quantize_{q}"'),
        (
            r"loss/u_after/texture_discriminator/snconv2d_\d/u",
            'io[f"loss/u_after/texture_discriminator/snconv2d_{i}/u"]',
        ),
        (r"sample/(e_input|logits_full)_step\d\d", 'io[f"sample/logits_full_step{t:02d}"]'),
        (r"texture/(at_[by][12]|out|complete)_(gt|sampled|pattern)", 'io[f"texture/at_{name}_{tag}"]'),
    ],
}

UNREAD = {  # file -> {record: why no test reads it}
    "dsi_official_tiny/outputs.safetensors": {
        "vq/idx_t_margin": "information only (README): the distance margin of each top-code assignment, not a "
        "computation",
        "vq/idx_b_margin": "information only (README): the same for the bottom codes",
    },
}


def _names(rel: str) -> list[str]:
    path = FIXTURES / rel
    tensors = load(lzma.open(path).read()) if rel.endswith(".xz") else load_file(path)
    return list(tensors)


@pytest.fixture(scope="module")
def sources() -> str:
    return "".join(p.read_text() for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name)


@pytest.mark.parametrize("rel", RECORDS)
def test_every_record_is_read_or_said_why_not(rel, sources):
    families = FAMILIES.get(rel, [])
    for _, code in families:
        assert code in sources, f"{rel}: no test builds these names any more: {code}"
    unread = UNREAD.get(rel, {})
    names = _names(rel)
    assert set(unread) <= set(names), f"{rel}: UNREAD names records the file does not have"
    missing = [
        n
        for n in names
        if f'"{n}"' not in sources and n not in unread and not any(re.fullmatch(rx, n) for rx, _ in families)
    ]
    assert not missing, f"{rel}: records no test reads and UNREAD does not explain: {missing}"

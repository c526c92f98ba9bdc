import json

import pytest

from pluralfill.bench import bench_put
from pluralfill.cli import main


def test_bench_reports_every_measurement_and_ratio():
    r = bench_put("put-tiny", resolution=64, hole=0.4, samples=2, steps=3, repeats=1)
    assert r["tokens"] == 64 and 20 <= r["missing_tokens"] <= 30
    assert all(v > 0 for v in r["forward_per_s"].values())
    assert r["algorithm1"]["tokens_per_s (1 sample)"] == pytest.approx(r["missing_tokens"] / r["algorithm1"]["s_per_image (1 sample)"])
    assert len(r["ratios"]) == 5 and all(v > 0 for v in r["ratios"].values())  # bf16 vs fp32 only on CUDA
    assert r["pvqvae_images_per_s"] > 0 and r["peak_memory_mb"] > 0


def test_bench_cli_json(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--resolution", "64", "-n", "2", "--steps", "2", "--repeats", "1", "--json"])
    assert e.value.code == 0
    assert "ratios" in json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["bench", "--hole", "1.5"])
    assert "--hole must be in (0, 1)" in capsys.readouterr().err

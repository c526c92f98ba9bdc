"""The benchmark scripts' --quick modes, so that none rots (their full runs are in benchmarks/RESULTS.md)."""

import sys
from pathlib import Path

import yaml
from conftest import SCENES

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _import(name):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def _maskgit_run(folder: Path) -> Path:
    """A run folder as `pluralfill train` leaves it: config.yaml (its held-out split) and best/ (random weights)."""
    from pluralfill.models.maskgit import MaskGIT, maskgit_tiny_config

    MaskGIT(maskgit_tiny_config()).save_pretrained(folder / "best")
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "data": {"train": str(SCENES), "val_fraction": 0.02}}))
    return folder


def test_maskgit_hole_pixels_quick(tmp_path, capsys):
    bench = _import("maskgit_hole_pixels")
    bench.main(["--checkpoint", str(_maskgit_run(tmp_path / "run")), "--quick"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "±" in line]
    assert [r.split(" | ")[0] for r in rows] == ["| missing", "| image (truth)", "| image (object)"]
    assert "+0.0000 ± 0.0000" in rows[0]  # missing against itself


def test_precision_quality_quick(capsys):
    bench = _import("precision_quality")
    results = bench.main(["--quick"])
    assert set(results) == set(bench.CONVERSIONS)
    assert "int8" not in results["DSI (fixture)"] and "int8" in results["PUT TPAMI (fixture)"]
    for per in results.values():
        for p, m in per.items():
            assert m["psnr"][0] >= 30 and 0.9 <= m["agreement"][0] <= 1.0, (p, m)
    assert "| PUT CVPR (fixture) | bf16 (≥ 35 dB, ≥ 98%) |" in capsys.readouterr().out


def test_gpu_script_on_the_cpu_with_tiny_configs(tmp_path):
    """benchmarks/gpu.sh's script, run as the test's dry run: every figure measured, both files written."""
    import json

    bench = _import("gpu")
    bench.main(["--tiny", "--device", "cpu", "--repeats", "1", "--batch", "2", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "gpu.json").read_text())
    for key in ("put_algorithm1_tokens_per_s", "pvqvae_images_per_s", "tpami_s_per_image (batch 1)", "tpami_s_per_sample (batch 2)",
                "maskgit_s_per_image (batch 1)", "maskgit_s_per_sample (batch 2)", "mhtma_s_per_image", "dsi_s_per_image"):
        assert result["measured"][key] > 0, key
    assert set(result["precision"]["models"]) == {"tpami", "maskgit", "dsi"}
    table = (tmp_path / "gpu.md").read_text()
    assert "| put_algorithm1_tokens_per_s |" in table and "| 37.0 |" in table and "torch fp32" in table
    assert (BENCHMARKS / "gpu.sh").read_text().count("benchmarks/gpu.py --device cuda") == 1


def test_cpu_knobs_quick(capsys):
    rows = _import("cpu_knobs").main(["--quick"])
    settings = {r["setting"].split(":")[0] for r in rows}
    assert settings == {"threads", "inference_mode vs no_grad", "channels_last vs NCHW", "plain attention vs SDPA", "torch.compile vs eager"}
    assert all(r["default_s"] > 0 for r in rows)

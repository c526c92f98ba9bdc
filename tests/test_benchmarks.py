"""The benchmark scripts' --quick modes, so that none rots (their full runs are in benchmarks/RESULTS.md)."""

import sys
from pathlib import Path

import numpy as np
import pytest
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
    (folder / "config.yaml").write_text(
        yaml.safe_dump({"seed": 0, "data": {"train": str(SCENES), "val_fraction": 0.02}})
    )
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
    assert "| PUT CVPR (fixture) | bf16 (≥ 35 dB, TV ≤ 0.02) |" in capsys.readouterr().out


def test_gpu_script_on_the_cpu_with_tiny_configs(tmp_path):
    """benchmarks/gpu.sh's script, run as the test's dry run: every figure measured, both files written."""
    import json

    bench = _import("gpu")
    bench.main(["--tiny", "--device", "cpu", "--repeats", "1", "--batch", "2", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "gpu.json").read_text())
    for key in (
        "put_algorithm1_tokens_per_s",
        "pvqvae_images_per_s",
        "tpami_s_per_image (batch 1)",
        "tpami_s_per_sample (batch 2)",
        "maskgit_s_per_image (batch 1)",
        "maskgit_s_per_sample (batch 2)",
        "mhtma_s_per_image",
        "dsi_s_per_image",
    ):
        assert result["measured"][key] > 0, key
    assert set(result["precision"]["models"]) == {"tpami", "put", "maskgit", "dsi"}
    assert result["precision"]["models"]["tpami"]["runs"]["torch fp32 cache/4"]["cache_tv_per_pass"]
    table = (tmp_path / "gpu.md").read_text()
    assert "| put_algorithm1_tokens_per_s |" in table and "| 37.0 |" in table and "torch fp32" in table
    assert (BENCHMARKS / "gpu.sh").read_text().count("benchmarks/gpu.py --device cuda") == 1


def test_cpu_knobs_quick(capsys):
    rows = _import("cpu_knobs").main(["--quick"])
    settings = {r["setting"].split(":")[0] for r in rows}
    assert settings == {
        "threads",
        "inference_mode vs no_grad",
        "channels_last vs NCHW",
        "plain attention vs SDPA",
        "torch.compile vs eager",
    }
    assert all(r["default_s"] > 0 for r in rows)


@pytest.mark.slow
def test_webapp_responsiveness_quick(capsys):
    import shutil

    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed")
    results = _import("webapp_responsiveness").main(["--quick", "--size", "1200x900"])
    small, large = results["256x256"], results["1200x900"]
    assert large["layer MB"] == pytest.approx(1200 * 900 * 4 / 2**20)
    assert 0 < large["history MB"] < large["layer MB"]  # dirty rectangles, not whole layers
    assert all(v > 0 for k, v in small.items() if not k.endswith("MB"))
    assert "| stroke move ms |" in capsys.readouterr().out


# The seeds' experiments (benchmarks/RESULTS.md): each --quick run trains every model it needs for 2 steps. They share
# one runs folder, as the full runs do: the MHTMA row of the ablations is Table IV's MHTMA, its PUT runs are
# put_diversity's.
@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    return tmp_path_factory.mktemp("toy") / "runs"


def _quick(name, runs, figures, *extra):
    return _import(name).main(["--quick", "--runs", str(runs), "--figures", str(figures), *extra])


@pytest.mark.slow
def test_mhtma_ablations_quick(toy_runs, tmp_path, capsys):
    bench = _import("mhtma_ablations")
    result = _quick("mhtma_ablations", toy_runs, tmp_path)
    assert list(result["scores"]) == [*bench.TABLE_I, *bench.TABLE_II]
    for per in result["scores"].values():
        assert all(len(v) == 2 and np.isfinite(v).all() for v in per.values())
        assert 0 < np.mean(per["psnr"]) < 100 and np.mean(per["batches/min"]) > 0
    heads = {name: np.asarray(t).shape[-1] for name, t in result["temperatures"].items()}
    assert heads == {bench.MHTMA: 2, "single-head temperature": 1}
    assert list(result["branches"]) == list(bench.BRANCHES)
    assert (tmp_path / "mhtma_temperatures.png").stat().st_size > 0 and (
        tmp_path / "mhtma_branches.jpg"
    ).stat().st_size > 0
    out = capsys.readouterr().out
    assert "| no attention |" in out and "| WGAN-GP |" in out and "| HAL-SN |" in out


@pytest.mark.slow
def test_mhtma_mask_ratios_quick(toy_runs, tmp_path):
    bench = _import("mhtma_mask_ratios")
    scores = _quick("mhtma_mask_ratios", toy_runs, tmp_path)
    assert list(scores) == [*bench.CLASSICAL, *bench.LEARNED]
    for per in scores.values():
        assert [len(b) for b in per["psnr"]] == [2, 2]  # 2 bins, 2 seeds
    # the smallest holes are the easiest for every method
    assert all(
        np.mean(per["psnr"][0]) > np.mean(per["psnr"][1]) for name, per in scores.items() if name in bench.CLASSICAL
    )
    assert (tmp_path / "mhtma_mask_ratios.png").is_file() and (tmp_path / "mhtma_mask_ratios_examples.jpg").is_file()


@pytest.mark.slow
def test_put_diversity_quick(toy_runs, tmp_path):
    bench = _import("put_diversity")
    table = _quick("put_diversity", toy_runs, tmp_path)
    assert list(table) == list(bench.TOP_K)
    for per in table.values():
        assert list(per) == [1, 2] and per[1]["diversity"] == [0.0, 0.0]
        assert all(
            b >= m - 1e-9 for b, m in zip(per[2]["best"], per[2]["mean"])
        )  # best of two is never below their mean
    assert (tmp_path / "put_diversity.png").is_file() and (tmp_path / "put_topk_samples.jpg").is_file()


@pytest.mark.slow
def test_cache_quality_quick(toy_runs, capsys):
    results = _import("cache_quality").main(["--quick", "--runs", str(toy_runs), "--refresh", "3"])
    assert len(results) == 3
    for rows in results.values():
        assert list(rows)[:2] == ["fp32", "fp32 cache/3"] and "int8 cache/3" in rows
        assert rows["fp32"][0]["drift"] is None and 0 <= rows["fp32 cache/3"][0]["drift"] < 1
    assert "| toy MaskGIT (runs/toy/maskgit) | int8 cache/3 |" in capsys.readouterr().out


@pytest.mark.slow
def test_dsi_holes_structure_quick(toy_runs, tmp_path):
    scores = _quick("dsi_holes_structure", toy_runs, tmp_path)
    assert set(scores) == {(k, t) for k in ("random", "centre", "truth") for t in ("centre", "random")}
    assert len(scores["random", "centre"]["diversity-pixel"]) == 2 and len(scores["truth", "random"]["psnr"]) == 1
    assert (tmp_path / "dsi_holes_structure.jpg").is_file()


@pytest.mark.slow
def test_sketch_steering_quick(toy_runs, tmp_path):
    col = _quick("sketch_steering", toy_runs, tmp_path)
    assert all(len(v) == 2 for v in col.values())
    assert all(0 <= r <= 1 for r in col["recall with"] + col["recall without"])
    assert (tmp_path / "mhtma_sketch_steering.jpg").is_file()


def test_line_recall_and_verdict():
    """The two measures the experiments' verdicts rest on."""
    sketch_steering, common = _import("sketch_steering"), _import("common")
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255  # one vertical edge at x = 16
    lines = np.zeros((32, 32), bool)
    lines[4:28, 16] = True
    assert sketch_steering.line_recall(image, lines) == 1.0
    lines = np.zeros((32, 32), bool)
    lines[16, 4:12] = True  # far from the edge
    assert sketch_steering.line_recall(image, lines) == 0.0
    assert common.verdict([10.0, 10.1, 9.9], [8.0, 8.1, 7.9]) == "reproduced in direction"
    assert common.verdict([8.0, 8.1, 7.9], [10.0, 10.1, 9.9]) == "not reproduced"
    assert common.verdict([1.0, 3.0, 2.0], [2.1, 0.9, 3.1]) == "within noise"
    assert common.verdict([1.0], [2.0], higher_is_better=False) == "reproduced in direction"

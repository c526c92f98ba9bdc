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

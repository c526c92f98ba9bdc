import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SCENES = SHARED / "data" / "scenes256" / "train"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads the user's cache or reaches the network for weights."""
    monkeypatch.setenv("PLURALFILL_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("PLURALFILL_OFFLINE", "1")


@pytest.fixture
def photo() -> np.ndarray:
    """A real 256x256 photo from the shared data set."""
    return np.asarray(Image.open(SCENES / "skimage-coffee_000.jpg").convert("RGB")).copy()


@pytest.fixture
def photos() -> list[np.ndarray]:
    names = sorted(os.listdir(SCENES))[::200][:6]
    return [np.asarray(Image.open(SCENES / n).convert("RGB")).copy() for n in names]


def run_cli(args, capsys) -> tuple[int, str, str]:
    """`pluralfill ARGS` in this process, as a user types it: (exit code, stdout, stderr)."""
    from pluralfill.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def square_hole(h=256, w=256, frac=0.5) -> np.ndarray:
    hole = np.zeros((h, w), bool)
    sh, sw = int(h * frac), int(w * frac)
    hole[(h - sh) // 2 : (h + sh) // 2, (w - sw) // 2 : (w + sw) // 2] = True
    return hole


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A dozen real photos (symlinks into the shared data) for training tests, so they read little."""
    d = tmp_path_factory.mktemp("images")
    for p in sorted(SCENES.iterdir())[::130][:12]:
        (d / p.name).symlink_to(p)
    return d


class Replay:
    """Fixed draws in place of a sampling call's random ones (a sampling.base.Randomness for `rows` samples):
    gumbel(kind, shape) and multinomial(probs), as the authors' code drew them."""

    def __new__(cls, gumbel=None, multinomial=None, rows: int = 1):
        from pluralfill.sampling.base import Randomness

        class _Replay(Randomness):
            def gumbel(self, shape, kind="sample"):
                return gumbel(kind, shape)

            def multinomial(self, probs, at=None, length=None):
                if at is None:
                    return multinomial(probs)
                # the authors drew at every position: theirs at `at`, from the same rows (a uniform row elsewhere
                # takes as much of a stream as any, for torch draws each row of a one-sample multinomial alone)
                whole = probs.new_ones(probs.shape[0], length, probs.shape[-1])
                whole.scatter_(1, at[..., None].expand_as(probs), probs)
                return multinomial(whole).gather(1, at)

        return _Replay(range(rows))

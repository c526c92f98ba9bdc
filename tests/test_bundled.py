"""The bundled learned model (put-scenes-small): it ships in the package, loads by name, and handles photos of
any size; and the default method (pluralistic PatchMatch) is what `inpaint` and `demo` run without --method."""

import json

import numpy as np
import pytest
from conftest import square_hole
from PIL import Image

import pluralfill
from pluralfill.cli import app
from pluralfill.errors import PluralfillError
from pluralfill.methods.put import PUTInpainter
from pluralfill.models.put import PUT, put_tiny_config

BUNDLED = "put-scenes-small"


@pytest.fixture(scope="module")
def bundled():
    return pluralfill.load_inpainter(BUNDLED)


def test_the_bundled_model_ships_in_the_package_and_the_default_comes_first():
    folder = pluralfill.bundled_models()[BUNDLED]
    assert {"config.json", "model.safetensors", "MODEL_CARD.md", "sampling.json"} <= {p.name for p in folder.iterdir()}
    assert (folder / "model.safetensors").stat().st_size < 30e6
    assert pluralfill.DEFAULT_METHOD == "patchmatch-plural" == pluralfill.available_methods()[0]
    assert BUNDLED in pluralfill.available_methods()


def test_bundled_model_gives_different_seeded_samples_and_keeps_known_pixels(bundled, photo):
    hole = square_hole(frac=0.4)
    a = [np.asarray(s) for s in bundled.inpaint(photo, hole, num_samples=3, seed=1)]
    b = np.asarray(bundled.inpaint(photo, hole, num_samples=1, seed=1, first_sample=2)[0])
    assert np.abs(a[2].astype(int) - b).mean() < 0.5  # sample i reproducible on its own (batch rounding aside)
    for s in a:
        np.testing.assert_array_equal(s[~hole], photo[~hole])
    assert np.abs(a[0][hole].astype(int) - a[1][hole]).mean() > 1  # visibly different fills
    # a learned fill is closer to the photo than a flat grey
    assert np.abs(a[0][hole].astype(int) - photo[hole]).mean() < np.abs(128 - photo[hole].astype(int)).mean()


def test_bundled_model_on_a_4000x3000_photo_keeps_every_known_pixel(bundled, photo):
    big = np.asarray(Image.fromarray(photo).resize((4000, 3000), Image.Resampling.BILINEAR))
    hole = np.zeros(big.shape[:2], bool)
    hole[1400:1480, 2000:2100] = True
    out = np.asarray(bundled.inpaint(big, hole, seed=0)[0])
    assert out.shape == big.shape
    np.testing.assert_array_equal(out[~hole], big[~hole])
    assert np.abs(out[hole].astype(int) - big[hole]).mean() < 40  # the fill fits its surroundings


def test_sampling_json_sets_default_options_and_the_caller_wins(tmp_path, photo):
    folder = tmp_path / "model"
    PUT(put_tiny_config()).save_pretrained(folder)
    (folder / "sampling.json").write_text(json.dumps({"sampler": "parallel", "steps": 2}))
    inpainter = pluralfill.load_inpainter(folder)
    assert inpainter.default_options == {"sampler": "parallel", "steps": 2}
    calls, sample = [], inpainter.sample

    def spy(x, known, seeds, trace=None, **options):
        calls.append(options)
        return sample(x, known, seeds, trace=trace, **options)

    inpainter.sample = spy
    small, hole = np.ascontiguousarray(photo[::4, ::4]), square_hole(64, 64, 0.3)
    inpainter.inpaint(small, hole, seed=0)
    inpainter.inpaint(small, hole, seed=0, sampler="put")
    assert [(c["sampler"], c["steps"]) for c in calls] == [("parallel", 2), ("put", 2)]
    (folder / "sampling.json").write_text(json.dumps({"stepz": 2}))
    with pytest.raises(PluralfillError, match="no option 'stepz'"):
        PUTInpainter.from_pretrained(folder)


def test_inpaint_without_method_uses_the_default(tmp_path, photo):
    from typer.testing import CliRunner

    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(square_hole(frac=0.3)).save(tmp_path / "hole.png")
    result = CliRunner().invoke(
        app,
        [
            "inpaint",
            str(tmp_path / "photo.png"),
            "--mask",
            str(tmp_path / "hole.png"),
            "-n",
            "2",
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo_sample0.png", "photo_sample1.png"]
    assert pluralfill.DEFAULT_METHOD in result.output


def test_demo_shows_the_default_and_says_how_to_get_a_learned_model(tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "demo"), "-n", "3"])
    assert result.exit_code == 0, result.output
    assert pluralfill.DEFAULT_METHOD in result.output and str(tmp_path / "demo" / "coffee_grid.png") in result.output
    assert "pluralfill models add" in result.output and "--method" in result.output
    grid = np.asarray(Image.open(tmp_path / "demo" / "coffee_grid.png"))
    assert grid.shape[1] > 3 * 256

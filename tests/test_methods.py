import numpy as np
import pytest
from conftest import square_hole
from PIL import Image

import pluralfill
from pluralfill.errors import PluralfillError
from pluralfill.geometry import box_around_hole
from pluralfill.methods.base import sample_seed


@pytest.mark.parametrize("name", ["patchmatch", "telea", "navier-stokes"])
def test_known_pixels_kept_and_hole_filled(photo, name):
    hole = square_hole(frac=0.5)
    inpainter = pluralfill.load_inpainter(name)
    out = inpainter.inpaint(photo, hole, num_samples=2, seed=0)
    assert all(isinstance(o, Image.Image) for o in out)
    assert len(out) == (1 if inpainter.deterministic else 2)
    a = np.asarray(out[0])
    np.testing.assert_array_equal(a[~hole], photo[~hole])
    # the fill is closer to the image than a flat grey would be
    assert np.abs(a[hole].astype(int) - photo[hole]).mean() < np.abs(128 - photo[hole].astype(int)).mean()


def test_patchmatch_samples_are_seeded_and_individually_reproducible(photo):
    pm = pluralfill.load_inpainter("patchmatch")
    photo, hole = np.ascontiguousarray(photo[::2, ::2]), square_hole(128, 128, frac=0.4)
    a = [np.asarray(x) for x in pm.inpaint(photo, hole, num_samples=3, seed=5)]
    b = [np.asarray(x) for x in pm.inpaint(photo, hole, num_samples=3, seed=5)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])  # different samples
    assert sample_seed(5, 1) == sample_seed(5, 1) != sample_seed(5, 0)


def test_large_image_works_on_a_crop_and_keeps_every_known_pixel(photo):
    big = np.asarray(Image.fromarray(photo).resize((1200, 900)))
    hole = np.zeros(big.shape[:2], bool)
    hole[400:440, 600:660] = True
    box = box_around_hole(hole)
    assert (box.y1 - box.y0) * (box.x1 - box.x0) < big.shape[0] * big.shape[1] / 20
    out = np.asarray(pluralfill.load_inpainter("patchmatch").inpaint(big, hole, seed=0)[0])
    np.testing.assert_array_equal(out[~hole], big[~hole])


def test_inpainter_rejects_bad_input(photo):
    pm = pluralfill.load_inpainter("telea")
    with pytest.raises(PluralfillError, match="nothing to fill"):
        pm.inpaint(photo, np.zeros(photo.shape[:2], bool))
    with pytest.raises(PluralfillError, match="every pixel"):
        pm.inpaint(photo, np.ones(photo.shape[:2], bool))
    with pytest.raises(PluralfillError, match="hole is 10x10"):
        pm.inpaint(photo, np.ones((10, 10), bool))
    with pytest.raises(PluralfillError, match="unknown method"):
        pluralfill.load_inpainter("no-such-method")


def test_composite_keeps_known_pixels_and_no_composite_keeps_the_methods_own(photo):
    """A learned model redraws the whole window (its decoder changes known pixels too): pasting back keeps them
    exactly; composite=False returns what the model made there. Pillow inputs work like arrays."""
    import torch

    from pluralfill.methods.put import PUTInpainter
    from pluralfill.models.put import PUT, put_tiny_config

    torch.manual_seed(0)
    put = PUTInpainter(PUT(put_tiny_config(resolution=64)))
    hole = square_hole(frac=0.3)
    pasted = np.asarray(put.inpaint(Image.fromarray(photo), Image.fromarray(hole), seed=1, tokens_per_step=8)[0])
    own = np.asarray(put.inpaint(photo, hole, seed=1, composite=False, tokens_per_step=8)[0])
    np.testing.assert_array_equal(pasted[~hole], photo[~hole])
    np.testing.assert_array_equal(own[hole], pasted[hole])  # the same fill either way
    ring = square_hole(frac=0.5) & ~hole  # known pixels inside the model's window
    assert np.abs(own[ring].astype(int) - photo[ring]).mean() > 5  # random weights redraw them visibly


def test_describe():
    d = pluralfill.describe("patchmatch")
    assert d["name"] == "patchmatch" and d["parameters"] == {}
    assert set(pluralfill.available_methods()) >= {"patchmatch", "telea", "navier-stokes"}


def test_a_run_can_be_drawn_in_pieces(photo):
    pm = pluralfill.load_inpainter("patchmatch")
    small, hole = np.ascontiguousarray(photo[::2, ::2]), square_hole(128, 128, 0.3)
    whole = pm.inpaint(small, hole, num_samples=3, seed=9)
    piece = pm.inpaint(small, hole, num_samples=1, seed=9, first_sample=2)
    np.testing.assert_array_equal(np.asarray(whole[2]), np.asarray(piece[0]))

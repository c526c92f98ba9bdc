import numpy as np
import pytest
from PIL import Image

from pluralfill import io as pio
from pluralfill.errors import PluralfillError


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tif"])
def test_reads_every_format_as_rgb(tmp_path, photo, ext):
    path = tmp_path / f"x{ext}"
    Image.fromarray(photo).save(path)
    out = pio.read_image(path)
    assert out.shape == photo.shape and out.dtype == np.uint8
    tol = 12 if ext in (".jpg", ".webp") else 0  # lossy formats
    assert np.abs(out.astype(int) - photo).mean() <= tol


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = pio.read_image(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)
    assert out[:15].mean() > 200 and out[25:].mean() < 50  # the white half is now on top


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., 0] = 255
    a[:4, :, 3] = 255  # top half opaque red, bottom transparent
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    out = pio.read_image(tmp_path / "a.png")
    assert (out[:4] == [255, 0, 0]).all() and (out[4:] == 255).all()


def test_grayscale_and_16bit_become_8bit_rgb(tmp_path):
    g = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(g).save(tmp_path / "g16.png")
    out = pio.read_image(tmp_path / "g16.png")
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], np.round(g / 257).astype(np.uint8))
    Image.fromarray(np.full((4, 4), 77, np.uint8)).save(tmp_path / "l.png")
    assert (pio.read_image(tmp_path / "l.png") == 77).all()


def test_hole_threshold_and_invert(tmp_path):
    m = np.array([[0, 127, 128, 255]], np.uint8)
    Image.fromarray(m).save(tmp_path / "m.png")
    assert pio.read_hole(tmp_path / "m.png").tolist() == [[False, False, True, True]]
    assert pio.read_hole(tmp_path / "m.png", invert=True).tolist() == [[True, True, False, False]]


def test_hole_size_mismatch_names_both_sizes_unless_resized(tmp_path):
    Image.fromarray(np.full((10, 20), 255, np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(PluralfillError, match=r"20x10.*40x30"):
        pio.read_hole(tmp_path / "m.png", image_size=(40, 30))
    hole = pio.read_hole(tmp_path / "m.png", image_size=(40, 30), resize=True)
    assert hole.shape == (30, 40) and hole.all()


def test_empty_and_full_holes():
    with pytest.raises(PluralfillError, match="nothing to fill"):
        pio.check_hole(np.zeros((4, 4), bool), allow_full=True)
    with pytest.raises(PluralfillError, match="every pixel"):
        pio.check_hole(np.ones((4, 4), bool), allow_full=False)
    pio.check_hole(np.ones((4, 4), bool), allow_full=True)


def test_bad_files_give_one_line_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    for path, pattern in [
        (tmp_path / "bad.png", "not an image"),
        (tmp_path / "trunc.png", "cannot read"),
        (tmp_path / "missing.png", "not found"),
        (tmp_path, "directory"),
    ]:
        with pytest.raises(PluralfillError, match=pattern) as e:
            pio.read_image(path)
        assert "\n" not in str(e.value)
    with pytest.raises(PluralfillError, match="max-pixels"):
        pio.read_image(tmp_path / "ok.png", max_pixels=1000)


def test_writes_are_atomic_and_never_clobber(tmp_path, photo):
    path = tmp_path / "out" / "a.png"
    pio.write_image(path, photo)
    before = path.read_bytes()
    with pytest.raises(PluralfillError, match="--overwrite"):
        pio.write_image(path, photo[::-1])
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temp file left behind
    pio.write_image(path, photo[::-1], overwrite=True)
    assert path.read_bytes() != before
    with pytest.raises(PluralfillError, match="--overwrite"):
        pio.check_writable([path], overwrite=False)


def test_find_jobs_pairs_lama_layout_mask_dir_and_one_mask(tmp_path, photo):
    d = tmp_path / "in"
    d.mkdir()
    for n in ("a", "b", "c"):
        Image.fromarray(photo).save(d / f"{n}.png")
    pio.write_hole(d / "a_mask.png", np.ones((256, 256), bool))
    pio.write_hole(d / "b_mask000.png", np.ones((256, 256), bool))
    pio.write_hole(d / "b_mask001.png", np.ones((256, 256), bool))
    jobs, unpaired = pio.find_jobs([d])
    assert sorted(j.name for j in jobs) == ["a", "b_mask000", "b_mask001"]
    assert [p.name for p in unpaired] == ["c.png"]

    md = tmp_path / "masks"
    md.mkdir()
    pio.write_hole(md / "c.png", np.ones((256, 256), bool))
    jobs, unpaired = pio.find_jobs([d], mask_dir=md)
    assert [j.name for j in jobs] == ["c"] and len(unpaired) == 2

    jobs, unpaired = pio.find_jobs([d / "a.png", d / "c.png"], mask=d / "a_mask.png")
    assert [j.name for j in jobs] == ["a", "c"] and not unpaired

import numpy as np
import pytest

from pluralfill.errors import PluralfillError
from pluralfill.masks import PRESETS, STANDARD_BINS, generate_hole, parse_ratio


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_deterministic_and_varied(name):
    a = [generate_hole(name, 256, seed=3, index=i) for i in range(4)]
    b = [generate_hole(name, 256, seed=3, index=i) for i in range(4)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == bool and x.shape == (256, 256) and 0 < x.mean() < 1
    if name != "center":
        assert not np.array_equal(a[0], a[1])
    # index i does not depend on which indices were made before it
    np.testing.assert_array_equal(generate_hole(name, 256, seed=3, index=2), a[2])


def test_presets_follow_their_sources():
    assert PRESETS["center"].parts[0].side == 128
    assert generate_hole("center", 256).mean() == 0.25
    stroke = PRESETS["deepfill"].parts[0]
    assert (stroke.strokes, stroke.vertices, stroke.width) == ((1, 3), (4, 11), (12, 40))
    assert PRESETS["mhtma"].parts[1].side == 96
    put = PRESETS["put"].parts[0]
    assert (put.vertices, put.width) == ((5, 10), (10, 30))
    for lama in ("lama-thin", "lama-medium", "lama-thick"):
        assert all(generate_hole(lama, 256, 0, i).mean() <= 0.5 for i in range(10))


def test_ratio_range_is_respected():
    for i in range(10):
        r = generate_hole("lama-thick", 256, seed=1, index=i, ratio=(0.4, 0.6)).mean()
        assert 0.4 < r <= 0.6


def test_unreachable_ratio_is_a_clear_error():
    with pytest.raises(PluralfillError, match="did not give a hole fraction"):
        generate_hole("center", 256, ratio=(0.5, 0.6), max_tries=20)


def test_masks_scale_with_size():
    small = np.mean([generate_hole("mhtma", 128, 0, i).mean() for i in range(20)])
    large = np.mean([generate_hole("mhtma", 512, 0, i).mean() for i in range(20)])
    assert abs(small - large) < 0.1


def test_parse_ratio_and_bins():
    assert parse_ratio("0.1-0.3") == (0.1, 0.3)
    for bad in ("0.3", "a-b", "0.5-0.2", "0-1.5"):
        with pytest.raises(PluralfillError):
            parse_ratio(bad)
    assert STANDARD_BINS[0] == (0.0, 0.1) and STANDARD_BINS[-1] == (0.5, 0.6)

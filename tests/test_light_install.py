"""The base install (no PyTorch): colorize, evaluate and hints run on ONNX Runtime, and what needs
the train extra says so in one line.

Each case runs the CLI in a fresh interpreter where PyTorch and everything built on it cannot be
imported, as in an install without the train extra.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorgan.color import is_gray

_RUN_CLI = """
sys.argv = ["colorgan", *sys.argv[1:]]
from colorgan.cli import main
main()
"""


@pytest.fixture
def colorgan_without_torch(without_torch):
    """``colorgan_without_torch(*args, cwd=..., blocked="")``: ``colorgan ARGS`` in a fresh interpreter
    without PyTorch (``blocked``: more code run first, to hide another extra too)."""

    def run(*args: str, cwd: Path, blocked: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", blocked + without_torch + _RUN_CLI, *args], cwd=cwd,
                              capture_output=True, text=True, timeout=300, check=False)

    return run


def test_colorize_runs_the_bundled_default_without_pytorch(tmp_path: Path, colorgan_without_torch) -> None:
    run = colorgan_without_torch("colorize", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (written,) = (tmp_path / "colorized").iterdir()
    out = np.asarray(Image.open(written).convert("RGB"))
    assert not is_gray(out)


def test_hints_work_without_pytorch(tmp_path: Path, gray_gradient, colorgan_without_torch) -> None:
    Image.fromarray(gray_gradient(128, 96)).save(tmp_path / "wall.png")
    run = colorgan_without_torch("colorize", "wall.png", "-o", "guided.png", "--hint", "0.5,0.5,#2050e0", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    a, b = np.asarray(Image.open(tmp_path / "guided.png").convert("RGB")).astype(int)[48, 64, [0, 2]]
    assert b > a  # blue where the hint asked for blue


def test_evaluate_scores_without_pytorch_and_fid_asks_for_the_extra(make_photos, tmp_path: Path, colorgan_without_torch) -> None:
    data = make_photos(3)
    run = colorgan_without_torch("evaluate", "--data", str(data), "--out", "report.json", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "report.json").is_file()
    run = colorgan_without_torch("evaluate", "--data", str(data), "--fid", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["error: --fid needs PyTorch and the Inception network, which this install lacks: pip install 'colorgan[eval]'"]


@pytest.mark.parametrize("args", [
    ("train", "--data", "photos"),
    ("colorize", "--backend", "torch"),
    ("colorize", "--device", "cuda"),
    ("export", "onnx", "--out", "x.onnx"),
    ("export", "bundle", "runs/x", "out"),
])
def test_what_needs_pytorch_says_what_to_install_in_one_line(args: tuple[str, ...], tmp_path: Path, colorgan_without_torch) -> None:
    run = colorgan_without_torch(*args, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith("pip install 'colorgan[train]'"), run.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_server_colorizes_without_pytorch(start_server, jpeg_bytes, tmp_path: Path) -> None:
    import io

    import httpx

    with start_server(tmp_path, model="default", without_torch=True) as server:
        response = httpx.post(f"{server.url}/api/colorize", files={"image": ("a.jpg", jpeg_bytes())}, timeout=60)
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (200, 150)


def test_videos_without_the_video_extra_say_what_to_install_in_one_line(tmp_path: Path, colorgan_without_torch) -> None:
    (tmp_path / "film.mp4").write_bytes(b"\x00" * 64)  # never opened: the missing extra is said first
    blocked = "import sys; sys.modules.update(dict.fromkeys(['av', 'cv2']))\n"
    run = colorgan_without_torch("colorize", "film.mp4", cwd=tmp_path, blocked=blocked)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: film.mp4 is a video; colorizing videos needs PyAV and OpenCV, which this install lacks: pip install 'colorgan[video]'"]
    assert not (tmp_path / "colorized").exists()


def test_the_ray_engine_without_the_cluster_extra_says_what_to_install_in_one_line(tmp_path: Path, gray_gradient, colorgan_without_torch) -> None:
    Image.fromarray(gray_gradient(48, 32)).save(tmp_path / "scan.png")
    blocked = "import sys; sys.modules['ray'] = None\n"
    run = colorgan_without_torch("colorize", "scan.png", "--engine", "ray", cwd=tmp_path, blocked=blocked)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["error: --engine ray needs Ray, which this install lacks: pip install 'colorgan[cluster]'"]


def test_save_pretrained_copies_the_bundled_model_without_pytorch(tmp_path: Path, without_torch) -> None:
    script = without_torch + """
from colorgan import Colorizer
bundled = Colorizer.from_pretrained()
saved = bundled.save_pretrained("copy")
print(saved.name, Colorizer.from_pretrained("copy").meta == bundled.meta)
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["model.safetensors", "True"]
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["model.json", "model.onnx", "model.safetensors"]

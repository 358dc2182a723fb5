"""How colorgan starts: an ordinary ``colorgan colorize`` reads its flags without Typer, exactly as
Typer would, and imports nothing that a photo does not need; a model file's optimized form is
cached, so the next start loads it as it is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorgan.flags import COLORIZE, parse_plainly
from colorgan.model.files import MODELS_DIR
from colorgan.model.onnx import OnnxModel

# colorgan ARGS in a fresh interpreter; its last line of stdout: the top-level modules it imported.
_MODULES_AT_EXIT = """
import json, sys
sys.argv = ["colorgan", *sys.argv[1:]]
from colorgan.cli import main
try:
    main()
finally:
    print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""
# What a photo does not need: the extras, and the command-line libraries Typer brings.
NOT_ON_THE_PHOTO_PATH = {"torch", "av", "cv2", "gradio", "ray", "typer", "click", "rich", "pydantic", "yaml"}


def modules_of(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    run = subprocess.run([sys.executable, "-c", _MODULES_AT_EXIT, *args], cwd=cwd, capture_output=True, text=True,
                         timeout=300, check=False)
    return run, set(json.loads(run.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [["photo.png", "-o", "color.jpg", "-q"], ["photo.png"], []],
                         ids=["one photo, quiet", "one photo, with its summary line", "the bundled sample"])
def test_colorizing_a_photo_imports_no_extra_and_no_command_line_library(args: list[str], gray_gradient, tmp_path: Path) -> None:
    Image.fromarray(gray_gradient(96, 64)).save(tmp_path / "photo.png")
    run, modules = modules_of("colorize", *args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert list(tmp_path.glob("color.jpg")) or list((tmp_path / "colorized").iterdir())
    assert not modules & NOT_ON_THE_PHOTO_PATH, sorted(modules & NOT_ON_THE_PHOTO_PATH)


def test_version_is_printed_without_numpy_or_onnx_runtime(tmp_path: Path) -> None:
    run, modules = modules_of("--version", cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("colorgan ")
    assert not modules & {"numpy", "onnxruntime", "PIL", *NOT_ON_THE_PHOTO_PATH}


@pytest.mark.parametrize("args", [
    [],
    ["a.jpg", "scans/", "-o", "out", "-q"],
    ["--size", "256", "a.jpg", "--batch-size=4"],
    ["a.jpg", "--hint", "0.1,0.2,#fff", "--hint", "10,20,#000", "--hints", "h.json", "--keep-color", "--overwrite"],
    ["film.mp4", "--no-temporal", "--strength", "0.85", "--crf=20", "--segment-seconds", "2.5", "--video-codec", "libx265"],
    ["a.jpg", "--report", "r.json", "--format", "png", "--quality", "90", "--precision", "fp32", "--model", "m/"],
    ["a.jpg", "--engine", "ray", "--actors", "3", "--gpus-per-actor", "0.5", "--address", "auto", "--verbose"],
])
def test_a_plain_command_line_is_read_as_typer_reads_it(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from colorgan.colorize import command
    from colorgan.commands import app

    typer_values: dict = {}
    monkeypatch.setattr(command, "colorize", lambda values: typer_values.update(values) or 0)
    assert CliRunner().invoke(app, ["colorize", *args]).exit_code == 0
    assert parse_plainly(args, COLORIZE) == typer_values


@pytest.mark.parametrize("args", [
    ["--help"], ["a.jpg", "--sise", "64"], ["-o", "x", "-o", "y"], ["--size"], ["--size", "-32"], ["--size", "1_000"],
    ["--size="], ["--strength", "1e-1"], ["-qo", "x"], ["--", "-weird.jpg"], ["--quiet=yes"], ["-o", "--help"],
], ids=lambda args: " ".join(args))
def test_anything_unusual_is_left_to_typer(args: list[str]) -> None:
    assert parse_plainly(args, COLORIZE) is None


def test_mistakes_still_get_typers_one_line_refusal(cli) -> None:
    code, _, err = cli("colorize", "photo.jpg", "--sise", "64")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: No such option: --sise") and line.endswith("(see colorgan colorize --help)")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """A copy of the bundled default's model.onnx."""
    return Path(shutil.copy(MODELS_DIR / "default" / "model.onnx", tmp_path / "model.onnx"))


def predict(model: OnnxModel) -> np.ndarray:
    l_norm = np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(1, 1, 64, 64)
    return model(l_norm)


def test_a_model_file_is_loaded_from_its_cached_optimized_form_next_time(model_file: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORGAN_CACHE", str(tmp_path / "cache"))
    fresh = predict(OnnxModel.load(model_file))
    (entry,) = (tmp_path / "cache" / "onnx").iterdir()
    cached = OnnxModel.load(model_file)
    assert cached.meta == OnnxModel.load(model_file).meta and cached.size_multiple == 32
    np.testing.assert_allclose(predict(cached), fresh, atol=1e-5)
    assert list((tmp_path / "cache" / "onnx").iterdir()) == [entry]

    os.utime(model_file, ns=(0, 0))  # the model file changed: a new entry replaces the old one
    np.testing.assert_allclose(predict(OnnxModel.load(model_file)), fresh, atol=1e-5)
    (new_entry,) = (tmp_path / "cache" / "onnx").iterdir()
    assert new_entry != entry

    new_entry.write_bytes(b"damaged")  # a damaged entry is written again
    np.testing.assert_allclose(predict(OnnxModel.load(model_file)), fresh, atol=1e-5)
    assert new_entry.stat().st_size > 1000


def test_the_cache_can_be_turned_off_or_be_unwritable(model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORGAN_CACHE", "off")
    fresh = predict(OnnxModel.load(model_file))
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("COLORGAN_CACHE", str(blocker))
    np.testing.assert_allclose(predict(OnnxModel.load(model_file)), fresh, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", "model.onnx"]


@pytest.mark.parametrize(("name", "found"), [("a.jpg", True), ("b.PNG", True), ("c.tga", True), ("d.webp", True),
                                             ("e.tif", True), ("f.txt", False), ("g", False)])
def test_photos_of_every_format_pillow_opens_are_found_though_its_plugins_load_late(name: str, found: bool, tmp_path: Path) -> None:
    from colorgan.files.discovery import is_image_name

    assert is_image_name(tmp_path / name, tmp_path) is found

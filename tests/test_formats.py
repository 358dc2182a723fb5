"""Output formats of `colorgan colorize` (each input's own by default, 16-bit TIFFs for 16-bit scans)
and its folder pipeline (decoding and writing overlap the model; order, bounds, errors, Ctrl+C)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from colorgan.colorize import runner
from colorgan.colorize.job import ColorizeJob
from colorgan.colorize.runner import PENDING_SAVES, READ_AHEAD
from colorgan.commands import app
from colorgan.color import rgb_to_lab
from colorgan.files.images import is_lossless_webp, save_image
from colorgan.files.provenance import written_by_colorgan
from colorgan.colorizer import Colorizer


def colorize(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["colorize", *(str(a) for a in args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def q95_tables(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return Image.open(buffer).quantization


# --- formats ----------------------------------------------------------------------------------


def test_each_output_takes_its_inputs_format_unless_format_is_given(gray_gradient, tmp_path: Path, tiny_model: Path) -> None:
    gray = Image.fromarray(gray_gradient(40, 24))
    root = tmp_path / "in"
    root.mkdir()
    for name in ["a.jpg", "b.png", "c.tif", "d.bmp", "e.gif", "f.webp", "G.JPEG", "h.tiff"]:
        gray.save(root / name)
    gray.save(root / "lossless.webp", lossless=True)
    code, out, err = colorize(root, "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0 and "9 done" in out, err
    expected = {"a.jpg": "JPEG", "b.png": "PNG", "c.tif": "TIFF", "d.png": "PNG", "e.png": "PNG", "f.webp": "WEBP",
                "G.JPEG": "JPEG", "h.tiff": "TIFF", "lossless.webp": "WEBP"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(expected)
    for name, fmt in expected.items():
        with Image.open(tmp_path / "out" / name) as img:
            assert (img.format, img.size, img.mode) == (fmt, (40, 24), "RGB")
    with Image.open(tmp_path / "out" / "a.jpg") as img:  # JPEG stays JPEG at high quality (95)
        assert img.quantization == q95_tables(img)
    assert is_lossless_webp(tmp_path / "out" / "lossless.webp") and not is_lossless_webp(tmp_path / "out" / "f.webp")

    code, out, err = colorize(root, "-o", tmp_path / "tif", "--format", "tif", "--model", tiny_model)
    assert code == 0 and "9 done" in out, err
    for path in (tmp_path / "tif").iterdir():
        assert path.suffix in (".tif", ".tiff")  # h.tiff keeps its own suffix
        with Image.open(path) as img:
            assert img.format == "TIFF"
    code, _, err = colorize(root / "b.png", "-o", tmp_path / "one.tiff", "--model", tiny_model)
    assert code == 0, err
    with Image.open(tmp_path / "one.tiff") as img:
        assert img.format == "TIFF"


def test_a_16_bit_scan_becomes_a_16_bit_color_tiff_with_its_own_luminance(tmp_path: Path, tiny_model: Path) -> None:
    # A gentle gradient: 1,000 16-bit levels, a mere 4 of 8 bits.
    scan = np.linspace(20000, 21000, 120)[None, :].repeat(40, 0).round().astype(np.uint16)
    Image.fromarray(scan).save(tmp_path / "scan.tif")
    assert Image.open(tmp_path / "scan.tif").mode == "I;16"
    code, _, err = colorize(tmp_path / "scan.tif", "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0, err
    out = tifffile.imread(tmp_path / "out" / "scan.tif")
    assert out.dtype == np.uint16 and out.shape == (40, 120, 3)
    assert written_by_colorgan(tmp_path / "out" / "scan.tif")
    scan_l = rgb_to_lab(np.repeat(scan[..., None], 3, -1))[..., 0]
    eight_bit = ((scan.astype(np.uint32) * 255 + 32767) // 65535 * 257).astype(np.uint16)
    eight_bit_error = np.abs(rgb_to_lab(np.repeat(eight_bit[..., None], 3, -1))[..., 0] - scan_l).max()
    assert eight_bit_error > 0.1
    assert np.abs(rgb_to_lab(out)[..., 0] - scan_l).max() < eight_bit_error / 20

    code, _, err = colorize(tmp_path / "scan.tif", "-o", tmp_path / "scan.png", "--model", tiny_model)
    assert code == 0, err  # other formats get 8 bits
    with Image.open(tmp_path / "scan.png") as img:
        assert img.mode == "RGB"


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "tif"])
def test_every_format_colorgan_writes_is_recognized_as_its_own(fmt: str, tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3)).astype(np.uint8)
    save_image(Image.fromarray(rgb), tmp_path / f"eight.{fmt}", fmt=fmt)
    save_image(rgb.astype(np.uint16) * 257, tmp_path / f"sixteen.{fmt}", fmt=fmt)
    Image.fromarray(rgb).save(tmp_path / f"theirs.{fmt}")
    assert written_by_colorgan(tmp_path / f"eight.{fmt}") and written_by_colorgan(tmp_path / f"sixteen.{fmt}")
    assert not written_by_colorgan(tmp_path / f"theirs.{fmt}")
    if fmt in ("png", "tif"):  # lossless: a 16-bit array v * 257 comes back as v in 8 bits, as itself in a TIFF
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"sixteen.{fmt}")), rgb)
    if fmt == "tif":
        assert np.array_equal(tifffile.imread(tmp_path / "sixteen.tif"), rgb.astype(np.uint16) * 257)


def test_tiff_outputs_inside_the_input_folder_are_not_colorized_again(gray_gradient, tmp_path: Path, tiny_model: Path) -> None:
    root = tmp_path / "scans"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(gray_gradient(30, 20)).save(root / "a.tif")
    Image.fromarray(gray_gradient(30, 20).astype(np.uint16) * 257).save(root / "sub" / "b.tif")
    args = (root, "-o", root / "colorized", "--model", tiny_model)
    assert "2 done" in colorize(*args)[1]
    assert "0 done, 2 skipped" in colorize(*args)[1]
    assert not (root / "colorized" / "colorized").exists()


# --- the pipeline ----------------------------------------------------------------------------


def test_outcomes_keep_the_input_order_and_a_corrupt_file_does_not_stop_the_folder(
        gray_gradient, bad_file, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for i in range(8):
        Image.fromarray(gray_gradient(32, 24, seed=i)).save(root / f"p{i}.png")
    middle = bad_file("truncated", root).rename(root / "p3x.jpg")  # a JPEG cut short, between p3 and p4
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p5.png").write_bytes(b"an earlier output")
    real_save = runner.save_image

    def slow_then_fast(image, path, **kwargs):  # early photos take longest to write: saves finish out of order
        time.sleep(0.02 * (8 - int(path.stem[1])))
        real_save(image, path, **kwargs)

    monkeypatch.setattr(runner, "save_image", slow_then_fast)
    for batch_size, extra in (("1", []), ("3", ["--overwrite"])):
        report = tmp_path / f"r{batch_size}.json"
        code, _, err = colorize(root, "-o", tmp_path / "out", "--model", tiny_model, "--report", report,
                                  "--batch-size", batch_size, *extra)
        assert code == 1
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {middle}: truncated file (")
        files = json.loads(report.read_text())["files"]
        assert [Path(f["source"]).name for f in files] == ["p0.png", "p1.png", "p2.png", "p3.png", "p3x.jpg", "p4.png", "p5.png", "p6.png", "p7.png"]
        statuses = [f["status"] for f in files]
        if batch_size == "1":
            assert statuses == ["done"] * 4 + ["failed", "done", "skipped", "done", "done"]
        else:
            assert statuses == ["done"] * 4 + ["failed"] + ["done"] * 4
        for i in range(8):
            if statuses[i + (i > 3)] == "done":
                with Image.open(tmp_path / "out" / f"p{i}.png") as img:
                    assert img.size == (32, 24)
        if batch_size == "1":  # kept; with --overwrite (batch 3) it is a new photo, opened above
            assert (tmp_path / "out" / "p5.png").read_bytes() == b"an earlier output"


def test_decoding_and_writing_overlap_the_model_within_their_bounds(
        gray_gradient, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    root.mkdir()
    n = 10
    for i in range(n):
        Image.fromarray(gray_gradient(32, 24, seed=i)).save(root / f"p{i:02d}.png")
    lock = threading.Lock()
    reads_started, colorized, saves_done = [0], [0], [0]
    model_started = [threading.Event() for _ in range(n + 1)]
    model_started[n].set()
    next_read_started = [threading.Event() for _ in range(n + 1)]
    next_read_started[n].set()
    problems: list[str] = []
    real_read, real_batch, real_save = runner.read_photo, Colorizer.colorize_batch, runner.save_image

    def read(source):
        with lock:
            reads_started[0] += 1
            next_read_started[reads_started[0] - 1].set()
        return real_read(source)

    def colorize_batch(self, photos, **kwargs):
        k = colorized[0]
        model_started[k].set()
        with lock:
            ahead = reads_started[0] - (k + len(photos))
            waiting = colorized[0] - saves_done[0]
        if ahead > READ_AHEAD or waiting > PENDING_SAVES:
            problems.append(f"batch {k}: {ahead} photos read ahead, {waiting} waiting to be written")
        # The next photo is decoded while the model runs: its read starts before the model is done.
        if not next_read_started[min(n, k + len(photos))].wait(5):
            problems.append(f"batch {k}: the next photo was not read while the model ran")
        images = real_batch(self, photos, **kwargs)
        colorized[0] += len(images)
        return images

    def save(image, path, **kwargs):
        i = int(path.stem[1:])
        # Writing photo i overlaps the model on photo i + 1.
        if not model_started[i + 1].wait(5):
            problems.append(f"photo {i} was written only after the model had stopped")
        time.sleep(0.05)  # writing is the slow stage here: the model must wait rather than pile photos up
        real_save(image, path, **kwargs)
        with lock:
            saves_done[0] += 1

    monkeypatch.setattr(runner, "read_photo", read)
    monkeypatch.setattr(Colorizer, "colorize_batch", colorize_batch)
    monkeypatch.setattr(runner, "save_image", save)
    code, out, err = colorize(root, "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0 and f"{n} done" in out, err
    assert problems == []
    assert len(list((tmp_path / "out").iterdir())) == n


def test_ctrl_c_stops_at_once_and_leaves_only_whole_outputs(
        gray_gradient, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for i in range(8):
        Image.fromarray(gray_gradient(32, 24, seed=i)).save(root / f"p{i}.png")
    release = threading.Event()
    real_batch, real_save = Colorizer.colorize_batch, runner.save_image
    calls = [0]

    def colorize_batch(self, photos, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real_batch(self, photos, **kwargs)

    def save(image, path, **kwargs):
        release.wait(10)  # a save still writing when Ctrl+C comes
        real_save(image, path, **kwargs)

    monkeypatch.setattr(Colorizer, "colorize_batch", colorize_batch)
    monkeypatch.setattr(runner, "save_image", save)
    job = ColorizeJob(inputs=[str(root)], out=tmp_path / "out", model=str(tiny_model))
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        job.run(Console(file=io.StringIO()), progress=False)
    assert time.monotonic() - start < 5  # it did not wait for the saves still running
    release.set()
    for thread in threading.enumerate():
        if thread.name.startswith(("colorgan-read", "colorgan-write")):
            thread.join(10)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["p0.png", "p1.png"]  # the two saves running finish their files; nothing else is started
    for name in written:
        with Image.open(tmp_path / "out" / name) as img:
            img.load()

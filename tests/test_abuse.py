"""Hostile and unlucky input, round 2: each case once ended in a traceback, a silent surprise or a lost file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorgan import Colorizer
from colorgan.errors import UserError
from colorgan.hints import HintError, parse_hints_json

NESTED = "[" * 100_000 + "]" * 100_000  # deep enough to exhaust the parser in any process


@pytest.mark.parametrize("kind", ["I;16", "I", "F"])
def test_big_16_bit_and_float_gray_scans_are_colorized_at_16_bits(kind, tiny_model, tmp_path, cli):
    side = 6 * 64 + 10  # six times the tiny model's render size and more: Pillow's box reduction refused these modes
    rng = np.random.default_rng(0)
    values = {"I;16": (rng.random((side, side + 7)) * 65535).astype(np.uint16),
              "I": (rng.random((side, side + 7)) * 60000).astype(np.int32),
              "F": rng.random((side, side + 7)).astype(np.float32)}[kind]
    scan = tmp_path / "scans" / "scan.tif"
    scan.parent.mkdir()
    Image.fromarray(values).save(scan)
    out = Colorizer.from_pretrained(tiny_model).colorize(scan, bits=16)
    assert out.dtype == np.uint16 and out.shape == (side, side + 7, 3)
    code, _, err = cli("colorize", scan.parent, "-o", tmp_path / "out", "--model", tiny_model, "--format", "tif", "-q")
    assert code == 0, err
    import tifffile

    assert tifffile.imread(tmp_path / "out" / "scan.tif").dtype == np.uint16


def test_a_small_block_of_outliers_does_not_wash_out_a_float_scan(tiny_model):
    from colorgan.photo import read_photo

    values = np.full((64, 64), 0.5, np.float32)
    values[:4, :4] = -5.0  # a masked corner
    values[-1, -1] = 1e6  # a hot pixel
    gray = np.asarray(read_photo(Image.fromarray(values)).image)
    assert abs(int(gray[32, 32]) - 32768) < 200  # 0.5 stays mid-gray: outliers are clipped, not stretched to
    assert gray[0, 0] == 0 and gray[-1, -1] == 65535


def test_an_empty_image_is_one_clear_error(tiny_model):
    with pytest.raises(UserError, match="has no pixels"):
        Colorizer.from_pretrained(tiny_model).colorize(np.zeros((0, 0), np.uint8))


@pytest.mark.parametrize("size", [2**20, 4096])
def test_the_render_size_has_an_upper_bound_everywhere(size, tiny_model, tmp_path, cli, gray_gradient):
    with pytest.raises(UserError, match="at most 1024"):
        Colorizer.from_pretrained(tiny_model).colorize(gray_gradient(40, 30), size=size)
    photo = tmp_path / "a.png"
    Image.fromarray(gray_gradient(40, 30)).save(photo)
    code, _, err = cli("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model, "--size", size)
    assert code == 2 and err.count("\n") == 1 and "at most 1024" in err
    assert not (tmp_path / "out").exists()


def test_deeply_nested_json_is_one_line_wherever_it_is_read(tiny_model, tmp_path, cli, gray_gradient):
    with pytest.raises(HintError, match="nested too deeply"):
        parse_hints_json(NESTED)
    photo = tmp_path / "a.png"
    Image.fromarray(gray_gradient(40, 30)).save(photo)
    hints = tmp_path / "hints.json"
    hints.write_text(NESTED)
    code, _, err = cli("colorize", photo, "--hints", hints, "--model", tiny_model, "-o", tmp_path / "out.png")
    assert code == 2 and err.count("\n") == 1 and "nested too deeply" in err
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(tiny_model.read_bytes())
    (model / "model.json").write_text(NESTED)
    code, _, err = cli("colorize", photo, "--model", model, "-o", tmp_path / "out.png")
    assert code == 2 and err.count("\n") == 1 and "nested too deeply" in err


def _nan_onnx(tiny_model: Path, folder: Path) -> Path:
    """The tiny model's ONNX export with every weight NaN: valid metadata, NaN answers."""
    import onnx
    from onnx import numpy_helper

    from colorgan.model.export import export_onnx

    out = export_onnx(tiny_model, folder / "nan.onnx")
    proto = onnx.load(str(out))
    for init in proto.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype.kind == "f" and values.size > 1:
            init.CopyFrom(numpy_helper.from_array(np.full_like(values, np.nan), init.name))
    onnx.save(proto, str(out))
    return out


def test_a_model_that_answers_nan_is_refused_per_photo_not_saved_black(tiny_model, tmp_path, cli, gray_gradient):
    nan_model = _nan_onnx(tiny_model, tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(gray_gradient(40, 30, seed=i)).save(photos / f"p{i}.png")
    code, out, err = cli("colorize", photos, "-o", tmp_path / "out", "--model", nan_model)
    assert code != 0
    assert err.count("NaN or infinite colors") == 2 and "0 done" in out + err
    assert not list((tmp_path / "out").glob("*.png"))


def test_the_python_api_never_writes_over_its_input_video(tiny_model, tmp_path):
    pytest.importorskip("av")
    film = tmp_path / "film.mp4"
    film.write_bytes(b"not looked at: refused before reading")
    link = tmp_path / "link.mp4"
    link.symlink_to(film)
    from colorgan.video.api import colorize_video

    colorizer = Colorizer.from_pretrained(tiny_model)
    for output in (film, link, tmp_path / "." / "film.mp4"):
        with pytest.raises(UserError, match="is the input video"):
            colorize_video(colorizer, film, output)
    assert film.read_bytes() == b"not looked at: refused before reading"


@pytest.mark.parametrize(("option", "value", "message"), [
    ("size", "abc", "--size must be a number"),
    ("batch_size", [1, 2], "--batch-size must be a number"),
    ("lr", "fast", "--lr must be a number"),
    ("size", "1.5e9", "--size must be between 1 and"),
    ("epochs", 2.5, "--epochs must be a whole number"),
    ("hints", "maybe", "--hints must be true or false"),
])
def test_training_options_of_the_wrong_type_are_one_line(option, value, message, tmp_path, cli):
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({"data": str(tmp_path), option: value}))  # JSON is YAML
    code, _, err = cli("train", "--config", config, "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and message in err


def test_numbers_that_yaml_reads_as_strings_are_read_as_numbers():
    from colorgan.training.config import TrainConfig

    cfg = TrainConfig.from_sources(overrides={"lr": "1e-4", "size": "128"})
    assert cfg.lr == 1e-4 and cfg.size == 128


def test_a_checkpoint_without_its_optimizer_state_is_one_line(make_photos, tmp_path):
    import torch

    from colorgan.training.checkpoint import latest_checkpoint
    from colorgan.training.config import TrainConfig
    from colorgan.training.loop import run_training

    data = make_photos(4)
    cfg = dict(stage="pretrain", generator="resunet", encoder_weights=None, data=data, size=32, batch_size=2,
               epochs=1, workers=0, out=tmp_path / "run")
    run_training(TrainConfig(**cfg))
    state_file = latest_checkpoint(tmp_path / "run") / "state.pt"
    state = torch.load(state_file, weights_only=True)
    del state["opt_g"]
    torch.save(state, state_file)
    with pytest.raises(UserError, match="cannot be resumed: its state has no 'opt_g'"):
        run_training(TrainConfig(**cfg | {"epochs": 2, "resume": True}))


def test_an_unreadable_subfolder_is_reported_as_skipped(tiny_model, tmp_path, cli, gray_gradient, monkeypatch):
    photos = tmp_path / "photos"
    (photos / "locked").mkdir(parents=True)
    Image.fromarray(gray_gradient(40, 30)).save(photos / "a.png")
    Image.fromarray(gray_gradient(40, 30)).save(photos / "locked" / "b.png")
    scandir = os.scandir

    def refuse_locked(path=".", *args):  # root reads every folder, so the refusal is staged
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path, *args)

    monkeypatch.setattr(os, "scandir", refuse_locked)
    report = tmp_path / "report.json"
    code, out, _ = cli("colorize", photos, "-o", tmp_path / "out", "--model", tiny_model, "--report", report)
    assert code == 0 and "1 done, 1 skipped" in out
    files = json.loads(report.read_text())["files"]
    assert {"source": str(photos / "locked"), "status": "skipped", "reason": "unreadable folder (Permission denied)"}.items() \
        <= next(f for f in files if f["source"].endswith("locked")).items()


def test_a_link_and_its_target_are_two_photos_with_an_output_each(tiny_model, tmp_path, cli, gray_gradient):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(gray_gradient(40, 30)).save(photos / "target.png")
    (photos / "symlink_to_file.png").symlink_to(photos / "target.png")
    report = tmp_path / "report.json"
    code, out, _ = cli("colorize", photos, "-o", tmp_path / "out", "--model", tiny_model, "--report", report)
    assert code == 0 and "2 done" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["symlink_to_file.png", "target.png"]
    assert {Path(f["source"]).name for f in json.loads(report.read_text())["files"]} == {"symlink_to_file.png", "target.png"}


def test_the_output_lock_lives_in_the_output_folder_and_is_removed(tiny_model, tmp_path, cli, gray_gradient, monkeypatch):
    photo = tmp_path / "a.png"
    Image.fromarray(gray_gradient(40, 30)).save(photo)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".colorgan-lock").write_text("")  # left by a job killed with -9
    fcntl = pytest.importorskip("fcntl")
    with (out / ".colorgan-lock").open("a") as held:  # a job that runs with another TMPDIR holds the folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        monkeypatch.setenv("TMPDIR", str(tmp_path))
        code, _, err = cli("colorize", photo, "-o", out, "--model", tiny_model)
        assert code == 2 and "another colorgan job is writing to" in err
    code, _, _ = cli("colorize", photo, "-o", out, "--model", tiny_model)
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["a.png"]  # the stale lock is gone too


def test_an_output_folder_that_cannot_be_written_is_refused_before_the_first_photo(tiny_model, tmp_path, cli, gray_gradient, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(gray_gradient(40, 30, seed=i)).save(photos / f"p{i}.png")
    out = tmp_path / "out"
    out.mkdir()
    real_open = Path.open

    def immutable(self, *args, **kwargs):  # chattr +i, staged (root may write anywhere)
        if self.parent == out:
            raise PermissionError(1, "Operation not permitted", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", immutable)
    code, out_text, err = cli("colorize", photos, "-o", out, "--model", tiny_model)
    assert code == 2 and err == f"error: cannot write to the output folder {out}: Operation not permitted\n"
    assert "Errno" not in err and ".tmp" not in err


def test_a_full_disk_stops_the_job_with_one_line_and_no_half_file(tiny_model, tmp_path, cli, gray_gradient, monkeypatch):
    import errno

    from colorgan.files import images

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(gray_gradient(40, 30, seed=i)).save(photos / f"p{i}.png")
    real = images._save_image
    written = []

    def fill_up(image, path, **kwargs):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device", str(path.parent / f".{path.name}.abcdefgh.tmp"))
        real(image, path, **kwargs)
        written.append(path)

    monkeypatch.setattr(images, "_save_image", fill_up)
    report = tmp_path / "report.json"  # on another disk, which has room
    code, out_text, err = cli("colorize", photos, "-o", tmp_path / "out", "--model", tiny_model, "--report", report)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0] and ".tmp" not in lines[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [written[0].name]
    files = json.loads(report.read_text())["files"]
    assert [f["status"] for f in files] == ["done", "failed", "failed", "failed"]  # the report still says what was done
    assert files[1]["reason"].startswith("not written: ")


def test_a_video_written_to_an_image_name_is_told_the_video_containers(tmp_path, cli, tiny_model):
    film = tmp_path / "film.mp4"
    film.write_bytes(b"\x00" * 64)  # refused on its name, before it is read
    code, _, err = cli("colorize", film, "-o", tmp_path / "out.gif", "--model", tiny_model)
    assert code == 2 and err.count("\n") == 1 and "is a video; name a video file (" in err and ".mkv" in err


@pytest.mark.parametrize(("args", "message"), [
    (["colorize", "--size", "abc"], "error: Invalid value for '--size'"),
    (["colorize", "--nope"], "error: No such option: --nope"),
    (["frob"], "error: No such command 'frob'"),
])
def test_bad_flags_and_values_are_one_line_like_every_other_refusal(args, message, cli):
    code, _, err = cli(*args)
    assert code == 2 and err.count("\n") == 1 and err.startswith(message)


def test_format_names_jpeg_and_tiff_mean_jpg_and_tif(tmp_path, cli, tiny_model, gray_gradient):
    photo = tmp_path / "a.png"
    Image.fromarray(gray_gradient(40, 30)).save(photo)
    for name, written in (("jpeg", "a.jpg"), ("TIFF", "a.tif")):
        code, _, err = cli("colorize", photo, "-o", tmp_path / name, "--format", name, "--model", tiny_model, "-q")
        assert code == 0, err
        assert [p.name for p in (tmp_path / name).iterdir()] == [written]


def test_a_16_bit_png_scan_comes_out_as_a_16_bit_png(tmp_path, cli, tiny_model):
    ramp = np.linspace(0, 65535, 48 * 40).reshape(40, 48).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    code, _, err = cli("colorize", tmp_path / "scan.png", "-o", tmp_path / "out.png", "--model", tiny_model)
    assert code == 0, err
    cv2 = pytest.importorskip("cv2")
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (40, 48, 3)
    assert len(np.unique(written[..., 1])) > 256  # more levels than 8 bits hold
    from colorgan.files.provenance import written_by_colorgan

    assert written_by_colorgan(tmp_path / "out.png")  # tagged as colorgan's, like every output


def test_a_disk_too_full_for_the_lock_is_one_line_and_leaves_no_folder(tiny_model, tmp_path, cli, gray_gradient, monkeypatch):
    import errno

    photo = tmp_path / "a.png"
    Image.fromarray(gray_gradient(40, 30)).save(photo)

    def full(fd):  # the lock's one byte is where a full disk first shows
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = cli("colorize", photo, "-o", tmp_path / "new" / "out", "--model", tiny_model)
    assert code == 2 and err == f"error: cannot write to the output folder {tmp_path / 'new' / 'out'}: No space left on device\n"
    assert not (tmp_path / "new").exists()  # the folders it made for the job are gone again


def test_nested_yaml_and_a_huge_hint_file_are_one_line(tmp_path, cli, tiny_model, gray_gradient):
    config = tmp_path / "deep.yaml"
    config.write_text("stage: pretrain\ndata: x\nhints: " + "[" * 2000 + "]" * 2000 + "\n")
    code, _, err = cli("train", "--config", config, "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "nested too deeply" in err
    photo = tmp_path / "a.png"
    Image.fromarray(gray_gradient(40, 30)).save(photo)
    huge = tmp_path / "hints.json"
    huge.write_bytes(b" " * (5 << 20))
    code, _, err = cli("colorize", photo, "--hints", huge, "--model", tiny_model, "-o", tmp_path / "o.png")
    assert code == 2 and err.count("\n") == 1 and "larger than 4 MB" in err


def test_the_report_never_writes_over_a_users_file(tiny_model, tmp_path, cli, gray_gradient):
    photo = tmp_path / "a.png"
    Image.fromarray(gray_gradient(40, 30)).save(photo)
    hints = tmp_path / "hints.json"
    hints.write_text('[{"x": 0.5, "y": 0.5, "color": "#ff0000"}]')
    model_json = tiny_model.with_name("model.json")
    for report in (hints, model_json):
        before = report.read_bytes()
        code, _, err = cli("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model, "--report", report)
        assert code == 2 and report.read_bytes() == before
    code, _, err = cli("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model, "--report", hints)
    assert code == 2 and "exists and is not a colorgan report" in err
    report = tmp_path / "r.json"
    assert cli("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model, "--report", report)[0] == 0
    assert cli("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model, "--report", report)[0] == 0  # its own report: rewritten


@pytest.mark.parametrize(("values", "words"), [(np.full((16, 16), np.nan, np.float32), "NaN or infinite"),
                                               (np.full((16, 16), np.inf, np.float32), "NaN or infinite"),
                                               (np.full((16, 16), 200.0, np.float32), "must be in [0, 1]")])
def test_float_arrays_outside_their_range_are_refused_not_painted_black(tiny_model, values, words):
    with pytest.raises(UserError, match=re.escape(words)):
        Colorizer.from_pretrained(tiny_model).colorize(values)

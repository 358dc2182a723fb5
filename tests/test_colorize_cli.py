"""`colorgan colorize` as a batch job: inputs, output layout, resuming, per-file errors, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image



@pytest.fixture
def gray(gray_gradient):
    """``gray(path, size=(48, 32))`` saves a gray photo at ``path`` (in any image format, making its folder) and returns the path."""

    def save(path: Path, size: tuple[int, int] = (48, 32)) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gray_gradient(*size)).save(path)
        return path

    return save


@pytest.fixture
def photos(gray, tmp_path: Path) -> Path:
    """photos/{a.jpg, b.png, sub/c.tif, notes.txt, .hidden.png}: three images to colorize."""
    root = tmp_path / "photos"
    gray(root / "a.jpg", (64, 40))
    gray(root / "b.png", (33, 17))
    gray(root / "sub" / "c.tif", (20, 50))
    (root / "notes.txt").write_text("not an image, not picked up from a folder")
    gray(root / ".hidden.png")
    return root


def test_folder_is_mirrored_with_one_full_size_output_per_image_in_its_format(photos: Path, tmp_path: Path, tiny_model: Path, cli) -> None:
    code, out, _ = cli("colorize", photos, "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0 and "3 done, 0 skipped, 0 failed" in out
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert written == ["a.jpg", "b.png", "sub", "sub/c.tif"]
    for name, size, fmt in [("a.jpg", (64, 40), "JPEG"), ("b.png", (33, 17), "PNG"), ("sub/c.tif", (20, 50), "TIFF")]:
        with Image.open(tmp_path / "out" / name) as img:
            assert (img.format, img.size, img.mode) == (fmt, size, "RGB")


def test_rerun_skips_existing_outputs_unless_overwrite(photos: Path, tmp_path: Path, tiny_model: Path, cli) -> None:
    args = ("colorize", photos, "-o", tmp_path / "out", "--model", tiny_model)
    cli(*args)
    (tmp_path / "out" / "b.png").unlink()  # as if the job had been killed before writing it
    (tmp_path / "out" / "a.jpg").write_bytes(b"kept as is")
    code, out, _ = cli(*args)
    assert code == 0 and "1 done, 2 skipped, 0 failed" in out
    assert (tmp_path / "out" / "a.jpg").read_bytes() == b"kept as is"
    code, out, _ = cli(*args, "--overwrite")
    assert "3 done, 0 skipped" in out and Image.open(tmp_path / "out" / "a.jpg").size == (64, 40)


def test_bad_files_get_one_error_line_each_and_the_run_goes_on(photos: Path, bad_file, tmp_path: Path, tiny_model: Path, cli) -> None:
    empty, text, truncated = (bad_file(kind, photos) for kind in ("empty", "text", "truncated"))
    report = tmp_path / "report.json"
    code, out, err = cli("colorize", photos, "-o", tmp_path / "out", "--model", tiny_model, "--report", report)
    assert code == 1
    errors = sorted(line for line in err.splitlines() if line.startswith("error:"))
    assert len(errors) == 3
    assert errors[:2] == [
        f"error: {empty}: empty file (0 bytes)",
        f"error: {text}: not an image Pillow can read",
    ]
    assert errors[2].startswith(f"error: {truncated}: truncated file (")
    assert "3 done, 0 skipped, 3 failed" in out
    outcomes = json.loads(report.read_text())
    assert outcomes["summary"] == {"done": 3, "skipped": 0, "failed": 3}
    by_file = {Path(f["source"]).name: f for f in outcomes["files"]}
    assert by_file["a.jpg"]["status"] == "done" and by_file["a.jpg"]["output"] == str(tmp_path / "out" / "a.jpg")
    assert by_file["empty.jpg"] == {"source": str(empty), "output": str(tmp_path / "out" / "empty.jpg"),
                                    "status": "failed", "reason": "empty file (0 bytes)"}
    assert not (tmp_path / "out" / "empty.jpg").exists()


def test_files_globs_and_folders_mix(gray, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    gray(tmp_path / "scans" / "x1.png")
    gray(tmp_path / "scans" / "deep" / "x2.png")
    gray(tmp_path / "scans" / "y.png")
    gray(tmp_path / "single.jpg")
    gray(tmp_path / "album" / "z.png")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("colorize", "scans/**/x*.png", "single.jpg", "album", "--model", tiny_model)
    assert code == 0, out
    written = sorted(p.relative_to(tmp_path / "colorized").as_posix() for p in (tmp_path / "colorized").rglob("*.*"))
    assert written == ["deep/x2.png", "single.jpg", "x1.png", "z.png"]


def test_output_folder_inside_the_input_folder_is_not_colorized_again(photos: Path, tiny_model: Path, cli) -> None:
    args = ("colorize", photos, "-o", photos / "colorized", "--model", tiny_model)
    assert "3 done" in cli(*args)[1]
    assert "0 done, 3 skipped" in cli(*args)[1]
    assert not (photos / "colorized" / "colorized").exists()


def test_one_input_can_go_to_a_file_name_in_any_format(gray, tmp_path: Path, tiny_model: Path, cli) -> None:
    source = gray(tmp_path / "in.png", (70, 30))
    for name, fmt in [("out.jpg", "JPEG"), ("out.webp", "WEBP"), ("out.png", "PNG")]:
        code, out, _ = cli("colorize", source, "-o", tmp_path / name, "--quality", "80", "--model", tiny_model)
        assert code == 0 and str(tmp_path / name) in out
        with Image.open(tmp_path / name) as img:
            assert (img.format, img.size) == (fmt, (70, 30))
    code, _, err = cli("colorize", source, tmp_path / "out.png", "-o", tmp_path / "two.png", "--model", tiny_model)
    assert code == 2 and "names one file but there are 2 inputs" in err


def test_format_option_sets_the_folder_outputs_format(photos: Path, tmp_path: Path, tiny_model: Path, cli) -> None:
    cli("colorize", photos / "a.jpg", "-o", tmp_path / "out", "--format", "webp", "--model", tiny_model)
    with Image.open(tmp_path / "out" / "a.webp") as img:
        assert img.format == "WEBP"


@pytest.mark.parametrize(
    "options,message",
    [
        (["--size", "0"], "render size must be a positive multiple of 32"),
        (["--size", "48"], "render size must be a positive multiple of 32"),
        (["--format", "gif"], "unknown --format 'gif'"),
        (["--quality", "0"], "--quality must be between 1 and 100"),
        (["--quality", "101"], "--quality must be between 1 and 100"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--backend", "tensorrt"], "unknown backend 'tensorrt'"),
    ],
)
def test_options_out_of_range_are_rejected_before_any_work(photos: Path, tmp_path: Path, tiny_model: Path, options: list[str], message: str, cli) -> None:
    code, _, err = cli("colorize", photos, "-o", tmp_path / "out", "--model", tiny_model, *options)
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_nothing_is_ever_written_over_an_input(photos: Path, tiny_model: Path, cli) -> None:
    before = (photos / "b.png").read_bytes()
    code, _, err = cli("colorize", photos, "-o", photos, "--model", tiny_model)  # every output would be its input
    assert code == 2 and len(err.splitlines()) == 1
    assert f"refusing to write over 3 inputs: {photos / 'a.jpg'}, {photos / 'b.png'}, {photos / 'sub' / 'c.tif'}" in err
    assert "keeps its input's format unless --format" in err
    code, _, err = cli("colorize", photos, "-o", photos, "--format", "png", "--model", tiny_model)
    assert code == 2 and f"refusing to write over the input {photos / 'b.png'};" in err
    code, _, err = cli("colorize", photos / "b.png", "-o", photos / "b.png", "--model", tiny_model)
    assert code == 2 and "refusing to write over the input" in err
    code, _, err = cli("colorize", f"{photos}/*.png", "-o", photos, "--model", tiny_model)
    assert code == 2 and "refusing to write over the input" in err
    assert (photos / "b.png").read_bytes() == before


def test_colliding_stems_keep_their_source_extension_and_are_named_in_one_note(gray, tmp_path: Path, tiny_model: Path, cli) -> None:
    for name in ["photo.bmp", "photo.webp", "x.jpg", "x.png", "alone.jpg"]:
        gray(tmp_path / "p" / name)
    args = ("colorize", tmp_path / "p", "-o", tmp_path / "out", "--format", "png", "--model", tiny_model)
    code, out, err = cli(*args)
    assert code == 0 and "5 done" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["alone.png", "photo.bmp.png", "photo.webp.png", "x.jpg.png", "x.png.png"]
    notes = [line for line in err.splitlines() if line.startswith("note: 4 inputs share a name")]
    assert len(notes) == 1 and "photo.bmp -> photo.bmp.png" in notes[0] and "x.png -> x.png.png" in notes[0]
    assert "0 done, 5 skipped" in cli(*args)[1]


def test_a_photo_without_an_extension_gets_one_and_no_note(gray, tmp_path: Path, tiny_model: Path, cli) -> None:
    gray(tmp_path / "scan.png").rename(tmp_path / "scan")
    code, out, err = cli("colorize", tmp_path / "scan", "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0 and "1 done" in out, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["scan.png"] and "share a name" not in err


def test_stems_that_collide_in_their_own_formats_keep_their_source_extension(gray, tmp_path: Path, tiny_model: Path, cli) -> None:
    for name in ["photo.bmp", "photo.gif", "photo.png", "x.jpg", "x.tif", "y.jpeg", "y.JPG"]:
        gray(tmp_path / "p" / name)
    args = ("colorize", tmp_path / "p", "-o", tmp_path / "out", "--model", tiny_model)
    code, out, err = cli(*args)  # BMP and GIF become PNG, so three photos claim photo.png
    assert code == 0 and "7 done" in out, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "photo.bmp.png", "photo.gif.png", "photo.png.png", "x.jpg", "x.tif", "y.JPG", "y.jpeg"]
    assert "note: 3 inputs share a name" in err
    assert "0 done, 7 skipped" in cli(*args)[1]


def test_collisions_that_renaming_cannot_solve_are_all_refused_in_one_message(gray, tmp_path: Path, tiny_model: Path, cli) -> None:
    files = [gray(tmp_path / folder / name) for folder in ("a", "b") for name in ("x.jpg", "y.png")]
    code, _, err = cli("colorize", *files, "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 2 and len(err.splitlines()) == 1 and "2 output name(s) claimed twice" in err
    assert f"{files[0]} and {files[2]} would both be written to" in err and f"{files[1]} and {files[3]} would both" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("missing,message", [("nowhere", "no such file or folder: "), ("*.nothing", "no images or videos match ")])
def test_inputs_that_name_nothing_are_rejected(tmp_path: Path, tiny_model: Path, missing: str, message: str, cli) -> None:
    code, _, err = cli("colorize", tmp_path / missing, "--model", tiny_model)
    assert code == 2 and message in err


def test_keep_color_leaves_colored_photos_alone_and_reports_the_rule_for_each(gray, gray_gradient, color_wheel, tmp_path: Path,
                                                                              tiny_model: Path, cli) -> None:
    gray(tmp_path / "in" / "bw.png")
    Image.fromarray(color_wheel()).save(tmp_path / "in" / "color.png")
    lawn = np.array([60, 140, 50]) + np.sin(np.arange(96) / 3.0)[None, :, None] * 12 + np.zeros((64, 1, 1))
    lawn[20:44, 30:60] = 125  # a gray ball on a green lawn: one hue, and still a color photo
    Image.fromarray(lawn.astype(np.uint8)).save(tmp_path / "in" / "lawn.png")
    sepia = (gray_gradient(96, 64)[..., None] * np.array([1.0, 0.85, 0.62]) + np.array([0, 4, 10])).clip(0, 255)
    Image.fromarray(sepia.astype(np.uint8)).save(tmp_path / "in" / "sepia.jpg")
    report = tmp_path / "r.json"
    code, out, _ = cli("colorize", tmp_path / "in", "-o", tmp_path / "out", "--keep-color", "--report", report, "--model", tiny_model)
    assert code == 0 and "2 done, 2 skipped" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bw.png", "sepia.jpg"]
    reasons = {Path(f["source"]).name: (f["status"], f["reason"]) for f in json.loads(report.read_text())["files"]}
    assert reasons == {"bw.png": ("done", "a gray photo: colorized"),
                       "sepia.jpg": ("done", "a toned photo (one hue, as a sepia print): colorized"),
                       "color.png": ("skipped", "already in color (--keep-color)"),
                       "lawn.png": ("skipped", "already in color (--keep-color)")}


def test_without_input_the_bundled_sample_is_colorized(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("colorize", "--model", tiny_model)
    assert code == 0 and "colorized/camera.jpg" in out
    with Image.open(tmp_path / "colorized" / "camera.jpg") as img:
        assert (img.format, img.size) == ("JPEG", (512, 512))


def test_a_failed_write_leaves_no_partial_output(photos: Path, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    real_save = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        real_save(self.crop((0, 0, 4, 4)), fp, *args, **kwargs)  # something half-written, then the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    code, _, err = cli("colorize", photos / "a.jpg", "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 2 and "No space left on device" in err  # a full disk stops the job
    assert list((tmp_path / "out").iterdir()) == []


def test_console_script_reports_a_bad_model_in_one_line_with_exit_code_2(gray, tmp_path: Path) -> None:
    source = gray(tmp_path / "in.png")
    run = subprocess.run(
        [Path(sys.executable).with_name("colorgan"), "colorize", source, "--model", tmp_path / "missing.safetensors"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert run.returncode == 2
    assert run.stderr == f"error: no model file at {tmp_path / 'missing.safetensors'}\n"
    assert not (tmp_path / "colorized").exists()


def test_output_folder_that_is_an_input_subfolder_has_its_photos_colorized_too(photos: Path, tiny_model: Path, cli) -> None:
    args = ("colorize", photos, "-o", photos / "sub", "--model", tiny_model)
    code, out, _ = cli(*args)
    assert code == 0 and "3 done, 0 skipped" in out
    assert (photos / "sub" / "sub" / "c.tif").is_file()  # sub/c.tif, mirrored like every input
    assert "0 done, 3 skipped" in cli(*args)[1]  # colorgan's outputs in sub are not taken for photos


def test_output_folder_equal_to_the_input_folder_resumes(gray, tmp_path: Path, tiny_model: Path, cli) -> None:
    root = tmp_path / "album"
    gray(root / "a.jpg")
    gray(root / "sub" / "c.tif")
    args = ("colorize", root, "-o", root, "--format", "png", "--model", tiny_model)
    assert "2 done, 0 skipped" in cli(*args)[1]
    (root / "sub" / "c.png").unlink()  # as if the job had been killed before writing it
    code, out, _ = cli(*args)
    assert code == 0 and "1 done, 1 skipped, 0 failed" in out
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")) == ["a.png", "sub/c.png"]


def test_stale_temporaries_of_planned_outputs_are_removed_and_nothing_else(photos: Path, tmp_path: Path, tiny_model: Path, cli) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh, foreign, other_name = (out / n for n in (".a.jpg.k3x_9qz0.tmp", ".b.png.abcdefgh.tmp", ".a.jpg.mine.tmp", ".z.png.abcdefgh.tmp"))
    for path in (stale, fresh, foreign, other_name):
        path.write_bytes(b"half a photo")
    for path in (stale, foreign, other_name):
        os.utime(path, (time.time() - 3600,) * 2)  # left by a run killed an hour ago
    code, _, err = cli("colorize", photos, "-o", out, "--model", tiny_model)
    assert code == 0 and "removed 1 stale temporary file" in err
    assert not stale.exists() and fresh.exists() and foreign.exists() and other_name.exists()


@pytest.mark.parametrize("where", ["notes.txt/report.json", "folder.json"])
def test_an_unwritable_report_is_refused_before_any_work(photos: Path, tmp_path: Path, tiny_model: Path, where: str, cli) -> None:
    (tmp_path / "folder.json").mkdir()
    report = photos / where if where.startswith("notes") else tmp_path / where
    code, _, err = cli("colorize", photos, "-o", tmp_path / "out", "--report", report, "--model", tiny_model)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: cannot write --report {report}: ")
    assert not (tmp_path / "out").exists()


def test_a_report_that_fails_at_the_end_keeps_the_summary(photos: Path, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    def disk_full(path, report):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("colorgan.colorize.outcomes.write_report", disk_full)
    code, out, err = cli("colorize", photos, "-o", tmp_path / "out", "--report", tmp_path / "r.json", "--model", tiny_model)
    assert code == 1 and "3 done, 0 skipped, 0 failed" in out
    assert f"error: cannot write the report {tmp_path / 'r.json'}: [Errno 28] No space left on device" in err


def test_broken_symbolic_links_are_reported_as_skipped(photos: Path, tmp_path: Path, tiny_model: Path, cli) -> None:
    (photos / "gone.png").symlink_to(photos / "deleted.png")
    (photos / "loop1.png").symlink_to(photos / "loop2.png")
    (photos / "loop2.png").symlink_to(photos / "loop1.png")
    report = tmp_path / "r.json"
    code, out, _ = cli("colorize", photos, "-o", tmp_path / "out", "--report", report, "--model", tiny_model)
    assert code == 0 and "3 done, 3 skipped, 0 failed" in out
    skipped = {Path(f["source"]).name: f["reason"] for f in json.loads(report.read_text())["files"] if f["status"] == "skipped"}
    assert skipped == {"gone.png": "dangling symbolic link", "loop1.png": "symbolic link loop", "loop2.png": "symbolic link loop"}


@pytest.mark.parametrize("name", ["x.ppm", "x.gif", "x.BMP"])
def test_an_output_file_in_a_format_colorgan_cannot_write_is_refused(gray, tmp_path: Path, tiny_model: Path, name: str, cli) -> None:
    source = gray(tmp_path / "in.png")
    code, _, err = cli("colorize", source, "-o", tmp_path / name, "--model", tiny_model)
    assert code == 2 and f"colorgan cannot write {Path(name).suffix.lower()} files" in err
    assert not (tmp_path / name).exists()


def test_a_photo_named_like_an_output_is_still_a_photo(gray, tmp_path: Path, tiny_model: Path, cli) -> None:
    root = tmp_path / "album"
    gray(root / "x.jpg")
    before = gray(root / "x.png").read_bytes()  # a real photo, not colorgan's output of x.jpg
    args = ("colorize", root, "-o", root, "--format", "png", "--model", tiny_model)
    assert "2 done, 0 skipped" in cli(*args)[1]
    assert sorted(p.name for p in root.iterdir()) == ["x.jpg", "x.jpg.png", "x.png", "x.png.png"]
    assert (root / "x.png").read_bytes() == before
    assert "0 done, 2 skipped" in cli(*args)[1]


def test_a_second_job_on_the_same_output_folder_is_refused_while_the_first_runs(photos: Path, tmp_path: Path, tiny_model: Path, cli) -> None:
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "out"
    out.mkdir()
    from colorgan.colorize.outputs import lock_path

    with lock_path(out).open("a") as held:  # what a running job holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = cli("colorize", photos, "-o", out, "--model", tiny_model)
        assert code == 2 and "another colorgan job is writing to" in err
        assert not any(out.glob("*.png"))  # it did no work
    code, out_text, _ = cli("colorize", photos, "-o", out, "--model", tiny_model)
    assert code == 0 and "3 done" in out_text  # once the first job is gone, the folder is free


# --- color hints -----------------------------------------------------------------------------


def test_hints_guide_one_photo_from_options_and_from_a_file(gray, tmp_path: Path, tiny_hint_model: Path, cli) -> None:
    photo = gray(tmp_path / "cup.jpg", (80, 60))
    (tmp_path / "hints.json").write_text('[{"x": 10, "y": 20, "color": [200, 40, 40]}]')
    runs = {"none": [], "option": ["--hint", "0.41,0.62,#2060d0", "--hint", "5,5,#fff"], "file": ["--hints", tmp_path / "hints.json"]}
    outputs = {}
    for name, args in runs.items():
        code, out, err = cli("colorize", photo, "-o", tmp_path / f"{name}.png", "--model", tiny_hint_model, *args)
        assert code == 0 and "1 done" in out, err
        outputs[name] = np.asarray(Image.open(tmp_path / f"{name}.png")).astype(int)
    assert np.abs(outputs["option"] - outputs["none"]).max() > 0
    assert np.abs(outputs["file"] - outputs["none"]).max() > 0


@pytest.mark.parametrize("args,message", [
    (["--hint", "0.5,0.5,#zzz"], "not a hex color"),
    (["--hint", "1.2,0.5,#fff"], "outside the photo"),
    (["--hint", "80,5,#fff"], "outside the photo (80x60 pixels)"),
    (["--hint", "0.5"], "must be X,Y,COLOR"),
    (["--hints", "missing.json"], "cannot read hint file"),
])
def test_bad_hints_are_one_error_line_exit_2_and_nothing_written(gray, tmp_path: Path, tiny_hint_model: Path, args, message, cli) -> None:
    photo = gray(tmp_path / "cup.jpg", (80, 60))
    code, _, err = cli("colorize", photo, "-o", tmp_path / "out.png", "--model", tiny_hint_model, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_hints_need_one_photo_and_a_model_that_takes_them(photos: Path, gray, tmp_path: Path, tiny_model: Path, tiny_hint_model: Path, cli) -> None:
    code, _, err = cli("colorize", photos, "-o", tmp_path / "out", "--model", tiny_hint_model, "--hint", "0.5,0.5,#fff")
    assert code == 2 and "guide one photo or video; 3 inputs" in err
    photo = gray(tmp_path / "one.png")
    code, _, err = cli("colorize", photo, "-o", tmp_path / "out.png", "--model", tiny_model, "--hint", "0.5,0.5,#fff")
    assert code == 2 and "takes no color hints" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.png").exists()


def test_an_output_file_in_a_missing_folder_is_refused_and_no_folder_is_made(gray, tmp_path: Path, tiny_model: Path, cli) -> None:
    photo = gray(tmp_path / "one.png")
    code, _, err = cli("colorize", photo, "-o", tmp_path / "missing" / "dir" / "x.png", "--model", tiny_model)
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "missing").exists()
    code, _, err = cli("colorize", photo, "-o", photo / "x.png", "--model", tiny_model)  # under a file
    assert code == 2 and f"{photo} is a file, not a folder" in err
    code, out, _ = cli("colorize", photo, "-o", tmp_path / "new" / "folder", "--model", tiny_model)  # a folder is made
    assert code == 0 and (tmp_path / "new" / "folder" / "one.png").is_file()

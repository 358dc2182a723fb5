"""`colorgan train` from the command line: flags, config file, and one-line errors with exit code 2."""

import subprocess
import sys

import pytest


def _colorgan(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "colorgan", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_train_command_runs_a_config_file_with_flag_overrides(make_photos, tmp_path):
    data = make_photos(4)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"stage: pretrain\ngenerator: resunet\nencoder_weights: none\ndata: {data}\nsize: 128\nworkers: 0\n")
    proc = _colorgan("train", "--config", str(cfg), "--size", "32", "--epochs", "1", "--batch-size", "2",
                     "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "size: 32" in (tmp_path / "run" / "config.yaml").read_text()
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "{missing}"], "photo folder not found"),
        (["--data", "{photos}", "--generator", "vgg"], "unknown generator 'vgg'"),
        (["--data", "{photos}", "--encoder", "resnet999"], "unknown encoder 'resnet999'"),
        (["--data", "{photos}", "--size", "100"], "multiple of 32"),
        (["--data", "{photos}", "--resume"], "no checkpoint"),
        (["--config", "{bad_yaml}"], "cannot read config"),
        (["--config", "{missing}"], "cannot read config"),
        (["--data", "{photos}", "--init-from", "{missing}"], "no model weights"),
        (["--data", "{photos}", "--balance", "2"], "--balance must be between 0 and 1"),
        (["--data", "{photos}", "--crop-scale", "0"], "--crop-scale must be in (0, 1]"),
        (["--data", "{photos}", "--ema", "1.5"], "--ema must be a decay"),
        (["--data", "{photos}", "--max-minutes", "-1"], "--max-minutes must be positive"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_code_2(make_photos, tmp_path, args, message):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("stage: [unclosed\n")
    paths = {"missing": str(tmp_path / "missing"), "photos": str(make_photos(2)), "bad_yaml": str(bad_yaml)}
    proc = _colorgan("train", *[a.format(**paths) for a in args], "--out", str(tmp_path / "run"), "--workers", "0")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr

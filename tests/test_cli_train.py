"""`colorgan train` from the command line: flags, config file, and one-line errors with exit code 2."""

import re
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
        (["--data", "{photos}", "--init-from", "{missing}"], "no model file"),
        (["--data", "{photos}", "--balance", "2"], "--balance must be between 0 and 1"),
        (["--data", "{photos}", "--crop-scale", "0"], "--crop-scale must be above 0 and at most 1, got 0"),
        (["--data", "{photos}", "--ema", "1.5"], "--ema must be above 0 and below 1, got 1.5"),
        (["--data", "{photos}", "--max-minutes", "-1"], "--max-minutes must be above 0, got -1"),
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


def _invoke(*args: str):
    """``colorgan ARGS`` in this process (no interpreter start-up): exceptions stay on the result."""
    from typer.testing import CliRunner

    from colorgan.commands import app

    return CliRunner().invoke(app, list(args))


def _started_run(make_photos, tmp_path):
    from colorgan.training.config import TrainConfig
    from colorgan.training.loop import run_training

    run = tmp_path / "run"
    run_training(TrainConfig(stage="pretrain", encoder_weights=None, data=make_photos(4), size=32, batch_size=2,
                             epochs=1, workers=0, out=run, save_every=0))
    return run


def test_resume_needs_only_the_run_folder_and_takes_flags_that_do_not_change_the_run(make_photos, tmp_path):
    run = _started_run(make_photos, tmp_path)
    result = _invoke("train", "--resume", "--out", str(run), "--epochs", "2", "--max-minutes", "30", "--quiet")
    assert result.exit_code == 0, (result.output, result.exception)
    assert len((run / "losses.csv").read_text().splitlines()) == 3  # header + 2 epochs: the run went on
    saved = (run / "config.yaml").read_text()
    assert "epochs: 2" in saved and "stage: pretrain" in saved and "size: 32" in saved


@pytest.mark.parametrize("flags", [("--size", "64"), ("--generator", "unet"), ("--stage", "gan"), ("--encoder", "resnet18"), ("--hints",)])
def test_resume_refuses_flags_that_would_change_the_run(make_photos, tmp_path, flags):
    from colorgan.errors import UserError

    flag = flags[0]
    run = _started_run(make_photos, tmp_path)
    result = _invoke("train", "--resume", "--out", str(run), *flags)
    assert isinstance(result.exception, UserError), (result.output, result.exception)
    assert "--resume cannot change" in str(result.exception) and flag in str(result.exception)


def test_version_prints_the_package_version():
    from colorgan import __version__

    result = _invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"colorgan {__version__}"


@pytest.mark.parametrize("command", [["colorize"], ["train"], ["evaluate"], ["serve"], ["export", "onnx"], []])
def test_help_shows_no_type_for_on_off_flags(command):
    from typer.testing import CliRunner

    from colorgan.commands import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    flag_lines = [line for line in result.output.splitlines() if "--help" in line or "--quiet" in line]
    assert flag_lines and all("<" not in line for line in flag_lines), flag_lines


def test_train_help_shows_the_defaults_of_train_config():
    import dataclasses

    from typer.testing import CliRunner

    from colorgan.commands import TRAIN_DEFAULTS, app
    from colorgan.training.config import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert {k: str(v) for k, v in TRAIN_DEFAULTS.items()} == {k: str(defaults[k]) for k in TRAIN_DEFAULTS}
    help_text = " ".join(CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output.split())
    for option, shown in [("--size", "256"), ("--epochs", "20"), ("--batch-size", "16"), ("--save-every", "500"),
                          ("--stage", "gan"), ("--lr", "1e-4 pretrain, 2e-4 gan"), ("--out", "runs/colorgan")]:
        assert re.search(re.escape(option) + r" .*?\[default: \(?" + re.escape(shown), help_text), option


def test_init_from_takes_a_bundled_model_by_name_and_a_mismatch_says_what_to_add(make_photos, tmp_path, cli):
    data = make_photos(4)
    common = ["--data", str(data), "--size", "32", "--epochs", "1", "--batch-size", "2", "--workers", "0", "--stage", "pretrain",
              "--val-limit", "1", "-q"]
    code, _, err = cli("train", "--init-from", "default", *common, "--out", tmp_path / "plain")
    assert code == 2 and err.count("\n") == 1 and "add --hints" in err
    code, _, err = cli("train", "--init-from", "default", "--hints", *common, "--out", tmp_path / "hints")
    assert code == 0, err
    assert (tmp_path / "hints" / "model.safetensors").is_file()

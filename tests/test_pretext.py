"""`colorgan pretext`: colorization as self-supervision for classification (paper Table 5.1), on tiny synthetic data."""

import json
import re
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorgan import cli
from colorgan.errors import UserError
from colorgan.model.files import read_model_json
from colorgan.networks import build_generator
from colorgan.experiments.pretext.classifier import build_classifier, colorizer_encoder_state
from colorgan.experiments.pretext.config import PretextConfig
from colorgan.experiments.pretext.labels import LabeledPhotos, read_image_folders, stratified_subset
from colorgan.experiments.pretext.run import average_precision, fit, run_pretext, score

SIZE = 32


def _photo(kind: str, seed: int) -> Image.Image:
    """A random gradient with a red disc ("disc") or a blue bar ("bar")."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:48] / 48
    c0, c1 = rng.uniform(0.3, 0.9, size=(2, 3))
    img = c0 * (1 - x[..., None]) + c1 * x[..., None]
    if kind == "disc":
        img[(y - rng.uniform(0.3, 0.7)) ** 2 + (x - rng.uniform(0.3, 0.7)) ** 2 < 0.05] = (0.9, 0.1, 0.1)
    else:
        top = rng.uniform(0.2, 0.6)
        img[(y > top) & (y < top + 0.25)] = (0.1, 0.2, 0.9)
    return Image.fromarray((img * 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    """train/{bar,disc}: 8 photos each; val/{bar,disc}: 4 each (PNG and JPEG)."""
    root = tmp_path_factory.mktemp("pretext_photos")
    for split, n in (("train", 8), ("val", 4)):
        for c, kind in enumerate(("bar", "disc")):
            (root / split / kind).mkdir(parents=True)
            for i in range(n):
                _photo(kind, 1000 * c + 100 * (split == "val") + i).save(root / split / kind / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root / "train", root / "val"


@pytest.fixture(scope="module")
def colorizer(photos, tmp_path_factory) -> Path:
    """A 1-epoch resunet colorizer trained from scratch on the (unlabelled) training photos."""
    from colorgan.training.config import TrainConfig
    from colorgan.training.loop import run_training

    out = tmp_path_factory.mktemp("pretext_colorizer") / "run"
    run_training(TrainConfig(generator="resunet", encoder_weights=None, stage="pretrain", data=photos[0], size=SIZE,
                             epochs=1, batch_size=4, workers=0, out=out))
    return out


def _copy_with_meta(colorizer: Path, dest: Path, edit) -> Path:
    shutil.copytree(colorizer, dest, ignore=shutil.ignore_patterns("checkpoint", "tensorboard", "samples"))
    meta = json.loads((dest / "model.json").read_text())
    edit(meta)
    (dest / "model.json").write_text(json.dumps(meta))
    return dest


def _cfg(photos, colorizer, tmp_path, **kw) -> PretextConfig:
    base = {"data": photos[0], "val": photos[1], "colorizer": colorizer, "init": "scratch", "epochs": 1,
            "freeze_epochs": 1, "size": SIZE, "seeds": 1, "batch_size": 4, "workers": 0, "out": tmp_path / "out"}
    return PretextConfig(**(base | kw))


def _cli(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["colorgan", "pretext", *args])
    try:
        cli.main()
    except SystemExit as exc:
        return exc.code
    return 0


def test_both_arms_run_and_write_the_report_and_table(photos, colorizer, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code = _cli(monkeypatch, "--data", str(photos[0]), "--val", str(photos[1]), "--colorizer", str(colorizer),
                "--init", "both", "--seeds", "2", "--epochs", "2", "--freeze-epochs", "1", "--size", str(SIZE),
                "--batch-size", "4", "--workers", "0", "--out", str(out), "--quiet")
    stdout = capsys.readouterr().out
    assert code == 0
    for init, row_name in (("scratch", "Random init"), ("colorization", "Colorization weights")):
        report = json.loads((out / f"pretext_{init}.json").read_text())
        values = [r["top1"] for r in report["per_seed"]]
        assert [r["seed"] for r in report["per_seed"]] == [0, 1]
        assert all(0 <= v <= 1 for v in values)
        assert report["mean"] == pytest.approx(statistics.fmean(values))
        assert report["std"] == pytest.approx(statistics.stdev(values))
        assert report["metric"] == "top1" and report["classes"] == ["bar", "disc"] and report["val_photos"] == 8
        frozen = [[row["encoder_frozen"] for row in r["history"]] for r in report["per_seed"]]
        assert frozen == [[init == "colorization", False]] * 2  # the scratch arm never freezes: same budget
        assert report["colorizer"]["encoder_weights"] is None
        assert row_name in stdout
    assert "Classification accuracy" in stdout


def test_frozen_epochs_leave_the_encoder_bit_identical_and_train_the_head(photos, colorizer, tmp_path):
    train, val = read_image_folders(*photos)
    _, meta = read_model_json(colorizer)
    state = colorizer_encoder_state(colorizer)
    torch.manual_seed(0)
    model = build_classifier(meta, len(train.classes))
    model.encoder.load_state_dict(state)
    assert all(torch.equal(v, state[k]) for k, v in model.encoder.state_dict().items())
    before = {k: v.clone() for k, v in model.state_dict().items()}

    history = fit(model, train, val, _cfg(photos, colorizer, tmp_path), seed=0, freeze_epochs=1)
    after = model.state_dict()
    assert history[0]["encoder_frozen"]
    encoder_keys = [k for k in after if k.startswith("encoder.")]
    assert any("running_mean" in k for k in encoder_keys)  # BatchNorm statistics are part of the check
    assert all(torch.equal(after[k], before[k]) for k in encoder_keys)
    assert not torch.equal(after["head.weight"], before["head.weight"])

    fit(model, train, val, _cfg(photos, colorizer, tmp_path), seed=0, freeze_epochs=0)  # unfrozen: the encoder moves
    assert not all(torch.equal(model.state_dict()[k], before[k]) for k in encoder_keys)


def test_unet_encoder_is_the_chained_down_path_and_takes_the_generators_weights():
    meta = {"generator": "unet", "config": {"base_channels": 8, "num_downs": 5}}
    model = build_classifier(meta, 3)
    generator = build_generator("unet", base_channels=8, num_downs=5)
    model.encoder.load_state_dict(generator.encoder.state_dict())  # strict: same keys and shapes
    assert model.size_multiple == 32
    assert model.eval()(torch.zeros(2, 1, 32, 32)).shape == (2, 3)


def test_a_colorizer_that_saw_imagenet_or_has_no_provenance_is_rejected(colorizer, tmp_path):
    imagenet = _copy_with_meta(colorizer, tmp_path / "imagenet", lambda m: m["training"].update(encoder_weights="imagenet"))
    with pytest.raises(UserError, match=r"encoder started from ImageNet weights \(imagenet\).*--encoder-weights none"):
        colorizer_encoder_state(imagenet)
    unknown = _copy_with_meta(colorizer, tmp_path / "unknown", lambda m: m.update(training={}))
    with pytest.raises(UserError, match="does not record where its encoder"):
        colorizer_encoder_state(unknown)


def test_a_colorizer_whose_weights_are_another_architecture_is_rejected(colorizer, tmp_path):
    other = _copy_with_meta(colorizer, tmp_path / "other", lambda m: m["config"].update(encoder="resnet18"))
    with pytest.raises(UserError, match="does not fit this resunet architecture"):
        colorizer_encoder_state(other)


@pytest.mark.parametrize(
    "case,message",
    [
        ("no_classes", "has no class folders"),
        ("missing_val_class", "classes missing from the validation folder .*: disc"),
        ("fraction_0", r"--label-fraction must be above 0 and at most 1, got 0"),
        ("fraction_1.5", r"--label-fraction must be above 0 and at most 1, got 1.5"),
        ("imagenet", "started from ImageNet weights"),
        ("size", "multiple of 32"),
        ("fp16", "--mixed-precision must be one of auto, no, bf16"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_code_2(photos, colorizer, tmp_path, monkeypatch, capsys, case, message):
    flat, partial = tmp_path / "flat", tmp_path / "partial"
    flat.mkdir()
    _photo("disc", 0).save(flat / "a.png")
    shutil.copytree(photos[1] / "bar", partial / "bar")
    args = {"--data": photos[0], "--val": photos[1], "--colorizer": colorizer, "--init": "colorization",
            "--size": SIZE, "--label-fraction": 1.0}
    args |= {
        "no_classes": {"--data": flat},
        "missing_val_class": {"--val": partial},
        "fraction_0": {"--label-fraction": 0},
        "fraction_1.5": {"--label-fraction": 1.5},
        "imagenet": {"--colorizer": _copy_with_meta(colorizer, tmp_path / "c", lambda m: m["training"].update(encoder_weights="imagenet"))},
        "size": {"--size": 48},
        "fp16": {"--mixed-precision": "fp16"},
    }[case]
    code = _cli(monkeypatch, *[str(s) for kv in args.items() for s in kv], "--workers", "0", "--out", str(tmp_path / "out"))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err
    assert re.search(message, err), err


def test_label_fraction_is_stratified_reproducible_and_keeps_every_class():
    strata = [0] * 10 + [1] * 4 + [2]
    keep = stratified_subset(strata, 0.5, seed=3)
    assert [sum(strata[i] == c for i in keep) for c in range(3)] == [5, 2, 1]
    assert keep == stratified_subset(strata, 0.5, seed=3)
    multi = LabeledPhotos([Path(str(i)) for i in range(3)], torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]), ["a", "b"])
    assert multi.strata() == [1, 0, -1]  # a multilabel photo counts under its rarest label


def test_average_precision_matches_a_hand_computed_case():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.4], [0.7, 0.3], [0.6, 0.2]])
    targets = torch.tensor([[1, 0], [0, 0], [1, 0], [0, 0]])
    ap = average_precision(scores, targets)
    assert ap[0].item() == pytest.approx((1 / 1 + 2 / 3) / 2)  # positives at ranks 1 and 3
    assert torch.isnan(ap[1])  # no positive: left out of the mean
    assert score(scores, targets) == pytest.approx(5 / 6)
    assert score(torch.tensor([[2.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0])) == 0.5


def test_multilabel_csv_trains_with_bce_and_reports_map(photos, colorizer, tmp_path):
    labels = tmp_path / "labels.csv"
    rows = ["path,labels"]
    for split in photos:
        rows += [f"{p.relative_to(split).as_posix()},{p.parent.name};{'warm' if p.parent.name == 'disc' else ''}"
                 for p in sorted(split.rglob("*.*"))]
    labels.write_text("\n".join(rows) + "\n")
    (report,) = run_pretext(_cfg(photos, colorizer, tmp_path, multilabel=(labels,), label_fraction=0.5))
    assert report["metric"] == "mAP" and report["classes"] == ["bar", "disc", "warm"]
    assert 0 <= report["per_seed"][0]["mAP"] <= 1 and report["per_seed"][0]["train_photos"] == 8
    assert json.loads((tmp_path / "out" / "pretext_scratch.json").read_text())["mean"] == report["mean"]

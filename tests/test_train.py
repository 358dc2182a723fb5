"""Training: both stages, both generators, run-folder artifacts, resume, multi-process, bad input."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from colorgan.errors import UserError
from colorgan.evaluation.evaluate import EVAL_SIZE, GRID_HEADER, EvalSettings, evaluate
from colorgan.training.losses import LOSS_NAMES, GANLoss, PerceptualLoss
from colorgan.model.artifact import load_pretrained, save_pretrained
from colorgan.networks import PatchGAN, build_generator
from colorgan.training.checkpoint import latest_checkpoint
from colorgan.training.config import TrainConfig
from colorgan.training.loop import run_training
from colorgan.training.step import Nets, to_model_input, train_step
from colorgan.training.trainer import resolve_precision
from colorgan.training import start, trainer
from colorgan.training.checkpoint import Checkpointer
from colorgan.training.trainer import make_accelerator


# what a run without --lambda-perceptual and --color-head logs
GAN_LOSSES = tuple(name for name in LOSS_NAMES if name not in ("Loss_G_perceptual", "Loss_G_color"))


def _config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(stage="gan", generator="resunet", encoder_weights=None, data=data, val=data, size=32,
                batch_size=4, epochs=2, workers=0, out=out, val_limit=4, samples=2)
    return TrainConfig(**(base | kw))


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "losses.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("generator,size", [("resunet", 64), ("unet", 256)])
def test_two_epoch_gan_smoke_run_writes_every_artifact(make_photos, tmp_path, generator, size):
    data = make_photos(8)
    run = tmp_path / "run"
    result = run_training(_config(data, run, generator=generator, size=size, batch_size=4 if generator == "resunet" else 2))
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for row in rows:
        for name in (*GAN_LOSSES, "val_Loss_G_L1", "val_psnr", "val_cf", "val_delta_cf", "val_auc"):
            assert math.isfinite(float(row[name])), name
        assert row["Loss_G_perceptual"] == ""  # not asked for
        assert float(row["Loss_D"]) == pytest.approx((float(row["Loss_D_fake"]) + float(row["Loss_D_real"])) / 2, abs=1e-4)
        assert float(row["Loss_G"]) == pytest.approx(float(row["Loss_G_GAN"]) + float(row["Loss_G_L1"]), abs=1e-3)
        assert row["photos"] == "8"
    # gray | prediction | truth, one validation photo per row, as `colorgan evaluate --save-grid` draws them
    assert Image.open(run / "samples" / "epoch_0002.png").size == (3 * EVAL_SIZE, GRID_HEADER + 2 * EVAL_SIZE)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert latest_checkpoint(run) is not None
    state = torch.load(latest_checkpoint(run) / "state.pt", weights_only=True)  # no pickle needed to resume
    assert state["epoch"] == 2
    model, meta = load_pretrained(run)
    assert meta["generator"] == generator and meta["size"] == size and meta["training"]["epochs"] == 2
    assert len(result.history) == 2


def test_pretrain_stage_logs_l1_only_and_gan_stage_starts_from_it(make_photos, tmp_path):
    data = make_photos(8)
    pre = tmp_path / "pre"
    run_training(_config(data, pre, stage="pretrain", epochs=1, encoder_weights="imagenet"))
    row = _rows(pre)[0]
    assert row["Loss_D"] == "" and row["Loss_G_GAN"] == ""
    assert float(row["Loss_G"]) == pytest.approx(float(row["Loss_G_L1"]))
    pretrained, meta = load_pretrained(pre)
    assert meta["training"]["encoder_weights"] == "imagenet"

    gan = tmp_path / "gan"
    result = run_training(_config(data, gan, epochs=1, init_from=pre, save_every=0))
    _, gan_meta = load_pretrained(gan)
    assert gan_meta["training"]["encoder_weights"] == "imagenet"  # provenance follows the init chain
    assert gan_meta["training"]["init_from"] == str(pre)
    assert result.discriminator is not None


def test_resumed_run_matches_an_uninterrupted_one(make_photos, tmp_path):
    data = make_photos(8)
    straight = run_training(_config(data, tmp_path / "straight", epochs=2, save_every=0))
    run_training(_config(data, tmp_path / "resumed", epochs=1, save_every=0))
    resumed = run_training(_config(data, tmp_path / "resumed", epochs=2, resume=True, save_every=0))
    for (name, a), b in zip(straight.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    assert _rows(tmp_path / "resumed") == [
        {**r, "seconds": s["seconds"]} for r, s in zip(_rows(tmp_path / "straight"), _rows(tmp_path / "resumed"))
    ]


def test_mid_epoch_checkpoint_resumes_at_the_right_step(make_photos, tmp_path):
    data = make_photos(12)
    straight = run_training(_config(data, tmp_path / "a", epochs=1, save_every=0, val=None))
    run_training(_config(data, tmp_path / "b", epochs=1, save_every=2, val=None))
    # roll the run back to its mid-epoch checkpoint (step 2 of 3), as a kill there would leave it
    ckpt = tmp_path / "b" / "checkpoint"
    (ckpt / "LATEST").write_text("step-000000002\n")
    resumed = run_training(_config(data, tmp_path / "b", epochs=1, save_every=0, val=None, resume=True))
    for a, b in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_a_killed_checkpoint_write_leaves_the_last_good_one(make_photos, tmp_path):
    data = make_photos(8)
    run = tmp_path / "run"
    run_training(_config(data, run, epochs=1, save_every=0, val=None))
    good = latest_checkpoint(run)
    (run / "checkpoint" / "step-000000099.tmp").mkdir()  # half-written folder of a killed save
    assert latest_checkpoint(run) == good
    run_training(_config(data, run, epochs=2, save_every=0, val=None, resume=True))
    assert latest_checkpoint(run).name == "step-000000004"
    assert not (run / "checkpoint" / "step-000000099.tmp").exists()


def test_leftovers_of_killed_saves_never_push_out_a_real_checkpoint(tmp_path):
    checkpointer = Checkpointer(run=tmp_path, keep=2)
    net = torch.nn.Linear(2, 2)
    checkpointer.save(2, modules={"generator": net}, state={"global_step": 2})
    # a save killed before its folder's rename; its step is past every complete checkpoint's
    stale = tmp_path / "checkpoint" / "step-000000003.tmp"
    stale.mkdir()
    (stale / "generator.safetensors").write_bytes(b"half a file")
    checkpointer.save(4, modules={"generator": net}, state={"global_step": 4})
    # keep=2 means the two newest complete checkpoints: a pruning that counted step-3.tmp would delete step-2
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == ["LATEST", "step-000000002", "step-000000004"]
    assert latest_checkpoint(tmp_path).name == "step-000000004"


def test_gray_and_corrupt_photos_are_skipped_and_counted(make_photos, tmp_path, caplog):
    data = make_photos(8)
    Image.new("L", (40, 40), 90).save(data / "old_gray.png")
    (data / "broken.jpg").write_bytes(b"garbage")
    run_training(_config(data, tmp_path / "run", epochs=1, val=None, batch_size=5))  # 10 files: 2 full batches
    row = _rows(tmp_path / "run")[0]
    assert (row["photos"], row["skipped"]) == ("8", "2")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("old_gray.png" in w for w in warnings) == 1 and sum("broken.jpg" in w for w in warnings) == 1


def test_yaml_config_holds_the_same_keys_and_flags_override_it(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("stage: pretrain\nbatch-size: 8\nsize: 128\ndata: photos\nencoder_weights: none\n")
    cfg = TrainConfig.from_sources(yaml_path=cfg_file, overrides={"size": 64})
    assert (cfg.stage, cfg.batch_size, cfg.size, cfg.data, cfg.encoder_weights) == ("pretrain", 8, 64, Path("photos"), None)
    assert cfg.learning_rate == 1e-4 and cfg.betas == (0.9, 0.999)
    assert TrainConfig(stage="gan").learning_rate == 2e-4 and TrainConfig(stage="gan").betas == (0.5, 0.999)


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(generator="vgg"), "unknown generator"),
        (dict(encoder="resnet999"), "unknown encoder"),
        (dict(size=100), "multiple of 32"),
        (dict(generator="unet", size=128), "multiple of 256"),
        (dict(stage="finetune"), "--stage"),
        (dict(mixed_precision="fp8"), "--mixed-precision"),
        (dict(lambda_perceptual=-1.0), "--lambda-perceptual"),
        (dict(d_norm="layer"), "--d-norm"),
        (dict(resume=True), "no checkpoint"),
        (dict(data=Path("/nonexistent/photos")), "not found"),
    ],
)
def test_impossible_settings_are_user_errors(make_photos, tmp_path, change, message):
    change = dict(change)
    cfg = _config(change.pop("data", None) or make_photos(2), tmp_path / "run", **change)
    with pytest.raises(UserError, match=message):
        run_training(cfg)


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_precision_uses_bf16_on_cpus_only_where_the_hardware_computes_it(monkeypatch, native_bf16):
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: native_bf16)
    assert resolve_precision("auto", cpu=True) == ("bf16" if native_bf16 else "no")
    assert resolve_precision("no", cpu=True) == "no" and resolve_precision("bf16", cpu=True) == "bf16"


def test_folder_of_only_grayscale_photos_is_a_user_error(tmp_path):
    (tmp_path / "photos").mkdir()
    for i in range(3):
        Image.new("L", (32, 32), 40 * i).save(tmp_path / "photos" / f"g{i}.png")
    with pytest.raises(UserError, match="no usable color photos"):
        run_training(_config(tmp_path / "photos", tmp_path / "run", val=None, epochs=1))


def test_existing_run_is_never_overwritten_without_resume(make_photos, tmp_path):
    data = make_photos(4)
    run_training(_config(data, tmp_path / "run", epochs=1, val=None))
    with pytest.raises(UserError, match="already holds a training run"):
        run_training(_config(data, tmp_path / "run", epochs=1, val=None))


def test_init_from_a_model_of_another_architecture_is_a_user_error(make_photos, tmp_path):
    save_pretrained(build_generator("resunet", encoder="resnet18"), tmp_path / "other", size=64)
    with pytest.raises(UserError, match="--init-from"):
        run_training(_config(make_photos(4), tmp_path / "run", init_from=tmp_path / "other"))


DIST_SCRIPT = """
import os, sys
from pathlib import Path
from safetensors.torch import save_file
from colorgan.training.loop import TrainConfig, run_training
data, out = Path(sys.argv[1]), Path(sys.argv[2])
result = run_training(TrainConfig(stage="gan", generator="resunet", encoder_weights=None, data=data, size=32,
                                  batch_size=2, epochs=1, workers=0, out=out, save_every=0))
params = {k: v.detach().contiguous() for k, v in result.generator.named_parameters()}
save_file(params, str(out.parent / f"rank{os.environ['RANK']}.safetensors"))
"""


def test_two_cpu_processes_train_in_sync(make_photos, tmp_path):
    data = make_photos(8)
    script = tmp_path / "dist.py"
    script.write_text(DIST_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master-port", str(29500 + os.getpid() % 1000),
         str(script), str(data), str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    row = _rows(tmp_path / "run")[0]
    assert row["photos"] == "8"  # each process saw its own half of the photos


def test_corrupt_init_or_checkpoint_files_are_user_errors(make_photos, tmp_path):
    data = make_photos(4)
    save_pretrained(build_generator("resunet"), tmp_path / "init", size=32)
    (tmp_path / "init" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read"):
        run_training(_config(data, tmp_path / "run", init_from=tmp_path / "init", val=None))
    run_training(_config(data, tmp_path / "ok", epochs=1, val=None))
    (latest_checkpoint(tmp_path / "ok") / "state.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read checkpoint") as refused:
        run_training(_config(data, tmp_path / "ok", epochs=2, val=None, resume=True))
    assert "not a training state colorgan wrote" in str(refused.value) and "weights_only" not in str(refused.value)


def test_resume_of_a_folder_without_a_run_says_so(cli, tmp_path):
    code, _, err = cli("train", "--resume", "--out", tmp_path / "nothing")
    assert code == 2 and "holds no run to continue" in err and "--data" not in err and not (tmp_path / "nothing").exists()


def test_ema_run_publishes_the_weight_average_and_resumes_it_exactly(make_photos, tmp_path):
    data = make_photos(8)
    straight = run_training(_config(data, tmp_path / "straight", epochs=2, ema=0.5, save_every=0, val=None))
    run = tmp_path / "run"
    run_training(_config(data, run, epochs=1, ema=0.5, save_every=0, val=None))
    resumed = run_training(_config(data, run, epochs=2, ema=0.5, save_every=0, val=None, resume=True))
    published, _ = load_pretrained(run)
    checkpoint = latest_checkpoint(run)
    raw = load_file(str(checkpoint / "generator.safetensors"))
    average = load_file(str(checkpoint / "ema.safetensors"))
    assert average["n_averaged"].item() == 4  # one update per step: 2 epochs x 2 batches
    key = next(k for k, v in published.state_dict().items() if v.is_floating_point() and v.numel() > 100)
    assert torch.equal(published.state_dict()[key], average[f"module.{key}"])
    assert not torch.allclose(published.state_dict()[key], raw[key])  # the average, not the last step
    for a, b in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_a_spectral_norm_discriminator_run_resumes_exactly(make_photos, tmp_path):
    data = make_photos(8)
    straight = run_training(_config(data, tmp_path / "straight", epochs=2, d_norm="spectral", save_every=0, val=None))
    run = tmp_path / "run"
    run_training(_config(data, run, epochs=1, d_norm="spectral", save_every=0, val=None))
    resumed = run_training(_config(data, run, epochs=2, d_norm="spectral", save_every=0, val=None, resume=True))
    assert "d_norm: spectral" in (run / "config.yaml").read_text()
    for a, b in zip(straight.discriminator.state_dict().values(), resumed.discriminator.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)  # the power iteration's vectors included


def test_time_budget_stops_at_a_step_with_everything_saved_and_resume_goes_on(make_photos, tmp_path):
    data = make_photos(12)
    run = tmp_path / "run"
    run_training(_config(data, run, epochs=3, max_minutes=1e-6, save_every=0, val=None))  # out of time after one step
    state = torch.load(latest_checkpoint(run) / "state.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 1, 1)
    _, meta = load_pretrained(run)
    assert meta["training"]["photos_seen"] == 4 and meta["training"]["epochs"] == 0
    assert not (run / "losses.csv").exists()  # no epoch finished
    run_training(_config(data, run, epochs=1, save_every=0, val=None, resume=True))
    assert [r["photos"] for r in _rows(run)] == ["12"]  # the resumed epoch counts the step taken before the stop
    _, meta = load_pretrained(run)
    assert meta["training"]["photos_seen"] == 12


def test_balanced_crops_train_and_record_their_recipe(make_photos, tmp_path):
    data = make_photos(6)
    run = tmp_path / "run"
    run_training(_config(data, run, epochs=1, balance=0.5, crop_scale=0.6, val=None))
    saved = (run / "config.yaml").read_text()
    assert "balance: 0.5" in saved and "crop_scale: 0.6" in saved
    assert _rows(run)[0]["photos"] == "6"


def test_the_perceptual_loss_compares_features_of_a_frozen_classifier():
    perceptual = PerceptualLoss(weight=2.0).train()
    truth = torch.rand(2, 3, 64, 64)
    assert perceptual(truth, truth).item() == 0.0
    pred = (truth + 0.1 * torch.randn_like(truth)).clamp(0, 1).requires_grad_(True)
    one = PerceptualLoss(weight=1.0)(pred, truth)
    loss = perceptual(pred, truth)
    assert loss.item() > 0 and loss.item() == pytest.approx(2 * one.item(), rel=1e-5)
    loss.backward()
    assert pred.grad.abs().sum() > 0  # it steers the prediction...
    assert all(p.grad is None for p in perceptual.parameters())  # ...never the classifier
    assert not perceptual.net.training  # ImageNet's BatchNorm statistics, whatever the caller's mode


def test_a_perceptual_run_logs_its_term_in_both_stages(make_photos, tmp_path):
    data = make_photos(6)
    for stage in ("pretrain", "gan"):
        run = tmp_path / stage
        run_training(_config(data, run, stage=stage, epochs=1, lambda_perceptual=5.0, val=None))
        row = _rows(run)[0]
        terms = float(row["Loss_G_L1"]) + float(row["Loss_G_perceptual"]) + (float(row["Loss_G_GAN"]) if stage == "gan" else 0)
        assert float(row["Loss_G_perceptual"]) > 0
        assert float(row["Loss_G"]) == pytest.approx(terms, abs=1e-3)
        assert "lambda_perceptual: 5.0" in (run / "config.yaml").read_text()


def test_validation_scores_the_published_model_exactly_as_colorgan_evaluate_does(make_photos, tmp_path, monkeypatch):
    # a tiny U-Net keeps the run short; the generator's options come from TrainConfig.generator_kwargs
    monkeypatch.setattr(TrainConfig, "generator_kwargs", lambda self: {"base_channels": 8, "num_downs": 5})
    data = make_photos(6, size=(72, 56))
    Image.new("L", (40, 40), 90).save(data / "a_gray.png")  # first of the --limit 5 files: both skip it
    run = tmp_path / "run"
    run_training(_config(data, run, generator="unet", size=32, epochs=2, val_limit=5, ema=0.5, save_every=0))
    # `colorgan evaluate --data DATA --limit 5 --model RUN/model.safetensors`
    report = evaluate(EvalSettings(data=data, limit=5, model=str(run / "model.safetensors"))).report
    assert report["n"] == 4
    last = _rows(run)[-1]
    for column, metric in [("val_psnr", "psnr"), ("val_cf", "cf_pred"), ("val_delta_cf", "delta_cf"), ("val_auc", "auc")]:
        assert last[column] == f"{report['metrics'][metric]:.5f}", column


def test_train_step_gives_the_conditioning_to_the_generator_only():
    accelerator = make_accelerator("auto")
    generator = build_generator("unet", base_channels=8, num_downs=5, cond_channels=3)
    discriminator = PatchGAN()
    seen: dict[str, list] = {"generator": [], "discriminator": []}
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        net.register_forward_pre_hook(lambda m, args, name=name: seen[name].append([None if a is None else a.shape[1] for a in args]))
    nets = Nets(generator, torch.optim.Adam(generator.parameters()), discriminator, torch.optim.Adam(discriminator.parameters()), GANLoss())
    l, ab, cond = torch.rand(2, 1, 32, 32), torch.rand(2, 2, 32, 32), torch.rand(2, 3, 32, 32)
    losses = train_step(l, ab, nets, lambda_l1=100.0, accelerator=accelerator, cond=cond)
    assert seen["generator"] == [[1, 3]]  # L and the hints
    assert seen["discriminator"] == [[1, 2]] * 3  # (L, ab) pairs: fake, real, and fake again for G's loss
    assert set(losses) == set(GAN_LOSSES)


def test_hint_training_simulates_hints_and_publishes_a_hint_capable_model(make_photos, tmp_path, monkeypatch):
    from colorgan import Colorizer, Hint
    from colorgan.training import loop as train_module
    from colorgan.training.hints import simulate_hints

    given = []
    monkeypatch.setattr(train_module, "simulate_hints", lambda ab: given.append(ab.shape) or simulate_hints(ab))
    data, run = make_photos(4), tmp_path / "run"
    run_training(_config(data, run, hints=True, epochs=1, val=None))
    assert given == [(4, 2, 32, 32)]  # one batch, its true ab
    colorizer = Colorizer.from_pretrained(run, device="cpu")
    assert colorizer.takes_hints and colorizer.meta["config"]["cond_channels"] == 3
    assert colorizer.colorize(data / "photo_000.png", hints=[Hint(x=0.5, y=0.5, color="#c04020")]).size == (96, 80)


def test_a_hint_adapter_on_a_frozen_model_keeps_its_automatic_colors_exactly(make_photos, tmp_path):
    from colorgan import Colorizer

    torch.manual_seed(0)
    base = tmp_path / "base"
    save_pretrained(build_generator("resunet", encoder="efficientnet_lite0"), base, size=32)
    data, run = make_photos(8), tmp_path / "run"
    run_training(_config(data, run, stage="pretrain", hints=True, freeze_base=True, init_from=base, epochs=2, val=None))
    adapter, automatic = Colorizer.from_pretrained(run, device="cpu"), Colorizer.from_pretrained(base, device="cpu")
    photo = data / "photo_000.png"
    assert adapter.takes_hints
    assert np.array_equal(np.asarray(adapter.colorize(photo)), np.asarray(automatic.colorize(photo)))
    learned, started = load_file(run / "model.safetensors"), load_file(base / "model.safetensors")
    assert any(learned[k].abs().sum() > 0 for k in learned if k.startswith("cond_inject"))
    stem = next(k for k in learned if k.endswith("conv_stem.weight"))
    assert torch.equal(learned[stem][:, :1], started[stem])  # the L* slice of the input kernel stays
    assert learned[stem][:, 1:].abs().sum() > 0  # its hint slice learns
    assert all(torch.equal(learned[k], started[k]) for k in started if k != stem)


def test_freeze_base_needs_new_layers_and_a_model_to_freeze(tmp_path):
    with pytest.raises(UserError, match="--freeze-base trains only the layers a run adds to a model"):
        _config(tmp_path, tmp_path / "run", freeze_base=True, hints=True).validate()
    with pytest.raises(UserError, match="--freeze-base trains only the layers a run adds to a model"):
        _config(tmp_path, tmp_path / "run", freeze_base=True, init_from=tmp_path).validate()


def test_the_hint_only_layers_learn_faster_than_the_pretrained_network():
    generator = build_generator("resunet", encoder="resnet18", cond_channels=3)
    groups = start.param_groups(generator, TrainConfig(hints=True, lr=1e-4, cond_lr_scale=10.0))
    assert [g.get("lr") for g in groups] == [None, pytest.approx(1e-3)]  # None: Adam's lr, the base one
    new = {id(p) for p in groups[1]["params"]}
    assert new == {id(p) for p in generator.cond_inject.parameters()}
    assert len(start.param_groups(build_generator("resunet", encoder="resnet18"), TrainConfig())) == 1


def _two_checkpoints(tmp_path: Path) -> Checkpointer:
    """A run folder with intact checkpoints step-2 and step-4 (LATEST names step-4), states as a resume reads them."""
    checkpointer = Checkpointer(run=tmp_path / "run", keep=2)
    net = torch.nn.Linear(2, 2)
    for step in (2, 4):
        state = {"epoch": 0, "step_in_epoch": step, "global_step": step, "history": [], "meters": {},
                 "rng": {"torch": torch.get_rng_state()}, "opt_g": {}}
        checkpointer.save(step, modules={"generator": net}, state=state)
    return checkpointer


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {
    "truncated state": (lambda root: _truncate(root / "step-000000004" / "state.pt"), "step-000000004"),
    "empty state": (lambda root: (root / "step-000000004" / "state.pt").write_bytes(b""), "0 bytes"),
    "truncated weights": (lambda root: _truncate(root / "step-000000004" / "generator.safetensors"), "generator.safetensors"),
    "empty weights": (lambda root: (root / "step-000000004" / "generator.safetensors").write_bytes(b""), "0 bytes"),
    "LATEST names a missing folder": (lambda root: (root / "LATEST").write_text("step-000000009\n"), "step-000000009"),
    "LATEST is garbage": (lambda root: (root / "LATEST").write_bytes(b"\x00\xff garbage \x9c"), "LATEST"),
    "LATEST is missing": (lambda root: (root / "LATEST").unlink(), "LATEST"),
    "latest folder deleted": (lambda root: __import__("shutil").rmtree(root / "step-000000004"), "step-000000004"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_resume_falls_back_to_the_newest_intact_checkpoint_and_says_which(tmp_path, caplog, damage):
    checkpointer = _two_checkpoints(tmp_path)
    spoil, named = DAMAGES[damage]
    spoil(checkpointer.root)
    checkpoint = checkpointer.resume_point(resume=True)
    expected = "step-000000004" if damage.startswith("LATEST") else "step-000000002"
    assert checkpoint.folder.name == expected and checkpoint.state["global_step"] == int(expected[-1])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and expected in warnings[0] and named in warnings[0], warnings
    assert latest_checkpoint(checkpointer.run) == checkpoint.folder
    with pytest.raises(UserError, match="already holds a training run"):  # a damaged run is still never overwritten
        checkpointer.resume_point(resume=False)


def test_when_no_checkpoint_is_intact_the_error_names_every_reason(tmp_path):
    checkpointer = _two_checkpoints(tmp_path)
    for step in ("step-000000002", "step-000000004"):
        (checkpointer.root / step / "state.pt").write_bytes(b"")
    with pytest.raises(UserError) as caught:
        checkpointer.resume_point(resume=True)
    message = str(caught.value)
    assert message.startswith("cannot read checkpoint") and message.count("state.pt is empty (0 bytes)") == 2
    assert not message.rstrip().endswith(":")  # a 0-byte file's EOFError has no message: never an empty reason


def test_a_run_resumed_past_a_damaged_checkpoint_trains_on_and_drops_it(make_photos, tmp_path, caplog):
    data = make_photos(8)
    run = tmp_path / "run"
    run_training(_config(data, run, epochs=2, save_every=1, val=None))  # steps 1..4; step-3 and step-4 kept
    (run / "checkpoint" / "step-000000004" / "state.pt").write_bytes(b"")
    result = run_training(_config(data, run, epochs=3, save_every=0, val=None, resume=True))
    assert any("step-000000003" in r.getMessage() and "0 bytes" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert len(result.history) == 3 and latest_checkpoint(run).name == "step-000000006"
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == ["LATEST", "step-000000004", "step-000000006"]


def test_the_log_counts_photos_found_skipped_with_reasons_and_used_per_epoch(make_photos, tmp_path, caplog):
    caplog.set_level("INFO")
    data = make_photos(9)
    Image.new("L", (40, 40), 90).save(data / "old_gray.png")
    (data / "broken.jpg").write_bytes(b"garbage")
    # batch 4: 9 usable photos make 2 full batches; the 9th sits out (the partial batch is dropped)
    run_training(_config(data, tmp_path / "run", epochs=1, val=None, batch_size=4, save_every=0))
    messages = [r.getMessage() for r in caplog.records]
    start = next(m for m in messages if m.startswith("training "))
    assert "on 9 photos: 11 found, 2 skipped (1 grayscale, 1 unreadable)" in start
    assert any("each epoch trains on 8 of the 9 photos" in m and "other 1" in m for m in messages)
    epoch = next(m for m in messages if m.startswith("epoch 1:"))
    assert "trained on 8 photos of 11 found, 2 skipped (1 grayscale, 1 unreadable), 1 sat out" in epoch
    # every skipped file is reported with its reason, whichever batch it would have fallen into
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("old_gray.png" in w and "grayscale" in w for w in warnings)
    assert any("broken.jpg" in w for w in warnings)
    row = _rows(tmp_path / "run")[0]
    assert (row["photos"], row["skipped"]) == ("8", "2")


def test_a_gan_run_keeps_its_critic_and_the_next_run_from_its_model_continues_it(make_photos, tmp_path):
    data = make_photos(8)
    first = run_training(_config(data, tmp_path / "first", epochs=1, val=None))
    assert (tmp_path / "first" / "critic.safetensors").is_file()
    kept = first.discriminator.state_dict()
    go_on = _trainer(_config(data, tmp_path / "second", epochs=1, val=None, init_from=tmp_path / "first"))
    for key, value in go_on.discriminator.state_dict().items():
        assert torch.equal(value, kept[key].to(value.dtype)), key
    fresh = _trainer(_config(data, tmp_path / "third", epochs=1, val=None, init_from=tmp_path / "first", fresh_critic=True))
    assert not all(torch.equal(v, kept[k]) for k, v in fresh.discriminator.state_dict().items())
    other_kind = _trainer(_config(data, tmp_path / "fourth", epochs=1, val=None, init_from=tmp_path / "first", d_norm="spectral"))
    assert other_kind.discriminator.config["norm"] == "spectral"  # a critic of another kind is not forced on the run


def _trainer(cfg: TrainConfig) -> trainer.Trainer:
    return trainer.Trainer(cfg=cfg, accelerator=make_accelerator(cfg.mixed_precision), checkpointer=Checkpointer(run=cfg.out))


def test_critic_warmup_trains_the_critic_alone_then_both(make_photos, tmp_path):
    data = make_photos(8)
    start = run_training(_config(data, tmp_path / "start", epochs=1, val=None, save_every=0))
    warm = run_training(_config(data, tmp_path / "warm", epochs=1, val=None, init_from=tmp_path / "start",
                                critic_warmup=2, save_every=0, ema=0.5))
    # 8 photos in batches of 4: both steps of the epoch were the critic's, so the generator is the one it started from
    for key, value in warm.generator.state_dict().items():
        if value.is_floating_point() and "running" not in key and "num_batches" not in key:
            assert torch.equal(value, start.generator.state_dict()[key]), key
    assert not all(torch.equal(v, start.discriminator.state_dict()[k]) for k, v in warm.discriminator.state_dict().items())
    row = _rows(tmp_path / "warm")[0]
    assert math.isfinite(float(row["Loss_D"])) and math.isfinite(float(row["Loss_G_GAN"]))  # reported while warming
    both = run_training(_config(data, tmp_path / "both", epochs=1, val=None, init_from=tmp_path / "start",
                                critic_warmup=1, save_every=0))
    assert not all(torch.equal(v, start.generator.state_dict()[k]) for k, v in both.generator.state_dict().items())


def test_the_bundled_critic_is_a_float16_copy_and_stays_out_of_the_installed_package(make_photos, tmp_path):
    from safetensors import safe_open

    from colorgan.model.export import export_bundle

    data = make_photos(8)
    run_training(_config(data, tmp_path / "run", epochs=1, val=None))
    folder = export_bundle(tmp_path / "run", tmp_path / "bundle")
    with safe_open(str(folder / "critic.safetensors"), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()} == {torch.float16}
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'colorgan = ["assets/models/*/critic.safetensors"]' in pyproject.split("[tool.setuptools.exclude-package-data]")[1]


def test_dull_photos_can_be_left_out_of_training(make_photos, tmp_path, caplog):
    data = make_photos(6)
    for i in range(3):  # nearly gray photos: a trace of color, far below a colorfulness of 15
        Image.fromarray(np.full((80, 96, 3), (120 + i, 118, 117), np.uint8)).save(data / f"dull_{i}.png")
    caplog.set_level("INFO")
    run_training(_config(data, tmp_path / "run", epochs=1, val=None, min_colorfulness=15, batch_size=2))
    assert _rows(tmp_path / "run")[0]["photos"] == "6"
    assert "left out 3 of 9 photos with colorfulness below 15" in caplog.text
    with pytest.raises(UserError, match="duller than --min-colorfulness 1000"):
        run_training(_config(data, tmp_path / "none", epochs=1, val=None, min_colorfulness=1000))


def test_target_saturation_scales_the_chroma_the_model_learns(synthetic_photo):
    rgb = torch.from_numpy(np.asarray(synthetic_photo(3, (64, 64))).copy()).permute(2, 0, 1)[None]
    l, ab = to_model_input(rgb)
    l2, ab2 = to_model_input(rgb, saturation=1.2)
    assert torch.equal(l, l2)
    assert torch.allclose(ab2, (ab * 1.2).clamp(-1, 1))
    assert ab2.abs().max() <= 1.0


def test_a_color_head_run_logs_its_cross_entropy_and_publishes_the_head(make_photos, tmp_path):
    data = make_photos(8)
    run = tmp_path / "run"
    run_training(_config(data, run, stage="pretrain", epochs=1, val=None, color_head=True))
    row = _rows(run)[0]
    assert math.isfinite(float(row["Loss_G_color"])) and float(row["Loss_G_color"]) > 0
    assert float(row["Loss_G"]) == pytest.approx(float(row["Loss_G_L1"]) + float(row["Loss_G_color"]), abs=1e-3)
    model, meta = load_pretrained(run)
    assert meta["config"]["color_head"] is True and model.color_head is not None


def test_a_color_head_added_to_a_frozen_model_trains_alone_and_changes_nothing_until_used(make_photos, tmp_path):
    data = make_photos(8)
    base = tmp_path / "base"
    run_training(_config(data, base, stage="pretrain", epochs=1, val=None, hints=True))
    run = tmp_path / "head"
    run_training(_config(data, run, stage="pretrain", epochs=1, val=None, hints=True, color_head=True, freeze_base=True,
                         init_from=base))
    started, _ = load_pretrained(base)
    headed, _ = load_pretrained(run)
    learned = headed.state_dict()
    assert all(torch.equal(learned[k], v) for k, v in started.state_dict().items())  # BatchNorm statistics included
    l = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(headed(l), started(l))  # gamma = blend = 0: the head shapes nothing
        headed.color_head.gamma = 1.0
        assert not torch.equal(headed(l), started(l))


def test_the_color_head_spends_chroma_only_where_the_likely_colors_share_a_hue():
    from colorgan.networks.color_classes import ColorHead, bin_centers

    centers = torch.from_numpy(bin_centers())
    head = ColorHead(in_channels=4, gamma=1.0)
    red = int((centers - torch.tensor([40.0, 30.0])).norm(dim=1).argmin())
    blue = int((centers - torch.tensor([10.0, -45.0])).norm(dim=1).argmin())
    logits = torch.full((1, len(centers), 2, 2), -20.0)
    logits[0, red, 0] = 10.0  # top row: sure it is red
    logits[0, red, 1] = logits[0, blue, 1] = 10.0  # bottom row: red or blue, half each
    ab = torch.full((1, 2, 2, 2), 0.3)
    shaped = head.shape(ab, logits)
    assert torch.allclose(shaped[:, :, 0], ab[:, :, 0], atol=1e-3)  # full color where it is sure
    assert (shaped[:, :, 1].abs() < 0.6 * ab[:, :, 1].abs()).all()  # less where it is torn between two hues
    assert torch.equal(ColorHead(in_channels=4).shape(ab, logits), ab)  # as trained: the regression's answer


def test_degraded_scans_damage_the_lightness_of_a_share_of_photos_and_repeat_with_the_seed():
    from colorgan.training.degrade import degrade

    torch.manual_seed(0)
    l = torch.rand(64, 1, 32, 32) * 2 - 1
    assert degrade(l, 0.0) is l
    torch.manual_seed(1)
    damaged = degrade(l, 0.5)
    changed = (damaged - l).abs().flatten(1).amax(dim=1) > 1e-4
    assert 16 < int(changed.sum()) < 48  # about half of the photos
    assert damaged.abs().max() <= 1.0
    torch.manual_seed(1)
    assert torch.equal(degrade(l, 0.5), damaged)  # the same draws: a resumed run damages the same photos


@pytest.mark.parametrize(("photos", "batch"), [(3, 2), (9, 8)])
def test_a_last_batch_of_one_photo_never_reaches_batchnorm(make_photos, tmp_path, photos, batch):
    data = make_photos(photos)
    run_training(_config(data, tmp_path / "run", stage="pretrain", epochs=1, val=None, batch_size=batch))
    assert _rows(tmp_path / "run")[0]["photos"] == str(batch)  # one full batch; the rest sit out


def test_run_folders_that_cannot_be_are_refused_before_any_work(make_photos, tmp_path):
    data = make_photos(4)
    (tmp_path / "file.jpg").write_bytes(b"a user's file")
    for out, words in ((tmp_path / "file.jpg", "is a file"), (data / "runs" / "x", "inside the training photos"),
                       (tmp_path / "file.jpg" / "run", "cannot create the run folder")):
        with pytest.raises(UserError, match=words):
            run_training(_config(data, out, stage="pretrain", epochs=1, val=None))
    assert (tmp_path / "file.jpg").read_bytes() == b"a user's file"
    one = tmp_path / "one"
    one.mkdir()
    (data / "photo_000.png").rename(one / "only.png")
    with pytest.raises(UserError, match="at least two"):
        run_training(_config(one, tmp_path / "run1", stage="pretrain", epochs=1, val=None))

"""Training: stage 1 (L1 pretraining) and stage 2 (conditional GAN), one loop for every machine.

The loop runs through accelerate, so the same code trains on the CPU, one GPU, several
GPUs or several nodes (``accelerate launch``), with mixed precision on GPUs and on CPUs that
compute bf16 natively. A run folder holds everything a run writes (see :func:`run_training`);
checkpoints are written atomically and a resumed run continues bit-for-bit where the last
checkpoint left it.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from . import __version__
from .color import model_space_to_rgb, rgb_to_model_space, uint8_to_unit
from .data import EpochSampler, PhotoDataset, collate, find_images, folder_balance_weights
from .errors import UserError
from .losses import GAN_MODES, LOSS_NAMES, GANLoss, l1_loss
from .metrics import score_batch, summarize
from .models import (
    ENCODERS,
    GENERATORS,
    PatchGAN,
    build_generator,
    generator_spec,
    load_encoder_weights,
    load_state_dict_checked,
    read_model_json,
    read_weights,
    save_pretrained,
)

log = logging.getLogger(__name__)

STAGES = ("pretrain", "gan")
PRECISIONS = ("auto", "no", "fp16", "bf16")
VAL_COLUMNS = ("val_Loss_G_L1", "val_psnr", "val_cf", "val_delta_cf", "val_auc")
KEEP_CHECKPOINTS = 2


@dataclass
class TrainConfig:
    """Everything a training run depends on: plain data, readable from YAML with the CLI's key names."""

    stage: str = "gan"
    generator: str = "resunet"
    encoder: str = "efficientnet_lite0"
    encoder_weights: str | None = "imagenet"
    data: Path | None = None
    val: Path | None = None
    first: int | None = None
    last: int | None = None
    file_list: Path | None = None
    val_limit: int = 64
    size: int = 256
    batch_size: int = 16
    epochs: int = 20
    lr: float | None = None
    lambda_l1: float = 100.0
    gan_mode: str = "vanilla"
    balance: float = 0.0
    crop_scale: float | None = None
    ema: float | None = None
    max_minutes: float | None = None
    init_from: Path | None = None
    workers: int = 2
    seed: int = 0
    mixed_precision: str = "auto"
    out: Path = Path("runs/colorgan")
    resume: bool = False
    save_every: int = 500
    samples: int = 4

    @classmethod
    def from_sources(cls, *, yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Defaults, then the YAML file's keys, then ``overrides`` (the command-line flags)."""
        values: dict[str, Any] = {}
        if yaml_path is not None:
            values.update(_read_yaml(Path(yaml_path)))
        values.update(overrides or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise UserError(f"unknown training option(s) {', '.join(unknown)} in {yaml_path or 'the options'}")
        for key in ("data", "val", "file_list", "init_from", "out"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        if str(values.get("encoder_weights", "")).lower() in ("none", "null", "random"):
            values["encoder_weights"] = None
        return cls(**values)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-4 if self.stage == "pretrain" else 2e-4)

    @property
    def betas(self) -> tuple[float, float]:
        # pix2pix's (0.5, 0.999) steadies the adversarial game; plain L1 regression uses Adam's defaults.
        return (0.5, 0.999) if self.stage == "gan" else (0.9, 0.999)

    def generator_kwargs(self) -> dict[str, Any]:
        return {"encoder": self.encoder} if self.generator == "resunet" else {}

    def validate(self) -> None:
        """Reject impossible settings before any work starts."""
        checks = [
            (self.stage in STAGES, f"--stage must be one of {', '.join(STAGES)}, got {self.stage!r}"),
            (self.generator in GENERATORS, f"unknown generator {self.generator!r}; choose one of: {', '.join(sorted(GENERATORS))}"),
            (self.generator != "resunet" or self.encoder in ENCODERS, f"unknown encoder {self.encoder!r}; choose one of: {', '.join(ENCODERS)}"),
            (self.gan_mode in GAN_MODES, f"--gan-mode must be one of {', '.join(GAN_MODES)}, got {self.gan_mode!r}"),
            (self.mixed_precision in PRECISIONS, f"--mixed-precision must be one of {', '.join(PRECISIONS)}"),
            (self.data is not None, "--data is required: a folder of color photos"),
            (self.size > 0, f"--size must be positive, got {self.size}"),
            (self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}"),
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (self.learning_rate > 0, "--lr must be positive"),
            (self.workers >= 0, "--workers cannot be negative"),
            (self.val_limit > 0, "--val-limit must be positive"),
            (0 <= self.balance <= 1, f"--balance must be between 0 and 1, got {self.balance}"),
            (self.crop_scale is None or 0 < self.crop_scale <= 1, f"--crop-scale must be in (0, 1], got {self.crop_scale}"),
            (self.ema is None or 0 < self.ema < 1, f"--ema must be a decay between 0 and 1, got {self.ema}"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read config {path}: {str(exc).splitlines()[0]}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise UserError(f"config {path} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in content.items()}


@dataclass
class TrainResult:
    """What a finished run hands back to Python callers (the CLI ignores it)."""

    generator: nn.Module
    discriminator: nn.Module | None
    history: list[dict[str, float]]


# --- checkpoints -----------------------------------------------------------------------

def latest_checkpoint(run: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    pointer = run / "checkpoint" / "LATEST"
    if not pointer.is_file():
        return None
    folder = run / "checkpoint" / pointer.read_text().strip()
    return folder if (folder / "state.pt").is_file() else None


def _write_checkpoint(run: Path, name: str, models: dict[str, nn.Module], state: dict[str, Any]) -> None:
    """Write into a temporary folder, rename it, then swap the LATEST pointer: a kill at any
    moment leaves LATEST naming a complete checkpoint."""
    root = run / "checkpoint"
    tmp = root / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for key, model in models.items():
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / f"{key}.safetensors"))
    torch.save(state, tmp / "state.pt")
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    (root / "LATEST.tmp").write_text(name + "\n")
    (root / "LATEST.tmp").replace(root / "LATEST")
    # Half-written folders of killed saves are removed, and only complete checkpoints count
    # towards KEEP_CHECKPOINTS, so leftovers can never push out a real one.
    for leftover in root.glob("step-*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    old = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and p != final)
    for stale in old[: max(0, len(old) - (KEEP_CHECKPOINTS - 1))]:
        shutil.rmtree(stale, ignore_errors=True)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- the run ---------------------------------------------------------------------------

def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where autocast roughly
    doubles the GAN step's speed; elsewhere bf16 is emulated and slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private torch.cpu probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(choice: str, *, cpu: bool) -> str:
    """``auto`` -> bf16 (or fp16 where the GPU lacks bf16) on GPUs, bf16 on CPUs with native
    bf16, full precision elsewhere; any other choice is kept."""
    if choice != "auto":
        return choice
    if cpu:
        return "bf16" if cpu_has_native_bf16() else "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _init_generator(generator: nn.Module, cfg: TrainConfig) -> str | None:
    """Load ``--init-from`` or the encoder's pretrained weights; returns where the encoder's
    weights ultimately came from (recorded in model.json so later users can tell)."""
    if cfg.init_from is not None:
        weights, meta = read_model_json(cfg.init_from)
        spec = generator_spec(generator)
        if {"generator": meta["generator"], "config": meta.get("config", {})} != spec:
            raise UserError(
                f"--init-from {cfg.init_from} is a {meta['generator']} {meta.get('config')} model, "
                f"but this run trains {spec['generator']} {spec['config']}"
            )
        load_state_dict_checked(generator, read_weights(weights), source=str(weights))
        log.info("generator initialized from %s", weights)
        return meta.get("training", {}).get("encoder_weights")
    if cfg.generator == "resunet" and cfg.encoder_weights:
        load_encoder_weights(generator, cfg.encoder_weights)
        return cfg.encoder_weights
    return None


def _load_val(cfg: TrainConfig) -> torch.Tensor | None:
    """The fixed validation photos (first ``val_limit`` usable ones) as one uint8 batch."""
    if cfg.val is None:
        return None
    dataset = PhotoDataset(find_images(cfg.val), size=cfg.size)
    photos = []
    for i in range(len(dataset)):
        item = dataset[i]
        if "rgb" in item:
            photos.append(item["rgb"])
        if len(photos) == cfg.val_limit:
            break
    if not photos:
        raise UserError(f"no usable color photos in validation folder {cfg.val}")
    return torch.stack(photos)


@torch.inference_mode()
def _validate(generator: nn.Module, photos: torch.Tensor, cfg: TrainConfig, device: torch.device) -> tuple[dict[str, float], torch.Tensor]:
    """Validation L1 (x lambda, like Loss_G_L1) and the field's metrics; returns a sample grid too."""
    was_training = generator.training
    generator.eval()
    l1_sum, scores, grid_rows = 0.0, [], []
    for chunk in photos.split(cfg.batch_size):
        rgb = uint8_to_unit(chunk.to(device))
        l, ab = rgb_to_model_space(rgb)
        fake = generator(l).float()
        l1_sum += l1_loss(fake, ab, weight=cfg.lambda_l1).item() * len(chunk)
        pred = model_space_to_rgb(l, fake)
        scores.append(score_batch(pred, rgb))
        if len(grid_rows) < cfg.samples:
            gray = model_space_to_rgb(l, torch.zeros_like(ab))
            for g, p, t in zip(gray, pred, rgb):
                grid_rows += [g, p, t]
        grid_rows = grid_rows[: 3 * cfg.samples]
    generator.train(was_training)
    per_image = {k: torch.cat([s[k] for s in scores]) for k in scores[0]}
    summary = summarize(per_image)
    row = {
        "val_Loss_G_L1": l1_sum / len(photos),
        "val_psnr": summary["psnr"],
        "val_cf": summary["cf_pred"],
        "val_delta_cf": summary["delta_cf"],
        "val_auc": summary["auc"],
    }
    return row, torch.stack(grid_rows).cpu()


def _write_losses_csv(path: Path, history: list[dict[str, float]]) -> None:
    columns = ["epoch", *LOSS_NAMES, *VAL_COLUMNS, "photos", "skipped", "seconds"]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else _fmt(row[k])) for k in columns})
    tmp.replace(path)


def _fmt(value: Any) -> str:
    return f"{value:.5f}" if isinstance(value, float) else str(value)


def _format_table(row: dict[str, Any]) -> str:
    keys = [k for k in ("epoch", *LOSS_NAMES, *VAL_COLUMNS) if row.get(k) is not None]
    widths = [max(len(k), len(_fmt(row[k]))) for k in keys]
    header = "  ".join(k.rjust(w) for k, w in zip(keys, widths))
    values = "  ".join(_fmt(row[k]).rjust(w) for k, w in zip(keys, widths))
    return f"{header}\n{values}"


def run_training(cfg: TrainConfig) -> TrainResult:
    """Train one stage and write the run folder ``cfg.out``:

    ``losses.csv`` (one row per epoch: the paper's loss columns as epoch means, validation
    L1 and metrics), ``tensorboard/``, ``samples/epoch_NNNN.png`` (gray | prediction | truth),
    ``checkpoint/`` (for ``--resume``), ``config.yaml`` and the inference artifact
    ``model.safetensors`` + ``model.json``.
    """
    cfg.validate()
    # With no accelerator at all, say so: accelerate then treats several launched processes as
    # multi-CPU (gloo) training instead of independent single-process runs.
    no_gpu = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    accelerator = Accelerator(mixed_precision=resolve_precision(cfg.mixed_precision, cpu=no_gpu), cpu=no_gpu)
    main = accelerator.is_main_process
    run = cfg.out
    resume_from = latest_checkpoint(run)
    if cfg.resume and resume_from is None:
        raise UserError(f"--resume: no checkpoint in {run / 'checkpoint'}")
    if not cfg.resume and resume_from is not None:
        raise UserError(f"{run} already holds a training run; pass --resume to continue it or choose another --out")

    set_seed(cfg.seed)
    generator = build_generator(cfg.generator, **cfg.generator_kwargs())
    if cfg.size % generator.size_multiple:
        raise UserError(f"--size {cfg.size} does not fit the {cfg.generator} generator: use a multiple of {generator.size_multiple}")
    paths = find_images(cfg.data, first=cfg.first, last=cfg.last, file_list=cfg.file_list)
    encoder_origin = _init_generator(generator, cfg)
    val_photos = _load_val(cfg) if main else None
    gan = cfg.stage == "gan"
    discriminator = PatchGAN().to(memory_format=torch.channels_last) if gan else None
    generator.to(memory_format=torch.channels_last)

    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.learning_rate, betas=cfg.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.learning_rate, betas=cfg.betas) if gan else None
    weights = folder_balance_weights(paths, cfg.data, cfg.balance) if cfg.balance else None
    sampler = EpochSampler(len(paths), seed=cfg.seed, weights=weights)
    loader = DataLoader(
        PhotoDataset(paths, size=cfg.size, crop_scale=cfg.crop_scale),
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,  # no worker start-up cost at every epoch
        drop_last=len(paths) >= 2 * cfg.batch_size,
        generator=torch.Generator().manual_seed(cfg.seed),  # keeps worker seeding off the global RNG
    )
    if gan:
        generator, discriminator, opt_g, opt_d, loader = accelerator.prepare(generator, discriminator, opt_g, opt_d, loader)
    else:
        generator, opt_g, loader = accelerator.prepare(generator, opt_g, loader)
    gen_plain = accelerator.unwrap_model(generator)
    disc_plain = accelerator.unwrap_model(discriminator) if gan else None
    nets = Nets(generator, opt_g, discriminator, opt_d, GANLoss(mode=cfg.gan_mode) if gan else None)
    # An exponential moving average of the generator's weights (and BatchNorm statistics) is
    # what gets validated and published when --ema is set: it smooths the GAN's oscillations.
    ema = AveragedModel(gen_plain, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    published = ema.module if ema is not None else gen_plain

    start_epoch, start_step, global_step, history, meters = 0, 0, 0, [], {}
    if resume_from is not None:
        try:
            state = torch.load(resume_from / "state.pt", map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged file raises pickle, zip or OS errors alike
            raise UserError(f"cannot read checkpoint {resume_from}: {exc}") from None
        load_state_dict_checked(gen_plain, read_weights(resume_from / "generator.safetensors"), source=str(resume_from))
        if gan:
            if not (resume_from / "discriminator.safetensors").is_file():
                raise UserError(f"{resume_from} is a checkpoint of a pretrain run; it cannot resume --stage gan")
            load_state_dict_checked(disc_plain, read_weights(resume_from / "discriminator.safetensors"), source=str(resume_from))
            opt_d.load_state_dict(state["opt_d"])
        if ema is not None:
            if (resume_from / "ema.safetensors").is_file():
                load_state_dict_checked(ema, read_weights(resume_from / "ema.safetensors"), source=str(resume_from))
            else:
                log.warning("%s has no weight average; --ema starts averaging from the resumed weights", resume_from.name)
        opt_g.load_state_dict(state["opt_g"])
        if accelerator.scaler is not None and state.get("scaler"):
            accelerator.scaler.load_state_dict(state["scaler"])
        start_epoch, start_step, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        history, meters = state["history"], state["meters"]
        _set_rng_state(state["rng"])
        log.info("resuming %s from %s (epoch %d, step %d)", run, resume_from.name, start_epoch + 1, start_step)

    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        run.mkdir(parents=True, exist_ok=True)
        (run / "samples").mkdir(exist_ok=True)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        writer = SummaryWriter(log_dir=str(run / "tensorboard"))
    log.info(
        "training %s (%s stage) on %d photos, %dx%d, batch %d x %d process(es), device %s, precision %s",
        cfg.generator, cfg.stage, len(paths), cfg.size, cfg.size, cfg.batch_size,
        accelerator.num_processes, accelerator.device, accelerator.mixed_precision,
    )

    warned: set[str] = set()
    items_per_step = cfg.batch_size * accelerator.num_processes
    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes else None

    def save(epoch: int, step_in_epoch: int) -> None:
        if not main:
            return
        models = {"generator": gen_plain} | ({"discriminator": disc_plain} if gan else {}) | ({"ema": ema} if ema else {})
        state = {
            "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
            "history": history, "meters": meters, "rng": _rng_state(), "config": cfg.to_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict() if gan else None,
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
        }
        _write_checkpoint(run, f"step-{global_step:09d}", models, state)

    def publish(epochs_done: int) -> None:
        training = _provenance(cfg, epochs_done, encoder_origin) | {"photos_seen": global_step * items_per_step}
        save_pretrained(published, run, size=cfg.size, training=training)

    stopped = False
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_position(epoch, start=start_step * items_per_step)
        step_in_epoch = start_step
        steps_total = start_step + len(loader)
        start_step = 0
        if not meters:
            meters = {"sums": {k: 0.0 for k in LOSS_NAMES}, "photos": 0, "gray": 0, "unreadable": 0, "seconds": 0.0}
        tic = time.perf_counter()
        generator.train()
        progress = _progress(main, f"epoch {epoch + 1}/{cfg.epochs}", items_per_step)
        with progress:
            task = progress.add_task("", total=steps_total, completed=step_in_epoch)
            for batch in loader:
                for skip in batch["skipped"]:
                    meters["gray" if skip["gray"] else "unreadable"] += 1
                    if skip["skip"] not in warned:
                        warned.add(skip["skip"])
                        log.warning("skipping %s: %s", skip["skip"], skip["reason"])
                n = len(batch["rgb"])
                if accelerator.num_processes > 1:  # every rank must take the step, or none
                    n = int(accelerator.gather(torch.tensor([n], device=accelerator.device)).min())
                if n:
                    l, ab = to_model_input(batch["rgb"])
                    losses = train_step(l, ab, nets, lambda_l1=cfg.lambda_l1, accelerator=accelerator)
                    if ema is not None:
                        ema.update_parameters(gen_plain)
                    for k, v in losses.items():
                        meters["sums"][k] += v * len(batch["rgb"])
                    meters["photos"] += len(batch["rgb"])
                step_in_epoch += 1
                global_step += 1
                progress.update(task, advance=1)
                if main and not progress.console.is_terminal and step_in_epoch % 50 == 0:
                    # no live bar in a log file: a line now and then instead
                    speed = progress.tasks[0].speed or 0.0
                    eta = (steps_total - step_in_epoch) / speed / 60 if speed else float("nan")
                    log.info("epoch %d step %d/%d, %.1f photos/s, about %.0f min left in this epoch",
                             epoch + 1, step_in_epoch, steps_total, speed * items_per_step, eta)
                if main and global_step % 25 == 0 and n:
                    for k, v in losses.items():
                        writer.add_scalar(f"step/{k}", v, global_step)
                if cfg.save_every and global_step % cfg.save_every == 0 and step_in_epoch < steps_total:
                    meters["seconds"] += time.perf_counter() - tic
                    tic = time.perf_counter()
                    save(epoch, step_in_epoch)
                if deadline is not None and _time_is_up(deadline, accelerator):
                    stopped = True
                    break
        meters["seconds"] += time.perf_counter() - tic
        if stopped:  # the time budget ran out: keep everything so --resume can go on from here
            save(epoch, step_in_epoch)
            if main:
                publish(epoch)
                log.info("stopped after %g minutes in epoch %d at step %d; --resume continues from here",
                         cfg.max_minutes, epoch + 1, step_in_epoch)
            break
        row = _epoch_row(epoch, meters, gan, accelerator)
        if row["photos"] == 0:
            raise UserError(
                f"no usable color photos in {cfg.data}: {row['gray']} grayscale, {row['unreadable']} unreadable"
            )
        if main and val_photos is not None:
            val_row, grid = _validate(published, val_photos, cfg, accelerator.device)
            row |= val_row
            _save_grid(grid, run / "samples" / f"epoch_{epoch + 1:04d}.png")
        history.append(row)
        meters = {}
        if main:
            for k in (*LOSS_NAMES, *VAL_COLUMNS):
                if row.get(k) is not None:
                    writer.add_scalar(f"epoch/{k}", row[k], epoch + 1)
            writer.flush()
            _write_losses_csv(run / "losses.csv", history)
            log.info(
                "epoch %d: %d photos, %d skipped (%d grayscale, %d unreadable), %.0f s\n%s",
                epoch + 1, row["photos"], row["skipped"], row["gray"], row["unreadable"], row["seconds"], _format_table(row),
            )
            publish(epoch + 1)
        save(epoch + 1, 0)
        accelerator.wait_for_everyone()
    if writer is not None:
        writer.close()
    accelerator.end_training()
    return TrainResult(published, disc_plain, history)


@dataclass
class Nets:
    """The prepared networks and optimizers of a run (``discriminator`` is None in stage 1)."""

    generator: nn.Module
    opt_g: torch.optim.Optimizer
    discriminator: nn.Module | None = None
    opt_d: torch.optim.Optimizer | None = None
    criterion: GANLoss | None = None


def to_model_input(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 RGB batch (on the training device) -> normalized (L, ab), channels-last.

    The Lab conversion runs once per batch on the device; channels-last lets oneDNN (CPU)
    and cuDNN (GPU with mixed precision) pick their fastest convolution kernels.
    """
    l, ab = rgb_to_model_space(uint8_to_unit(rgb))
    return l.contiguous(memory_format=torch.channels_last), ab.contiguous(memory_format=torch.channels_last)


def train_step(l: torch.Tensor, ab: torch.Tensor, nets: Nets, *, lambda_l1: float, accelerator: Accelerator) -> dict[str, float]:
    """One optimization step of stage 1 (L1 only) or stage 2 (cGAN); returns the paper's loss values."""
    generator, opt_g, discriminator, opt_d, criterion = nets.generator, nets.opt_g, nets.discriminator, nets.opt_d, nets.criterion
    fake = generator(l)
    if discriminator is None:  # stage 1: the generator alone, L1 only
        loss_l1 = l1_loss(fake.float(), ab, weight=lambda_l1)
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(loss_l1)
        opt_g.step()
        return {"Loss_G_L1": loss_l1.item(), "Loss_G": loss_l1.item()}

    # Discriminator: real and fake pairs in separate forward passes (separate BatchNorm
    # statistics, as pix2pix does), loss = mean of the two terms.
    disc_plain = accelerator.unwrap_model(discriminator)
    disc_plain.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    with accelerator.no_sync(discriminator):
        loss_d_fake = criterion(discriminator(l, fake.detach()).float(), real=False)
        accelerator.backward(0.5 * loss_d_fake)
    loss_d_real = criterion(discriminator(l, ab).float(), real=True)
    accelerator.backward(0.5 * loss_d_real)
    opt_d.step()

    # Generator: fool the discriminator and stay close to the truth. The unwrapped D with
    # frozen weights computes only the gradient G needs, outside DDP's gradient sync.
    disc_plain.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with accelerator.autocast():
        loss_g_gan = criterion(disc_plain(l, fake).float(), real=True)
    loss_g_l1 = l1_loss(fake.float(), ab, weight=lambda_l1)
    loss_g = loss_g_gan + loss_g_l1
    accelerator.backward(loss_g)
    opt_g.step()
    d_fake, d_real = loss_d_fake.item(), loss_d_real.item()
    return {
        "Loss_D_fake": d_fake, "Loss_D_real": d_real, "Loss_D": 0.5 * (d_fake + d_real),
        "Loss_G_GAN": loss_g_gan.item(), "Loss_G_L1": loss_g_l1.item(), "Loss_G": loss_g.item(),
    }


def _time_is_up(deadline: float, accelerator: Accelerator) -> bool:
    """Whether the time budget is spent; every process stops at the same step."""
    up = time.monotonic() > deadline
    if accelerator.num_processes == 1:
        return up
    votes = accelerator.reduce(torch.tensor([float(up)], device=accelerator.device), reduction="sum")
    return bool(votes.item() > 0)


def _epoch_row(epoch: int, meters: dict[str, Any], gan: bool, accelerator: Accelerator) -> dict[str, Any]:
    """Epoch means of the losses over all processes, and the photo counts."""
    names = list(LOSS_NAMES)
    totals = torch.tensor(
        [meters["sums"][k] for k in names] + [meters["photos"], meters["gray"], meters["unreadable"]],
        dtype=torch.float64, device=accelerator.device,
    )
    totals = accelerator.reduce(totals, reduction="sum") if accelerator.num_processes > 1 else totals
    photos, gray, unreadable = (int(x) for x in totals[-3:].tolist())
    row: dict[str, Any] = {"epoch": epoch + 1}
    for k, total in zip(names, totals[:-3].tolist()):
        defined = gan or k in ("Loss_G_L1", "Loss_G")
        row[k] = total / photos if defined and photos else None
    row |= {"photos": photos, "skipped": gray + unreadable, "gray": gray, "unreadable": unreadable,
            "seconds": round(meters["seconds"], 1)}
    return row


def _provenance(cfg: TrainConfig, epochs: int, encoder_origin: str | None) -> dict[str, Any]:
    return {
        "stage": cfg.stage,
        "epochs": epochs,
        "size": cfg.size,
        "data": str(cfg.data),
        "encoder_weights": encoder_origin,
        "init_from": str(cfg.init_from) if cfg.init_from else None,
        "colorgan_version": __version__,
    }


def _save_grid(images: torch.Tensor, path: Path) -> None:
    from torchvision.utils import save_image

    save_image(images, str(path), nrow=3, padding=2)


def _progress(enabled: bool, description: str, photos_per_step: int):
    """A rich progress bar with photos/s and ETA (silent on non-main processes)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class PhotoRate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{(task.speed or 0) * photos_per_step:.1f} photos/s")

    return Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), PhotoRate(), TimeRemainingColumn(),
        disable=not enabled,
    )

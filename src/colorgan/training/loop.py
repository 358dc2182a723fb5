"""Training: stage 1 (L1 pretraining) and stage 2 (conditional GAN), one loop for every machine.

The loop runs through accelerate, so the same code trains on the CPU, one GPU, several
GPUs or several nodes (``accelerate launch``), with mixed precision on GPUs and on CPUs that
compute bf16 natively. A run folder holds everything a run writes (see :func:`run_training`);
checkpoints are written atomically and a resumed run continues bit-for-bit where the last
checkpoint left it. A batch's journey to a checkpoint: :mod:`.data` decodes and crops the photos,
:mod:`.step` turns them into L* and ab and takes the step on the networks that :mod:`.trainer`
holds (started as :mod:`.start` says), :mod:`.runlog` records the losses, :mod:`.validation`
scores the published model each epoch, and :mod:`.checkpoint` writes everything a resume needs.
This module is the loop that joins them; the options are :mod:`.config`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from accelerate import Accelerator
from safetensors import SafetensorError
from accelerate.utils import set_seed
from torch import nn

from colorgan.files.discovery import find_images
from colorgan.errors import UserError
from colorgan.training.hints import simulate_hints
from colorgan.training.checkpoint import Checkpointer, RunState
from colorgan.training.config import TrainConfig
from colorgan.training.degrade import degrade
from colorgan.training.photos import PhotoScan, photos_color_prior, scan_photos
from colorgan.training.runlog import RunLog
from colorgan.training.step import to_model_input
from colorgan.training.trainer import Trainer, make_accelerator, photo_loader
from colorgan.training.validation import Validator

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run hands back to Python callers (the CLI ignores it)."""

    generator: nn.Module
    discriminator: nn.Module | None
    history: list[dict[str, float]]


def run_training(cfg: TrainConfig) -> TrainResult:
    """Train one stage and write the run folder ``cfg.out``:

    ``losses.csv`` (one row per epoch: the paper's loss columns as epoch means, validation
    L1 and metrics), ``tensorboard/``, ``samples/epoch_NNNN.png`` (gray | prediction | truth),
    ``checkpoint/`` (for ``--resume``), ``config.yaml`` and the inference artifact
    ``model.safetensors`` + ``model.json`` (and ``critic.safetensors`` in stage 2). An epoch's
    ``val_psnr`` (and the other metrics) equal what ``colorgan evaluate --data VAL --limit
    VAL_LIMIT --model OUT/model.safetensors`` reports for the model published after it (see
    :mod:`colorgan.training.validation`).
    """
    cfg.validate()
    _check_run_folder(cfg)
    accelerator = make_accelerator(cfg.mixed_precision)
    checkpointer = Checkpointer(run=cfg.out)
    checkpoint = checkpointer.resume_point(resume=cfg.resume)
    scan = _usable_photos(cfg, warn=accelerator.is_main_process)
    set_seed(cfg.seed)
    trainer = Trainer(cfg=cfg, accelerator=accelerator, checkpointer=checkpointer)
    if cfg.color_head:
        trainer.set_color_prior(photos_color_prior(scan.usable))
    run = _Run(cfg=cfg, accelerator=accelerator, trainer=trainer, scan=scan,
               state=trainer.load(checkpoint) if checkpoint is not None else RunState())
    try:
        while run.state.epoch < cfg.epochs:
            if run.train_epoch():  # the time budget ran out: everything is kept, so --resume can go on from here
                trainer.save(run.state)
                trainer.publish(run.state)
                log.info("stopped after %g minutes in epoch %d at step %d; --resume continues from here",
                         cfg.max_minutes, run.state.epoch + 1, run.state.step_in_epoch)
                break
            run.finish_epoch()
    except (OSError, SafetensorError) as exc:  # a full disk, a folder gone: the last complete checkpoint stays
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise UserError(f"cannot write the run folder {cfg.out}: {reason}; --resume goes on from its last checkpoint") from None
    run.runlog.close()
    accelerator.end_training()
    return TrainResult(trainer.published, trainer.discriminator, run.state.history)


def _check_run_folder(cfg: TrainConfig) -> None:
    """The run folder, refused before any work when it cannot be one: a file, a place that cannot be
    made, or inside the training photos (its sample grids would become training photos)."""
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; a run writes a folder")
    if cfg.data is not None and out.resolve().is_relative_to(cfg.data.resolve()):
        raise UserError(f"--out {out} is inside the training photos {cfg.data}; choose a folder outside them")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {out}: {exc.strerror or exc}") from None


def _usable_photos(cfg: TrainConfig, *, warn: bool) -> PhotoScan:
    """The run's photos, scanned once; none usable is a :class:`UserError` that says why."""
    scan = scan_photos(find_images(cfg.data, first=cfg.first, last=cfg.last, file_list=cfg.file_list), warn=warn,
                       min_colorfulness=cfg.min_colorfulness)
    if not scan.usable:
        raise UserError(f"no usable color photos in {cfg.data}: {len(scan.gray)} grayscale, {len(scan.unreadable)} unreadable"
                        + (f", {len(scan.dull)} duller than --min-colorfulness {cfg.min_colorfulness:g}" if scan.dull else ""))
    if len(scan.usable) < 2:
        raise UserError(f"{cfg.data} has one usable color photo; training needs at least two (a batch of one teaches BatchNorm nothing)")
    return scan


@dataclass
class _Run:
    """One run's loop state: the loader and its sampler, validation, the run log and the time budget."""

    cfg: TrainConfig
    accelerator: Accelerator
    trainer: Trainer
    scan: PhotoScan
    state: RunState

    def __post_init__(self) -> None:
        cfg, paths = self.cfg, self.scan.usable
        main = self.accelerator.is_main_process
        self.loader, self.sampler = photo_loader(cfg, paths)
        sit_out = len(paths) % cfg.batch_size if self.loader.drop_last else 0  # photos past the last full batch
        self.loader = self.accelerator.prepare(self.loader)
        self.validator = Validator(cfg=cfg, generator=self.trainer.published, device=self.accelerator.device) if main and cfg.val else None
        self.runlog = RunLog(run=cfg.out, cfg=cfg, enabled=main)
        self.deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes else None
        self._say_start(sit_out)

    def _say_start(self, sit_out: int) -> None:
        cfg, scan, accelerator = self.cfg, self.scan, self.accelerator
        dull = f", {len(scan.dull)} dull" if scan.dull else ""
        log.info(
            "training %s (%s stage) on %d photos: %d found, %d skipped (%d grayscale, %d unreadable%s); "
            "%dx%d, batch %d x %d process(es), device %s, precision %s",
            cfg.generator, cfg.stage, len(scan.usable), scan.found, scan.skipped, len(scan.gray), len(scan.unreadable), dull,
            cfg.size, cfg.size, cfg.batch_size, accelerator.num_processes, accelerator.device, accelerator.mixed_precision,
        )
        if sit_out:
            log.info("each epoch trains on %d of the %d photos in full batches of %d: the other %d, drawn anew each epoch, sit it out",
                     len(scan.usable) - sit_out, len(scan.usable), cfg.batch_size, sit_out)

    def train_epoch(self) -> bool:
        """The rest of the current epoch, checkpointing every ``--save-every`` steps; True if the time budget stopped it."""
        cfg, trainer, state = self.cfg, self.trainer, self.state
        self.sampler.set_position(state.epoch, start=state.step_in_epoch * trainer.photos_per_step)
        steps = state.step_in_epoch + len(self.loader)
        tic, stopped = time.perf_counter(), False
        with self.runlog.progress(epoch=state.epoch, epochs=cfg.epochs, steps=steps, done=state.step_in_epoch,
                                  photos_per_step=trainer.photos_per_step) as progress:
            for batch in self.loader:
                self.runlog.note_skips(batch["skipped"], state.meters)
                if trainer.all_ranks_have_photos(len(batch["rgb"])):
                    l, ab = to_model_input(batch["rgb"], saturation=cfg.target_saturation)
                    l = degrade(l, cfg.degrade)
                    cond = simulate_hints(ab) if cfg.hints else None
                    losses = trainer.train_step(l, ab, cond=cond, step=state.global_step)
                    state.meters.add(losses, len(batch["rgb"]))
                    self.runlog.step(state.global_step + 1, losses)
                state.step_in_epoch += 1
                state.global_step += 1
                progress.advance()
                if cfg.save_every and state.global_step % cfg.save_every == 0 and state.step_in_epoch < steps:
                    tic = state.meters.lap(tic)
                    trainer.save(state)
                if self.deadline is not None and trainer.time_is_up(self.deadline):
                    stopped = True
                    break
        state.meters.lap(tic)
        return stopped

    def finish_epoch(self) -> None:
        """The epoch's row (losses, counts, validation), its samples, the published model and a checkpoint."""
        state, scan, paths = self.state, self.scan, self.scan.usable
        row = state.meters.row(state.epoch, accelerator=self.accelerator)
        # photos that decoding showed unusable were skipped in the loop; the scan's, before it
        row |= {"sat_out": max(0, len(paths) - row["photos"] - row["skipped"]),
                "gray": row["gray"] + len(scan.gray), "unreadable": row["unreadable"] + len(scan.unreadable),
                "skipped": row["skipped"] + scan.skipped, "found": scan.found}
        if row["photos"] == 0:
            raise UserError(f"no usable color photos in {self.cfg.data}: {row['gray']} grayscale, {row['unreadable']} unreadable")
        if self.validator is not None:
            val_row, triples = self.validator(self.trainer.published)
            row |= val_row
            self.runlog.samples(state.epoch + 1, triples)
        state.finish_epoch(row)
        self.runlog.epoch(row, state.history)
        self.trainer.publish(state)
        self.trainer.save(state)
        self.accelerator.wait_for_everyone()

"""Training: stage 1 (L1 pretraining) and stage 2 (conditional GAN), one loop for every machine.

The loop runs through accelerate, so the same code trains on the CPU, one GPU, several
GPUs or several nodes (``accelerate launch``), with mixed precision on GPUs and on CPUs that
compute bf16 natively. A run folder holds everything a run writes (see :func:`run_training`);
checkpoints are written atomically and a resumed run continues bit-for-bit where the last
checkpoint left it. The parts live in :mod:`colorgan.training`: the options (``config``), the
networks and their step (``trainer``), checkpoints (``checkpoint``), the run's record
(``runlog``) and validation (``validation``); this module is the loop that joins them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from accelerate.utils import set_seed
from torch import nn

from .files import find_images
from .errors import UserError
from .training.hints import simulate_hints
from .training.checkpoint import KEEP_CHECKPOINTS, Checkpointer, RunState, latest_checkpoint
from .training.config import TrainConfig
from .training.photos import photos_color_prior, scan_photos
from .training.runlog import VAL_COLUMNS, RunLog
from .training.trainer import (
    Nets,
    Trainer,
    cpu_has_native_bf16,
    make_accelerator,
    photo_loader,
    resolve_precision,
    to_model_input,
    train_step,
)
from .training.validation import Validator

__all__ = [
    "KEEP_CHECKPOINTS", "VAL_COLUMNS", "Nets", "TrainConfig", "TrainResult", "cpu_has_native_bf16",
    "latest_checkpoint", "resolve_precision", "run_training", "to_model_input", "train_step",
]

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
    ``model.safetensors`` + ``model.json``. An epoch's ``val_psnr`` (and the other metrics)
    equal what ``colorgan evaluate --data VAL --limit VAL_LIMIT --model OUT/model.safetensors``
    reports for the model published after it (see :mod:`colorgan.training.validation`).
    """
    cfg.validate()
    accelerator = make_accelerator(cfg.mixed_precision)
    main = accelerator.is_main_process
    checkpointer = Checkpointer(run=cfg.out)
    checkpoint = checkpointer.resume_point(resume=cfg.resume)
    scan = scan_photos(find_images(cfg.data, first=cfg.first, last=cfg.last, file_list=cfg.file_list), warn=main,
                       min_colorfulness=cfg.min_colorfulness)
    if not scan.usable:
        raise UserError(f"no usable color photos in {cfg.data}: {len(scan.gray)} grayscale, {len(scan.unreadable)} unreadable"
                        + (f", {len(scan.dull)} duller than --min-colorfulness {cfg.min_colorfulness:g}" if scan.dull else ""))
    paths = scan.usable
    set_seed(cfg.seed)
    trainer = Trainer(cfg=cfg, accelerator=accelerator, checkpointer=checkpointer)
    if cfg.color_head:
        trainer.set_color_prior(photos_color_prior(paths))
    loader, sampler = photo_loader(cfg, paths)
    sit_out = len(paths) % cfg.batch_size if loader.drop_last else 0  # photos past the last full batch
    loader = accelerator.prepare(loader)
    validator = Validator(cfg=cfg, generator=trainer.published, device=accelerator.device) if main and cfg.val else None
    state = trainer.load(checkpoint) if checkpoint is not None else RunState()
    runlog = RunLog(run=cfg.out, cfg=cfg, enabled=main)
    dull = f", {len(scan.dull)} dull" if scan.dull else ""
    log.info(
        "training %s (%s stage) on %d photos: %d found, %d skipped (%d grayscale, %d unreadable%s); "
        "%dx%d, batch %d x %d process(es), device %s, precision %s",
        cfg.generator, cfg.stage, len(paths), scan.found, scan.skipped, len(scan.gray), len(scan.unreadable), dull,
        cfg.size, cfg.size, cfg.batch_size, accelerator.num_processes, accelerator.device, accelerator.mixed_precision,
    )
    if sit_out:
        log.info("each epoch trains on %d of the %d photos in full batches of %d: the other %d, drawn anew each epoch, sit it out",
                 len(paths) - sit_out, len(paths), cfg.batch_size, sit_out)
    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes else None
    while state.epoch < cfg.epochs:
        sampler.set_position(state.epoch, start=state.step_in_epoch * trainer.photos_per_step)
        steps = state.step_in_epoch + len(loader)
        tic, stopped = time.perf_counter(), False
        with runlog.progress(epoch=state.epoch, epochs=cfg.epochs, steps=steps, done=state.step_in_epoch,
                             photos_per_step=trainer.photos_per_step) as progress:
            for batch in loader:
                runlog.note_skips(batch["skipped"], state.meters)
                if trainer.all_ranks_have_photos(len(batch["rgb"])):
                    l, ab = to_model_input(batch["rgb"], saturation=cfg.target_saturation)
                    cond = simulate_hints(ab) if cfg.hints else None
                    losses = trainer.train_step(l, ab, cond=cond, step=state.global_step)
                    state.meters.add(losses, len(batch["rgb"]))
                    runlog.step(state.global_step + 1, losses)
                state.step_in_epoch += 1
                state.global_step += 1
                progress.advance()
                if cfg.save_every and state.global_step % cfg.save_every == 0 and state.step_in_epoch < steps:
                    tic = state.meters.lap(tic)
                    trainer.save(state)
                if deadline is not None and trainer.time_is_up(deadline):
                    stopped = True
                    break
        state.meters.lap(tic)
        if stopped:  # the time budget ran out: keep everything so --resume can go on from here
            trainer.save(state)
            trainer.publish(state)
            log.info("stopped after %g minutes in epoch %d at step %d; --resume continues from here",
                     cfg.max_minutes, state.epoch + 1, state.step_in_epoch)
            break
        row = state.meters.row(state.epoch, accelerator=accelerator)
        # photos that decoding showed unusable were skipped in the loop; the scan's, before it
        row |= {"sat_out": max(0, len(paths) - row["photos"] - row["skipped"]),
                "gray": row["gray"] + len(scan.gray), "unreadable": row["unreadable"] + len(scan.unreadable),
                "skipped": row["skipped"] + scan.skipped, "found": scan.found}
        if row["photos"] == 0:
            raise UserError(f"no usable color photos in {cfg.data}: {row['gray']} grayscale, {row['unreadable']} unreadable")
        if validator is not None:
            val_row, triples = validator(trainer.published)
            row |= val_row
            runlog.samples(state.epoch + 1, triples)
        state.finish_epoch(row)
        runlog.epoch(row, state.history)
        trainer.publish(state)
        trainer.save(state)
        accelerator.wait_for_everyone()
    runlog.close()
    accelerator.end_training()
    return TrainResult(trainer.published, trainer.discriminator, state.history)

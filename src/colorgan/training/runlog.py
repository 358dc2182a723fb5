"""What a run records for people: per-epoch meters, ``losses.csv``, tensorboard, sample grids, ``config.yaml``, progress.

Every file goes through :func:`colorgan.files.atomic.atomic_output` (tensorboard's event files
excepted: tensorboard appends to them as it goes). Only the main process writes.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch
import yaml
from accelerate import Accelerator
from PIL import Image

from colorgan.evaluation.evaluate import save_grid
from colorgan.files.atomic import atomic_output
from colorgan.training.losses import LOSS_NAMES

if TYPE_CHECKING:
    from colorgan.training.config import TrainConfig

log = logging.getLogger(__name__)

VAL_COLUMNS = ("val_Loss_G_L1", "val_psnr", "val_cf", "val_delta_cf", "val_auc")
CSV_COLUMNS = ("epoch", *LOSS_NAMES, *VAL_COLUMNS, "photos", "skipped", "seconds")
STEP_SCALARS_EVERY = 25
LOG_LINE_EVERY = 50


@dataclass(kw_only=True)
class EpochMeters:
    """The running sums of one epoch on this process; checkpointed, so a resumed epoch's row counts every step."""

    sums: dict[str, float] = field(default_factory=dict)  # only the losses this run's steps report
    photos: int = 0
    gray: int = 0
    unreadable: int = 0
    seconds: float = 0.0

    def add(self, losses: dict[str, float], photos: int) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * photos
        self.photos += photos

    def lap(self, tic: float) -> float:
        """Add the time since ``tic`` to the epoch's seconds; returns now, the next lap's start."""
        now = time.perf_counter()
        self.seconds += now - tic
        return now

    def row(self, epoch: int, *, accelerator: Accelerator) -> dict[str, Any]:
        """The epoch's row: loss means over all processes (None for losses the run has not, such as
        the discriminator's in stage 1) and photo counts."""
        totals = torch.tensor(
            [self.sums.get(k, 0.0) for k in LOSS_NAMES] + [self.photos, self.gray, self.unreadable],
            dtype=torch.float64, device=accelerator.device,
        )
        totals = accelerator.reduce(totals, reduction="sum") if accelerator.num_processes > 1 else totals
        photos, gray, unreadable = (int(x) for x in totals[-3:].tolist())
        row: dict[str, Any] = {"epoch": epoch + 1}
        for k, total in zip(LOSS_NAMES, totals[:-3].tolist(), strict=True):
            row[k] = total / photos if k in self.sums and photos else None
        return row | {"photos": photos, "skipped": gray + unreadable, "gray": gray, "unreadable": unreadable,
                      "seconds": round(self.seconds, 1)}


class RunLog:
    """The run folder's human-readable record; a no-op on every process but the main one (``enabled``)."""

    def __init__(self, *, run: Path, cfg: TrainConfig, enabled: bool) -> None:
        self.run = run
        self.enabled = enabled
        self._warned: set[str] = set()
        self._writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            with atomic_output(run / "config.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            self._writer = SummaryWriter(log_dir=str(run / "tensorboard"))

    def note_skips(self, records: Sequence[dict[str, Any]], meters: EpochMeters) -> None:
        """Count the batch's unusable photos and warn once per file (on every process: each reads its own files)."""
        for record in records:
            if record["gray"]:
                meters.gray += 1
            else:
                meters.unreadable += 1
            if record["skip"] not in self._warned:
                self._warned.add(record["skip"])
                log.warning("skipping %s: %s", record["skip"], record["reason"])

    def step(self, global_step: int, losses: dict[str, float]) -> None:
        if self._writer is not None and global_step % STEP_SCALARS_EVERY == 0:
            for k, v in losses.items():
                self._writer.add_scalar(f"step/{k}", v, global_step)

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Record a finished epoch: tensorboard scalars, the whole ``losses.csv`` anew, and its table in the log."""
        if self._writer is None:
            return
        for k in (*LOSS_NAMES, *VAL_COLUMNS):
            if row.get(k) is not None:
                self._writer.add_scalar(f"epoch/{k}", row[k], row["epoch"])
        self._writer.flush()
        with atomic_output(self.run / "losses.csv") as tmp, tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: "" if r.get(k) is None else _fmt(r[k]) for k in CSV_COLUMNS} for r in history)
        sat_out = f", {row['sat_out']} sat out (past the last full batch)" if row.get("sat_out") else ""
        found = f" of {row['found']} found" if "found" in row else ""
        log.info(
            "epoch %d: trained on %d photos%s, %d skipped (%d grayscale, %d unreadable)%s, %.0f s\n%s",
            row["epoch"], row["photos"], found, row["skipped"], row["gray"], row["unreadable"], sat_out, row["seconds"],
            _table(row),
        )

    def samples(self, epoch: int, triples: Sequence[tuple[Image.Image, Image.Image, Image.Image]]) -> None:
        """``samples/epoch_NNNN.png``: gray | prediction | truth, one photo per row (``epoch`` counts from 1)."""
        if self.enabled and triples:
            save_grid(triples, self.run / "samples" / f"epoch_{epoch:04d}.png")

    def progress(self, *, epoch: int, epochs: int, steps: int, done: int, photos_per_step: int) -> EpochProgress:
        return EpochProgress(enabled=self.enabled, epoch=epoch, epochs=epochs, steps=steps, done=done,
                             photos_per_step=photos_per_step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class EpochProgress:
    """A rich progress bar with photos/s and ETA on a terminal; in a log file, a line every ``LOG_LINE_EVERY`` steps."""

    def __init__(self, *, enabled: bool, epoch: int, epochs: int, steps: int, done: int, photos_per_step: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
        from rich.text import Text

        class PhotoRate(ProgressColumn):
            def render(self, task) -> Text:
                return Text(f"{(task.speed or 0) * photos_per_step:.1f} photos/s")

        self.enabled, self.epoch, self.steps, self.done, self.photos_per_step = enabled, epoch, steps, done, photos_per_step
        self._bar = Progress(TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(), PhotoRate(),
                             TimeRemainingColumn(), disable=not enabled)
        self._task = self._bar.add_task("", total=steps, completed=done)

    def __enter__(self) -> EpochProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.__exit__(kind, exc, tb)

    def advance(self) -> None:
        self.done += 1
        self._bar.update(self._task, advance=1)
        if self.enabled and not self._bar.console.is_terminal and self.done % LOG_LINE_EVERY == 0:
            speed = self._bar.tasks[0].speed or 0.0
            eta = (self.steps - self.done) / speed / 60 if speed else float("nan")
            log.info("epoch %d step %d/%d, %.1f photos/s, about %.0f min left in this epoch",
                     self.epoch + 1, self.done, self.steps, speed * self.photos_per_step, eta)


def _fmt(value: Any) -> str:
    return f"{value:.5f}" if isinstance(value, float) else str(value)


def _table(row: dict[str, Any]) -> str:
    keys = [k for k in ("epoch", *LOSS_NAMES, *VAL_COLUMNS) if row.get(k) is not None]
    widths = [max(len(k), len(_fmt(row[k]))) for k in keys]
    header = "  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))
    values = "  ".join(_fmt(row[k]).rjust(w) for k, w in zip(keys, widths, strict=True))
    return f"{header}\n{values}"

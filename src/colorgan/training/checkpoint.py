"""A run's checkpoints: complete ``step-N`` folders behind a ``LATEST`` pointer.

A checkpoint is written into ``step-N.tmp``, renamed to ``step-N`` once complete, and only
then named by ``LATEST`` (through :func:`colorgan.files.atomic_output`), so a kill at any
moment leaves ``LATEST`` naming a complete checkpoint. The files inside the folder are
written directly: nothing ever reads a ``.tmp`` folder, and the folder's rename is what
makes them visible, all at once.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..errors import UserError
from ..files import atomic_output
from ..models import read_weights
from .runlog import EpochMeters

log = logging.getLogger(__name__)

KEEP_CHECKPOINTS = 2
_COMPLETE = re.compile(r"step-\d+")
_LEFTOVER = re.compile(r"step-\d+\.tmp")


@dataclass(kw_only=True)
class RunState:
    """Where the loop stands; with the weights, optimizers and RNG it is what a resume needs to go on bit for bit.

    ``epoch`` is the epoch under way (0-based), ``step_in_epoch`` the steps it has taken.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    meters: EpochMeters = field(default_factory=EpochMeters)

    def finish_epoch(self, row: dict[str, Any]) -> None:
        """Record the finished epoch's row and start the next epoch from its first step."""
        self.history.append(row)
        self.epoch, self.step_in_epoch, self.meters = self.epoch + 1, 0, EpochMeters()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RunState:
        # Checkpoints of finished epochs written before EpochMeters existed hold empty meters ({}).
        return cls(epoch=state["epoch"], step_in_epoch=state["step_in_epoch"], global_step=state["global_step"],
                   history=state["history"], meters=EpochMeters(**state["meters"]))


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """One complete checkpoint: ``state.pt`` (tensors and plain data only) and a safetensors file per module."""

    folder: Path
    state: dict[str, Any]

    def has(self, name: str) -> bool:
        """Whether this checkpoint holds module ``name`` (stage 1 has no discriminator, a run without --ema no average)."""
        return (self.folder / f"{name}.safetensors").is_file()

    def weights(self, name: str) -> dict[str, torch.Tensor]:
        """The tensors of module ``name``; a missing or damaged file is a :class:`UserError`."""
        return read_weights(self.folder / f"{name}.safetensors")


def latest_checkpoint(run: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    pointer = run / "checkpoint" / "LATEST"
    if not pointer.is_file():
        return None
    folder = run / "checkpoint" / pointer.read_text().strip()
    return folder if (folder / "state.pt").is_file() else None


class Checkpointer:
    """Writes, finds and reads the checkpoints of the run folder ``run`` (in ``run/checkpoint``), keeping the ``keep`` newest."""

    def __init__(self, *, run: Path, keep: int = KEEP_CHECKPOINTS) -> None:
        self.run = run
        self.root = run / "checkpoint"
        self.keep = keep

    def resume_point(self, *, resume: bool) -> Checkpoint | None:
        """The checkpoint to continue from: None for a new run. A run folder that holds a run without
        ``resume``, or ``resume`` without a checkpoint, is a :class:`UserError` (a run is never overwritten)."""
        folder = latest_checkpoint(self.run)
        if resume and folder is None:
            raise UserError(f"--resume: no checkpoint in {self.root}")
        if not resume and folder is not None:
            raise UserError(f"{self.run} already holds a training run; pass --resume to continue it or choose another --out")
        if folder is None:
            return None
        try:
            state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged file raises pickle, zip or OS errors alike
            raise UserError(f"cannot read checkpoint {folder}: {exc}") from None
        return Checkpoint(folder=folder, state=state)

    def save(self, step: int, *, modules: dict[str, nn.Module], state: dict[str, Any]) -> Path:
        """Write checkpoint ``step-<step>`` (one safetensors file per module, ``state`` as ``state.pt``) and point LATEST at it."""
        name = f"step-{step:09d}"
        tmp, final = self.root / f"{name}.tmp", self.root / name
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for key, module in modules.items():
            tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            save_file(tensors, str(tmp / f"{key}.safetensors"))
        torch.save(state, tmp / "state.pt")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        with atomic_output(self.root / "LATEST") as pointer:
            pointer.write_text(name + "\n")
        self._prune(final)
        return final

    def _prune(self, newest: Path) -> None:
        """Delete the leftovers of killed saves (``step-N.tmp``) and all but the ``keep`` newest checkpoints.

        Only complete folders count towards ``keep``: a leftover, which sorts after the real
        checkpoints when its save was the last one, must never push a real one out.
        """
        folders = [p for p in self.root.iterdir() if p.is_dir()]
        others = sorted(p for p in folders if _COMPLETE.fullmatch(p.name) and p != newest)
        leftovers = [p for p in folders if _LEFTOVER.fullmatch(p.name)]
        for folder in leftovers + others[: max(0, len(others) - (self.keep - 1))]:
            shutil.rmtree(folder, ignore_errors=True)

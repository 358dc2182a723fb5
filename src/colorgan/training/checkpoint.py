"""A run's checkpoints: complete ``step-N`` folders behind a ``LATEST`` pointer.

A checkpoint is written into ``step-N.tmp``, renamed to ``step-N`` once complete, and only
then named by ``LATEST`` (through :func:`colorgan.files.atomic.atomic_output`), so a kill at any
moment leaves ``LATEST`` naming a complete checkpoint. The files inside the folder are
written directly: nothing ever reads a ``.tmp`` folder, and the folder's rename is what
makes them visible, all at once.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from colorgan.errors import UserError
from colorgan.files.atomic import atomic_output
from colorgan.model.artifact import read_weights
from colorgan.training.runlog import EpochMeters

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
    """The checkpoint folder a resume of ``run`` continues from (see :meth:`Checkpointer.resume_point`), or None."""
    try:
        found = _find_intact(run / "checkpoint")
    except LookupError:  # checkpoints, none intact
        return None
    return found[0].folder if found else None


def _reason(exc: BaseException) -> str:
    """An exception as a short reason that is never empty (EOFError from a 0-byte file has no message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _read_intact(folder: Path) -> dict[str, Any]:
    """``folder``'s state, once every file a resume reads is checked; a damaged one raises ``ValueError(reason)``.

    The safetensors files' headers are checked against their sizes (which catches a
    truncated file) without reading the tensors: :meth:`Checkpoint.weights` reads them later.
    """
    state_file = folder / "state.pt"
    if not folder.is_dir():
        raise ValueError("the folder is missing")
    if not state_file.is_file():
        raise ValueError("state.pt is missing")
    if state_file.stat().st_size == 0:
        raise ValueError("state.pt is empty (0 bytes)")
    try:
        with warnings.catch_warnings():  # PyTorch's own notes on a foreign pickle are not the user's to act on
            warnings.simplefilter("ignore")
            state = torch.load(state_file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # PyTorch's advice here (load it unsafely) must never reach a user
        raise ValueError("state.pt is not a training state colorgan wrote (it cannot be read as one)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file raises zip or OS errors alike
        raise ValueError(f"state.pt is unreadable ({_reason(exc)})") from None
    if not isinstance(state, dict) or "global_step" not in state:
        raise ValueError("state.pt is not a colorgan training state")
    if not (folder / "generator.safetensors").is_file():
        raise ValueError("generator.safetensors is missing")
    for weights in sorted(folder.glob("*.safetensors")):
        if weights.stat().st_size == 0:
            raise ValueError(f"{weights.name} is empty (0 bytes)")
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError
            raise ValueError(f"{weights.name} is unreadable ({_reason(exc)})") from None
    return state


def _step(folder: Path) -> int:
    return int(folder.name.removeprefix("step-"))


def _find_intact(root: Path) -> tuple[Checkpoint, list[str]] | None:
    """The newest intact checkpoint under ``root`` and one note per checkpoint passed over; None if there is none.

    ``LATEST``'s folder comes first; when it is missing, damaged or ``LATEST`` itself is
    missing or garbage, the complete ``step-N`` folders follow, newest first (only those
    older than the one ``LATEST`` names, when it names one: a run rolled back by hand stays
    rolled back). Raises ``LookupError(notes)`` when checkpoints exist but none is intact.
    """
    if not root.is_dir():
        return None
    folders = sorted((p for p in root.iterdir() if p.is_dir() and _COMPLETE.fullmatch(p.name)), key=_step, reverse=True)
    pointer, notes, named = root / "LATEST", [], None
    if pointer.is_file():
        try:
            text = pointer.read_text().strip()
        except (OSError, UnicodeDecodeError):
            text = None
        if text is not None and _COMPLETE.fullmatch(text):
            named = root / text
        else:
            notes.append("checkpoint/LATEST is garbage (it names no step-N folder)")
    elif folders:
        notes.append("checkpoint/LATEST is missing")
    elif not pointer.exists():
        return None
    candidates = folders
    if named is not None:
        candidates = [named] + [f for f in folders if _step(f) < _step(named)]
    for folder in candidates:
        try:
            state = _read_intact(folder)
        except ValueError as exc:
            notes.append(f"{folder.name}: {exc}" if folder != named else f"checkpoint/LATEST names {folder.name}, but {exc}")
            continue
        return Checkpoint(folder=folder, state=state), notes
    if not notes or (named is None and not folders):
        return None
    raise LookupError(notes)


class Checkpointer:
    """Writes, finds and reads the checkpoints of the run folder ``run`` (in ``run/checkpoint``), keeping the ``keep`` newest."""

    def __init__(self, *, run: Path, keep: int = KEEP_CHECKPOINTS) -> None:
        self.run = run
        self.root = run / "checkpoint"
        self.keep = keep

    def resume_point(self, *, resume: bool) -> Checkpoint | None:
        """The checkpoint to continue from: None for a new run. A run folder that holds a run without
        ``resume``, or ``resume`` without a checkpoint, is a :class:`UserError` (a run is never overwritten)."""
        if not resume:
            if self.has_run():
                raise UserError(f"{self.run} already holds a training run; pass --resume to continue it or choose another --out")
            return None
        try:
            found = _find_intact(self.root)
        except LookupError as exc:
            notes = exc.args[0]
            raise UserError(f"cannot read checkpoint in {self.root}: " + "; ".join(notes)) from None
        if found is None:
            raise UserError(f"--resume: no checkpoint in {self.root}")
        checkpoint, notes = found
        if notes:
            log.warning("resuming from %s, the newest intact checkpoint, because %s", checkpoint.folder.name, "; ".join(notes))
        return checkpoint

    def has_run(self) -> bool:
        """Whether the run folder holds any checkpoint, intact or not (a run that a new one must not overwrite)."""
        return self.root.is_dir() and any(
            p.name == "LATEST" or (p.is_dir() and _COMPLETE.fullmatch(p.name)) for p in self.root.iterdir()
        )

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
        complete = [p for p in folders if _COMPLETE.fullmatch(p.name) and p != newest]
        # Folders past the newest step belong to a timeline a resume abandoned (it fell back
        # from a damaged checkpoint, or LATEST was rolled back): they go, and never count.
        abandoned = [p for p in complete if _step(p) > _step(newest)]
        others = sorted((p for p in complete if _step(p) < _step(newest)), key=_step)
        leftovers = [p for p in folders if _LEFTOVER.fullmatch(p.name)]
        for folder in leftovers + abandoned + others[: max(0, len(others) - (self.keep - 1))]:
            shutil.rmtree(folder, ignore_errors=True)

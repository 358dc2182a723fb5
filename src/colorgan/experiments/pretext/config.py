"""The options of ``colorgan pretext``: plain data, checked before any work starts."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from colorgan.errors import UserError, check_range


log = logging.getLogger(__name__)


INITS = ("scratch", "colorization")
FROZEN_LR = 1e-4
ROW_NAMES = {"scratch": "Random init, N(0, 0.02)", "colorization": "Colorization weights"}
PRECISIONS = ("auto", "no", "bf16")  # no fp16: it would need loss scaling
METRIC_TITLES = {"top1": "Classification accuracy (top-1)", "mAP": "Classification mAP"}


@dataclass
class PretextConfig:
    """One pretext experiment: plain data, the CLI's options."""

    data: Path
    val: Path
    colorizer: Path
    init: str = "both"
    label_fraction: float = 1.0
    epochs: int = 20
    freeze_epochs: int = 5
    size: int = 128
    seeds: int = 3
    lr: float = 2e-4
    batch_size: int = 32
    workers: int = 2
    multilabel: tuple[Path, ...] = field(default_factory=tuple)
    mixed_precision: str = "auto"
    out: Path = Path("runs/pretext")

    @property
    def arms(self) -> list[str]:
        return list(INITS) if self.init == "both" else [self.init]

    def validate(self) -> None:
        """Reject impossible settings before any work starts."""
        if self.init not in (*INITS, "both"):
            raise UserError(f"--init must be scratch, colorization or both, got {self.init!r}")
        if self.mixed_precision not in PRECISIONS:
            raise UserError(f"--mixed-precision must be one of {', '.join(PRECISIONS)}")
        if len(self.multilabel) > 2:
            raise UserError("--multilabel takes one label file (for both folders) or two (train, then val)")
        check_range("--label-fraction", self.label_fraction, above=0, high=1)
        check_range("--epochs", self.epochs, low=1)
        check_range("--freeze-epochs", self.freeze_epochs, low=0, high=self.epochs)
        for name, value in (("--size", self.size), ("--seeds", self.seeds), ("--batch-size", self.batch_size)):
            check_range(name, value, low=1)
        check_range("--lr", self.lr, above=0)
        check_range("--workers", self.workers, low=0)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

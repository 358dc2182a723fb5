"""What a folder job's files end as: one :class:`Outcome` each (done, skipped or failed, and why),
counted, said as ``error:`` lines, and written to the ``--report``."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from colorgan.errors import UserError, parse_json
from colorgan.files.atomic import write_report

if TYPE_CHECKING:
    from rich.console import Console

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Outcome:
    source: str
    output: str
    status: Status
    reason: str | None = None


def count(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many outcomes are done, skipped and failed (all three keys, always)."""
    counts = Counter(o.status for o in outcomes)
    return {status: counts[status] for status in ("done", "skipped", "failed")}


def say(console: Console, line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


class ReportNotWritten(UserError):
    """The photos were colorized but ``--report`` could not be written; ``outcomes`` keeps what was done."""

    def __init__(self, message: str, outcomes: list[Outcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


def check_writable(report: Path) -> None:
    """Fail before any work, not with a traceback after it, if the report cannot be written, or
    would be written over a file that is not an earlier report (an input, a hint file, a model's
    model.json): colorgan never writes over a user's file."""
    if report.is_dir():
        raise UserError(f"cannot write --report {report}: it is a folder")
    if report.exists() and not _is_report(report):
        raise UserError(f"--report {report} exists and is not a colorgan report; choose another name")
    folder = report.parent
    while not folder.exists() and folder != folder.parent:  # missing folders would be made
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"cannot write --report {report}: {exc.strerror or exc}") from None


def _is_report(path: Path) -> bool:
    """Whether ``path`` holds a report of an earlier job (a JSON object with its summary and files)."""
    try:
        with path.open("rb") as file:
            content = parse_json(file.read(64 << 20), source=str(path))
    except (OSError, UserError):
        return False
    return isinstance(content, dict) and set(content) == {"summary", "files"}


def write_job_report(report: Path, outcomes: list[Outcome]) -> None:
    """The ``--report`` JSON: the summary and each file's outcome. The work is done by now, so a
    report that cannot be written hands the outcomes on with the error (:class:`ReportNotWritten`)."""
    try:
        write_report(report, {"summary": count(outcomes), "files": [asdict(o) for o in outcomes]})
    except OSError as exc:
        raise ReportNotWritten(f"cannot write the report {report}: {exc}", outcomes) from None

"""The folder job's progress bars: files per second for photos, frames per second for each video.
rich draws them, imported only when a bar is shown (~20 ms of a one-photo job's start otherwise)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn


class NoBar:
    """What a bar that is not shown does: nothing, with the calls of rich's ``Progress``."""

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any) -> None:
        return None


def files_bar(console: Console, *, enabled: bool) -> Progress | NoBar:
    """The bar of a folder of photos: done of all, files per second, time left."""
    return _bar(console, "colorizing", _rate("files/s", 2)) if enabled else NoBar()


class FrameProgress:
    """One video's progress bar: frames done of the total, frames per second, time left."""

    def __init__(self, console: Console, name: str, *, enabled: bool) -> None:
        self._progress = _bar(console, name, _rate("fps", 1)) if enabled else None
        self._task = self._progress.add_task(name, total=None) if self._progress is not None else None

    def __enter__(self) -> FrameProgress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start(self, total: int | None, done: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total, completed=done)
            self._progress.reset(self._task, total=total, completed=done)  # the speed counts this run's frames only

    def advance(self, frames: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, frames)


def _bar(console: Console, label: str, rate: ProgressColumn) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), rate, TimeRemainingColumn(), console=console)


def _rate(unit: str, digits: int) -> ProgressColumn:
    """A column of the bar's speed in ``unit``, with ``digits`` decimals."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed or 0:.{digits}f} {unit}")

    return Rate()

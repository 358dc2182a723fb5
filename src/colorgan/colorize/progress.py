"""The folder job's progress bars (rich): files per second for photos, frames per second for each video."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text


def files_bar(console: Console, *, enabled: bool) -> Progress:
    """The bar of a folder of photos: done of all, files per second, time left."""
    columns = (TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), FilesPerSecond(), TimeRemainingColumn())
    return Progress(*columns, console=console, disable=not enabled)


class FilesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:.2f} files/s")


class FramesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:.1f} fps")


class FrameProgress:
    """One video's progress bar: frames done of the total, frames per second, time left."""

    def __init__(self, console: Console, name: str, *, enabled: bool) -> None:
        columns = (TextColumn(name), BarColumn(), MofNCompleteColumn(), FramesPerSecond(), TimeRemainingColumn())
        self._progress = Progress(*columns, console=console, disable=not enabled)
        self._task = self._progress.add_task(name, total=None)

    def __enter__(self) -> FrameProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def start(self, total: int | None, done: int) -> None:
        self._progress.update(self._task, total=total, completed=done)
        self._progress.reset(self._task, total=total, completed=done)  # the speed counts this run's frames only

    def advance(self, frames: int) -> None:
        self._progress.advance(self._task, frames)

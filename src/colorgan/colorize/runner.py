"""The folder job's runner: tasks in, one :class:`~colorgan.colorize.outcomes.Outcome` each out, in order.

Every engine runs it: the local folder job on this machine's photos, and each Ray worker on its
share (:mod:`colorgan.colorize.ray_engine`). :func:`settled` is the one skip rule of every engine.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorgan.colorize.outcomes import Outcome, Status, say
from colorgan.colorize.plan import Task
from colorgan.colorize.progress import files_bar
from colorgan.colorizer import Colorizer
from colorgan.errors import OutputBlocked, PhotoError
from colorgan.files.images import SIXTEEN_BIT_FORMATS, is_lossless_webp, save_image
from colorgan.hints import Hint
from colorgan.photo import Photo, read_photo

if TYPE_CHECKING:
    from rich.console import Console

# The pipeline's bounds (see :class:`Runner`), in photos beyond the model batch being colorized:
# decoded and waiting for the model (a 12 MP photo is 12 MB gray, 36 MB RGB), and colorized and
# waiting to be written (36 MB each, 72 MB at 16 bits). Each pending save has its own thread.
READ_AHEAD = 2
PENDING_SAVES = 2
# With --keep-color, the rule each photo met (colorgan.color.color_kind): the report's reason.
KEEP_COLOR_RULES = {"gray": "a gray photo: colorized", "toned": "a toned photo (one hue, as a sepia print): colorized",
                    "color": "already in color (--keep-color)"}


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How photos are colorized and written, the same for every engine: the render size (None: the
    model's), JPEG/WebP quality, ``--keep-color``, ``--overwrite``, photos per model batch, hints."""

    size: int | None = None
    quality: int | None = None
    keep_color: bool = False
    overwrite: bool = False
    batch_size: int = 1
    hints: tuple[Hint, ...] = ()


@dataclass
class Runner:
    """Colorizes tasks in model batches; every task ends as exactly one :class:`Outcome`, in task order.

    A pipeline, so that decoding and encoding overlap with the model: one thread reads the next
    photos (decoding, and the ``--keep-color`` check) while the main thread runs the model and the
    recombination, and up to :data:`PENDING_SAVES` threads encode and write finished photos. Pillow's
    codecs, zlib and NumPy release the GIL, so every core is busy. Memory stays bounded: at most
    max(batch size, :data:`READ_AHEAD`) photos are decoded ahead of the batch being colorized, and at
    most :data:`PENDING_SAVES` colorized photos wait to be written (the main thread waits for one
    before it hands on another). Outcomes, their ``error:`` lines and the progress bar follow the
    tasks' order, each as soon as it and every task before it are finished.
    """

    colorizer: Colorizer
    console: Console
    options: RunOptions
    _kinds: dict[Path, str] = field(default_factory=dict)  # with --keep-color: each photo's rule, for its outcome

    def run(self, tasks: Sequence[Task], *, progress: bool) -> list[Outcome]:
        """Every task's outcome, in task order; the ones :func:`settled` decides are not read."""
        outcomes: dict[int, Outcome] = {}
        todo: list[tuple[int, Task]] = []
        for index, task in enumerate(tasks):
            if (decided := settled(task, overwrite=self.options.overwrite)) is not None:
                outcomes[index] = decided
            else:
                todo.append((index, task))
        with files_bar(self.console, enabled=progress and len(todo) >= 2) as bar:
            bar_task = bar.add_task("colorize", total=len(todo))
            try:
                for index, result in self._pipeline([task for _, task in todo], self.options.batch_size):
                    outcomes[todo[index][0]] = result
                    bar.advance(bar_task)
            except OutputBlocked as exc:  # the job stops; what it did and did not do goes with the error
                exc.outcomes = [outcomes.get(i) or outcome(task, "failed", f"not written: {exc}") for i, task in enumerate(tasks)]
                raise
        return [outcomes[index] for index in range(len(tasks))]

    def _pipeline(self, tasks: Sequence[Task], batch_size: int) -> Iterator[tuple[int, Outcome]]:
        """(index in ``tasks``, outcome) of every task, in order. On any exception (Ctrl+C included)
        pending reads and saves are cancelled and nothing waits for the threads; a save already
        running still finishes its file (outputs appear whole or not at all)."""
        readers = ThreadPoolExecutor(1, thread_name_prefix="colorgan-read")
        writers = ThreadPoolExecutor(PENDING_SAVES, thread_name_prefix="colorgan-write")
        reads: deque[Future[Photo | None]] = deque()
        # Every task read so far, in order: its outcome, or the future of its save.
        finished: deque[Outcome | Future[None]] = deque()
        reported = submitted = 0
        try:
            for start in range(0, len(tasks), batch_size):
                # This batch and the photos after it, up to the bound, are read before the model waits for any.
                while submitted < min(len(tasks), start + batch_size + max(batch_size, READ_AHEAD)):
                    reads.append(readers.submit(self._read, tasks[submitted]))
                    submitted += 1
                group = tasks[start : start + batch_size]
                loaded = [reads.popleft() for _ in group]
                for result in self._colorize_group(group, loaded, writers, finished):
                    finished.append(result)
                    for outcome in self._report(finished, tasks, reported, wait_for_all=False):
                        yield reported, outcome
                        reported += 1
            for outcome in self._report(finished, tasks, reported, wait_for_all=True):
                yield reported, outcome
                reported += 1
        finally:
            for future in [*reads, *(f for f in finished if isinstance(f, Future))]:
                future.cancel()
            readers.shutdown(wait=False, cancel_futures=True)
            writers.shutdown(wait=False, cancel_futures=True)

    def _read(self, task: Task) -> Photo | None:
        """Decode a task's photo (in the reader thread); None if ``--keep-color`` leaves it alone
        (a color photo), else the photo, with the rule that let it through noted for the report."""
        photo = read_photo(task.source)
        if not self.options.keep_color:
            return photo
        kind = photo.color_kind()
        self._kinds[task.source] = KEEP_COLOR_RULES[kind]
        return None if kind == "color" else photo

    def _colorize_group(self, group: Sequence[Task], loaded: Sequence[Future[Photo | None]], writers: ThreadPoolExecutor,
                        finished: deque[Outcome | Future[None]]) -> Iterator[Outcome | Future[None]]:
        """Colorize one model batch: per task, in order, its outcome or the future of its save.

        Photos of 16 bits going to a TIFF are colorized at 16 bits, the others at 8 (one model call
        for each depth present). Any exception fails only the files it concerns.
        """
        results: list[Outcome | Photo] = []
        for task, future in zip(group, loaded, strict=True):
            try:
                photo = future.result()
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the job
                results.append(self.failure(task, exc))
            else:
                results.append(outcome(task, "skipped", self._kinds.pop(task.source)) if photo is None else photo)
        images: dict[int, Any] = {}
        for bits in (8, 16):
            members = [i for i, (task, result) in enumerate(zip(group, results, strict=True))
                       if isinstance(result, Photo) and _bits(task, result) == bits]
            if not members:
                continue
            try:
                hints = [list(self.options.hints)] * len(members) if self.options.hints else None
                colorized = self.colorizer.colorize_batch([results[i] for i in members], size=self.options.size, hints=hints, bits=bits)
            except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the job
                for i in members:
                    results[i] = self.failure(group[i], exc)
                continue
            images.update(zip(members, colorized, strict=True))
        for i, (task, result) in enumerate(zip(group, results, strict=True)):
            if i not in images:
                yield result  # an Outcome: failed or skipped
                continue
            image = images.pop(i)  # held from here on by its save only, which drops it once written
            _wait_for_writers(finished, PENDING_SAVES - 1)
            yield writers.submit(save_image, image, task.output, fmt=task.fmt, quality=self.options.quality,
                                 lossless=task.fmt == "webp" and is_lossless_webp(task.source))

    def _report(self, finished: deque[Outcome | Future[None]], tasks: Sequence[Task], first: int, *,
                wait_for_all: bool) -> Iterator[Outcome]:
        """Take the outcomes at the head of ``finished`` that are known (all of them, waiting for the
        saves, with ``wait_for_all``); ``first`` is the index of the head's task."""
        index = first
        while finished and (wait_for_all or not isinstance(finished[0], Future) or finished[0].done()):
            head = finished.popleft()
            task = tasks[index]
            if isinstance(head, Future):
                try:
                    head.result()
                except OutputBlocked:
                    raise  # a full disk or a read-only folder: the job stops
                except Exception as exc:  # noqa: BLE001 - one bad file must not stop the job
                    head = self.failure(task, exc)
                else:
                    head = outcome(task, "done", self._kinds.pop(task.source, None))
            if head.status == "failed":
                say(self.console, f"error: {task.source}: {head.reason}")
            index += 1
            yield head

    @staticmethod
    def failure(task: Task, exc: Exception) -> Outcome:
        """The outcome of a failed file, with one readable reason; a batch job must not stop for one bad photo."""
        if isinstance(exc, PhotoError):
            reason = exc.reason
        elif isinstance(exc, MemoryError):
            reason = "out of memory"
        else:
            reason = str(exc) or type(exc).__name__
        return outcome(task, "failed", reason)


def settled(task: Task, *, overwrite: bool) -> Outcome | None:
    """The outcome of a task known without reading it (a broken link; an output that exists and is
    kept), else None: the one skip rule of every engine."""
    if task.skip is not None:
        return outcome(task, "skipped", task.skip)
    if not overwrite and task.output.exists():
        return outcome(task, "skipped", "output exists")
    return None


def outcome(task: Task, status: Status, reason: str | None = None) -> Outcome:
    return Outcome(str(task.source), str(task.output), status, reason)


def _bits(task: Task, photo: Photo) -> int:
    """16 for a 16-bit gray scan going to a TIFF or a PNG (the output formats that keep 16 bits), else 8."""
    return 16 if task.fmt in SIXTEEN_BIT_FORMATS and photo.image.mode == "I;16" else 8


def _wait_for_writers(finished: deque[Outcome | Future[None]], most: int) -> None:
    """Block until at most ``most`` saves in ``finished`` are still running or queued."""
    while len(pending := [f for f in finished if isinstance(f, Future) and not f.done()]) > most:
        wait(pending, return_when=FIRST_COMPLETED)

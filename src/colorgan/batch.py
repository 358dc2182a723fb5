"""``colorgan colorize`` as a batch job: which files, where each output goes, and a run that never loses work.

Every output is written to a temporary file and renamed, and outputs that already exist
are skipped, so a killed job resumes by running it again. A file that fails gets one
``error: FILE: REASON`` line and the run goes on. Everything that can be checked up front
(options, inputs, output paths) is checked before the first photo is touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from .errors import PhotoError, UserError
from .files import FORMATS, SUFFIX_FORMATS, is_image_file, save_image, write_report
from .infer import Colorizer, ModelOptions
from .photo import read_photo

SAMPLE = Path(__file__).parent / "assets" / "samples" / "camera.jpg"
DEFAULT_OUT = Path("colorized")

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Task:
    source: Path
    output: Path


@dataclass(frozen=True)
class Outcome:
    source: str
    output: str
    status: Status
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ColorizeJob(ModelOptions):
    """The options of ``colorgan colorize``; :meth:`run` does the work."""

    inputs: Sequence[str]
    out: Path | None = None
    size: int | None = None
    batch_size: int = 1
    fmt: str | None = None
    quality: int | None = None
    keep_color: bool = False
    overwrite: bool = False
    report: Path | None = None

    def validate(self) -> None:
        """Reject options out of range before anything is read or loaded."""
        if self.fmt is not None and self.fmt not in FORMATS:
            raise UserError(f"unknown --format {self.fmt!r}; choose one of: {', '.join(FORMATS)}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise UserError(f"--quality must be between 1 and 100, got {self.quality}")
        if self.size is not None and self.size <= 0:
            raise UserError(f"--size must be positive, got {self.size}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.report is not None and self.report.suffix.lower() != ".json":
            raise UserError(f"--report must name a .json file, got {self.report}")

    def plan(self) -> tuple[list[Task], str]:
        """The (input, output) pairs and the output format; refuses any output that is an input."""
        out = self.out or DEFAULT_OUT
        if out.suffix.lower() in SUFFIX_FORMATS and not out.is_dir():
            fmt = SUFFIX_FORMATS[out.suffix.lower()]
            if self.fmt not in (None, fmt):
                raise UserError(f"--format {self.fmt} contradicts the output file name {out}")
            found = _unique(f for item in self.inputs for f in _expand(item, exclude=None))
            if len(found) != 1:
                raise UserError(f"-o {out} names one file but there are {len(found)} inputs; give a folder instead")
            tasks = [Task(found[0][0], out)]
        else:
            fmt = self.fmt or "png"
            found = _unique(f for item in self.inputs for f in _expand(item, exclude=out.resolve()))
            suffix = FORMATS[fmt][1]
            tasks = [Task(source, out / source.relative_to(base).with_suffix(suffix)) for source, base in found]
        _check_outputs(tasks)
        return tasks, fmt

    def run(self, console: Console, *, progress: bool = True) -> list[Outcome]:
        """Validate, plan, load the model, colorize every task; writes the report if asked."""
        self.validate()
        tasks, fmt = self.plan()
        colorizer = self.load_colorizer()
        size = colorizer.check_size(self.size)
        outcomes = _Runner(colorizer, console, size=size, fmt=fmt, quality=self.quality, keep_color=self.keep_color).run(
            tasks, overwrite=self.overwrite, batch_size=self.batch_size, progress=progress
        )
        if self.report is not None:
            write_report(self.report, {"summary": count(outcomes), "files": [asdict(o) for o in outcomes]})
        return outcomes


def count(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many outcomes are done, skipped and failed (all three keys, always)."""
    counts = Counter(o.status for o in outcomes)
    return {status: counts[status] for status in ("done", "skipped", "failed")}


def _expand(item: str, *, exclude: Path | None) -> list[tuple[Path, Path]]:
    """(image file, the folder it is mirrored below) for a file, a folder (recursive) or a glob."""
    path = Path(item)
    if path.is_file():
        return [(path, path.parent)]
    if path.is_dir():
        base, candidates, missing = path, path.rglob("*"), f"no images in folder {item}"
    elif any(c in item for c in "*?["):
        parts = path.parts
        magic = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
        base, missing = Path(*parts[:magic]), f"no images match {item}"
        candidates = base.glob(str(Path(*parts[magic:])))
    else:
        raise UserError(f"no such file or folder: {item}")
    if exclude is not None and (exclude == base.resolve() or not exclude.is_relative_to(base.resolve())):
        exclude = None  # only an output folder strictly inside the input folder is left out
    found = sorted((f, base) for f in candidates if _is_image_below(f, base, exclude))
    if not found:
        raise UserError(missing)
    return found


def _is_image_below(file: Path, base: Path, exclude: Path | None) -> bool:
    """An image file below ``base`` by the rule every command shares, and outside ``exclude`` (the output folder)."""
    return is_image_file(file, base) and not (exclude is not None and file.resolve().is_relative_to(exclude))


def _unique(found: Iterator[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Drop files named twice (e.g. a file and its folder); the first mention decides the output."""
    seen: dict[Path, tuple[Path, Path]] = {}
    for source, base in found:
        seen.setdefault(source.resolve(), (source, base))
    return list(seen.values())


def _check_outputs(tasks: Sequence[Task]) -> None:
    inputs = {t.source.resolve(): t.source for t in tasks}
    claimed: dict[Path, Path] = {}
    for task in tasks:
        target = task.output.resolve()
        if target in inputs:
            raise UserError(f"refusing to write over the input {inputs[target]}; choose another output (-o) or --format")
        if target in claimed:
            raise UserError(f"{claimed[target]} and {task.source} would both be written to {task.output}; colorize them separately")
        claimed[target] = task.source


class _FilesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:.2f} files/s")


@dataclass
class _Runner:
    """Colorizes tasks in model batches; every task ends as exactly one :class:`Outcome`."""

    colorizer: Colorizer
    console: Console
    size: int
    fmt: str
    quality: int | None
    keep_color: bool
    outcomes: list[Outcome] = field(default_factory=list)

    def run(self, tasks: Sequence[Task], *, overwrite: bool, batch_size: int, progress: bool) -> list[Outcome]:
        todo = []
        for task in tasks:
            if overwrite or not task.output.exists():
                todo.append(task)
            else:
                self._finish(task, "skipped", "output exists")
        columns = (TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), _FilesPerSecond(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, disable=not progress or len(todo) < 2) as bar:
            bar_task = bar.add_task("colorize", total=len(todo))
            for start in range(0, len(todo), batch_size):
                group = todo[start : start + batch_size]
                self._colorize_group(group)
                bar.advance(bar_task, len(group))
        return self.outcomes

    def _colorize_group(self, group: Sequence[Task]) -> None:
        """Read, colorize and save one model batch; any exception fails only the files it concerns."""
        loaded = []
        for task in group:
            try:
                photo = read_photo(task.source)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the job
                self._fail(task, exc)
                continue
            if self.keep_color and photo.looks_colored():
                self._finish(task, "skipped", "already in color (--keep-color)")
            else:
                loaded.append((task, photo))
        if not loaded:
            return
        try:
            images = self.colorizer.colorize_batch([photo for _, photo in loaded], size=self.size)
        except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the job
            for task, _ in loaded:
                self._fail(task, exc)
            return
        for (task, _), image in zip(loaded, images, strict=True):
            try:
                save_image(image, task.output, fmt=self.fmt, quality=self.quality)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the job
                self._fail(task, exc)
            else:
                self._finish(task, "done")

    def _finish(self, task: Task, status: Status, reason: str | None = None) -> None:
        self.outcomes.append(Outcome(str(task.source), str(task.output), status, reason))

    def _fail(self, task: Task, exc: Exception) -> None:
        """One readable line per failed file; a batch job must not stop for one bad photo."""
        if isinstance(exc, PhotoError):
            reason = exc.reason
        elif isinstance(exc, MemoryError):
            reason = "out of memory"
        else:
            reason = str(exc) or type(exc).__name__
        self.console.print(f"error: {task.source}: {reason}", markup=False, highlight=False, soft_wrap=True)
        self._finish(task, "failed", reason)

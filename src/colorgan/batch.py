"""``colorgan colorize`` as a batch job: which files, where each output goes, and a run that never loses work.

Every output is written to a temporary file and renamed, and outputs that already exist
are skipped, so a killed job resumes by running it again (and removes the temporaries the
killed one left). Outputs among the inputs are recognized as colorgan's own. A file that fails gets one
``error: FILE: REASON`` line and the run goes on. Everything that can be checked up front
(options, inputs, output paths) is checked before the first photo is touched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .errors import PhotoError, UserError
from .files import (
    FORMATS,
    IMAGE_SUFFIXES,
    SUFFIX_FORMATS,
    TEMP_NAME,
    is_image_name,
    save_image,
    write_report,
    written_by_colorgan,
)
from .hints import Hint, HintError, check_hints
from .infer import Colorizer, ModelOptions
from .photo import read_photo

SAMPLE = Path(__file__).parent / "assets" / "samples" / "camera.jpg"
DEFAULT_OUT = Path("colorized")

Status = Literal["done", "skipped", "failed"]
# A temporary of a planned output older than this (seconds) was left by a killed run, not one writing now.
STALE_TEMP_AGE = 300


@dataclass(frozen=True)
class Task:
    source: Path
    output: Path
    skip: str | None = None  # why it is reported as skipped without being read (a broken link)


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
    hints: Sequence[Hint] = ()

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
        found, broken = _find(self.inputs)
        if _names_a_file(out):
            fmt = _file_format(out, self.fmt)
            if not out.parent.is_dir():  # a typo in a file's path must not make folders (at the root, say)
                raise UserError(f"-o {out}: the folder {out.parent} does not exist; create it, or give -o a folder to create")
            if len(found) != 1:
                raise UserError(f"-o {out} names one file but there are {len(found)} inputs; give a folder instead")
            tasks = [Task(found[0][0], out)]
            outputs = {source: out for source, _, _ in broken}
        else:
            fmt = self.fmt or "png"
            suffix = FORMATS[fmt][1]
            tasks = _mirror(found, out, suffix)
            outputs = {source: out / source.relative_to(base).with_suffix(suffix) for source, base, _ in broken}
        _check_outputs(tasks)
        return tasks + [Task(source, outputs[source], reason) for source, _, reason in broken], fmt

    def run(self, console: Console, *, progress: bool = True) -> list[Outcome]:
        """Validate, plan, load the model, colorize every task; writes the report if asked."""
        self.validate()
        tasks, fmt = self.plan()
        if self.report is not None:
            _check_writable(self.report)
        _note_renamed(tasks, console)
        colorizer = self.load_colorizer()
        size = colorizer.check_size(self.size)
        if self.hints:
            self._check_hints(tasks, colorizer)
        out = self.out or DEFAULT_OUT
        with _output_lock(out.parent if _names_a_file(out) else out):
            removed = _remove_stale_temps([t.output for t in tasks] + ([self.report] if self.report else []))
            if removed:
                _say(console, f"note: removed {removed} stale temporary file{'s' * (removed > 1)} left by an interrupted run")
            outcomes = _Runner(colorizer, console, size=size, fmt=fmt, quality=self.quality, keep_color=self.keep_color,
                               hints=list(self.hints)).run(
                tasks, overwrite=self.overwrite, batch_size=self.batch_size, progress=progress
            )
        if self.report is not None:
            try:
                write_report(self.report, {"summary": count(outcomes), "files": [asdict(o) for o in outcomes]})
            except OSError as exc:  # the work is done: hand the outcomes on with the error, so no summary is lost
                raise ReportNotWritten(f"cannot write the report {self.report}: {exc}", outcomes) from None
        return outcomes


    def _check_hints(self, tasks: Sequence[Task], colorizer: Colorizer) -> None:
        """Hints need one photo they fit and a model that takes them: refused before anything is written."""
        check_hints(self.hints)
        if len(tasks) != 1 or tasks[0].skip is not None:
            raise HintError(f"--hint and --hints guide one photo; {len(tasks)} inputs were given")
        colorizer.require_hints()
        photo = read_photo(tasks[0].source)
        for hint in self.hints:
            hint.position(photo.image.width, photo.image.height)


def _names_a_file(out: Path) -> bool:
    """``-o`` names one output file (rather than a folder) when it ends in an image suffix."""
    return out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir()


def lock_path(folder: Path) -> Path:
    """The lock file of an output folder: in the temp folder, named by the folder's absolute path,
    so the user's folder gets no extra file and the lock never has to be deleted."""
    key = hashlib.sha256(str(folder.absolute().resolve()).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"colorgan-{os.getuid() if hasattr(os, 'getuid') else 0}-{key}.lock"


@contextlib.contextmanager
def _output_lock(folder: Path) -> Iterator[None]:
    """Hold the output folder for this job: a second job on the same folder is refused at once,
    instead of both doing all the work. The OS drops the lock when the process ends, even by kill -9."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; jobs on one folder are not kept apart
        yield
        return
    try:
        handle = lock_path(folder).open("a")
    except OSError as exc:
        raise UserError(f"cannot create the lock for {folder} in {tempfile.gettempdir()}: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another colorgan job is writing to {folder}; wait for it to finish or choose another -o") from None
        yield


class ReportNotWritten(UserError):
    """The photos were colorized but ``--report`` could not be written; ``outcomes`` keeps what was done."""

    def __init__(self, message: str, outcomes: list[Outcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


def count(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many outcomes are done, skipped and failed (all three keys, always)."""
    counts = Counter(o.status for o in outcomes)
    return {status: counts[status] for status in ("done", "skipped", "failed")}


def _say(console: Console, line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _file_format(out: Path, fmt: str | None) -> str:
    """The format of an output file name; an image suffix colorgan cannot write is refused, not taken for a folder."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise UserError(f"-o {out}: colorgan cannot write {suffix} files; name a {', '.join(SUFFIX_FORMATS)} file, or a folder")
    if fmt not in (None, SUFFIX_FORMATS[suffix]):
        raise UserError(f"--format {fmt} contradicts the output file name {out}")
    return SUFFIX_FORMATS[suffix]


def _find(items: Sequence[str]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path, str]]]:
    """(image, the folder it is mirrored below) for every input, once; and the broken links among them, with why."""
    found: dict[Path, tuple[Path, Path]] = {}
    broken: dict[str, tuple[Path, Path, str]] = {}
    for item in items:
        images, links = _expand(item)
        for source, base in images:  # a file named twice (e.g. a file and its folder): the first mention decides
            found.setdefault(source.resolve(), (source, base))
        for link in links:
            broken.setdefault(os.path.abspath(link[0]), link)  # resolve() raises on a link loop
    return list(found.values()), list(broken.values())


def _expand(item: str) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path, str]]]:
    """:func:`_find` for a file, a folder (recursive) or a glob."""
    path = Path(item)
    if path.is_file():
        return [(path, path.parent)], []
    if path.is_dir():
        base, candidates, missing = path, path.rglob("*"), f"no images in folder {item}"
    elif any(c in item for c in "*?["):
        parts = path.parts
        magic = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
        base, missing = Path(*parts[:magic]), f"no images match {item}"
        candidates = base.glob(str(Path(*parts[magic:])))
    else:
        raise UserError(f"no such file or folder: {item}")
    found, broken = [], []
    for file in sorted(f for f in candidates if is_image_name(f, base)):
        if file.is_file():
            found.append((file, base))
        elif reason := _broken_link(file):
            broken.append((file, base, reason))
    if not found and not broken:
        raise UserError(missing)
    return found, broken


def _broken_link(path: Path) -> str | None:
    """Why a symbolic link named like an image leads to no file (None if it is no broken link):
    such links are reported as skipped, never left out without a word."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        return "symbolic link loop" if exc.errno == errno.ELOOP else "dangling symbolic link"
    return None


def _mirror(found: Sequence[tuple[Path, Path]], out: Path, suffix: str) -> list[Task]:
    """Tasks that mirror each input's path below ``out`` with ``suffix``.

    Inputs whose stems collide in one output (``photo.bmp`` and ``photo.webp``) keep their source
    extension instead (``photo.bmp.png``, ``photo.webp.png``), so a folder never needs to be split
    by hand. Outputs of an earlier run found among the inputs (``-o`` inside or equal to an input
    folder) are recognized by these planned names and their Software tag, and left out, before and
    after that renaming.
    """
    plain = {source: out / source.relative_to(base).with_suffix(suffix) for source, base in found}
    sources = _inputs_only(plain)
    claims = Counter(plain[s].resolve() for s in sources)
    planned = {s: plain[s].with_name(s.name + suffix) if claims[plain[s].resolve()] > 1 else plain[s] for s in sources}
    return [Task(s, planned[s]) for s in _inputs_only(planned)]


def _inputs_only(planned: dict[Path, Path]) -> list[Path]:
    """The sources that are not colorgan's own output of an earlier run: the planned output of another
    source that colorgan wrote (its Software tag says so; a real ``x.png`` beside ``x.jpg`` is a photo)."""
    claimed_by: dict[Path, set[Path]] = defaultdict(set)
    for source, output in planned.items():
        claimed_by[output.resolve()].add(source)
    return [s for s in planned if not (claimed_by.get(s.resolve(), set()) - {s} and written_by_colorgan(s))]


def _check_outputs(tasks: Sequence[Task]) -> None:
    """Refuse outputs that would overwrite an input or that several inputs share, listing every case in one message."""
    inputs = {t.source.resolve(): t.source for t in tasks}
    claims: dict[Path, list[Task]] = defaultdict(list)
    for task in tasks:
        claims[task.output.resolve()].append(task)
    overwritten = [str(inputs[target]) for target in claims if target in inputs]
    if overwritten:
        what = f"the input {overwritten[0]}" if len(overwritten) == 1 else f"{len(overwritten)} inputs: {', '.join(overwritten)}"
        raise UserError(f"refusing to write over {what}; choose another output (-o) or --format")
    shared = [group for group in claims.values() if len(group) > 1]
    if shared:
        lines = [f"{' and '.join(str(t.source) for t in group)} would {'both' if len(group) == 2 else 'all'} be written to {group[0].output}" for group in shared]
        raise UserError(f"{len(shared)} output name(s) claimed twice: {'; '.join(lines)}; colorize them into separate folders")


def _check_writable(report: Path) -> None:
    """Fail before any work, not with a traceback after it, if the report cannot be written."""
    if report.is_dir():
        raise UserError(f"cannot write --report {report}: it is a folder")
    folder = report.parent
    while not folder.exists() and folder != folder.parent:  # missing folders would be made
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"cannot write --report {report}: {exc.strerror or exc}") from None


def _note_renamed(tasks: Sequence[Task], console: Console) -> None:
    """Say, in one line, which outputs keep their source extension because stems collide (see :func:`_mirror`)."""
    renamed = [t for t in tasks if t.output.name == t.source.name + t.output.suffix and t.skip is None]
    if renamed:
        names = ", ".join(f"{t.source} -> {t.output.name}" for t in renamed)
        _say(console, f"note: {len(renamed)} inputs share a name, so their outputs keep the source extension: {names}")


def _remove_stale_temps(outputs: Sequence[Path], *, older_than: float = STALE_TEMP_AGE) -> int:
    """Remove the temporaries :func:`files.atomic_output` made for these outputs and a killed run left
    behind (SIGKILL skips its cleanup); returns how many.

    Only names of exactly that pattern, for exactly these outputs, are touched, and only once they are
    ``older_than`` seconds old, so a job writing the same folder right now keeps its files.
    """
    wanted: dict[Path, set[str]] = defaultdict(set)
    for output in outputs:
        wanted[output.parent].add(output.name)
    removed, now = 0, time.time()
    for folder, names in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = TEMP_NAME.fullmatch(entry.name)
            if match and match["name"] in names and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                        os.unlink(entry.path)
                        removed += 1
    return removed


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
    hints: list[Hint] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def run(self, tasks: Sequence[Task], *, overwrite: bool, batch_size: int, progress: bool) -> list[Outcome]:
        todo = []
        for task in tasks:
            if task.skip is not None:
                self._finish(task, "skipped", task.skip)
            elif overwrite or not task.output.exists():
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
            hints = [self.hints] * len(loaded) if self.hints else None
            images = self.colorizer.colorize_batch([photo for _, photo in loaded], size=self.size, hints=hints)
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
        _say(self.console, f"error: {task.source}: {reason}")
        self._finish(task, "failed", reason)

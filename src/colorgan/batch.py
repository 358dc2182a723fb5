"""``colorgan colorize`` as a batch job: which files, where each output goes, and a run that never loses work.

Every output is written to a temporary file and renamed, and outputs that already exist
are skipped, so a killed job resumes by running it again (and removes the temporaries the
killed one left). Outputs among the inputs are recognized as colorgan's own. A file that fails gets one
``error: FILE: REASON`` line and the run goes on. Everything that can be checked up front
(options, inputs, output paths) is checked before the first photo is touched.

Each output takes its input's format (:func:`colorgan.files.default_format`) unless ``--format`` or
the ``-o`` file's suffix says otherwise. A folder is a pipeline: one thread decodes the next photos
and others encode and write finished ones while the main thread runs the model (see :class:`_Runner`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

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

from .errors import OutputBlocked, PhotoError, UserError, require_extra
from .files import (
    FORMAT_ALIASES,
    FORMATS,
    IMAGE_SUFFIXES,
    SIXTEEN_BIT_FORMATS,
    SUFFIX_FORMATS,
    TEMP_NAME,
    VIDEO_SUFFIXES,
    default_format,
    is_image_name,
    is_video_name,
    is_lossless_webp,
    output_suffix,
    save_image,
    write_report,
    written_by_colorgan,
)
from .hints import Hint, HintError, check_hints
from .infer import Colorizer, ModelOptions
from .photo import Photo, read_photo
from .storage import is_uri
from .cluster import RayOptions, colorize_on_ray, colorize_uris_on_ray, require_ray
from .video.settings import VideoSettings

SAMPLE = Path(__file__).parent / "assets" / "samples" / "camera.jpg"
DEFAULT_OUT = Path("colorized")

Status = Literal["done", "skipped", "failed"]
# The "format" of a video's output: its input's container (see colorgan.video).
VIDEO = "video"
# A temporary of a planned output older than this (seconds) was left by a killed run, not one writing now.
STALE_TEMP_AGE = 300
# The pipeline's bounds (see :class:`_Runner`), in photos beyond the model batch being colorized:
# decoded and waiting for the model (a 12 MP photo is 12 MB gray, 36 MB RGB), and colorized and
# waiting to be written (36 MB each, 72 MB at 16 bits). Each pending save has its own thread.
READ_AHEAD = 2
PENDING_SAVES = 2
# With --keep-color, the rule each photo met (colorgan.color.color_kind): the report's reason.
KEEP_COLOR_RULES = {"gray": "a gray photo: colorized", "toned": "a toned photo (one hue, as a sepia print): colorized",
                    "color": "already in color (--keep-color)"}


@dataclass(frozen=True)
class Task:
    source: Path
    output: Path
    skip: str | None = None  # why it is reported as skipped without being read (a broken link)
    fmt: str = "png"  # the output's format, a name in files.FORMATS, or VIDEO (the input's container)


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
    out: Path | str | None = None  # a folder or file; a URI (s3://...) with --engine ray
    size: int | None = None
    batch_size: int = 1
    fmt: str | None = None
    quality: int | None = None
    keep_color: bool = False
    overwrite: bool = False
    report: Path | None = None
    hints: Sequence[Hint] = ()
    video: VideoSettings = VideoSettings()  # how videos among the inputs are colorized (its hints and size: this job's)
    ray: RayOptions | None = None  # set: the photos are colorized on a Ray cluster (colorgan.cluster)

    def __post_init__(self) -> None:
        if self.fmt is not None:  # one name per format from here on: jpeg is jpg, tiff is tif
            object.__setattr__(self, "fmt", FORMAT_ALIASES.get(self.fmt.lower(), self.fmt.lower()))

    def validate(self) -> None:
        """Reject options out of range before anything is read or loaded."""
        if self.fmt is not None and self.fmt not in FORMATS:
            raise UserError(f"unknown --format {self.fmt!r}; choose one of: {', '.join([*FORMATS, *FORMAT_ALIASES])}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise UserError(f"--quality must be between 1 and 100, got {self.quality}")
        if self.size is not None and self.size <= 0:
            raise UserError(f"--size must be positive, got {self.size}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.report is not None and self.report.suffix.lower() != ".json":
            raise UserError(f"--report must name a .json file, got {self.report}")
        self.video.validate()
        if self.ray is not None:
            self.ray.validate()
            require_ray()
            if self.hints:
                raise UserError("--engine ray colorizes folders; hints guide one photo, so run them without it")

    def plan(self) -> tuple[list[Task], str | None]:
        """The tasks (input, output, the output's format) and the format all outputs share (None:
        each takes its input's, see :func:`colorgan.files.default_format`); refuses any output that is an input."""
        out = Path(self.out) if self.out else DEFAULT_OUT
        found, broken = _find(self.inputs)
        if _names_a_file(out):
            if len(found) == 1 and _is_video(found[0][0]) and out.suffix.lower() not in VIDEO_SUFFIXES:
                raise UserError(f"-o {out}: the input {found[0][0]} is a video; name a video file "
                                f"({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder")
            fmt: str | None = _file_format(out, self.fmt)
            if not out.parent.is_dir():  # a typo in a file's path must not make folders (at the root, say)
                raise UserError(f"-o {out}: the folder {out.parent} does not exist; create it, or give -o a folder to create")
            if len(found) != 1:
                raise UserError(f"-o {out} names one file but there are {len(found)} inputs; give a folder instead")
            if (fmt == VIDEO) != _is_video(found[0][0]):
                what = "a video" if fmt == VIDEO else "an image"
                raise UserError(f"-o {out} names {what} file, but the input {found[0][0]} is not one; name a {'video' if fmt != VIDEO else 'photo'} file or a folder")
            tasks = [Task(found[0][0], out, fmt=fmt)]
            skipped = [Task(source, out, reason, fmt) for source, _, reason in broken]
        else:
            fmt = self.fmt
            tasks = _mirror(found, out, fmt)
            skipped = []
            for source, base, reason in broken:
                own = VIDEO if _is_video(source) else fmt or default_format(source)
                skipped.append(Task(source, _mirrored(source, base, out, own), reason, own))
        _check_outputs(tasks, own_formats=fmt is None)
        return tasks + skipped, fmt

    def run(self, console: Console, *, progress: bool = True) -> list[Outcome]:
        """Validate, plan, load the model, colorize every task; writes the report if asked."""
        self.validate()
        if any(is_uri(item) for item in [*self.inputs, str(self.out or "")]):
            if self.ray is None:
                raise UserError("storage URIs (s3://, gs://, file://, ...) are read and written by --engine ray; add it")
            if self.report is not None:
                _check_writable(self.report)
            outcomes = colorize_uris_on_ray(self, console, self.ray, progress=progress)
            self._write_report(outcomes)
            return outcomes
        tasks, _ = self.plan()
        if self.report is not None:
            _check_writable(self.report)
        videos = {i for i, task in enumerate(tasks) if task.fmt == VIDEO}
        if videos and self.ray is not None:
            raise UserError(f"--engine ray colorizes photos; {tasks[min(videos)].source} is a video: colorize videos without it")
        if videos:
            require_extra("video", f"{tasks[min(videos)].source} is a video; colorizing videos")
            from .video.io import check_codec

            for suffix in sorted({tasks[i].output.suffix.lower() for i in videos}):
                check_codec(self.video.codec_for(suffix), suffix)
        _note_renamed(tasks, console)
        colorizer = None if self.ray is not None else self.load_colorizer()  # on Ray, the workers load the model
        size = None if colorizer is None else colorizer.check_size(self.size)
        if self.hints and colorizer is not None:
            self._check_hints(tasks, colorizer)
        out = Path(self.out) if self.out else DEFAULT_OUT
        with _output_lock(out):
            removed = _remove_stale_temps([t.output for t in tasks] + ([self.report] if self.report else []))
            if removed:
                _say(console, f"note: removed {removed} stale temporary file{'s' * (removed > 1)} left by an interrupted run")
            if colorizer is None:
                outcomes = colorize_on_ray(self, tasks, console, self.ray, progress=progress)
                self._write_report(outcomes)
                return outcomes
            photos = [task for i, task in enumerate(tasks) if i not in videos]
            photo_outcomes = iter(_Runner(colorizer, console, size=size, quality=self.quality, keep_color=self.keep_color,
                                          hints=list(self.hints)).run(
                photos, overwrite=self.overwrite, batch_size=self.batch_size, progress=progress
            ))
            video_settings = replace(self.video, size=size, hints=tuple(self.hints))
            outcomes = [self._video(task, colorizer, video_settings, console, progress) if i in videos else next(photo_outcomes)
                        for i, task in enumerate(tasks)]
        self._write_report(outcomes)
        return outcomes

    def _write_report(self, outcomes: list[Outcome]) -> None:
        if self.report is not None:
            try:
                write_report(self.report, {"summary": count(outcomes), "files": [asdict(o) for o in outcomes]})
            except OSError as exc:  # the work is done: hand the outcomes on with the error, so no summary is lost
                raise ReportNotWritten(f"cannot write the report {self.report}: {exc}", outcomes) from None


    def _video(self, task: Task, colorizer: Colorizer, settings: VideoSettings, console: Console, progress: bool) -> Outcome:
        """Colorize one video task (a video job of its own, with its own progress bar); its outcome."""
        from .video.job import colorize_video

        if (decided := settled(task, overwrite=self.overwrite)) is not None:
            return decided
        failed = None
        with _FrameProgress(console, task.source.name, enabled=progress) as bar:
            try:
                colorize_video(colorizer, task.source, task.output, settings=settings, on_start=bar.start, on_frames=bar.advance)
            except (UserError, MemoryError, OSError) as exc:
                failed = _Runner.failure(task, exc)
        if failed is not None:  # said after the bar, which is left as it stopped
            _say(console, f"error: {task.source}: {failed.reason}")
            return failed
        return _outcome(task, "done")

    def _check_hints(self, tasks: Sequence[Task], colorizer: Colorizer) -> None:
        """Hints need one photo or video they fit and a model that takes them: refused before anything is written."""
        check_hints(self.hints)
        if len(tasks) != 1 or tasks[0].skip is not None:
            raise HintError(f"--hint and --hints guide one photo or video; {len(tasks)} inputs were given")
        colorizer.require_hints()
        if tasks[0].fmt == VIDEO:
            from .video.io import probe

            info = probe(tasks[0].source)
            width, height = info.width, info.height
        else:
            if framed := next((h for h in self.hints if h.frame), None):
                raise HintError(f"a hint for frame {framed.frame} is for a video; {tasks[0].source} is a photo")
            image = read_photo(tasks[0].source).image
            width, height = image.width, image.height
        for hint in self.hints:
            hint.position(width, height)


def _names_a_file(out: Path) -> bool:
    """``-o`` names one output file (rather than a folder) when it ends in an image or video suffix."""
    return out.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and not out.is_dir()


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


LOCK_NAME = ".colorgan-lock"


def lock_path(out: Path) -> Path:
    """The lock file of an output folder (of one output file, for ``-o photo.png``): hidden, inside
    that folder (beside that file), so every job that writes there finds it, whatever its temp
    folder; removed when the job ends."""
    return out.parent / f".{out.name}{LOCK_NAME}" if _names_a_file(out) else out / LOCK_NAME


@contextlib.contextmanager
def _output_lock(out: Path) -> Iterator[None]:
    """Make the output folder, prove it writable, and hold it for this job: a second job on the same
    folder is refused at once, instead of both doing all the work. The OS drops the lock when the
    process ends, even by kill -9; the next job on the folder then takes over the file and removes it."""
    path = lock_path(out)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; jobs on one folder are not kept apart
        fcntl = None
    while True:
        try:
            handle = path.open("a+")
        except OSError as exc:
            raise UserError(f"cannot write to the output folder {folder}: {exc.strerror or exc}") from None
        try:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if path.exists() and os.path.samestat(os.fstat(handle.fileno()), path.stat()):
                break  # (else the job before removed the file between our open and our lock: open it anew)
        except BlockingIOError:
            handle.close()
            raise UserError(f"another colorgan job is writing to {out}; wait for it to finish or choose another -o") from None
        handle.close()
    with handle:
        try:
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")  # a byte on disk: a full disk is found before the first photo
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise UserError(f"cannot write to the output folder {folder}: {exc.strerror or exc}") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still locked: a waiting job never takes a removed file


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
    if suffix in VIDEO_SUFFIXES:
        return VIDEO  # --format is the photos' choice; a video keeps the container its name says
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
        # A file named twice (e.g. a file and its folder): the first mention decides. A link to a photo
        # is a name of its own (an album of links), so paths are compared as written, links not followed.
        for source, base in images:
            found.setdefault(Path(os.path.abspath(source)), (source, base))
        for link in links:
            broken.setdefault(os.path.abspath(link[0]), link)  # resolve() raises on a link loop
    return list(found.values()), list(broken.values())


def _expand(item: str) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path, str]]]:
    """:func:`_find` for a file, a folder (recursive) or a glob."""
    path = Path(item)
    if path.is_file():
        return [(path, path.parent)], []
    unreadable: list[tuple[Path, Path, str]] = []
    if path.is_dir():
        base, missing = path, f"no images or videos in folder {item}"
        candidates, unreadable = _walk(path)
    elif any(c in item for c in "*?["):
        parts = path.parts
        magic = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
        base, missing = Path(*parts[:magic]), f"no images or videos match {item}"
        candidates = base.glob(str(Path(*parts[magic:])))
    else:
        raise UserError(f"no such file or folder: {item}")
    found, broken = [], unreadable
    for file in sorted(f for f in candidates if is_image_name(f, base) or is_video_name(f, base)):
        if file.is_file():
            found.append((file, base))
        elif reason := _broken_link(file):
            broken.append((file, base, reason))
    if not found and not broken:
        raise UserError(missing)
    return found, broken


def _walk(folder: Path) -> tuple[list[Path], list[tuple[Path, Path, str]]]:
    """Every path below ``folder`` (links to folders not followed, as ``rglob`` does), and the
    subfolders that could not be listed, with why: those are reported as skipped, never left
    out without a word."""
    unreadable: list[tuple[Path, Path, str]] = []

    def note(exc: OSError) -> None:
        if exc.filename is not None and Path(exc.filename) != folder:
            unreadable.append((Path(exc.filename), folder, f"unreadable folder ({exc.strerror or exc})"))
        else:
            raise UserError(f"cannot read the folder {folder}: {exc.strerror or exc}")

    paths = []
    for root, dirs, files in os.walk(folder, onerror=note):
        top = Path(root)
        paths += [top / name for name in (*dirs, *files)]
    return paths, unreadable


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


def _mirrored(source: Path, base: Path, out: Path, fmt: str) -> Path:
    """Where ``source``, found below ``base``, goes below ``out`` as ``fmt`` (see :func:`colorgan.files.output_suffix`;
    a video keeps its own suffix)."""
    relative = source.relative_to(base)
    return out / (relative if fmt == VIDEO else relative.with_suffix(output_suffix(source, fmt)))


def _mirror(found: Sequence[tuple[Path, Path]], out: Path, fmt: str | None) -> list[Task]:
    """Tasks that mirror each input's path below ``out`` as ``fmt`` (None: each input's own format).

    Inputs whose stems collide in one output (``photo.bmp`` and ``photo.gif``, both PNG by default)
    keep their source extension instead (``photo.bmp.png``, ``photo.gif.png``), so a folder never
    needs to be split by hand. Outputs of an earlier run found among the inputs (``-o`` inside or
    equal to an input folder) are recognized by these planned names and their Software tag, and
    left out, before and after that renaming.
    """
    formats = {source: VIDEO if _is_video(source) else fmt or default_format(source) for source, _ in found}
    plain = {source: _mirrored(source, base, out, formats[source]) for source, base in found}
    sources = _inputs_only(plain)
    claims = Counter(plain[s].resolve() for s in sources)
    planned = {s: plain[s].with_name(s.name + plain[s].suffix) if claims[plain[s].resolve()] > 1 else plain[s] for s in sources}
    return [Task(s, planned[s], fmt=formats[s]) for s in _inputs_only(planned)]


def _inputs_only(planned: dict[Path, Path]) -> list[Path]:
    """The sources that are not colorgan's own output of an earlier run: the planned output of another
    source that colorgan wrote (its Software tag says so; a real ``x.png`` beside ``x.jpg`` is a photo)."""
    claimed_by: dict[Path, set[Path]] = defaultdict(set)
    for source, output in planned.items():
        claimed_by[output.resolve()].add(source)
    return [s for s in planned if not (claimed_by.get(s.resolve(), set()) - {s} and written_by_colorgan(s))]


def _check_outputs(tasks: Sequence[Task], *, own_formats: bool = False) -> None:
    """Refuse outputs that would overwrite an input or that several inputs share, listing every case in one message.

    ``own_formats``: the outputs take their inputs' formats (no ``--format``), which the refusal mentions.
    """
    inputs = {t.source.resolve(): t.source for t in tasks}
    claims: dict[Path, list[Task]] = defaultdict(list)
    for task in tasks:
        claims[task.output.resolve()].append(task)
    overwritten = [str(inputs[target]) for target in claims if target in inputs]
    if overwritten:
        what = f"the input {overwritten[0]}" if len(overwritten) == 1 else f"{len(overwritten)} inputs: {', '.join(overwritten)}"
        why = " (each output keeps its input's format unless --format is given)" if own_formats else ""
        raise UserError(f"refusing to write over {what}{why}; choose another output (-o) or --format")
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


class _FramesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:.1f} fps")


class _FrameProgress:
    """One video's progress bar: frames done of the total, frames per second, time left."""

    def __init__(self, console: Console, name: str, *, enabled: bool) -> None:
        columns = (TextColumn(name), BarColumn(), MofNCompleteColumn(), _FramesPerSecond(), TimeRemainingColumn())
        self._progress = Progress(*columns, console=console, disable=not enabled)
        self._task = self._progress.add_task(name, total=None)

    def __enter__(self) -> _FrameProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def start(self, total: int | None, done: int) -> None:
        self._progress.update(self._task, total=total, completed=done)
        self._progress.reset(self._task, total=total, completed=done)  # the speed counts this run's frames only

    def advance(self, frames: int) -> None:
        self._progress.advance(self._task, frames)


class _FilesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:.2f} files/s")


@dataclass
class _Runner:
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
    size: int
    quality: int | None
    keep_color: bool
    hints: list[Hint] = field(default_factory=list)
    _kinds: dict[Path, str] = field(default_factory=dict)  # with --keep-color: each photo's rule, for its outcome

    def run(self, tasks: Sequence[Task], *, overwrite: bool, batch_size: int, progress: bool) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        todo: list[tuple[int, Task]] = []
        for index, task in enumerate(tasks):
            if (decided := settled(task, overwrite=overwrite)) is not None:
                outcomes[index] = decided
            else:
                todo.append((index, task))
        columns = (TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), _FilesPerSecond(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, disable=not progress or len(todo) < 2) as bar:
            bar_task = bar.add_task("colorize", total=len(todo))
            for index, outcome in self._pipeline([task for _, task in todo], batch_size):
                outcomes[todo[index][0]] = outcome
                bar.advance(bar_task)
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
        if not self.keep_color:
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
                results.append(_outcome(task, "skipped", self._kinds.pop(task.source)) if photo is None else photo)
        images: dict[int, Any] = {}
        for bits in (8, 16):
            members = [i for i, (task, result) in enumerate(zip(group, results, strict=True))
                       if isinstance(result, Photo) and _bits(task, result) == bits]
            if not members:
                continue
            try:
                hints = [self.hints] * len(members) if self.hints else None
                colorized = self.colorizer.colorize_batch([results[i] for i in members], size=self.size, hints=hints, bits=bits)
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
            yield writers.submit(save_image, image, task.output, fmt=task.fmt, quality=self.quality,
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
                    head = _outcome(task, "done", self._kinds.pop(task.source, None))
            if head.status == "failed":
                _say(self.console, f"error: {task.source}: {head.reason}")
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
        return _outcome(task, "failed", reason)


def settled(task: Task, *, overwrite: bool) -> Outcome | None:
    """The outcome of a task known without reading it (a broken link; an output that exists and is
    kept), else None: the one skip rule of every engine."""
    if task.skip is not None:
        return _outcome(task, "skipped", task.skip)
    if not overwrite and task.output.exists():
        return _outcome(task, "skipped", "output exists")
    return None


def _outcome(task: Task, status: Status, reason: str | None = None) -> Outcome:
    return Outcome(str(task.source), str(task.output), status, reason)


def _bits(task: Task, photo: Photo) -> int:
    """16 for a 16-bit gray scan going to a TIFF or a PNG (the output formats that keep 16 bits), else 8."""
    return 16 if task.fmt in SIXTEEN_BIT_FORMATS and photo.image.mode == "I;16" else 8


def _wait_for_writers(finished: deque[Outcome | Future[None]], most: int) -> None:
    """Block until at most ``most`` saves in ``finished`` are still running or queued."""
    while len(pending := [f for f in finished if isinstance(f, Future) and not f.done()]) > most:
        wait(pending, return_when=FIRST_COMPLETED)

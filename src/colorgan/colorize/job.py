"""``colorgan colorize`` as a job: its options, checked up front, then the plan run by an engine.

A job reads like its parts: :mod:`.plan` decides which files and where each output goes (every
refusal before the first photo is touched); :mod:`.outputs` makes the output folder, proves it
writable, holds it and clears what a killed job left; an engine colorizes the planned tasks (the
local :class:`~colorgan.colorize.runner.Runner`, or Ray workers running the same runner:
:mod:`.ray_engine`), videos go to :mod:`colorgan.video`; :mod:`.outcomes` says and reports what
became of each file. Outputs are written atomically and existing ones skipped, so a killed job
resumes by running it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorgan.colorize.outcomes import Outcome, ReportNotWritten, check_writable, say, write_job_report
from colorgan.colorize.outputs import output_lock, remove_stale_temps
from colorgan.colorize.plan import VIDEO, Plan, Task, plan
from colorgan.colorize.runner import Runner, RunOptions, outcome, settled
from colorgan.colorize.storage import is_uri
from colorgan.colorizer import Colorizer, ModelOptions
from colorgan.errors import OutputBlocked, UserError, check_range, require_extra
from colorgan.files.images import FORMATS, FORMAT_ALIASES
from colorgan.hints import Hint, HintError, check_hints
from colorgan.photo import read_photo
from colorgan.video.settings import VideoSettings

if TYPE_CHECKING:  # the Ray engine and rich are imported where a job uses them
    from rich.console import Console

    from colorgan.colorize.ray_engine import RayOptions

SAMPLE = Path(__file__).parent.parent / "assets" / "samples" / "camera.jpg"


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
    ray: RayOptions | None = None  # set: the photos are colorized on a Ray cluster (colorgan.colorize.ray_engine)

    def __post_init__(self) -> None:
        if self.fmt is not None:  # one name per format from here on: jpeg is jpg, tiff is tif
            object.__setattr__(self, "fmt", FORMAT_ALIASES.get(self.fmt.lower(), self.fmt.lower()))

    def validate(self) -> None:
        """Reject options out of range before anything is read or loaded (the render size is the
        model's to judge: :meth:`colorgan.colorizer.Colorizer.check_size`)."""
        if self.fmt is not None and self.fmt not in FORMATS:
            raise UserError(f"unknown --format {self.fmt!r}; choose one of: {', '.join([*FORMATS, *FORMAT_ALIASES])}")
        if self.quality is not None:
            check_range("--quality", self.quality, low=1, high=100)
        check_range("--batch-size", self.batch_size, low=1)
        if self.report is not None and self.report.suffix.lower() != ".json":
            raise UserError(f"--report must name a .json file, got {self.report}")
        self.video.validate()
        if self.ray is not None:
            from colorgan.colorize.ray_engine import require_ray

            self.ray.validate()
            require_ray()
            if self.hints:
                raise UserError("--engine ray colorizes folders; hints guide one photo, so run them without it")

    def plan(self) -> Plan:
        """The job's :class:`~colorgan.colorize.plan.Plan`: every task, refused as a whole if any output is an input."""
        return plan(self.inputs, self.out, self.fmt)

    def run_options(self, size: int | None) -> RunOptions:
        return RunOptions(size=size, quality=self.quality, keep_color=self.keep_color, overwrite=self.overwrite,
                          batch_size=self.batch_size, hints=tuple(self.hints))

    def run(self, console: Console, *, progress: bool = True) -> list[Outcome]:
        """Validate, plan, load the model, colorize every task; writes the report if asked."""
        self.validate()
        if any(is_uri(item) for item in [*self.inputs, str(self.out or "")]):
            return self._run_uris(console, progress)
        planned = self.plan()
        tasks = planned.tasks
        if self.report is not None:
            check_writable(self.report)
        videos = {i for i, task in enumerate(tasks) if task.fmt == VIDEO}
        self._check_videos(tasks, videos)
        note_renamed(tasks, console)
        colorizer = None if self.ray is not None else self.load_colorizer()  # on Ray, the workers load the model
        size = None if colorizer is None else colorizer.check_size(self.size)
        if self.hints and colorizer is not None:
            self._check_hints(tasks, colorizer)
        with output_lock(planned.out):
            removed = remove_stale_temps([t.output for t in tasks] + ([self.report] if self.report else []))
            if removed:
                say(console, f"note: removed {removed} stale temporary file{'s' * (removed > 1)} left by an interrupted run")
            try:
                if colorizer is None:
                    from colorgan.colorize.ray_engine import colorize_on_ray

                    outcomes = colorize_on_ray(tasks, self.model_options(), self.run_options(self.size), console, self.ray,
                                               progress=progress)
                else:
                    outcomes = self._run_here(tasks, videos, colorizer, size, console, progress)
            except OutputBlocked as exc:  # the outputs' disk is full: the report (elsewhere, maybe) still says what was done
                if self.report is not None and exc.outcomes:
                    with contextlib.suppress(ReportNotWritten):
                        write_job_report(self.report, exc.outcomes)
                raise
        if self.report is not None:
            write_job_report(self.report, outcomes)
        return outcomes

    def _run_uris(self, console: Console, progress: bool) -> list[Outcome]:
        if self.ray is None:
            raise UserError("storage URIs (s3://, gs://, file://, ...) are read and written by --engine ray; add it")
        if self.report is not None:
            check_writable(self.report)
        from colorgan.colorize.ray_engine import colorize_uris_on_ray

        outcomes = colorize_uris_on_ray(self.inputs, self.out, self.fmt, self.model_options(), self.run_options(self.size), console, self.ray,
                                        progress=progress)
        if self.report is not None:
            write_job_report(self.report, outcomes)
        return outcomes

    def _run_here(self, tasks: list[Task], videos: set[int], colorizer: Colorizer, size: int, console: Console,
                  progress: bool) -> list[Outcome]:
        """The local engine: photos through the runner, each video through its own video job, outcomes in task order."""
        photos = [task for i, task in enumerate(tasks) if i not in videos]
        try:
            photo_outcomes = iter(Runner(colorizer, console, self.run_options(size)).run(photos, progress=progress))
        except OutputBlocked as exc:  # the photos run first: no video was started
            done = iter(exc.outcomes)
            exc.outcomes = [outcome(task, "failed", f"not written: {exc}") if i in videos else next(done) for i, task in enumerate(tasks)]
            raise
        video_settings = replace(self.video, size=size, hints=tuple(self.hints))
        return [self._video(task, colorizer, video_settings, console, progress) if i in videos else next(photo_outcomes)
                for i, task in enumerate(tasks)]

    def _check_videos(self, tasks: Sequence[Task], videos: set[int]) -> None:
        """Videos need the video extra, the local engine and an encoder for each output's container."""
        if videos and self.ray is not None:
            raise UserError(f"--engine ray colorizes photos; {tasks[min(videos)].source} is a video: colorize videos without it")
        if videos:
            require_extra("video", f"{tasks[min(videos)].source} is a video; colorizing videos")
            from colorgan.video.encode import check_codec

            for suffix in sorted({tasks[i].output.suffix.lower() for i in videos}):
                check_codec(self.video.codec_for(suffix), suffix)

    def _video(self, task: Task, colorizer: Colorizer, settings: VideoSettings, console: Console, progress: bool) -> Outcome:
        """Colorize one video task (a video job of its own, with its own progress bar); its outcome."""
        from colorgan.colorize.progress import FrameProgress
        from colorgan.video.job import colorize_video

        if (decided := settled(task, overwrite=self.overwrite)) is not None:
            return decided
        failed = None
        with FrameProgress(console, task.source.name, enabled=progress) as bar:
            try:
                colorize_video(colorizer, task.source, task.output, settings=settings, on_start=bar.start, on_frames=bar.advance)
            except (UserError, MemoryError, OSError) as exc:
                failed = Runner.failure(task, exc)
        if failed is not None:  # said after the bar, which is left as it stopped
            say(console, f"error: {task.source}: {failed.reason}")
            return failed
        return outcome(task, "done")

    def _check_hints(self, tasks: Sequence[Task], colorizer: Colorizer) -> None:
        """Hints need one photo or video they fit and a model that takes them: refused before anything is written."""
        check_hints(self.hints)
        if len(tasks) != 1 or tasks[0].skip is not None:
            raise HintError(f"--hint and --hints guide one photo or video; {len(tasks)} inputs were given")
        colorizer.require_hints()
        if tasks[0].fmt == VIDEO:
            from colorgan.video.decode import probe

            info = probe(tasks[0].source)
            width, height = info.width, info.height
        else:
            if framed := next((h for h in self.hints if h.frame), None):
                raise HintError(f"a hint for frame {framed.frame} is for a video; {tasks[0].source} is a photo")
            image = read_photo(tasks[0].source).image
            width, height = image.width, image.height
        for hint in self.hints:
            hint.position(width, height)


def note_renamed(tasks: Sequence[Task], console: Console) -> None:
    """Say, in one line, which outputs keep their source extension because stems collide
    (:func:`colorgan.colorize.plan.keep_source_extension`)."""
    renamed = [t for t in tasks if t.source.suffix and t.output.name == t.source.name + t.output.suffix and t.skip is None]
    if renamed:
        names = ", ".join(f"{t.source} -> {t.output.name}" for t in renamed)
        say(console, f"note: {len(renamed)} inputs share a name, so their outputs keep the source extension: {names}")


def colorize_folder_on_ray(inputs: Sequence[str | Path], out: str | Path, *, address: str | None = None, actors: int = 1,
                           gpus_per_actor: float = 0.0, report: str | Path | None = None, progress: bool = False,
                           **options: Any) -> list[Outcome]:
    """The Python form of ``colorgan colorize INPUTS -o OUT --engine ray``: the outcome of every file.
    INPUTS and OUT are local paths, or all storage URIs (``s3://bucket/scans``, ``file:///data``).

    ``options`` are the folder job's (``model``, ``size``, ``fmt``, ``quality``, ``overwrite``,
    ``batch_size``, ...; see :class:`colorgan.colorize.job.ColorizeJob`).

    Example::

        outcomes = colorize_folder_on_ray(["/mnt/archive/scans"], "/mnt/archive/color", address="auto", actors=64)
    """
    from rich.console import Console

    from colorgan.colorize.ray_engine import RayOptions

    job = ColorizeJob(inputs=[str(item) for item in inputs], out=out, report=None if report is None else Path(report),
                      ray=RayOptions(address=address, actors=actors, gpus_per_actor=gpus_per_actor), **options)
    return job.run(Console(stderr=True), progress=progress)

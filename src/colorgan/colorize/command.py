"""``colorgan colorize`` itself: its flags' values (:data:`colorgan.flags.COLORIZE`) into a
:class:`~colorgan.colorize.job.ColorizeJob`, run, and summed up in one line; read by Typer
(:mod:`colorgan.commands`) or, for an ordinary command line, without it (:mod:`colorgan.cli`)."""

from __future__ import annotations

from typing import Any

from colorgan.colorize.job import SAMPLE, ColorizeJob
from colorgan.colorize.outcomes import ReportNotWritten, count, say
from colorgan.colorize.ray_engine import ray_options
from colorgan.hints import parse_hint_option, read_hints_file
from colorgan.messages import DeferredConsole, setup_logging
from colorgan.video.settings import VideoSettings


def colorize(values: dict[str, Any]) -> int:
    """Colorize what the flag ``values`` say; the exit code: 1 if any file or the report failed."""
    v = values
    setup_logging(v["quiet"])
    hints = (read_hints_file(v["hints_file"]) if v["hints_file"] is not None else []) + [parse_hint_option(h) for h in v["hint"] or []]
    job = ColorizeJob(
        inputs=v["inputs"] or [str(SAMPLE)], out=v["out"], model=v["model"], size=v["size"], device=v["device"],
        backend=v["backend"], precision=v["precision"], batch_size=v["batch_size"], fmt=v["fmt"], quality=v["quality"],
        keep_color=v["keep_color"], overwrite=v["overwrite"], report=v["report"], hints=hints,
        video=VideoSettings(temporal=v["temporal"], strength=v["strength"], codec=v["video_codec"], crf=v["crf"],
                            preset=v["video_preset"], segment_seconds=v["segment_seconds"]),
        ray=ray_options(v["engine"], address=v["address"], actors=v["actors"], gpus_per_actor=v["gpus_per_actor"],
                        verbose=v["verbose"]),
    )
    console = DeferredConsole()  # rich only if something is said or a bar is drawn
    report_error = None
    try:
        outcomes = job.run(console, progress=not v["quiet"])
    except ReportNotWritten as exc:
        outcomes, report_error = exc.outcomes, exc
    counts = count(outcomes)
    if not v["quiet"]:
        where = outcomes[0].output if len(outcomes) == 1 else (v["out"] or "colorized")
        print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed -> {where}")
    if report_error is not None:
        say(console, f"error: {report_error}")
    return 1 if counts["failed"] or report_error is not None else 0

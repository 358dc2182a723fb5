"""The command line's options as plain data, read two ways: by Typer (:mod:`colorgan.commands`,
for the help and every refusal) and by :func:`parse_plainly`, which reads an ordinary
``colorgan colorize`` without importing Typer, rich, click or pydantic (~0.1 s of a start that
should cost what the photo costs). Anything the plain reading is not sure of goes to Typer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorgan.video.settings import DEFAULT_CRF, DEFAULT_SEGMENT_SECONDS, DEFAULT_STRENGTH

# The wording every command that runs a model shares.
MODEL_HELP = "A model.safetensors (model.json beside it), its folder, an exported .onnx, or a bundled model's name."
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps."
BACKEND_HELP = ("auto (ONNX Runtime where the model has its model.onnx, as the bundled default does; else torch), "
                "onnx (ONNX Runtime on the CPU) or torch (needs the train extra).")
PRECISION_HELP = ("fp32, int8 (the model's model.int8.onnx, made by `colorgan export int8`), or auto: int8 where "
                  "the model has one and it is faster on this CPU, else fp32.")
QUIET_HELP = "Only warnings and errors."
RENDER_SIZE_HELP = ("The render size: the resolution the model sees, up to 1024 (a multiple of 32 for the bundled "
                    "default). Its training size is usually best; larger ones over-saturate.")


@dataclass(frozen=True)
class Flag:
    """One option (or, without ``decls``, the positional argument) of a command.

    ``kind`` is the type of one value (str, int, float, bool or Path); ``many`` makes a list (a
    repeatable option, or any number of arguments). ``decls`` are Typer's declarations, e.g.
    ``("--out", "-o")`` or ``("--temporal/--no-temporal",)``; ``show_default`` and ``metavar`` are
    Typer's, None leaving Typer's own choice.
    """

    name: str
    kind: type
    default: Any
    help: str
    decls: tuple[str, ...] = ()
    many: bool = False
    show_default: bool | str | None = None
    metavar: str | None = None


COLORIZE = (
    Flag("inputs", str, None, "Files, folders (recursive) and globs; none: the bundled sample photo.", many=True, show_default=False),
    Flag("out", str, None, "Output folder (mirrors the inputs' subfolders), or a file name for one input; with --engine ray also a storage URI (s3://, gs://, file://).", ("--out", "-o"), show_default="colorized"),
    Flag("model", str, None, MODEL_HELP, ("--model",), show_default="the bundled default"),
    Flag("size", int, None, RENDER_SIZE_HELP, ("--size",), show_default="the model's training size"),
    Flag("device", str, "auto", DEVICE_HELP, ("--device",)),
    Flag("batch_size", int, 1, "Photos per model batch (each held in memory at full size).", ("--batch-size",)),
    Flag("backend", str, "auto", BACKEND_HELP, ("--backend",)),
    Flag("precision", str, "auto", PRECISION_HELP, ("--precision",)),
    Flag("fmt", str, None, "One output format for every photo: png, jpg (or jpeg), webp or tif (or tiff); png and tif keep a 16-bit scan's 16 bits.", ("--format",), show_default="each input's own format if jpg, png, tif or webp, else png; or the -o file's suffix"),
    Flag("quality", int, None, "JPEG/WebP quality, 1-100 (a lossless WebP input gets a lossless WebP).", ("--quality",), show_default="95 jpg, 90 webp"),
    Flag("keep_color", bool, False, "Colorize only gray and toned (one hue, as sepia) photos; leave photos in color untouched. The report says which rule each photo met.", ("--keep-color",)),
    Flag("overwrite", bool, False, "Redo outputs that already exist (default: skip them, so a killed run resumes).", ("--overwrite",)),
    Flag("report", Path, None, "Write each file's outcome to this JSON file.", ("--report",)),
    Flag("hint", str, None, "Pin a color to a point of the one input photo (or the first frame of the one video): X,Y,COLOR with X, Y fractions of the width and height (or integer pixels) and a hex color, e.g. 0.41,0.62,#f2efe9. Repeatable.", ("--hint",), many=True, show_default=False, metavar="X,Y,COLOR"),
    Flag("hints_file", Path, None, "A JSON hint file (the web page's \"download hints\"): a list of {\"x\", \"y\", \"color\"} (and \"frame\", for a video).", ("--hints",), show_default=False, metavar="FILE"),
    Flag("temporal", bool, True, "Videos: keep colors stable from frame to frame along the optical flow (--no-temporal: each frame on its own).", ("--temporal/--no-temporal",)),
    Flag("strength", float, DEFAULT_STRENGTH, "Videos: how strongly colors carry from frame to frame where the motion is reliable, 0 to below 1.", ("--strength",)),
    Flag("video_codec", str, None, "Videos: the encoder, e.g. libx264, libx265, libvpx-vp9.", ("--video-codec",), show_default="libx264 (mp4, mkv, mov, avi, ts), libvpx-vp9 (webm), mpeg2video (mpeg)"),
    Flag("crf", int, DEFAULT_CRF, "Videos: constant rate factor of the encoder (lower is better and bigger).", ("--crf",)),
    Flag("video_preset", str, None, "Videos, libx264/libx265: the encoder's speed preset (slower: smaller files at the same quality), e.g. medium.", ("--video-preset",), show_default="superfast"),
    Flag("segment_seconds", float, DEFAULT_SEGMENT_SECONDS, "Videos: seconds per resumable part (what a killed job redoes at most).", ("--segment-seconds",)),
    Flag("engine", str, "local", "local: this process; ray: spread the photos over a Ray cluster (the cluster extra).", ("--engine",)),
    Flag("address", str, None, "--engine ray: the cluster (auto, or ray://host:10001).", ("--address",), show_default="a new local Ray instance"),
    Flag("actors", int, 1, "--engine ray: workers, each holding one model.", ("--actors",)),
    Flag("gpus_per_actor", float, 0.0, "--engine ray: the GPU share of each worker (0: CPU workers).", ("--gpus-per-actor",)),
    Flag("verbose", bool, False, "--engine ray: also show Ray's own log lines (hidden by default).", ("--verbose",)),
    Flag("quiet", bool, False, "Only warnings and errors: no progress bar, no summary line.", ("--quiet", "-q")),
)

# Values the plain reading takes as given; any other (a sign, an exponent, "1_000", "") goes to Typer.
_NUMBER = {int: re.compile(r"0|[1-9][0-9]*"), float: re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")}


def parse_plainly(args: Sequence[str], flags: Sequence[Flag]) -> dict[str, Any] | None:
    """The values of ``args`` (every flag's, defaults included), or None when the reading is not
    certain to be Typer's: an unknown or repeated option, a missing, empty or unusual value, ``--``,
    ``--help``, a value that looks like an option. Typer then reads them, and says what is wrong."""
    names = {decl: (flag, value) for flag in flags for decl, value in _switches(flag)}
    values: dict[str, Any] = {}
    positional = next((flag for flag in flags if not flag.decls), None)
    tokens = list(args)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("-") and positional is not None:
            values.setdefault(positional.name, []).append(token)
            continue
        decl, equals, attached = token.partition("=")
        flag, switch = names.get(decl, (None, None))
        if flag is None or (flag.name in values and not flag.many):
            return None
        if flag.kind is bool:
            if equals:
                return None
            values[flag.name] = switch
            continue
        if not equals and not tokens:
            return None
        value = _value(flag.kind, attached if equals else tokens.pop(0))
        if value is None:
            return None
        if flag.many:
            values.setdefault(flag.name, []).append(value)
        else:
            values[flag.name] = value
    return {flag.name: values.get(flag.name, flag.default) for flag in flags}


def _switches(flag: Flag) -> list[tuple[str, bool | None]]:
    """Each name a flag answers to and, for an on/off flag, the value that name sets."""
    if flag.kind is not bool:
        return [(decl, None) for decl in flag.decls]
    switches: list[tuple[str, bool | None]] = []
    for decl in flag.decls:
        on, _, off = decl.partition("/")
        switches += [(on, True), *([(off, False)] if off else [])]
    return switches


def _value(kind: type, text: str) -> Any:
    """``text`` as a ``kind``, or None where Typer might read it otherwise (or refuse it)."""
    if not text or text.startswith("-"):
        return None
    if kind in _NUMBER:
        return kind(text) if _NUMBER[kind].fullmatch(text) else None
    return Path(text) if kind is Path else text

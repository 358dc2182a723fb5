"""Which files a folder job colorizes and where each output goes: the plan, made before anything is read.

Inputs are files, folders (searched recursively, links to folders not followed) and globs; what
cannot be read (a broken link, an unreadable folder) is planned as skipped with its reason, never
left out without a word. Each output mirrors its input's path below ``-o`` in the input's own
format (:func:`colorgan.files.images.default_format`) unless ``--format`` or the ``-o`` file's suffix says
otherwise. The naming rules here (:func:`mirrored_name`, :func:`keep_source_extension`) and the
refusals (:func:`refuse_overwriting`, :func:`refuse_shared`) are also those of storage URIs
(:mod:`colorgan.colorize.storage`), in the same words.
"""

from __future__ import annotations

import errno
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from colorgan.errors import UserError
from colorgan.files.discovery import VIDEO_SUFFIXES, is_image_name, is_image_suffix, is_video_name
from colorgan.files.images import SUFFIX_FORMATS, default_format, output_suffix
from colorgan.files.provenance import written_by_colorgan

DEFAULT_OUT = Path("colorized")
# The "format" of a video's output: its input's container (see colorgan.video).
VIDEO = "video"


@dataclass(frozen=True)
class Task:
    source: Path
    output: Path
    skip: str | None = None  # why it is reported as skipped without being read (a broken link)
    fmt: str = "png"  # the output's format, a name in files.FORMATS, or VIDEO (the input's container)


@dataclass(frozen=True)
class Plan:
    """The tasks of a job, in order, and the format all outputs share (None: each takes its input's)."""

    tasks: list[Task]
    fmt: str | None
    out: Path


def plan(inputs: Sequence[str], out: Path | str | None, fmt: str | None) -> Plan:
    """The tasks (input, output, the output's format) of ``inputs`` written to ``out`` (a folder, or
    one file; None: ``colorized``); refuses any output that is an input or that two inputs share."""
    out = Path(out) if out else DEFAULT_OUT
    found, broken = _find(inputs)
    if names_a_file(out):
        tasks = [_file_task(found, out, fmt)]
        fmt = tasks[0].fmt
        skipped = [Task(source, out, reason, fmt) for source, _, reason in broken]
    else:
        tasks = _mirror(found, out, fmt)
        skipped = []
        for source, base, reason in broken:
            own = VIDEO if is_video(source) else fmt or default_format(source)
            skipped.append(Task(source, _mirrored(source, base, out, own), reason, own))
    _check_outputs(tasks, own_formats=fmt is None)
    return Plan(tasks + skipped, fmt, out)


def _file_task(found: Sequence[tuple[Path, Path]], out: Path, fmt: str | None) -> Task:
    """The one task of ``-o FILE``: exactly one input, of the kind the name says, into a folder that exists."""
    if len(found) == 1 and is_video(found[0][0]) and out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"-o {out}: the input {found[0][0]} is a video; name a video file "
                        f"({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder")
    fmt = _file_format(out, fmt)
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"-o {out}: {out.parent} is a file, not a folder; choose another -o")
    if not out.parent.is_dir():  # a typo in a file's path must not make folders (at the root, say)
        raise UserError(f"-o {out}: the folder {out.parent} does not exist; create it, or give -o a folder to create")
    if len(found) != 1:
        raise UserError(f"-o {out} names one file but there are {len(found)} inputs; give a folder instead")
    if (fmt == VIDEO) != is_video(found[0][0]):
        what = "a video" if fmt == VIDEO else "an image"
        raise UserError(f"-o {out} names {what} file, but the input {found[0][0]} is not one; "
                        f"name a {'video' if fmt != VIDEO else 'photo'} file or a folder")
    return Task(found[0][0], out, fmt=fmt)


def mirrored_name(relative: PurePath, fmt: str) -> PurePath:
    """The output name of an input at ``relative`` below its folder, in ``fmt`` (see :func:`colorgan.files.images.output_suffix`)."""
    return relative.with_name(relative.stem + output_suffix(Path(relative.name), fmt))


def keep_source_extension(output: PurePath, source_name: str) -> PurePath:
    """The output name of an input whose stem another input shares (``photo.bmp`` and ``photo.gif``,
    both PNG by default): it keeps its source extension (``photo.bmp.png``)."""
    return output.with_name(source_name + output.suffix)


def refuse_overwriting(overwritten: Sequence[str], *, own_formats: bool = False) -> None:
    """Refuse a plan in which outputs would be written over these inputs (one message for all).
    ``own_formats``: the outputs take their inputs' formats (no ``--format``), which the refusal mentions."""
    if overwritten:
        what = f"the input {overwritten[0]}" if len(overwritten) == 1 else f"{len(overwritten)} inputs: {', '.join(overwritten)}"
        why = " (each output keeps its input's format unless --format is given)" if own_formats else ""
        raise UserError(f"refusing to write over {what}{why}; choose another output (-o) or --format")


def refuse_shared(groups: Sequence[Sequence[str]], outputs: Sequence[str]) -> None:
    """Refuse a plan in which each group of inputs would be written to one output (``outputs``, in step)."""
    if groups:
        lines = [f"{' and '.join(group)} would {'both' if len(group) == 2 else 'all'} be written to {output}"
                 for group, output in zip(groups, outputs, strict=True)]
        raise UserError(f"{len(groups)} output name(s) claimed twice: {'; '.join(lines)}; colorize them into separate folders")


def names_a_file(out: Path) -> bool:
    """``-o`` names one output file (rather than a folder) when it ends in an image or video suffix."""
    return (is_image_suffix(out.suffix.lower()) or out.suffix.lower() in VIDEO_SUFFIXES) and not out.is_dir()


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


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
    """Where ``source``, found below ``base``, goes below ``out`` as ``fmt`` (see :func:`colorgan.files.images.output_suffix`;
    a video keeps its own suffix)."""
    relative = source.relative_to(base)
    return out / (relative if fmt == VIDEO else mirrored_name(relative, fmt))


def _mirror(found: Sequence[tuple[Path, Path]], out: Path, fmt: str | None) -> list[Task]:
    """Tasks that mirror each input's path below ``out`` as ``fmt`` (None: each input's own format).

    Inputs whose stems collide in one output (``photo.bmp`` and ``photo.gif``, both PNG by default)
    keep their source extension instead (``photo.bmp.png``, ``photo.gif.png``), so a folder never
    needs to be split by hand. Outputs of an earlier run found among the inputs (``-o`` inside or
    equal to an input folder) are recognized by these planned names and their Software tag, and
    left out, before and after that renaming.
    """
    formats = {source: VIDEO if is_video(source) else fmt or default_format(source) for source, _ in found}
    plain = {source: _mirrored(source, base, out, formats[source]) for source, base in found}
    sources = _inputs_only(plain)
    claims = Counter(plain[s].resolve() for s in sources)
    planned = {s: keep_source_extension(plain[s], s.name) if claims[plain[s].resolve()] > 1 else plain[s] for s in sources}
    return [Task(s, planned[s], fmt=formats[s]) for s in _inputs_only(planned)]


def _inputs_only(planned: dict[Path, Path]) -> list[Path]:
    """The sources that are not colorgan's own output of an earlier run: the planned output of another
    source that colorgan wrote (its Software tag says so; a real ``x.png`` beside ``x.jpg`` is a photo)."""
    claimed_by: dict[Path, set[Path]] = defaultdict(set)
    for source, output in planned.items():
        claimed_by[output.resolve()].add(source)
    return [s for s in planned if not (claimed_by.get(s.resolve(), set()) - {s} and written_by_colorgan(s))]


def _check_outputs(tasks: Sequence[Task], *, own_formats: bool = False) -> None:
    """Refuse outputs that would overwrite an input or that several inputs share, listing every case in one message."""
    inputs = {t.source.resolve(): t.source for t in tasks}
    claims: dict[Path, list[Task]] = defaultdict(list)
    for task in tasks:
        claims[task.output.resolve()].append(task)
    refuse_overwriting([str(inputs[target]) for target in claims if target in inputs], own_formats=own_formats)
    refuse_shared([[str(t.source) for t in group] for group in claims.values() if len(group) > 1],
                  [str(group[0].output) for group in claims.values() if len(group) > 1])

"""Photos in storage named by URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``), through pyarrow's
file systems: what ``--engine ray`` reads and writes when its folders are not local paths.

A file is always a pair: the URI the user gave (its scheme, host and options such as
``?region=...`` kept) and a path inside that file system, so names are never re-parsed as URIs
(a space, ``#`` or ``%`` in a name stays a name). The folder job's rules apply, from
:mod:`colorgan.colorize.plan`: images are what :func:`colorgan.files.discovery.is_image_name` accepts, outputs
mirror the inputs' relative paths with the folder job's suffixes (stems that collide keep their
source extension), no output may be an input (the same refusals, in the same words), and an output appears under its name only when complete (written under a hidden
temporary name, then moved; removed again if anything fails).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from colorgan.colorize.plan import keep_source_extension, mirrored_name, refuse_overwriting, refuse_shared
from colorgan.errors import UserError
from colorgan.files.discovery import VIDEO_SUFFIXES, is_image_name, is_image_suffix
from colorgan.files.images import default_format


def is_uri(item: str | Path) -> bool:
    """Whether ``item`` names storage by a URI (``scheme://...``) rather than a local path."""
    return "://" in str(item)


@functools.lru_cache(maxsize=64)
def open_root(uri: str):  # noqa: ANN201 - (pyarrow FileSystem, path), imported lazily
    """The pyarrow file system of ``uri`` and the path it names, made once per process (for S3 each
    making costs a region lookup); an unknown scheme or unreachable storage is a :class:`UserError`."""
    import pyarrow
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowException, ValueError, OSError) as exc:
        raise UserError(f"cannot open {uri}: {str(exc).splitlines()[0]}") from None


@dataclass(frozen=True)
class Planned:
    """One photo of a URI job: where it is and where its output goes, each as (root URI, path inside)."""

    source_root: str
    source_path: str
    output_root: str
    output_path: str
    fmt: str

    @property
    def source(self) -> str:
        return display(self.source_root, self.source_path)

    @property
    def output(self) -> str:
        return display(self.output_root, self.output_path)


def display(root: str, path: str) -> str:
    """A readable URI for ``path`` inside the storage ``root`` names (for messages and the report)."""
    base = urlsplit(root)._replace(query="", fragment="").geturl().rstrip("/")
    root_path = open_root(root)[1].rstrip("/")
    return base if path == root_path else f"{base}/{path[len(root_path) + 1:] if path.startswith(root_path + '/') else path}"


def plan(inputs: Sequence[str], out: str, fmt: str | None) -> list[Planned]:
    """Every image under the ``inputs`` URIs (folders, searched recursively, or files named directly),
    once, mirrored below the folder ``out``. Refused: a file-like ``out``, outputs that would be
    inputs, outputs claimed twice. Storage that cannot be listed is a :class:`UserError`."""
    if is_image_suffix(suffix := PurePosixPath(urlsplit(out).path).suffix.lower()) or suffix in VIDEO_SUFFIXES:
        raise UserError(f"-o {out}: with storage URIs, -o names a folder")
    try:
        return _plan(inputs, out, fmt)
    except OSError as exc:
        raise UserError(f"cannot list {', '.join(inputs)}: {str(exc).splitlines()[0]}") from None


def _plan(inputs: Sequence[str], out: str, fmt: str | None) -> list[Planned]:
    from pyarrow import fs

    out_fs, out_base = open_root(out)
    out_base = out_base.rstrip("/")
    found: dict[tuple[str, str], tuple[str, str, str]] = {}  # (file system kind, path) -> (root URI, base, path)
    for item in inputs:
        source_fs, root = open_root(item)
        info = source_fs.get_file_info(root)
        if info.type == fs.FileType.NotFound:
            raise UserError(f"no such file or folder: {item}")
        if info.type == fs.FileType.File:
            files, base = [info], str(PurePosixPath(root).parent)
        else:
            base = root.rstrip("/")
            # -o below this folder: what is there are outputs, not photos (-o equal to it is refused below)
            inside_out = source_fs.type_name == out_fs.type_name and out_base.startswith(base + "/")
            files = [f for f in source_fs.get_file_info(fs.FileSelector(base, recursive=True))
                     if f.type == fs.FileType.File and not (inside_out and f.path.startswith(out_base + "/"))]
            files = [f for f in files if is_image_name(PurePosixPath(f.path), PurePosixPath(base))]  # type: ignore[arg-type]
        for file in files:
            found.setdefault((source_fs.type_name, file.path), (item, base, file.path))
    if not found:
        raise UserError(f"no images found in {', '.join(inputs)}")
    planned = [_mirrored(root, base, path, out, out_base, fmt) for root, base, path in sorted(found.values(), key=lambda f: f[2])]
    claims = Counter(p.output_path for p in planned)
    planned = [p if claims[p.output_path] == 1 else _keep_extension(p) for p in planned]
    _refuse_clashes(planned, out_fs.type_name, set(found))
    return planned


def _mirrored(root: str, base: str, path: str, out: str, out_base: str, fmt: str | None) -> Planned:
    relative = PurePosixPath(path).relative_to(base)
    own = fmt or default_format(Path(path))
    return Planned(root, path, out, f"{out_base}/{mirrored_name(relative, own)}", own)


def _keep_extension(planned: Planned) -> Planned:
    """The folder job's rule for stems that collide (:func:`colorgan.colorize.plan.keep_source_extension`)."""
    output = keep_source_extension(PurePosixPath(planned.output_path), PurePosixPath(planned.source_path).name)
    return Planned(planned.source_root, planned.source_path, planned.output_root, str(output), planned.fmt)


def _refuse_clashes(planned: Iterable[Planned], out_kind: str, inputs: set[tuple[str, str]]) -> None:
    """The folder job's refusals, in its words: outputs over inputs, outputs claimed twice."""
    planned = list(planned)
    refuse_overwriting([p.source for p in planned if (out_kind, p.output_path) in inputs])
    by_output: dict[str, list[Planned]] = {}
    for p in planned:
        by_output.setdefault(p.output_path, []).append(p)
    shared = [group for group in by_output.values() if len(group) > 1]
    refuse_shared([[p.source for p in group] for group in shared], [group[0].output for group in shared])


def existing(out: str) -> set[str]:
    """The paths of the files already below the folder ``out`` (one listing, however many outputs)."""
    from pyarrow import fs

    out_fs, base = open_root(out)
    try:
        infos = out_fs.get_file_info(fs.FileSelector(base.rstrip("/"), recursive=True, allow_not_found=True))
    except OSError as exc:
        raise UserError(f"cannot list {out}: {str(exc).splitlines()[0]}") from None
    return {info.path for info in infos if info.type == fs.FileType.File}


def file_exists(root: str, path: str) -> bool:
    """Whether ``path`` in the storage of ``root`` is a file; False when the storage cannot say
    (the photo is then simply colorized again)."""
    from pyarrow import fs

    with contextlib.suppress(OSError):
        return open_root(root)[0].get_file_info(path).type == fs.FileType.File
    return False


def download(root: str, path: str, local: Path) -> None:
    """Copy ``path`` in the storage of ``root`` to the local file ``local``."""
    with open_root(root)[0].open_input_stream(path) as stream, open(local, "wb") as copy:
        shutil.copyfileobj(stream, copy, 1 << 20)


def upload(local: Path, root: str, path: str) -> None:
    """Copy the local file ``local`` to ``path`` in the storage of ``root``: under a hidden
    temporary name beside it, then moved into place, so no reader ever sees half of it; the
    temporary is removed if anything fails."""
    import secrets  # here: ~3 ms of a photo job's start otherwise (hashlib, hmac)

    file_system = open_root(root)[0]
    folder, name = str(PurePosixPath(path).parent), PurePosixPath(path).name
    file_system.create_dir(folder, recursive=True)
    temporary = f"{folder}/.{name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(local, "rb") as copy, file_system.open_output_stream(temporary) as stream:
            shutil.copyfileobj(copy, stream, 1 << 20)
        file_system.move(temporary, path)
    except BaseException:
        with contextlib.suppress(Exception):
            file_system.delete_file(temporary)
        raise

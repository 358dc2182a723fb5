"""Photos in storage named by URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``), through pyarrow's
file systems: what ``--engine ray`` reads and writes when its folders are not local paths.

The same rules as local folders apply: images are what :func:`colorgan.files.is_image_name` accepts,
outputs mirror the inputs' relative paths with the folder job's output suffixes, and an output
appears under its name only when complete (written under a hidden temporary name, then moved;
an object store's upload is itself all-or-nothing).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .errors import UserError
from .files import default_format, is_image_name, output_suffix


def is_uri(item: str | Path) -> bool:
    """Whether ``item`` names storage by a URI (``scheme://...``) rather than a local path."""
    return "://" in str(item)


def _file_system(uri: str):  # noqa: ANN202 - a pyarrow FileSystem, imported lazily
    """The pyarrow file system of ``uri`` and the path inside it; an unknown scheme or unreachable
    storage is a :class:`UserError`."""
    import pyarrow
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowException, ValueError, OSError) as exc:
        raise UserError(f"cannot open {uri}: {str(exc).splitlines()[0]}") from None


def _uri(scheme: str, path: str) -> str:
    return f"{scheme}://{path}" if scheme != "file" else f"file://{path}"


def plan(inputs: Sequence[str], out: str, fmt: str | None) -> list[tuple[str, str, str]]:
    """(input URI, output URI, output format) for every image under the ``inputs`` URIs (folders,
    searched recursively, or single files), mirrored below ``out``. Storage that cannot be listed
    (no network, no credentials, no such bucket) is a :class:`UserError`."""
    try:
        return _plan(inputs, out, fmt)
    except OSError as exc:
        raise UserError(f"cannot list {', '.join(inputs)}: {str(exc).splitlines()[0]}") from None


def _plan(inputs: Sequence[str], out: str, fmt: str | None) -> list[tuple[str, str, str]]:
    from pyarrow import fs

    _, out_root = _file_system(out)
    planned = []
    for item in inputs:
        source_fs, root = _file_system(item)
        scheme = item.split("://", 1)[0]
        info = source_fs.get_file_info(root)
        if info.type == fs.FileType.NotFound:
            raise UserError(f"no such file or folder: {item}")
        if info.type == fs.FileType.File:
            files, base = [info], str(PurePosixPath(root).parent)
        else:
            files = source_fs.get_file_info(fs.FileSelector(root, recursive=True))
            base = root
        for file in sorted((f for f in files if f.type == fs.FileType.File), key=lambda f: f.path):
            relative = PurePosixPath(file.path).relative_to(base)
            if not is_image_name(PurePosixPath(base) / relative, PurePosixPath(base)):  # type: ignore[arg-type]
                continue
            own = fmt or default_format(Path(file.path))
            target = relative.with_suffix(output_suffix(Path(relative.name), own))
            planned.append((_uri(scheme, file.path), _uri(out.split("://", 1)[0], f"{out_root.rstrip('/')}/{target}"), own))
    if not planned:
        raise UserError(f"no images found in {', '.join(inputs)}")
    return planned


def exists(uris: Sequence[str]) -> list[bool]:
    """Whether each URI names an existing file (storage that cannot be asked is a :class:`UserError`)."""
    from pyarrow import fs

    found = []
    for uri in uris:
        file_system, path = _file_system(uri)
        try:
            found.append(file_system.get_file_info(path).type != fs.FileType.NotFound)
        except OSError as exc:
            raise UserError(f"cannot reach {uri}: {str(exc).splitlines()[0]}") from None
    return found


def download(uri: str, path: Path) -> None:
    """Copy the file at ``uri`` to the local ``path``."""
    file_system, source = _file_system(uri)
    with file_system.open_input_stream(source) as stream, open(path, "wb") as local:
        shutil.copyfileobj(stream, local, 1 << 20)


def upload(path: Path, uri: str) -> None:
    """Copy the local file ``path`` to ``uri``: under a hidden temporary name beside it, then moved
    into place, so no reader ever sees half of it."""
    file_system, target = _file_system(uri)
    folder, name = str(PurePosixPath(target).parent), PurePosixPath(target).name
    file_system.create_dir(folder, recursive=True)
    temporary = f"{folder}/.{name}.{secrets.token_hex(4)}.tmp"
    with open(path, "rb") as local, file_system.open_output_stream(temporary) as stream:
        shutil.copyfileobj(local, stream, 1 << 20)
    file_system.move(temporary, target)


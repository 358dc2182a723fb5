"""Multipart uploads taken in safely: capped in bytes while they stream, copied to our own file.

An oversized upload is refused after the cap instead of being spooled whole, and the file on
disk gets a name we make up (never one from the request). How fast a body must come is the
connection's business (:mod:`.connections`: a stalled or endless upload is answered 408).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import Request
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from colorgan.errors import UserError, parse_json
from colorgan.hints import Hint, HintError, parse_hints_json
from colorgan.serve.settings import RequestError, ServeSettings

# A JSON request body (a hint list of MAX_HINTS points is about 60 KB).
MAX_JSON_BYTES = 1 << 20
# Room for the multipart envelope (boundaries, part headers, a size field) around the photo.
MULTIPART_SLACK = 64 * 1024


def _capped_receive(receive: Receive, limit: int, too_large: RequestError) -> Receive:
    """Wrap an ASGI ``receive`` so the body stops at ``limit`` bytes with ``too_large``.

    The multipart parser pulls the body through this, so an oversized upload is refused after
    ``limit`` bytes instead of being spooled whole.
    """
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large
        return message

    return capped


def upload_too_large(settings: ServeSettings) -> RequestError:
    """The one wording of a 413 for a photo, whoever counts its bytes."""
    return RequestError(413, f"upload too large; this server accepts at most {settings.max_upload_mb:g} MB")


def json_too_large() -> RequestError:
    return RequestError(413, f"request body too large; at most {MAX_JSON_BYTES // 1024} KB of JSON")


def check_declared_size(headers: Headers, settings: ServeSettings) -> None:
    """Refuse a photo upload whose Content-Length is over the cap before reading any of it."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes + MULTIPART_SLACK:
        raise upload_too_large(settings)


@dataclass(frozen=True)
class PhotoForm:
    """The form fields that came with a photo: ``size`` (None: the model's) and ``hints`` (JSON, see :mod:`colorgan.hints`)."""

    size: int | None = None
    hints: list[Hint] = field(default_factory=list)


async def receive_photo(request: Request, settings: ServeSettings, dest: Path) -> PhotoForm:
    """Stream the multipart upload into ``dest``; returns the other form fields, checked."""
    check_declared_size(request.headers, settings)
    capped = Request(request.scope, _capped_receive(request.receive, settings.max_upload_bytes + MULTIPART_SLACK,
                                                    upload_too_large(settings)))
    try:
        async with capped.form(max_files=1, max_fields=4) as form:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise RequestError(400, "send the photo as a multipart/form-data file field named 'image'")
            size_field, hints_field = form.get("size"), form.get("hints")
            await anyio.to_thread.run_sync(_copy_upload, upload, dest, settings)
    except (MultiPartException, HTTPException) as exc:  # the parser's complaints: bad boundary, too many parts
        raise RequestError(400, f"malformed multipart body ({getattr(exc, 'detail', None) or exc})") from None
    except ClientDisconnect:
        raise RequestError(400, "the client went away during the upload") from None
    return PhotoForm(size=_parse_size(size_field), hints=parse_hints_field(hints_field))


def parse_hints_field(field: Any) -> list[Hint]:
    """The ``hints`` form field (a JSON hint list, as the page downloads it); a malformed one is a 400."""
    if field is None or field == "":
        return []
    if not isinstance(field, str):
        raise RequestError(400, "hints must be a text field holding a JSON list, not a file")
    try:
        return parse_hints_json(field)
    except HintError as exc:
        raise RequestError(400, str(exc)) from None


async def receive_json(request: Request) -> Any:
    """A JSON request body, capped at :data:`MAX_JSON_BYTES`; malformed JSON (nested too deeply
    included) is a 400."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise json_too_large()
    receive = _capped_receive(request.receive, MAX_JSON_BYTES, json_too_large())
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "the client went away during the request")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        return parse_json(b"".join(chunks), source="the request body")
    except UserError as exc:
        raise RequestError(400, str(exc)) from None


def _copy_upload(upload: UploadFile, dest: Path, settings: ServeSettings) -> None:
    """Copy the spooled upload into our own file (decoders want a path), enforcing the exact cap."""
    upload.file.seek(0)
    copied = 0
    with dest.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            copied += len(chunk)
            if copied > settings.max_upload_bytes:
                raise upload_too_large(settings)
            out.write(chunk)


def _parse_size(field: Any) -> int | None:
    if field is None or field == "":
        return None
    try:
        return int(str(field))
    except ValueError:
        raise RequestError(400, f"size must be a whole number, got {str(field)[:40]!r}") from None

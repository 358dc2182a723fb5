"""Multipart uploads taken in safely: capped in bytes and time while they stream, copied to our own file.

An oversized upload is refused after the cap instead of being spooled whole, a trickling one
cannot hold its connection forever, and the file on disk gets a name we make up (never one
from the request).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from ..hints import Hint, HintError, parse_hints_json
from .settings import RequestError, ServeSettings

# A JSON request body (a hint list of MAX_HINTS points is about 60 KB).
MAX_JSON_BYTES = 1 << 20
# Room for the multipart envelope (boundaries, part headers, a size field) around the photo.
MULTIPART_SLACK = 64 * 1024


def _capped_receive(receive: Receive, limit: int, timeout_s: float) -> Receive:
    """Wrap an ASGI ``receive`` so the body stops at ``limit`` bytes and ``timeout_s`` seconds.

    The multipart parser pulls the body through this, so an oversized upload is refused after
    ``limit`` bytes instead of being spooled whole, and a trickling one cannot hold the
    connection (and its buffers) forever.
    """
    deadline = time.monotonic() + timeout_s
    received = 0

    async def capped() -> Message:
        nonlocal received
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise RequestError(408, f"upload took longer than {timeout_s:g} s") from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise RequestError(413, f"upload too large; this server accepts at most {limit / 1024 / 1024:.0f} MB")
        return message

    return capped


@dataclass(frozen=True)
class PhotoForm:
    """The form fields that came with a photo: ``size`` (None: the model's) and ``hints`` (JSON, see :mod:`colorgan.hints`)."""

    size: int | None = None
    hints: list[Hint] = field(default_factory=list)


async def receive_photo(request: Request, settings: ServeSettings, dest: Path) -> PhotoForm:
    """Stream the multipart upload into ``dest``; returns the other form fields, checked."""
    body_limit = settings.max_upload_bytes + MULTIPART_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise RequestError(413, f"upload too large; this server accepts at most {settings.max_upload_mb:g} MB")
    capped = Request(request.scope, _capped_receive(request.receive, body_limit, settings.upload_timeout_s))
    try:
        async with capped.form(max_files=1, max_fields=4) as form:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise RequestError(400, "send the photo as a multipart/form-data file field named 'image'")
            size_field, hints_field = form.get("size"), form.get("hints")
            await anyio.to_thread.run_sync(_copy_upload, upload, dest, settings.max_upload_bytes)
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


async def receive_json(request: Request, settings: ServeSettings) -> Any:
    """A JSON request body, capped at :data:`MAX_JSON_BYTES` and the upload timeout; malformed JSON is a 400."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise RequestError(413, f"request body too large; at most {MAX_JSON_BYTES // 1024} KB of JSON")
    receive = _capped_receive(request.receive, MAX_JSON_BYTES, settings.upload_timeout_s)
    chunks = []
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "the client went away during the request")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the request body is not valid JSON: {exc}") from None


def _copy_upload(upload: UploadFile, dest: Path, limit: int) -> None:
    """Copy the spooled upload into our own file (decoders want a path), enforcing the exact cap."""
    upload.file.seek(0)
    copied = 0
    with dest.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            copied += len(chunk)
            if copied > limit:
                raise RequestError(413, f"upload too large; this server accepts at most {limit / 1024 / 1024:g} MB")
            out.write(chunk)


def _parse_size(field: Any) -> int | None:
    if field is None or field == "":
        return None
    try:
        return int(str(field))
    except ValueError:
        raise RequestError(400, f"size must be a whole number, got {str(field)[:40]!r}") from None

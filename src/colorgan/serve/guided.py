"""Guided colorization on the server: a photo uploaded once, colorized again after every hint change.

The hint editor at ``/guide`` (``guide.html``) talks to three routes:

- ``POST /api/photos`` (multipart ``image``, optional ``size``) -> ``{"id", "width", "height"}``.
  The photo is decoded and prepared once (:meth:`colorgan.colorizer.Colorizer.prepare`) and kept
  in a small store that forgets the least recently used photo.
- ``POST /api/photos/{id}/colorize`` (JSON ``{"hints": [...]}``) -> ``image/jpeg``: the result
  drawn on a preview of at most :data:`PREVIEW_PIXELS`, fast enough to follow every click and drag.
- ``POST /api/photos/{id}/download`` (same body) -> ``image/png`` at full resolution.

Hints are the JSON hint list of :mod:`colorgan.hints`. Every computation runs under the
service's limiter, like any other colorization.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from colorgan.hints import Hint, HintError, hints_from_json
from colorgan.colorizer import Colorizer, PreparedPhoto
from colorgan.serve.api import internal_error, png_response, refusal, try_unlink
from colorgan.serve.service import ColorizeService
from colorgan.serve.settings import RequestError
from colorgan.serve.uploads import receive_json, receive_photo

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("guide.html")
#: Live results are drawn on at most this many pixels: a screen shows no more, and it keeps a
#: 12 MP photo's updates as quick as a 2 MP one's. The download is full size.
PREVIEW_PIXELS = 2_000_000
PREVIEW_QUALITY = 90
#: Photos kept prepared at once (each holds a preview and its L*, about 14 MB at most) and how
#: long one is kept without use.
MAX_PHOTOS = 8
IDLE_SECONDS = 30 * 60


@dataclass
class _Entry:
    prepared: PreparedPhoto
    upload: Path  # the photo as uploaded, for the full-size download
    client: str = ""  # who opened it (the address the connection layer names)
    used: float = field(default_factory=time.monotonic)


class PhotoStore:
    """The prepared photos by id: at most ``capacity``, each forgotten after ``idle_s`` unused.

    Ids are random (122 bits), so one user cannot reach another's photo by guessing. When the
    store is full, the client holding the most photos gives up its least recently used one, so
    one client opening photo after photo pushes out its own, not everyone's. A forgotten photo's
    upload is deleted at once.
    """

    def __init__(self, *, capacity: int = MAX_PHOTOS, idle_s: float = IDLE_SECONDS) -> None:
        self.capacity, self.idle_s = capacity, idle_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, prepared: PreparedPhoto, upload: Path, *, client: str = "") -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._expire()
            self._entries[key] = _Entry(prepared, upload, client)
            while len(self._entries) > self.capacity:
                held = Counter(entry.client for entry in self._entries.values())
                biggest = max(held.values())
                victim = next(k for k, e in self._entries.items() if held[e.client] == biggest)  # its least recently used
                self._entries.pop(victim).upload.unlink(missing_ok=True)
        return key

    def get(self, key: str) -> _Entry:
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            if entry is None:
                raise RequestError(404, "this photo is no longer on the server (it was idle or replaced); load it again")
            entry.used = time.monotonic()
            self._entries.move_to_end(key)
            return entry

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if now - e.used > self.idle_s]:
            self._entries.pop(key).upload.unlink(missing_ok=True)


def add_guided_routes(api: FastAPI, service: ColorizeService, store: PhotoStore) -> None:
    """The hint editor's page and its three API routes (see the module docstring)."""

    @api.get("/guide", response_class=HTMLResponse, include_in_schema=False)
    async def guide_page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @api.post("/api/photos")
    async def add_photo(request: Request) -> Response:
        upload = service.temp_path(".upload")
        try:
            with service.photo_errors():
                service.colorizer.require_hints()
            form = await receive_photo(request, service.settings, upload)
            size = service.render_size(form.size)
            width, height, _ = await anyio.to_thread.run_sync(service.inspect, upload)
            async with service.limiter.slot():
                prepared = await anyio.to_thread.run_sync(_prepare, service, upload, size)
            key = store.add(prepared, upload, client=request.client.host if request.client else "")
            return JSONResponse({"id": key, "width": width, "height": height, "size": size})
        except RequestError as exc:
            upload.unlink(missing_ok=True)
            return refusal("POST /api/photos", exc)
        except Exception:  # noqa: BLE001 - a bug: a plain 500, the details in the log
            upload.unlink(missing_ok=True)
            return internal_error("POST /api/photos")

    @api.post("/api/photos/{key}/colorize")
    async def colorize_preview(key: str, request: Request) -> Response:
        """The live result as JPEG; ``X-Colorize-Ms`` says how long the server took."""
        return await _answer(key, request, full=False)

    @api.post("/api/photos/{key}/download")
    async def download(key: str, request: Request) -> Response:
        """The full-resolution result as PNG."""
        return await _answer(key, request, full=True)

    async def _answer(key: str, request: Request, *, full: bool) -> Response:
        route = f"POST /api/photos/{{id}}/{'download' if full else 'colorize'}"
        out = service.temp_path(".png")
        try:
            hints = _hints_of(await receive_json(request))
            entry = store.get(key)
            started = time.perf_counter()
            if full:  # streamed from disk like the API's answers, never held whole in memory
                await service.colorize(entry.upload, entry.prepared.size, out, hints=hints)
                return png_response(out)
            async with service.limiter.slot():
                with service.photo_errors():
                    body = await anyio.to_thread.run_sync(preview_jpeg, service.colorizer, entry.prepared, hints)
            took = (time.perf_counter() - started) * 1000
            return Response(body, media_type="image/jpeg", headers={"X-Colorize-Ms": f"{took:.0f}", "Cache-Control": "no-store"})
        except RequestError as exc:
            return refusal(route, exc)
        except Exception:  # noqa: BLE001 - a bug: a plain 500, the details in the log
            return internal_error(route)
        finally:
            try_unlink(out)  # after an error; a response in flight already unlinked it (or will)


def _prepare(service: ColorizeService, upload: Path, size: int) -> PreparedPhoto:
    with service.photo_errors():
        return service.colorizer.prepare(upload, size=size, max_pixels=PREVIEW_PIXELS)


def preview_jpeg(colorizer: Colorizer, prepared: PreparedPhoto, hints: list[Hint]) -> bytes:
    """One live update: the prepared photo colorized with ``hints``, as the JPEG the page shows."""
    image = colorizer.colorize_prepared(prepared, hints=hints)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()


def _hints_of(body: Any) -> list[Hint]:
    if not isinstance(body, dict) or "hints" not in body:
        raise RequestError(400, 'send a JSON object {"hints": [...]}')
    try:
        return hints_from_json(body["hints"])
    except HintError as exc:
        raise RequestError(400, str(exc)) from None

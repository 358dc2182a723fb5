"""The plain HTTP API: ``POST /api/colorize`` (multipart ``image``, optional ``size`` and ``hints``) and ``GET /api/health``.

``hints`` is a JSON hint list (see :mod:`colorgan.hints`), e.g. ``[{"x": 0.41, "y": 0.62, "color": "#f2efe9"}]``.

Answers are ``image/png``, or JSON ``{"error": "..."}`` with the :class:`RequestError`'s
status (400, 408, 413, 503; 500 with no details for a bug). Every file a request made is
deleted once it is answered, whatever happens to the connection.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from colorgan.serve.service import ColorizeService
from colorgan.serve.settings import RequestError
from colorgan.serve.uploads import receive_photo

log = logging.getLogger(__name__)


def add_api_routes(api: FastAPI, service: ColorizeService) -> None:
    """``POST /api/colorize`` and ``GET /api/health``."""

    @api.post("/api/colorize", response_class=Response)
    async def colorize_endpoint(request: Request) -> Response:
        """Colorize one photo: multipart field ``image`` (optional ``size``, ``hints``) -> ``image/png``."""
        upload = service.temp_path(".upload")
        out = service.temp_path(".png")
        try:
            form = await receive_photo(request, service.settings, upload)
            render = service.render_size(form.size)
            await anyio.to_thread.run_sync(service.inspect, upload)
            await service.colorize(upload, render, out, hints=form.hints)
            return png_response(out)
        except RequestError as exc:
            return refusal("POST /api/colorize", exc)
        except Exception:  # noqa: BLE001 - a bug or an exhausted machine: still JSON, and the details in the log only
            return internal_error("POST /api/colorize")
        finally:
            upload.unlink(missing_ok=True)
            try_unlink(out)  # after an error; a response in flight already unlinked it (or will)

    @api.get("/api/health")
    async def health() -> dict[str, Any]:
        """Liveness plus the limits and the queue, for scripts and monitoring."""
        settings = service.settings
        return {
            "status": "ok",
            "model": service.colorizer.meta.get("generator"),
            "size": service.colorizer.size,
            "concurrency": settings.concurrency,
            "max_queue": settings.max_queue,
            "running": service.limiter.running,
            "waiting": service.limiter.waiting,
            "max_upload_mb": settings.max_upload_mb,
            "max_megapixels": settings.max_megapixels,
        }


def refusal(route: str, exc: RequestError) -> JSONResponse:
    """A refused request's JSON answer (:meth:`RequestError.response`), logged in one line."""
    log.info("%s -> %d: %s", route, exc.status, exc.message)
    return exc.response()


def internal_error(route: str) -> JSONResponse:
    """A bug's answer: a 500 without details; the traceback goes to the log only. Call it in an ``except``."""
    log.exception("%s failed", route)
    return JSONResponse({"error": "internal error; see the server's log"}, status_code=500)


def png_response(path: Path) -> Response:
    """Stream ``path`` as ``image/png`` and make sure it is deleted whatever happens to the response.

    On POSIX the file is unlinked right after opening (its data lives until the handle closes),
    so not even a dropped connection leaves it on disk; elsewhere it goes when the stream ends.
    """
    handle = path.open("rb")
    length = os.fstat(handle.fileno()).st_size
    unlinked = try_unlink(path)

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := handle.read(1 << 20):
                yield chunk
        finally:
            handle.close()
            if not unlinked:
                try_unlink(path)

    return StreamingResponse(chunks(), media_type="image/png", headers={"Content-Length": str(length)})


def try_unlink(path: Path) -> bool:
    try:
        path.unlink(missing_ok=True)
        return True
    except OSError:  # Windows: still open
        return False

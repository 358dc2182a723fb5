"""``colorgan serve``: a web page and a plain HTTP API around one shared :class:`~colorgan.infer.Colorizer`.

One FastAPI app serves both:

- ``/``: a Gradio page (drop, paste or pick a photo; before/after slider; full-resolution
  PNG download; render size; example photos). Its Gradio API works with ``gradio_client``
  (endpoint ``/colorize``).
- ``POST /api/colorize`` (multipart field ``image``, optional ``size``) answers ``image/png``;
  errors are JSON ``{"error": "..."}`` with 400, 408, 413 or 503. ``GET /api/health``.

Both paths share one model and one :class:`Limiter`: at most ``concurrency`` photos are
colorized at once, at most ``max_queue`` more wait, and anything beyond is refused at once
(503) rather than piling up memory. Uploads are capped while they stream in and photos are
checked for their pixel count from the header, before anything is decoded. The API keeps its
files in a private temporary folder under names it makes up itself (never one from the
request) and deletes each as soon as it is no longer needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import gradio as gr
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from .errors import UserError
from .infer import Colorizer
from .photo import PNG_COMPRESS_LEVEL, PhotoError, read_photo

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).parent / "assets" / "examples"
# The largest render size offered: the model's activations grow with its square, and it is
# colorize's only cost that does not depend on the photo.
MAX_RENDER_SIZE = 1024
# Room for the multipart envelope (boundaries, part headers, a size field) around the photo.
MULTIPART_SLACK = 64 * 1024
# Formats a browser shows as they are: the "before" side of the slider uses the upload itself.
BROWSER_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}
# Gradio's cache (its uploads and our results) is swept every minute of files over 15 minutes
# old, and emptied when the server stops: long enough to view and download a result.
GRADIO_CACHE_SWEEP = (60, 15 * 60)


@dataclass(frozen=True)
class ServeSettings:
    """What ``colorgan serve`` is asked for; :func:`create_app` turns it into a running app."""

    model: str | None = None
    device: str = "auto"
    backend: str = "torch"
    max_upload_mb: float = 25.0
    max_megapixels: float = 50.0
    concurrency: int = 1
    max_queue: int = 32
    upload_timeout_s: float = 60.0

    def validate(self) -> None:
        """Refuse settings that would make a server that cannot work, before loading anything."""
        if self.concurrency < 1:
            raise UserError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_queue < 0:
            raise UserError(f"--max-queue must be 0 or more, got {self.max_queue}")
        if not self.max_upload_mb > 0:
            raise UserError(f"--max-upload-mb must be positive, got {self.max_upload_mb}")
        if not self.max_megapixels > 0:
            raise UserError(f"--max-megapixels must be positive, got {self.max_megapixels}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)


class RequestError(Exception):
    """A request we refuse: ``status`` is its HTTP status and ``message`` is shown to the user as is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Limiter:
    """At most ``slots`` holders at once, at most ``max_waiting`` more waiting; beyond that, 503 now.

    Waiting happens on the event loop (not in a thread), so a long queue costs no threads;
    refusing beyond it keeps the memory of queued uploads bounded.
    """

    def __init__(self, slots: int, max_waiting: int) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self._semaphore = asyncio.Semaphore(slots)
        self._admitted = 0
        self._running = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._admitted - self._running

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block; :class:`RequestError` 503 if the queue is full."""
        if self._admitted >= self.slots + self.max_waiting:
            raise RequestError(503, "the server is busy (queue full); try again in a minute")
        self._admitted += 1
        try:
            async with self._semaphore:
                self._running += 1
                try:
                    yield
                finally:
                    self._running -= 1
        finally:
            self._admitted -= 1


class ColorizeService:
    """The work the page and the API share: one model, one limiter, the photo checks."""

    def __init__(self, colorizer: Colorizer, settings: ServeSettings) -> None:
        self.colorizer = colorizer
        self.settings = settings
        self.limiter = Limiter(settings.concurrency, settings.max_queue)
        self.workdir = Path(tempfile.mkdtemp(prefix="colorgan-serve-"))

    def close(self) -> None:
        """Remove the API's temporary folder (anything a crashed request left behind)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def temp_path(self, suffix: str) -> Path:
        """A fresh file name in the private folder; names never come from a request."""
        return self.workdir / f"{uuid.uuid4().hex}{suffix}"

    @property
    def max_render_size(self) -> int:
        """The largest render size accepted (the model's own size is always allowed)."""
        return max(MAX_RENDER_SIZE, self.colorizer.size)

    def render_size(self, size: int | None) -> int:
        """The model input size for ``size`` (``None``: the model's own), or a 400."""
        if size is not None and size > self.max_render_size:
            raise RequestError(400, f"size must be at most {self.max_render_size}, got {size}")
        try:
            return self.colorizer.check_size(size)
        except UserError as exc:
            raise RequestError(400, str(exc).replace("--size", "size")) from None

    def inspect(self, path: Path) -> tuple[int, int, str]:
        """(width, height, format) from the file's header, refusing non-images and oversized photos.

        Only the header is read: a small file that decodes to billions of pixels is refused here,
        before it can take any memory.
        """
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    width, height, fmt = img.width, img.height, img.format or ""
        except Image.DecompressionBombError:
            raise RequestError(413, self._too_many_pixels_message()) from None
        except UnidentifiedImageError:
            empty = path.stat().st_size == 0
            raise RequestError(400, "empty file" if empty else "not an image (or a format Pillow cannot read)") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise RequestError(400, f"corrupt image ({exc})") from None
        if width * height > self.settings.max_pixels:
            raise RequestError(413, self._too_many_pixels_message(width, height))
        return width, height, fmt

    def _too_many_pixels_message(self, width: int = 0, height: int = 0) -> str:
        found = f" ({width}×{height} = {width * height / 1e6:.1f} MP)" if width else ""
        return f"photo too large{found}; this server accepts at most {self.settings.max_megapixels:g} megapixels"

    def colorize_to_png(self, source: Path, size: int, out: Path, preview: Path | None = None) -> tuple[int, int]:
        """Colorize ``source`` and write it to ``out`` as PNG; returns its (width, height).

        ``preview`` also gets the photo itself as a PNG, for uploads a browser cannot show (TIFF, BMP...).
        Runs in a worker thread while the caller holds a limiter slot.
        """
        started = time.perf_counter()
        try:
            photo = read_photo(source)
            image = self.colorizer.colorize(photo, size=size)
        except PhotoError as exc:
            raise RequestError(400, f"cannot read this photo: {exc.reason}") from None
        image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        if preview is not None:
            _browser_image(photo.image).save(preview, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        log.info("colorized %d×%d at size %d in %.2f s", image.width, image.height, size, time.perf_counter() - started)
        return image.size

    async def colorize(self, source: Path, size: int, out: Path, preview: Path | None = None) -> tuple[int, int]:
        """:meth:`colorize_to_png` in a worker thread, once a slot is free.

        The thread is not abandoned when the client goes away, so the slot is held until
        the work really stops and ``concurrency`` is never exceeded.
        """
        async with self.limiter.slot():
            return await anyio.to_thread.run_sync(self.colorize_to_png, source, size, out, preview)


def _browser_image(image: Image.Image) -> Image.Image:
    """A decoded photo in a mode PNG viewers agree on: 16-bit gray becomes 8-bit."""
    if image.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    return image


# --- the plain HTTP API ------------------------------------------------------------------

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


async def _receive_photo(request: Request, service: ColorizeService, dest: Path) -> int | None:
    """Stream the multipart upload into ``dest``; returns the requested ``size`` (``None``: default)."""
    settings = service.settings
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
            size_field = form.get("size")
            await anyio.to_thread.run_sync(_copy_upload, upload, dest, settings.max_upload_bytes)
    except (MultiPartException, HTTPException) as exc:  # the parser's complaints: bad boundary, too many parts
        raise RequestError(400, f"malformed multipart body ({getattr(exc, 'detail', None) or exc})") from None
    except ClientDisconnect:
        raise RequestError(400, "the client went away during the upload") from None
    return _parse_size(size_field)


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


def _png_response(path: Path) -> Response:
    """Stream ``path`` as ``image/png`` and make sure it is deleted whatever happens to the response.

    On POSIX the file is unlinked right after opening (its data lives until the handle closes),
    so not even a dropped connection leaves it on disk; elsewhere it goes when the stream ends.
    """
    handle = path.open("rb")
    length = os.fstat(handle.fileno()).st_size
    unlinked = _try_unlink(path)

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := handle.read(1 << 20):
                yield chunk
        finally:
            handle.close()
            if not unlinked:
                _try_unlink(path)

    return StreamingResponse(chunks(), media_type="image/png", headers={"Content-Length": str(length)})


def _try_unlink(path: Path) -> bool:
    try:
        path.unlink(missing_ok=True)
        return True
    except OSError:  # Windows: still open
        return False


def _add_api_routes(api: FastAPI, service: ColorizeService) -> None:
    """``POST /api/colorize`` and ``GET /api/health``."""

    @api.post("/api/colorize", response_class=Response)
    async def colorize_endpoint(request: Request) -> Response:
        """Colorize one photo: multipart field ``image`` (and optional ``size``) -> ``image/png``."""
        upload = service.temp_path(".upload")
        out = service.temp_path(".png")
        try:
            size = await _receive_photo(request, service, upload)
            render = service.render_size(size)
            await anyio.to_thread.run_sync(service.inspect, upload)
            await service.colorize(upload, render, out)
            return _png_response(out)
        except RequestError as exc:
            log.info("POST /api/colorize -> %d: %s", exc.status, exc.message)
            headers = {"Retry-After": "30"} if exc.status == 503 else None
            return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)
        except Exception:  # a bug or an exhausted machine: still JSON, and the details in the log only
            log.exception("POST /api/colorize failed")
            return JSONResponse({"error": "internal error; see the server's log"}, status_code=500)
        finally:
            upload.unlink(missing_ok=True)
            _try_unlink(out)  # after an error; a response in flight already unlinked it (or will)

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


# --- the Gradio page -------------------------------------------------------------------

def example_photos() -> list[Path]:
    """The bundled example photos (see ``assets/examples/LICENSE.md``)."""
    return sorted(EXAMPLES_DIR.glob("*.jpg"))


def _with_plain_errors(photo: gr.Image) -> gr.Image:
    """Make ``photo`` answer an unreadable upload with a plain message, and return it.

    Gradio opens the upload's header before our function runs; its own error for a file that
    is not an image names its internals and the server's cache path. The instance's
    ``preprocess`` is wrapped rather than subclassed: Gradio writes a ``.pyi`` stub beside
    any module that defines a component class.
    """
    preprocess = photo.preprocess

    def plain_preprocess(payload: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return preprocess(payload)
        except Image.DecompressionBombError:
            raise gr.Error("photo too large: it has too many pixels for this server", print_exception=False) from None
        except UnidentifiedImageError:
            raise gr.Error("not an image (or a format Pillow cannot read)", print_exception=False) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise gr.Error(f"corrupt image ({exc.__class__.__name__})", print_exception=False) from None

    photo.preprocess = plain_preprocess  # type: ignore[method-assign]
    return photo


def _page_handler(service: ColorizeService) -> Callable[[str | None, float | None], Awaitable[tuple[Any, Any]]]:
    """The page's (and the Gradio API's) function: photo path + size -> ((before, after), PNG path).

    Errors become a ``gr.Error`` message; the page stays usable for the next photo.
    """

    async def colorize_photo(photo: str | None, size: float | None = None) -> tuple[Any, Any]:
        if photo is None:
            return None, None
        source = Path(photo)
        # Results go into Gradio's own cache, which serves them and sweeps them (GRADIO_CACHE_SWEEP).
        out = Path(gr.utils.get_upload_folder()) / uuid.uuid4().hex / "colorized.png"
        out.parent.mkdir(parents=True)
        try:
            render = service.render_size(None if size is None else int(size))
            _, _, fmt = await anyio.to_thread.run_sync(service.inspect, source)
            before = source if fmt in BROWSER_FORMATS else out.with_name("photo.png")
            await service.colorize(source, render, out, preview=None if before == source else before)
        except RequestError as exc:
            shutil.rmtree(out.parent, ignore_errors=True)
            log.info("page: refused a photo: %s", exc.message)
            raise gr.Error(exc.message, print_exception=False) from None
        return (str(before), str(out)), str(out)

    return colorize_photo


def build_page(service: ColorizeService) -> gr.Blocks:
    """The Gradio page: photo in, before/after slider and a PNG download out."""
    colorizer = service.colorizer
    step = colorizer.size_multiple
    with gr.Blocks(title="colorgan: colorize old photos", analytics_enabled=False, delete_cache=GRADIO_CACHE_SWEEP) as page:
        gr.Markdown(
            "# colorgan\nDrop, paste or pick a black-and-white photo: it comes back in color at its full "
            f"resolution. Up to {service.settings.max_upload_mb:g} MB and {service.settings.max_megapixels:g} megapixels."
        )
        with gr.Row(equal_height=False):
            with gr.Column():
                photo = _with_plain_errors(gr.Image(
                    label="Black-and-white photo", type="filepath", image_mode=None,
                    sources=["upload", "clipboard"], elem_id="photo",
                ))
                size = gr.Slider(
                    minimum=step * math.ceil(64 / step), maximum=service.max_render_size, step=step, value=colorizer.size,
                    label="Render size", info="The resolution the model sees: its training size is usually best; larger gives finer color edges but can over-saturate.",
                    elem_id="render-size",
                )
                button = gr.Button("Colorize", variant="primary", elem_id="colorize")
            with gr.Column():
                compare = gr.ImageSlider(
                    label="Before / after (drag the slider)", type="filepath", format="png",
                    interactive=False, elem_id="compare", buttons=["fullscreen"],
                )
                download = gr.DownloadButton("Download full-resolution PNG", elem_id="download")
        handler = _page_handler(service)
        gr.on(
            triggers=[photo.upload, button.click], fn=handler, inputs=[photo, size],
            outputs=[compare, download], api_name="colorize", trigger_mode="always_last",
        )
        photo.clear(lambda: (None, None), outputs=[compare, download], api_visibility="private")
        gr.Examples(
            examples=[[str(p)] for p in example_photos()], inputs=[photo], label="Try an example",
            fn=handler, outputs=[compare, download], run_on_click=True, cache_examples=False,
            api_visibility="private",
        )
    page.queue(max_size=service.settings.max_queue, default_concurrency_limit=service.settings.concurrency)
    return page


# --- the app ---------------------------------------------------------------------------

def create_app(settings: ServeSettings, colorizer: Colorizer | None = None) -> FastAPI:
    """The whole server: the API routes, then the Gradio page mounted at ``/``.

    ``colorizer`` reuses an already loaded model (tests); by default ``settings.model`` is loaded.
    """
    settings.validate()
    if colorizer is None:
        colorizer = Colorizer.from_pretrained(settings.model, device=settings.device, backend=settings.backend)
    service = ColorizeService(colorizer, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()

    api = FastAPI(title="colorgan", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    _add_api_routes(api, service)  # before the mount at "/", which would otherwise shadow them
    return gr.mount_gradio_app(
        api, build_page(service), path="/",
        max_file_size=settings.max_upload_bytes,
        allowed_paths=[str(EXAMPLES_DIR)],
        footer_links=["api"],
        run_history=False,  # keep no record of people's photos
        ssr_mode=False,
        show_error=True,
    )


def url_for(host: str, port: int) -> str:
    """The address to print: IPv6 literals in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"http://{host}:{port}/"


def serve(settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 7860,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Load the model, build the app and run it with uvicorn until interrupted.

    ``on_ready`` gets the URL once the model is loaded, just before the server starts listening.
    """
    import uvicorn

    app = create_app(settings)
    if not _is_loopback(host):
        log.warning("listening on %s: the server is reachable from other machines and has no login", host)
    if on_ready is not None:
        on_ready(url_for(host, port))
    uvicorn.run(
        app, host=host, port=port, log_config=None, access_log=False,
        # Connections beyond this get 503 from uvicorn itself: slow clients cannot pile up without bound.
        limit_concurrency=max(64, 4 * (settings.concurrency + settings.max_queue)),
        timeout_keep_alive=5,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

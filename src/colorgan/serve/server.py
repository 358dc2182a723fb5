"""Putting it together: the API routes and the Gradio page on one FastAPI app, run by uvicorn."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable

import gradio as gr
from fastapi import FastAPI

from ..infer import Colorizer
from .api import add_api_routes
from .page import EXAMPLES_DIR, build_page
from .service import ColorizeService
from .settings import ServeSettings

log = logging.getLogger(__name__)


def create_app(settings: ServeSettings, colorizer: Colorizer | None = None) -> FastAPI:
    """The whole server: the API routes, then the Gradio page mounted at ``/``.

    ``colorizer`` reuses an already loaded model (tests); by default ``settings.model`` is loaded.
    """
    settings.validate()
    if colorizer is None:
        colorizer = settings.load_colorizer()
    service = ColorizeService(colorizer, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()

    api = FastAPI(title="colorgan", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    add_api_routes(api, service)  # before the mount at "/", which would otherwise shadow them
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

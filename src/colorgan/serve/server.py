"""Putting it together: the API routes and the Gradio page on one FastAPI app, run by uvicorn."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable

import gradio as gr
from fastapi import FastAPI

from colorgan.errors import UserError
from colorgan.colorizer import Colorizer
from colorgan.serve.api import add_api_routes
from colorgan.serve.connections import GuardedH11Protocol
from colorgan.serve.gradio_guard import GradioGuard
from colorgan.serve.guided import PhotoStore, add_guided_routes
from colorgan.serve.page import EXAMPLES_DIR, build_page
from colorgan.serve.service import ColorizeService
from colorgan.serve.settings import ServeSettings

log = logging.getLogger(__name__)

GRADIO_FOLDER = "gradio"


def create_app(settings: ServeSettings, colorizer: Colorizer | None = None) -> FastAPI:
    """The whole server: the API routes, the hint editor at ``/guide``, then the Gradio page mounted at ``/``,
    all behind :class:`~.gradio_guard.GradioGuard`.

    ``colorizer`` reuses an already loaded model (tests); by default ``settings.model`` is loaded.
    """
    settings.validate()
    if colorizer is None:
        colorizer = settings.load_colorizer()
    service = ColorizeService(colorizer, settings)
    # Gradio's uploads and results go inside the server's own folder, so those of a server killed
    # with kill -9 are removed with it at the next start. Gradio reads this when the page is built.
    gradio_folder = service.workdir / GRADIO_FOLDER
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_folder)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()

    api = FastAPI(title="colorgan", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    add_api_routes(api, service)  # before the mount at "/", which would otherwise shadow them
    add_guided_routes(api, service, PhotoStore())
    app = gr.mount_gradio_app(
        api, build_page(service), path="/",
        max_file_size=settings.max_upload_bytes,
        allowed_paths=[str(EXAMPLES_DIR)],
        footer_links=["api"],
        run_history=False,  # keep no record of people's photos
        ssr_mode=False,
        show_error=True,
    )
    app.add_middleware(GradioGuard, service=service, folder=gradio_folder)
    return app


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
    """Claim the port, load the model, build the app and run it with uvicorn until interrupted.

    The port is bound and listening before the model loads, so a taken port is a
    :class:`~colorgan.errors.UserError` at once (exit 2), and ``on_ready`` gets the URL only
    when connections to it are accepted (uvicorn serves them from that same socket).
    """
    import uvicorn

    settings.validate()
    sock = listening_socket(host, port)
    try:
        app = create_app(settings)
        if not _is_loopback(host):
            log.warning("listening on %s: the server is reachable from other machines and has no login", host)
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False,
            # Slow or idle clients are bounded per client and in all, and time out (see .connections);
            # uvicorn's own limit_concurrency would count idle connections and answer 503 to everyone.
            http=GuardedH11Protocol.configured(body_timeout_s=settings.upload_timeout_s,
                                               trusted_proxies=settings.trusted_networks),
            proxy_headers=False,  # X-Forwarded-For is the protocol's to judge: from trusted_proxies only
            timeout_keep_alive=5,
            ws="none",  # nothing here speaks WebSocket (Gradio streams over HTTP), so no connection escapes the guard
        )
        if on_ready is not None:
            on_ready(url_for(host, port))
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, made as uvicorn makes its own; a port
    in use or an address this machine cannot listen on is a :class:`UserError`."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once over TIME_WAIT
        sock.bind((host, port))
        sock.listen(backlog)
    except (OSError, OverflowError) as exc:
        sock.close()
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            raise UserError(f"port {port} is already in use; pick another with --port") from None
        if getattr(exc, "errno", None) == errno.EACCES:
            raise UserError(f"no permission to listen on port {port}; pick one above 1023 with --port") from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UserError(f"cannot listen on {url_for(host, port)}: {reason}") from None
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

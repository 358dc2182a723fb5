"""Gradio's routes held to the server's rules: its upload route takes photos only, a limited number, and no answer names a server path.

Gradio's ``POST /gradio_api/upload`` stores any files, any number per request, each up to its
``max_file_size``, for the lifetime of its cache (:data:`~.page.GRADIO_CACHE_SWEEP`), and every
answer of Gradio's (the upload's, the page's config, the results' event stream) spells out the
absolute path of its folder. :class:`GradioGuard`, an ASGI middleware in front of the app:

- takes an upload only with a Content-Length within the upload cap (411, 413) and at most
  :data:`UPLOADS_PER_CLIENT` per client in the cache's lifetime (429 with ``Retry-After``;
  refused ones count too, so that is also all one client can make Gradio write), and keeps it
  only if it is one file that the header check of :meth:`~.service.ColorizeService.inspect`
  accepts (else 400 or 413, and it is deleted at once);
- caps the JSON bodies of Gradio's API (413), and refuses any that names a file outside Gradio's
  folder (400): Gradio reads whatever path a request gives it, and would copy it into its cache,
  where anyone could download it;
- writes Gradio's folder as :data:`PUBLIC_FOLDER` in every JSON, HTML and event-stream answer
  and turns that name back into the folder in the JSON bodies and ``file=`` paths of requests
  to Gradio's API, so the page and ``gradio_client`` work as before.

Refusals are the server's one-line JSON errors; the page shows them in its toast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import deque
from pathlib import Path
from urllib.parse import quote

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from colorgan.errors import UserError, parse_json
from colorgan.serve.page import GRADIO_CACHE_SWEEP
from colorgan.serve.service import ColorizeService
from colorgan.serve.settings import RequestError
from colorgan.serve.uploads import MAX_JSON_BYTES, check_declared_size, json_too_large

log = logging.getLogger(__name__)

GRADIO_API = "/gradio_api/"
UPLOAD_ROUTE = "/gradio_api/upload"
FILE_ROUTE = "/gradio_api/file="
#: Gradio's folder as its answers show it: no server path, and one no request can mean otherwise.
PUBLIC_FOLDER = "/gradio-cache"
#: Uploads one client may keep in Gradio's cache (each a photo of at most the upload cap).
UPLOADS_PER_CLIENT = 20
#: Answers that may name the folder: Gradio's config (also inlined in its page), results, errors.
MASKED_TYPES = ("application/json", "text/event-stream", "text/html")
#: Clients remembered before those with no upload in the window are forgotten.
QUOTA_CLIENTS = 4096


class UploadQuota:
    """At most ``count`` uploads per client in any ``window_s`` seconds, counted as they start."""

    def __init__(self, count: int, window_s: float) -> None:
        self.count, self.window_s = count, window_s
        self._times: dict[str, deque[float]] = {}

    def take(self, client: str) -> None:
        """Count one upload of ``client``'s, or refuse it (429) with the seconds until the oldest one expires."""
        now = time.monotonic()
        if len(self._times) > QUOTA_CLIENTS:
            self._times = {c: t for c, t in self._times.items() if now - t[-1] < self.window_s}
        times = self._times.setdefault(client, deque())
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if len(times) >= self.count:
            wait = math.ceil(self.window_s - (now - times[0]))
            raise RequestError(429, f"{self.count} photos uploaded in {self.window_s / 60:g} minutes is the most this "
                                    f"server takes; try again in {math.ceil(wait / 60)} minutes", retry_after_s=wait)
        times.append(now)


class FolderMask:
    """``folder`` on the wire is :data:`PUBLIC_FOLDER`: hidden in answers, turned back in requests."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        in_json = json.dumps(self.folder, ensure_ascii=False)[1:-1].encode()
        self._spellings = (in_json, quote(self.folder).encode())  # as a JSON string, and in a URL
        self._in_requests = (b'"' + PUBLIC_FOLDER.encode() + b"/", b'"' + in_json + b"/")  # JSON strings that start with it

    def hide(self, data: bytes) -> bytes:
        for spelling in self._spellings:
            data = data.replace(spelling, PUBLIC_FOLDER.encode())
        return data

    def reveal_json(self, body: bytes) -> bytes:
        return body.replace(*self._in_requests)

    def reveal_path(self, path: str) -> str:
        public = FILE_ROUTE + PUBLIC_FOLDER + "/"
        return FILE_ROUTE + self.folder + path[len(public) - 1:] if path.startswith(public) else path

    def hiding(self, send: Send) -> Send:
        """``send`` with the folder hidden in :data:`MASKED_TYPES`; a body with a Content-Length is held to fix it."""
        masked = False
        held: list[Message] = []

        async def hiding_send(message: Message) -> None:
            nonlocal masked
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                masked = headers.get("content-type", "").startswith(MASKED_TYPES) and "content-encoding" not in headers
                if masked and "content-length" in headers:
                    held.append(message)
                    return
            elif message["type"] == "http.response.body" and masked:
                if not held:  # a stream (Gradio's events come one message per chunk)
                    message = {**message, "body": self.hide(message.get("body", b""))}
                else:
                    held.append(message)
                    if message.get("more_body", False):
                        return
                    start, *parts = held
                    body = self.hide(b"".join(part.get("body", b"") for part in parts))
                    headers = MutableHeaders(raw=list(start["headers"]))
                    headers["content-length"] = str(len(body))
                    await send({**start, "headers": headers.raw})
                    message = {"type": "http.response.body", "body": body}
            await send(message)

        return hiding_send


class GradioGuard:
    """The middleware (see the module docstring); ``folder`` is Gradio's (``GRADIO_TEMP_DIR``)."""

    def __init__(self, app: ASGIApp, service: ColorizeService, folder: Path) -> None:
        self.app, self.service = app, service
        self.mask = FolderMask(folder)
        self.quota = UploadQuota(UPLOADS_PER_CLIENT, GRADIO_CACHE_SWEEP[1])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = self.mask.hiding(send)
        route = f"{scope['method']} {scope['path'][:80]}"
        try:
            if scope["path"].startswith(GRADIO_API):
                if (path := self.mask.reveal_path(scope["path"])) != scope["path"]:
                    scope["path"], scope["raw_path"] = path, quote(path).encode()
                if Headers(scope=scope).get("content-type", "").startswith("application/json"):
                    receive = await self._revealed_json(scope, receive)
            if scope["method"] == "POST" and scope["path"] == UPLOAD_ROUTE:
                self._admit_upload(scope)
                send = self._checking_upload(scope, receive, send, route)
            await self.app(scope, receive, send)
        except RequestError as exc:
            log.info("%s -> %d: %s", route, exc.status, exc.message)
            await exc.response()(scope, receive, send)

    async def _revealed_json(self, scope: Scope, receive: Receive) -> Receive:
        """Read a JSON body whole (at most :data:`MAX_JSON_BYTES`) with the folder's real name in it; a ``receive`` replaying it."""
        body = bytearray()
        while (message := await receive())["type"] == "http.request":
            body += message.get("body", b"")
            if len(body) > MAX_JSON_BYTES:
                raise json_too_large()
            if not message.get("more_body", False):
                revealed = self.mask.reveal_json(bytes(body))
                self._refuse_outside_files(revealed)
                message = {"type": "http.request", "body": revealed, "more_body": False}
                headers = MutableHeaders(scope=scope)
                headers["content-length"] = str(len(message["body"]))
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return message

        return replay

    def _refuse_outside_files(self, body: bytes) -> None:
        """Refuse a request to Gradio's API that names a file other than an upload in Gradio's own
        folder: Gradio would read any path it is given (and copy it where it can be downloaded)."""
        if b'"path"' not in body:
            return
        try:
            value = parse_json(body, source="the request body")
        except UserError as exc:
            raise RequestError(400, str(exc)) from None
        folder = Path(self.mask.folder).resolve()
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                path = item.get("path")
                if isinstance(path, str) and not Path(path).resolve().is_relative_to(folder):
                    raise RequestError(400, "a file must be uploaded first: the request names one that is not an upload of this server")
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)

    def _admit_upload(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        if "content-length" not in headers:
            raise RequestError(411, "send the upload with a Content-Length header")
        check_declared_size(headers, self.service.settings)
        self.quota.take(_client(scope))

    def _checking_upload(self, scope: Scope, receive: Receive, send: Send, route: str) -> Send:
        """``send`` for Gradio's upload answer: held until what it stored is checked, then passed on or refused."""
        held: list[Message] = []

        async def checking_send(message: Message) -> None:
            held.append(message)
            if message["type"] == "http.response.start" or message.get("more_body", False):
                return
            start, *parts = held
            try:
                if start["status"] == 200:
                    await self._check_stored([Path(p) for p in json.loads(b"".join(p.get("body", b"") for p in parts))])
            except RequestError as exc:
                log.info("%s -> %d: %s", route, exc.status, exc.message)
                await exc.response()(scope, receive, send)
                return
            for part in held:
                await send(part)

        return checking_send

    async def _check_stored(self, files: list[Path]) -> None:
        """Refuse (and delete) anything but one photo the server would take."""
        try:
            if len(files) != 1:
                raise RequestError(400, "upload one photo per request, as the multipart file field 'files'")
            await anyio.to_thread.run_sync(self.service.inspect, files[0])
        except RequestError:
            for file in files:
                self._remove(file)
            raise

    def _remove(self, file: Path) -> None:
        if Path(self.mask.folder) in file.parents:
            file.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                file.parent.rmdir()  # Gradio's folder for this content, if nothing else is in it


def _client(scope: Scope) -> str:
    return scope["client"][0] if scope.get("client") else ""

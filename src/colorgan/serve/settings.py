"""What ``colorgan serve`` is asked for, and the one way it refuses a request.

:class:`ServeSettings` is checked before any model is loaded; :class:`RequestError` carries an
HTTP status and a message worded for the person who sent the photo, which every front end
(the API's JSON, the page's toast) shows as is, and :meth:`RequestError.response` is the one
way it goes over HTTP, whichever layer refuses (the connection, Gradio's routes, the API).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from starlette.responses import JSONResponse

from colorgan.errors import UserError, check_range
from colorgan.colorizer import ModelOptions

#: Seconds a 503 asks the client to wait before trying again, unless it says otherwise.
RETRY_AFTER_S = 30

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@dataclass(frozen=True, kw_only=True)
class ServeSettings(ModelOptions):
    """What ``colorgan serve`` is asked for; :func:`~colorgan.serve.create_app` turns it into a running app."""

    max_upload_mb: float = 25.0
    max_megapixels: float = 50.0
    concurrency: int = 1
    max_queue: int = 32
    upload_timeout_s: float = 60.0
    #: Reverse proxies (addresses or networks, e.g. ``10.0.0.0/8``) whose ``X-Forwarded-For``
    #: names the client; from anyone else the header is ignored.
    trusted_proxies: tuple[str, ...] = ()

    def validate(self) -> None:
        """Refuse settings that would make a server that cannot work, before loading anything."""
        check_range("--concurrency", self.concurrency, low=1)
        check_range("--max-queue", self.max_queue, low=0)
        check_range("--max-upload-mb", self.max_upload_mb, above=0)
        check_range("--max-megapixels", self.max_megapixels, above=0)
        _ = self.trusted_networks  # parsing them refuses a malformed one now

    @property
    def trusted_networks(self) -> Networks:
        """``trusted_proxies`` parsed; one that is not an address or a network is a :class:`UserError`."""
        try:
            return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in self.trusted_proxies)
        except ValueError as exc:
            raise UserError(f"--trusted-proxy must be an IP address or network such as 10.0.0.0/8 ({exc})") from None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)


class RequestError(Exception):
    """A request we refuse: ``status`` is its HTTP status and ``message`` is shown to the user as is."""

    def __init__(self, status: int, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = RETRY_AFTER_S if retry_after_s is None and status == 503 else retry_after_s

    def response(self) -> JSONResponse:
        """The answer: one-line JSON ``{"error": message}``, with ``Retry-After`` when there is a time to wait."""
        headers = None if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)

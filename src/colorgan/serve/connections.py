"""Slow, idle and greedy clients cannot lock the server out: uvicorn's HTTP/1.1 protocol with deadlines and caps.

uvicorn (0.55, h11) never times out a request head or body, counts open connections rather
than requests, and answers over capacity (or invalid HTTP) in ways a client cannot act on.
:class:`GuardedH11Protocol` adds what is missing; every request passes its admission first.

- **Deadlines.** A request head must be in within ``HEADER_TIMEOUT_S`` of the connection or of
  a following request's first byte (trickling bytes do not extend it), or the connection is
  closed. A body must keep coming while the app waits for it: no progress for
  ``body_stall_s`` (``BODY_STALL_S``), or not all in within ``body_timeout_s`` (the upload
  timeout), is answered ``408`` and the connection closed. Time the app takes to read never
  counts, so a slow body costs only its own connection.
- **Who a client is.** The peer address; behind a reverse proxy listed in ``trusted_proxies``,
  the last address in ``X-Forwarded-For`` that is not a trusted proxy (each proxy appends the
  one it got the request from). The app's ``scope["client"]`` is that address too; the header
  from anyone else is ignored, so a client cannot pose as someone else.
- **Caps on what is really in flight.** At most ``max_per_client`` requests per client and
  ``max_connections`` in all are with the app at once (a request counts until the app is done
  with it); one more is answered ``503`` with ``Retry-After`` at once, and never dropped.
- **Caps on open connections**, so idle ones cannot use up file descriptors. One beyond
  ``max_per_client`` from a peer address (a trusted proxy's excepted) or ``max_connections`` in
  all pushes out the oldest connection with no request in progress: in all, any; per address,
  one that has sent something (a half-sent head, a kept-alive connection), as one that has sent
  nothing yet may be a burst's next request on its way. With none to push out, the newcomer
  stays: its request is admitted or refused like any other.
- Invalid HTTP (a head over h11's 16 KB, conflicting Content-Lengths...) is answered with the
  server's one-line JSON error instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter
from typing import Any

import h11
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from colorgan.serve.settings import Networks, RequestError

HEADER_TIMEOUT_S = 10.0
BODY_STALL_S = 5.0
MAX_PER_CLIENT = 32
MAX_CONNECTIONS = 512
#: What a 503 for capacity asks a client to wait: a stalled body is ended within BODY_STALL_S.
BUSY_RETRY_AFTER_S = 5


def _is_trusted(address: str, proxies: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str, headers: list[tuple[bytes, bytes]], proxies: Networks) -> str:
    """Who sent a request (see the module docstring): ``peer``, or behind trusted proxies the
    last ``X-Forwarded-For`` hop that is not one of them."""
    if not _is_trusted(peer, proxies):
        return peer
    hops = [hop.strip() for name, value in headers if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")]
    return next((hop for hop in reversed(hops) if hop and not _is_trusted(hop, proxies)), peer)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines, per-client admission and connection caps (see the module docstring)."""

    body_timeout_s = 60.0
    body_stall_s = BODY_STALL_S
    header_timeout_s = HEADER_TIMEOUT_S
    max_per_client = MAX_PER_CLIENT
    max_connections = MAX_CONNECTIONS
    trusted_proxies: Networks = ()
    #: Requests with the app, by client: shared by the connections of one :meth:`configured` class.
    in_flight: Counter[str] = Counter()

    @classmethod
    def configured(cls, *, body_timeout_s: float, body_stall_s: float = BODY_STALL_S,
                   header_timeout_s: float = HEADER_TIMEOUT_S, max_per_client: int = MAX_PER_CLIENT,
                   max_connections: int = MAX_CONNECTIONS, trusted_proxies: Networks = ()) -> type[GuardedH11Protocol]:
        """A subclass with these limits and its own count of requests in flight, to pass as uvicorn's ``http``."""
        return type(cls.__name__, (cls,), {
            "body_timeout_s": body_timeout_s, "body_stall_s": body_stall_s, "header_timeout_s": header_timeout_s,
            "max_per_client": max_per_client, "max_connections": max_connections,
            "trusted_proxies": tuple(trusted_proxies), "in_flight": Counter(),
        })

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app, self.app = self.app, self._admit  # uvicorn runs self.app for every request
        self._deadline: asyncio.TimerHandle | None = None
        self._opened = time.monotonic()
        self._heard = False  # any byte received

    # --- uvicorn's hooks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._update_deadline()
        self._make_room()

    def data_received(self, data: bytes) -> None:
        self._heard = True
        super().data_received(data)
        self._update_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """Invalid HTTP: the one-line JSON error (uvicorn's own is plain text), then close."""
        response = RequestError(400, "not a valid HTTP request (a malformed or over-long head, or a bad "
                                     "Content-Length)").response()
        headers = [*response.raw_headers, (b"connection", b"close")]
        events = (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=response.body),
                  h11.EndOfMessage())
        for event in events:
            self.transport.write(self.conn.send(event))
        self.transport.close()

    # --- admission: who, whether there is room, the body's pace -----------------------------

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = self._address()
        client = client_address(peer, scope["headers"], self.trusted_proxies)
        if client != peer:
            scope["client"] = (client, 0)
        request = f"{scope['method']} {scope['path'][:80]} from {client}"
        refusal = self._refusal(client)
        if refusal is not None:
            self.logger.info("%s -> 503: %s", request, refusal)
            await RequestError(503, refusal, retry_after_s=BUSY_RETRY_AFTER_S).response()(scope, receive, send)
            return
        self.in_flight[client] += 1
        try:
            await self._app(scope, *self._paced(scope, request, receive, send))
        finally:
            self.in_flight[client] -= 1
            if not self.in_flight[client]:
                del self.in_flight[client]

    def _refusal(self, client: str) -> str | None:
        if self.in_flight[client] >= self.max_per_client:
            return f"{self.in_flight[client]} requests from your address are in progress already; try again in a few seconds"
        if sum(self.in_flight.values()) >= self.max_connections:
            return "the server is at capacity; try again in a few seconds"
        return None

    def _paced(self, scope: Scope, request: str, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """``receive`` and ``send`` for the app: a body that stalls or takes too long is answered 408 and ended."""
        deadline = self.loop.time() + self.body_timeout_s
        body_in = started = ended = False

        async def paced_receive() -> Message:
            nonlocal body_in, ended
            if ended:
                return {"type": "http.disconnect"}
            if body_in:
                return await receive()  # an app listening for a disconnect may take all the time it likes
            left = deadline - self.loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, min(self.body_stall_s, left)))
            except TimeoutError:
                ended = True
                reason = (f"the upload stalled: nothing arrived for {self.body_stall_s:g} s" if left > self.body_stall_s
                          else f"the upload took longer than {self.body_timeout_s:g} s")
                self.logger.info("%s -> 408: %s", request, reason)
                if not started:
                    response = RequestError(408, reason).response()
                    response.headers["Connection"] = "close"
                    await response(scope, receive, send)
                self.transport.close()
                return {"type": "http.disconnect"}
            body_in = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def paced_send(message: Message) -> None:
            nonlocal started
            if not ended:  # after a 408 the app's own answer has nowhere to go
                started = True
                await send(message)

        return paced_receive, paced_send

    # --- deadlines for the head -----------------------------------------------------------

    def _busy(self) -> bool:
        """A request is in progress: its head has arrived and its response is not complete."""
        return self.cycle is not None and not self.cycle.response_complete

    def _update_deadline(self) -> None:
        if self.transport is None or self.transport.is_closing() or self._busy():
            self._disarm()  # a request's body and its answer are paced by _paced and the app
        elif self.timeout_keep_alive_task is not None:
            self._disarm()  # idle between requests: uvicorn's keep-alive timeout applies
        elif self._deadline is None:  # a deadline, not an idle timer: more bytes do not extend it
            self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport is not None and not self.transport.is_closing():
            self.logger.info("closing a connection from %s: request head too slow", self._address())
            self.transport.close()

    # --- caps on open connections ---------------------------------------------------------

    def _address(self) -> str:
        return self.client[0] if self.client else ""

    def _make_room(self) -> None:
        """Keep within the connection caps by closing the oldest connection with no request in progress."""
        ours = [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c.transport is not None
                and not c.transport.is_closing()]
        groups = [(ours, self.max_connections, False)]
        if not _is_trusted(self._address(), self.trusted_proxies):
            groups.insert(0, ([c for c in ours if c._address() == self._address()], self.max_per_client, True))
        for group, cap, heard_only in groups:
            idle = [c for c in group if c is not self and not c._busy() and (c._heard or not heard_only)]
            if len(group) > cap and idle:
                min(idle, key=lambda c: c._opened).transport.close()
                return  # one in, one out: within the other cap too


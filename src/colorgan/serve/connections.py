"""Slow and idle clients cannot lock the server: uvicorn's HTTP/1.1 protocol with deadlines and caps.

uvicorn (0.54, h11) never times out a connection that has not finished its request headers,
and its ``limit_concurrency`` counts open connections, so 131 sockets that send half a header
once turned every request into a 503, ``/api/health`` included. :class:`GuardedH11Protocol`
adds what is missing:

- a deadline for the request head (``HEADER_TIMEOUT_S`` from the connection or from the first
  byte of a following request; trickling bytes do not extend it) and one for the body
  (``body_timeout_s``, the upload timeout); a connection past its deadline is closed;
- at most ``MAX_PER_CLIENT`` connections per client address and ``MAX_CONNECTIONS`` in all: one
  beyond either pushes out the oldest connection that has no request in progress (an idle
  keep-alive or a half-sent head), and is itself closed only when every other one is busy.

So the server needs no connection-counting 503: the colorization queue bounds the real work.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_PER_CLIENT = 32
MAX_CONNECTIONS = 512


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines for the request head and body, and connection caps."""

    body_timeout_s = 60.0
    header_timeout_s = HEADER_TIMEOUT_S
    max_per_client = MAX_PER_CLIENT
    max_connections = MAX_CONNECTIONS

    @classmethod
    def configured(cls, *, body_timeout_s: float, header_timeout_s: float = HEADER_TIMEOUT_S,
                   max_per_client: int = MAX_PER_CLIENT, max_connections: int = MAX_CONNECTIONS) -> type[GuardedH11Protocol]:
        """A subclass with these limits, to pass as uvicorn's ``http``."""
        return type(cls.__name__, (cls,), {"body_timeout_s": body_timeout_s, "header_timeout_s": header_timeout_s,
                                            "max_per_client": max_per_client, "max_connections": max_connections})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""  # "head", "body" or "" (no deadline of ours)
        self._opened = time.monotonic()

    # --- uvicorn's hooks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head", self.header_timeout_s)
        self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._update_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # --- deadlines ------------------------------------------------------------------------

    def _busy(self) -> bool:
        """A request is in progress: its head has arrived and its response is not complete."""
        return self.cycle is not None and not self.cycle.response_complete

    def _update_deadline(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self._disarm()
        elif self._busy():
            if self.conn.their_state is h11.SEND_BODY:
                self._arm("body", self.body_timeout_s)
            else:
                self._disarm()  # the whole request is in: the app may take its time
        elif self.timeout_keep_alive_task is not None:
            self._disarm()  # idle between requests: uvicorn's keep-alive timeout applies
        else:
            self._arm("head", self.header_timeout_s)  # part of a head, or nothing yet

    def _arm(self, phase: str, seconds: float) -> None:
        if self._phase == phase:
            return  # a deadline, not an idle timer: more bytes do not extend it
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = ""

    def _expire(self) -> None:
        self._deadline = None
        self._phase = ""
        if self.transport is not None and not self.transport.is_closing():
            self.logger.info("closing a connection from %s: request %s too slow", self._address(), "body" if self._busy() else "head")
            self.transport.close()

    # --- caps -----------------------------------------------------------------------------

    def _address(self) -> str:
        return self.client[0] if self.client else ""

    def _make_room(self) -> None:
        """Keep within the caps by closing the oldest connection that has no request in progress."""
        ours = [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c.transport is not None
                and not c.transport.is_closing()]
        same = [c for c in ours if c._address() == self._address()]
        for group, cap in ((same, self.max_per_client), (ours, self.max_connections)):
            if len(group) <= cap:
                continue
            idle = sorted((c for c in group if c is not self and not c._busy()), key=lambda c: c._opened)
            victim = idle[0] if idle else self
            victim.transport.close()
            if victim is self:
                return

"""Admission control: how many photos are colorized at once and how many may wait.

The page and the API share one :class:`Limiter`, so the two together never run more than
``concurrency`` colorizations, and a burst beyond the queue is refused (503) instead of
holding its uploads in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from colorgan.serve.settings import RequestError


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

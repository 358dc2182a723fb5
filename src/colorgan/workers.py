"""Worker threads, one rule each: the process's compute pool for short tasks that split one
photo's work (sized once, to the cores this process may use), and channels between the
long-lived stages of a pipeline (a video's decoder, the model, its encoder).

Pillow's codecs, zlib, NumPy and the model runtimes release the GIL, so threads keep every core
busy without copying pixels between processes. A folder job's reading and saving stages are
futures on executors of their own (:mod:`colorgan.colorize.runner`): they are bounded by the
job, not by the pool.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any


@functools.cache
def cores() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@functools.cache
def compute_pool() -> ThreadPoolExecutor:
    """The one pool of the process for short, independent tasks (the stripes of a photo's
    recombination). Its tasks never wait for one another, so it cannot deadlock; long-lived
    stages do not belong in it (they would hold its threads)."""
    return ThreadPoolExecutor(cores(), thread_name_prefix="colorgan-compute")


class Closed(Exception):
    """The channel was closed: the other side has given up (or finished early)."""


class Channel:
    """A bounded first-in first-out channel between two pipeline threads that either side can
    close: a :meth:`put` or :meth:`get` blocked on it then raises :class:`Closed` at once, so no
    thread ever waits on one that has stopped (no polling, no timeouts)."""

    def __init__(self, size: int) -> None:
        self._items: deque[Any] = deque()
        self._size = size
        self._changed = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> None:
        """Hand on ``item``, waiting while the channel is full."""
        with self._changed:
            while len(self._items) >= self._size and not self._closed:
                self._changed.wait()
            if self._closed:
                raise Closed
            self._items.append(item)
            self._changed.notify_all()

    def get(self) -> Any:
        """The next item, waiting while there is none."""
        with self._changed:
            while not self._items and not self._closed:
                self._changed.wait()
            if self._closed:
                raise Closed
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    def close(self) -> None:
        """Stop the channel: every blocked and later :meth:`put` and :meth:`get` raises :class:`Closed`."""
        with self._changed:
            self._closed = True
            self._items.clear()
            self._changed.notify_all()

"""Where the command line's messages go: stderr, through rich's console and log handler, each made
when first used (rich costs ~20 ms to import, and an ordinary photo job prints at most one line)."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def stderr_console() -> Console:
    """The process's rich console on stderr (it writes to whatever ``sys.stderr`` is at the time)."""
    from rich.console import Console

    return Console(stderr=True)


class DeferredConsole:
    """:func:`stderr_console`, made when something is first printed or drawn through it: a job
    that says nothing never imports rich. Attributes and ``with`` go to the console itself."""

    def __getattr__(self, name: str) -> Any:
        return getattr(stderr_console(), name)

    def __enter__(self) -> Console:
        return stderr_console().__enter__()

    def __exit__(self, *exc: Any) -> None:
        stderr_console().__exit__(*exc)


def setup_logging(quiet: bool = False) -> None:
    """Log records (warnings only, with ``quiet``) to stderr through rich, formatted as rich formats them."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[_RichOnFirstRecord()], force=True)


class _RichOnFirstRecord(logging.Handler):
    """rich's log handler, made on the first record that reaches it."""

    def emit(self, record: logging.LogRecord) -> None:
        _rich_handler().emit(record)


@functools.cache
def _rich_handler() -> logging.Handler:
    from rich.logging import RichHandler

    return RichHandler(console=stderr_console(), show_path=False, show_time=False, markup=False)

"""The ``colorgan`` command's entry point: every refusal as one ``error: ...`` line on stderr and
exit code 2, and a start that costs only what the command uses.

An ordinary ``colorgan colorize`` (its flags read by :func:`colorgan.flags.parse_plainly`) and
``colorgan --version`` run without Typer, rich, click or pydantic, about a tenth of a second that
a photo does not need; every other command line, ``--help`` and every mistake in one go to Typer
(:mod:`colorgan.commands`), which says what is wrong.
"""

from __future__ import annotations

import os
import sys

# OpenMP threads that sleep instead of spin while waiting: several times faster whenever other
# processes share the cores (a laptop, a server with other jobs), about the same on an idle one.
# Must be set before torch is first imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from colorgan import __version__
from colorgan.errors import UserError, extra_of_module, install_line, one_line
from colorgan.flags import COLORIZE, parse_plainly


def main() -> None:
    """Console-script entry point."""
    try:
        code = _run(sys.argv[1:])
    except UserError as exc:
        _refuse(f"error: {one_line(str(exc))}", 2)
    except ModuleNotFoundError as exc:  # a path that needs an extra, reached without it
        extra = extra_of_module(exc.name or "")
        if extra is None:
            raise
        _refuse(f"error: this needs {exc.name}, which this install lacks: {install_line(extra)}", 2)
    except KeyboardInterrupt:
        _refuse("interrupted", 130)
    if code:
        sys.exit(code)


def _run(args: list[str]) -> int:
    """The command's exit code: the plain start where it applies, else Typer's."""
    if args == ["--version"]:
        print(f"colorgan {__version__}")
        return 0
    values = parse_plainly(args[1:], COLORIZE) if args[:1] == ["colorize"] else None
    if values is not None:
        from colorgan.colorize.command import colorize

        return colorize(values)
    from colorgan.commands import run_app

    return run_app()


def _refuse(line: str, code: int) -> None:
    print(line, file=sys.stderr)
    sys.exit(code)

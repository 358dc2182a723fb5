"""The exceptions that mean "the user asked for something we cannot do"."""


class UserError(Exception):
    """Bad input or options: the CLI prints the message as one line and exits with code 2."""


class PhotoError(UserError):
    """One photo cannot be read or written; ``source`` names it and ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class PhotoTooLarge(PhotoError):
    """A photo refused as a possible decompression bomb: too many pixels (a server answers 413)."""

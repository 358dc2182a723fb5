"""What ``colorgan serve`` is asked for, and the one way it refuses a request.

:class:`ServeSettings` is checked before any model is loaded; :class:`RequestError` carries an
HTTP status and a message worded for the person who sent the photo, which every front end
(the API's JSON, the page's toast) shows as is.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from ..infer import ModelOptions


@dataclass(frozen=True, kw_only=True)
class ServeSettings(ModelOptions):
    """What ``colorgan serve`` is asked for; :func:`~colorgan.serve.create_app` turns it into a running app."""

    max_upload_mb: float = 25.0
    max_megapixels: float = 50.0
    concurrency: int = 1
    max_queue: int = 32
    upload_timeout_s: float = 60.0

    def validate(self) -> None:
        """Refuse settings that would make a server that cannot work, before loading anything."""
        if self.concurrency < 1:
            raise UserError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_queue < 0:
            raise UserError(f"--max-queue must be 0 or more, got {self.max_queue}")
        if not self.max_upload_mb > 0:
            raise UserError(f"--max-upload-mb must be positive, got {self.max_upload_mb}")
        if not self.max_megapixels > 0:
            raise UserError(f"--max-megapixels must be positive, got {self.max_megapixels}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)


class RequestError(Exception):
    """A request we refuse: ``status`` is its HTTP status and ``message`` is shown to the user as is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

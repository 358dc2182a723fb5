"""The exceptions that mean "the user asked for something we cannot do", and the one refusal
for what needs an extra (``train``: PyTorch; ``video``: PyAV and OpenCV) in an install without it."""

import importlib.util

# What to run to get PyTorch and the libraries built on it.
TRAIN_EXTRA = "pip install 'colorgan[train]'"
# What to run to get PyAV (FFmpeg) and OpenCV, which videos need.
VIDEO_EXTRA = "pip install 'colorgan[video]'"


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


def torch_available() -> bool:
    """Whether PyTorch (the ``train`` extra) is installed."""
    return importlib.util.find_spec("torch") is not None


def require_torch(what: str) -> None:
    """Refuse, in one line that says what to install, what needs PyTorch when it is missing."""
    if not torch_available():
        raise UserError(f"{what} needs PyTorch, which this install lacks: {TRAIN_EXTRA}")


def require_video(what: str) -> None:
    """Refuse, in one line that says what to install, video work in an install without the ``video`` extra."""
    missing = [name for name in ("av", "cv2") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"{what} needs PyAV and OpenCV, which this install lacks: {VIDEO_EXTRA}")

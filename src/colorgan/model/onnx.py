"""The ONNX Runtime backend: a generator exported by ``colorgan export`` run on the CPU, with no PyTorch.

The ``.onnx`` file is self-describing: its metadata holds the model.json content, the
generator's size multiple and the SHA-256 of the weights it was exported from. Batch,
height and width are dynamic. The input is ``l`` (normalized L*), plus ``cond`` for a
generator with conditioning channels; the output is ``ab``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from colorgan.errors import UserError, parse_json
from colorgan.model.files import model_json_problem
from colorgan.model.session import new_session

log = logging.getLogger(__name__)

META_KEY = "colorgan"
MULTIPLE_KEY = "size_multiple"
SOURCE_KEY = "weights_sha256"
PRECISION_KEY = "precision"  # "int8" in a model.int8.onnx (colorgan.model.quantize); absent: fp32


class OnnxModel:
    """A generator run by ONNX Runtime on the CPU: normalized L* (B, 1, S, S) float32 and optional
    conditioning (B, C, S, S) in, normalized ab (B, 2, S, S) out, as NumPy arrays."""

    def __init__(self, *, model: bytes | str, source: str) -> None:
        try:
            self._session = new_session(model)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception directly
            raise UserError(f"cannot load ONNX model {source}: {_first_line(exc)}") from None
        props = self._session.get_modelmeta().custom_metadata_map
        if META_KEY not in props or MULTIPLE_KEY not in props:
            raise UserError(f"{source} was not written by `colorgan export onnx` (no colorgan metadata)")
        try:
            self.meta: dict[str, Any] = parse_json(props[META_KEY], source=f"{source}'s colorgan metadata")
            self.size_multiple = int(props[MULTIPLE_KEY])
        except (UserError, ValueError):
            raise UserError(f"{source} has damaged colorgan metadata") from None
        problem = model_json_problem(self.meta) if isinstance(self.meta, dict) else "not a mapping"
        if problem or not 1 <= self.size_multiple <= self.meta["size"]:
            raise UserError(f"{source}: {problem or f'size_multiple {self.size_multiple} does not fit its size'}")
        self.weights_sha256: str | None = props.get(SOURCE_KEY)
        self.precision = props.get(PRECISION_KEY, "fp32")
        self.source = source
        shapes = {node.name: node.shape for node in self._session.get_inputs()}
        outputs = {node.name: node.shape for node in self._session.get_outputs()}
        if (set(shapes) not in ({"l"}, {"l", "cond"}) or "ab" not in outputs
                or any(len(shape) != 4 for shape in [*shapes.values(), outputs["ab"]])
                or shapes["l"][1] != 1 or outputs["ab"][1] != 2
                or ("cond" in shapes and not isinstance(shapes["cond"][1], int))):
            raise UserError(f"{source} does not take normalized L* (B, 1, H, W) and give ab (B, 2, H, W) "
                            f"as colorgan's models do (inputs {shapes}, outputs {outputs})")
        self.cond_channels = int(shapes["cond"][1]) if "cond" in shapes else 0

    @classmethod
    def load(cls, path: str | Path) -> OnnxModel:
        return cls(model=str(path), source=str(path))

    def __call__(self, l_norm: np.ndarray, cond: np.ndarray | None = None) -> np.ndarray:
        feed = {"l": np.ascontiguousarray(l_norm, dtype=np.float32)}
        if self.cond_channels:
            cond = cond if cond is not None else np.zeros((l_norm.shape[0], self.cond_channels, *l_norm.shape[2:]), np.float32)
            feed["cond"] = np.ascontiguousarray(cond, dtype=np.float32)
        try:
            (ab,) = self._session.run(["ab"], feed)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception directly
            raise UserError(f"ONNX Runtime could not run {self.source}: {_first_line(exc)}") from None
        return ab


def _first_line(exc: Exception) -> str:
    """ONNX Runtime's messages run over several lines (its C++ source position, the node's
    attributes): the first says what went wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__

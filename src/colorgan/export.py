"""ONNX export of a generator, and the ONNX Runtime backend that runs it on the CPU.

The ``.onnx`` file is self-describing: its metadata holds the model.json content and the
generator's size multiple, so ``colorgan colorize --backend onnx --model model.onnx``
needs nothing else. Batch, height and width are dynamic. The input is ``l`` (normalized L*),
plus ``cond`` for a generator with conditioning channels; the output is ``ab``.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError
from .files import atomic_output

log = logging.getLogger(__name__)

OPSET = 18
META_KEY = "colorgan"
MULTIPLE_KEY = "size_multiple"
_AXES = {0: "batch", 2: "height", 3: "width"}


def onnx_bytes(generator: nn.Module, meta: dict[str, Any]) -> bytes:
    """Serialize ``generator`` (on the CPU, in eval mode) as ONNX with colorgan metadata."""
    import onnx

    size = meta["size"]
    inputs = ["l", "cond"] if generator.cond_channels else ["l"]
    example = (torch.zeros(1, 1, size, size), torch.zeros(1, generator.cond_channels, size, size))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter (no onnxscript needed) warns that it is deprecated, and the
        # generators' Python size check becomes a constant; the size is checked before running.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            generator.cpu().eval(),
            example[: len(inputs)],
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=["ab"],
            dynamic_axes={name: _AXES for name in (*inputs, "ab")},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {META_KEY: json.dumps(meta), MULTIPLE_KEY: str(generator.size_multiple)})
    return proto.SerializeToString()


def export_onnx(model: str | Path | None, out: str | Path) -> Path:
    """Export a model (path or bundled name; ``None``: the bundled default) to the ``.onnx`` file ``out``."""
    from .models import load_pretrained, resolve_model

    out = Path(out)
    if out.suffix != ".onnx":
        raise UserError(f"--out must name a .onnx file, got {out}")
    source = resolve_model(model)
    if source.suffix == ".onnx":
        raise UserError(f"{source} is already an ONNX model; export takes a model.safetensors or a bundled model")
    generator, meta = load_pretrained(source)
    data = onnx_bytes(generator, meta)
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    log.info("wrote %s (opset %d, dynamic batch and size)", out, OPSET)
    return out


class OnnxModel:
    """A generator run by ONNX Runtime on the CPU; called like the PyTorch one on normalized L*."""

    def __init__(self, *, model: bytes | str, source: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Idle worker threads sleep instead of spinning, so they leave the cores to the
        # full-resolution recombination that follows each batch (and to other processes).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception directly
            raise UserError(f"cannot load ONNX model {source}: {exc}") from None
        props = self._session.get_modelmeta().custom_metadata_map
        if META_KEY not in props or MULTIPLE_KEY not in props:
            raise UserError(f"{source} was not written by `colorgan export onnx` (no colorgan metadata)")
        self.meta: dict[str, Any] = json.loads(props[META_KEY])
        self.size_multiple = int(props[MULTIPLE_KEY])
        shapes = {node.name: node.shape for node in self._session.get_inputs()}
        self.cond_channels = int(shapes["cond"][1]) if "cond" in shapes else 0

    @classmethod
    def load(cls, path: str | Path) -> OnnxModel:
        return cls(model=str(path), source=str(path))

    @classmethod
    def from_generator(cls, generator: nn.Module, meta: dict[str, Any]) -> OnnxModel:
        """Export in memory (a few seconds; ``colorgan export onnx`` once saves repeating it)."""
        log.info("exporting the model to ONNX in memory")
        return cls(model=onnx_bytes(generator, meta), source="the exported model")

    def __call__(self, l_norm: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        feed = {"l": l_norm.detach().cpu().float().numpy()}
        if self.cond_channels:
            cond = cond if cond is not None else l_norm.new_zeros(l_norm.shape[0], self.cond_channels, *l_norm.shape[2:])
            feed["cond"] = cond.detach().cpu().float().numpy()
        (ab,) = self._session.run(["ab"], feed)
        return torch.from_numpy(ab)

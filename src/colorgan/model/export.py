"""ONNX export of a generator (PyTorch's exporter), for the ONNX Runtime backend of :mod:`colorgan.model.onnx`.

``colorgan export onnx`` writes one ``.onnx`` file; ``colorgan export bundle`` makes a model
folder that holds the PyTorch weights and their ONNX export side by side, in step (what the
bundled default ships: PyTorch for training, ONNX for inference).
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colorgan.errors import UserError
from colorgan.model.files import CONFIG_NAME, CRITIC_NAME, ONNX_NAME, WEIGHTS_NAME, copy_model, read_model_json, resolve_model, weights_sha256
from colorgan.files.atomic import atomic_output
from colorgan.model.onnx import META_KEY, MULTIPLE_KEY, SOURCE_KEY, OnnxModel

log = logging.getLogger(__name__)

OPSET = 18
_AXES = {0: "batch", 2: "height", 3: "width"}


def onnx_bytes(generator: nn.Module, meta: dict[str, Any], *, weights_sha256: str | None = None) -> bytes:
    """Serialize ``generator`` (on the CPU, in eval mode) as ONNX with colorgan metadata; ``weights_sha256``
    names the weights file it came from, so a stale ``model.onnx`` beside newer weights is recognized."""
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
            do_constant_folding=False,  # BatchNorm stays apart (ONNX Runtime fuses it on load), so fp16 weights stay fp16-exact
            opset_version=OPSET,
            input_names=inputs,
            output_names=["ab"],
            dynamic_axes={name: _AXES for name in (*inputs, "ab")},
        )
    proto = _half_exact_weights(onnx.load_from_string(buffer.getvalue()))
    props = {META_KEY: json.dumps(meta), MULTIPLE_KEY: str(generator.size_multiple)}
    if weights_sha256 is not None:
        props[SOURCE_KEY] = weights_sha256
    onnx.helper.set_model_props(proto, props)
    return proto.SerializeToString()


def _half_exact_weights(proto: Any) -> Any:
    """Store the float32 weights that float16 holds exactly (all of a model saved in float16, as the
    bundled default is) as float16, each behind a Cast that ONNX Runtime folds away on load: half
    the file, the same numbers."""
    from onnx import TensorProto, helper, numpy_helper

    casts, kept = [], []
    for init in proto.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.size > 1 and np.array_equal(values.astype(np.float16).astype(np.float32), values):
            kept.append(numpy_helper.from_array(values.astype(np.float16), f"{init.name}.fp16"))
            casts.append(helper.make_node("Cast", [f"{init.name}.fp16"], [init.name], to=TensorProto.FLOAT))
        else:
            kept.append(init)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    nodes = casts + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return proto


def in_memory(generator: nn.Module, meta: dict[str, Any]) -> OnnxModel:
    """An ONNX Runtime model of ``generator``, exported in memory (a few seconds; ``colorgan export``
    once saves repeating it)."""
    log.info("exporting the model to ONNX in memory")
    return OnnxModel(model=onnx_bytes(generator, meta), source="the exported model")


def export_onnx(model: str | Path | None, out: str | Path | None = None) -> Path:
    """Export a model (a path or a bundled name; ``None``: the bundled default) to the ``.onnx``
    file ``out`` (default: ``model.onnx`` beside its weights, where every command finds it)."""
    from colorgan.model.artifact import load_pretrained

    source = resolve_model(model)
    if source.suffix == ".onnx":
        raise UserError(f"{source} is already an ONNX model; export takes a model.safetensors or a bundled model")
    weights, _ = read_model_json(source)
    out = Path(out) if out is not None else weights.with_name(ONNX_NAME)
    if out.suffix != ".onnx":
        raise UserError(f"--out must name a .onnx file, got {out}")
    generator, meta = load_pretrained(source)
    data = onnx_bytes(generator, meta, weights_sha256=weights_sha256(weights))
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    log.info("wrote %s (opset %d, dynamic batch and size)", out, OPSET)
    return out


def export_bundle(model: str | Path, folder: str | Path) -> Path:
    """Make ``folder`` a complete model folder from ``model`` (a run folder or its weights):
    its weights and ``model.json`` copied, and ``model.onnx`` exported from them, so the two
    forms are in step (how the bundled default is updated); the critic that trained it
    (``critic.safetensors``), if there is one beside it, is copied in float16 (a critic only
    steers further training: half precision loses nothing of use). ``folder`` must be new,
    empty, or a model folder already (which is replaced): nothing else of a user's is overwritten."""
    weights, _ = read_model_json(resolve_model(model))
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file; export bundle writes a model folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / CONFIG_NAME).is_file():
        raise UserError(f"{folder} is not empty and holds no model ({CONFIG_NAME}); choose a new or empty folder")
    if folder.resolve() != weights.parent.resolve() or weights.name != WEIGHTS_NAME:
        copy_model(weights, folder, with_onnx=False)  # the export below makes its model.onnx
    critic = weights.with_name(CRITIC_NAME)
    if critic.is_file():
        from colorgan.networks import load_critic, save_critic

        save_critic(load_critic(critic), folder / CRITIC_NAME, dtype=torch.float16)
    export_onnx(folder, folder / ONNX_NAME)
    return folder

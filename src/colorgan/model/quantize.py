"""An int8 model made from a model's fp32 ONNX file (``colorgan export int8``), for CPUs with int8
dot products (VNNI, AMX), where ONNX Runtime's int8 convolutions are faster.

Static quantization in ONNX's QDQ form: weights in int8 per output channel, their inputs in
uint8 with ranges calibrated on training photos (the 99.999th percentile of each). Only what
keeps the colors: the decoder's convolutions, but not its last block, which works at full
resolution. Measured on the bundled default (benchmarks/RESULTS.md, issue 31): every
convolution in int8 runs 1.7x faster at 256 px but moves a*b* by 7-10 on average (the encoder's
and the last block's quantization errors add up through the U-Net); this recipe moves them by
about 1 and runs ~1.2x faster. Quantizing additions and multiplications too breaks the exported
network's padding arithmetic (ONNX Runtime refuses the model), and dynamic quantization, which
measures each activation's range while running, was 2x *slower* than fp32.
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from colorgan.errors import UserError, check_range
from colorgan.files.atomic import atomic_output
from colorgan.files.discovery import find_images
from colorgan.model.files import INT8_NAME, ONNX_NAME, onnx_beside, resolve_model
from colorgan.model.onnx import PRECISION_KEY, OnnxModel
from colorgan.photo import read_photo
from colorgan.render import model_input

log = logging.getLogger(__name__)

CALIBRATION_PHOTOS = 300


def export_int8(model: str | Path | None, data: str | Path, *, photos: int = CALIBRATION_PHOTOS,
                out: str | Path | None = None, seed: int = 0) -> Path:
    """Write the int8 form of ``model`` (a model folder with its ``model.onnx``, or an .onnx file),
    calibrated on ``photos`` photos drawn (with ``seed``) from the folder ``data``: by default
    ``model.int8.onnx`` beside the ``model.onnx`` (where ``--precision`` finds it). Its path."""
    check_range("--photos", photos, low=1)
    source = _fp32_file(resolve_model(model))
    fp32 = OnnxModel.load(source)
    if fp32.precision != "fp32":
        raise UserError(f"{source} is already a {fp32.precision} model")
    target = Path(out) if out is not None else source.with_name(INT8_NAME if source.name == ONNX_NAME else f"{source.stem}.int8.onnx")
    paths = find_images(data)
    random.Random(seed).shuffle(paths)
    log.info("calibrating the int8 model on %d photos of %s", min(photos, len(paths)), data)
    with tempfile.TemporaryDirectory(prefix="colorgan-int8-") as work:
        quantized = _quantize(source, Path(work), _calibration(paths[:photos], fp32.meta["size"], fp32.cond_channels))
        with atomic_output(target) as tmp:
            tmp.write_bytes(quantized)
    OnnxModel.load(target)  # it loads, with its metadata, or the error says why
    log.info("wrote %s", target)
    return target


def _fp32_file(path: Path) -> Path:
    """The fp32 ONNX file of a model path: an .onnx file itself, or a folder's ``model.onnx``."""
    if path.suffix == ".onnx":
        return path
    onnx = onnx_beside(path)
    if onnx is None:
        raise UserError(f"{path} has no {ONNX_NAME} to quantize; `colorgan export onnx --model {path}` writes one")
    return onnx


def _calibration(paths: list[Path], size: int, cond_channels: int) -> Iterator[dict[str, np.ndarray]]:
    """The model's inputs for each photo, as colorizing it would give them (no hints)."""
    for path in paths:
        feed = {"l": model_input(read_photo(path), size)[None]}
        if cond_channels:
            feed["cond"] = np.zeros((1, cond_channels, size, size), np.float32)
        yield feed


def _quantize(source: Path, work: Path, feeds: Iterator[dict[str, np.ndarray]]) -> bytes:
    """The QDQ-quantized model of ``source`` (bytes), with its colorgan metadata and ``precision: int8``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(feeds, None)

    prepared, quantized = work / "prepared.onnx", work / "int8.onnx"
    # ONNX Runtime's basic optimizations first (fp16 weights folded to fp32, BatchNorm into the
    # convolutions); its symbolic shape inference cannot follow the padding arithmetic, so it is skipped.
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    logging.disable(logging.INFO)  # the quantizer's notes (a line for each weight it rescales) go to the root logger
    try:
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile, op_types_to_quantize=["Conv"],
                        nodes_to_quantize=_quantized_convolutions(onnx.load(str(prepared)), source))
    finally:
        logging.disable(logging.NOTSET)
    proto = onnx.load(str(quantized))
    proto.metadata_props.add(key=PRECISION_KEY, value="int8")
    return proto.SerializeToString()


def _quantized_convolutions(proto: Any, source: Path) -> list[str]:
    """The convolutions the recipe quantizes: the decoder's (named ``/decoder/blocks.N/...`` by
    the exporter), but those of its last block."""
    blocks = {name: int(match[1]) for name in (node.name for node in proto.graph.node if node.op_type == "Conv")
              if (match := re.search(r"/decoder/blocks\.(\d+)/", name))}
    if not blocks:
        raise UserError(f"{source} has no decoder the int8 recipe knows (a resunet's)")
    last = max(blocks.values())
    return [name for name, block in blocks.items() if block != last]

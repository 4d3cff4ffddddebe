"""ONNX Runtime backend: static INT8 QDQ from precomputed activation ranges.

Weights: per-channel symmetric QInt8; activations: QUInt8 (U8S8 fuses every conv into
QLinearConv on AVX2 CPUs; S8S8 leaves them in float and runs ~2x slower). `reduce_range`
(7-bit weights) avoids the int16 saturation of U8S8 kernels on CPUs without VNNI; the caller
decides it from the target CPU (ednas.cpu.int8_weights).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import helper

from ednas.compress.quantize.calibration import Range

log = logging.getLogger(__name__)


def quantize_qdq(
    prepared: str | Path, out: str | Path, ranges: dict[str, Range],
    exclude: Sequence[str] = (), reduce_range: bool = True,
) -> Path:
    """Write the QDQ INT8 model of `prepared` (an opset >= 13 pre-processed model) to `out`,
    keeping the nodes in `exclude` in FP32."""
    from onnxruntime.quantization import (
        CalibrationMethod, QuantFormat, QuantType, quantize_static, save_tensors_data)
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

    data = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
        for name, (lo, hi) in ranges.items()
    })
    with tempfile.TemporaryDirectory(prefix="ednas-q-") as tmp:
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(data, cache)
        quantize_static(
            str(prepared), str(out), None, quant_format=QuantFormat.QDQ, per_channel=True,
            reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude), calibration_cache_path=cache,
            calibrate_method=CalibrationMethod.MinMax,
        )
    model, moved = pads_into_uint8(onnx.load(str(out)))
    if moved:
        onnx.save(model, str(out))
    log.debug("quantized %s -> %s (%d nodes in FP32)", prepared, out, len(exclude))
    return Path(out)


def pads_into_uint8(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Q -> DQ -> Pad(0) -> Q' -> DQ'  becomes  Q -> Pad(zero point) -> DQ: the zero padding
    (rewrite.pad_input_channels) then runs on uint8 instead of float between an extra
    dequantize/quantize pair, and the padded values are exact. Returns (model, pads moved)."""
    from ednas.compress.quantize.rewrite import consumers, drop_unused_constants, producers

    graph = model.graph
    producer, readers = producers(graph), consumers(graph)
    inits = {i.name for i in graph.initializer}
    moved = 0
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        dq0 = producer.get(pad.input[0])
        q0 = producer.get(dq0.input[0]) if dq0 is not None and dq0.op_type == "DequantizeLinear" else None
        after = readers.get(pad.output[0], [])
        q1 = after[0] if len(after) == 1 and after[0].op_type == "QuantizeLinear" else None
        dq1 = readers.get(q1.output[0], []) if q1 is not None else []
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        if (q0 is None or q0.op_type != "QuantizeLinear" or q1 is None or len(dq1) != 1
                or dq1[0].op_type != "DequantizeLinear" or mode != b"constant" or len(q0.input) < 3
                or (len(pad.input) > 2 and pad.input[2]) or pad.input[1] not in inits):
            continue
        name = f"{pad.name}_uint8"
        index = list(graph.node).index(pad)
        graph.node.insert(index, helper.make_node(
            "Pad", [q0.output[0], pad.input[1], q0.input[2]], [name], name=name, mode="constant"))
        graph.node.insert(index + 1, helper.make_node(
            "DequantizeLinear", [name, q0.input[1], q0.input[2]], [dq1[0].output[0]], name=f"{name}_dq"))
        for node in (pad, q1, dq1[0]):
            graph.node.remove(node)
        if len(readers[dq0.output[0]]) == 1:
            graph.node.remove(dq0)
        moved += 1
    if moved:
        drop_unused_constants(graph)
    return model, moved

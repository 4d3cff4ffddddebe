"""ONNX Runtime backend: static INT8 QDQ from precomputed activation ranges.

Weights: per-channel symmetric QInt8; activations: QUInt8 (U8S8 fuses every conv into
QLinearConv on AVX2 CPUs; S8S8 leaves them in float and runs ~2x slower). `reduce_range`
(7-bit weights) avoids the int16 saturation of U8S8 kernels on CPUs without VNNI.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ednas.compress.quantize_calib import Range

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
    log.debug("quantized %s -> %s (%d nodes in FP32)", prepared, out, len(exclude))
    return Path(out)

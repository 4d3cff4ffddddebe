"""The plain INT8 model: what `ednas quantize` ships without annotated images, and what the
INT8 latency table times (ednas.latency.export), built by one function so the two never differ.

    prepare (opset, ORT pre-processing, exact rewrites) -> activation equalization
    -> activation statistics -> ranges -> QDQ with the output tail in FP32 and the target
    CPU's weight bits -> bias correction

`inputs` are calibration samples: an (N, C, H, W) array for a one-input model (images), or a
list of {input name: (1, ...) array} feeds for a model with several inputs (a latency unit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import onnx

from ednas.compress.quantize import calibration as calib
from ednas.compress.quantize import prepare as qmodel
from ednas.compress.quantize.bias_correction import correct_bias
from ednas.compress.quantize.equalize import equalize_file
from ednas.compress.quantize.ort_backend import quantize_qdq
from ednas.onnx_runtime import load_onnx

DEFAULT_METHOD = "mse"  # the range method whose output came closest to FP32's (benchmarks/quantize_released.py)


@dataclass(frozen=True)
class PlainInt8:
    path: Path  # the QDQ model, in the work folder
    prepared: Path  # the FP32 model it was quantized from (after the rewrites and equalization)
    rewrites: list[str]  # exact rewrites that applied (prepare)
    fp32_nodes: list[str]  # nodes kept in FP32 (the output tail)
    equalized: int  # activation tensors rescaled (equalize)


def build_qdq(prepared: Path, ranges: dict[str, calib.Range], exclude: Sequence[str], reduce_range: bool,
              bias_inputs: calib.Inputs | None, out: Path, threads: int | None = None) -> Path:
    """QDQ of `prepared` at `out` (nodes in `exclude` FP32); with `bias_inputs`, bias-corrected
    on them (`out` with suffix _bc)."""
    path = quantize_qdq(prepared, out, ranges, exclude, reduce_range)
    if bias_inputs is not None:
        path, _ = correct_bias(path, prepared, bias_inputs, out.with_name(f"{out.stem}_bc.onnx"), threads=threads)
    return path


def build_plain_int8(model: onnx.ModelProto, inputs: calib.Inputs, work: Path, reduce_range: bool,
                     method: str = DEFAULT_METHOD, bias_correction: bool = True, equalize: bool = True,
                     threads: int | None = None) -> PlainInt8:
    """The plain INT8 model of `model` (FP32, nodes named) calibrated on `inputs`, in `work`."""
    prepared, rewrites = qmodel.prepare(model, work)
    equalized = 0
    if equalize:
        prepared, equalized = equalize_file(prepared, inputs, work / "equalized.onnx", threads=threads)
    tail = qmodel.tail_nodes(load_onnx(prepared))
    ranges = calib.compute_ranges(calib.collect_stats(prepared, inputs, threads), method)
    path = build_qdq(prepared, ranges, tail, reduce_range, inputs if bias_correction else None,
                     work / "plain.onnx", threads)
    return PlainInt8(path, prepared, rewrites, tail, equalized)

"""Per-tensor sensitivity to 8-bit activation quantization.

Weight INT8 (per-channel) costs this family almost nothing; the loss comes from 8-bit
activations. So sensitivity is measured on a float model in which every candidate tensor
gets a switchable fake-quantizer, y = x + g * (dq(q(x)) - x), with the gate g a graph input:
one ONNX Runtime session then scores each tensor alone (g = 1 for it, 0 elsewhere).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ednas.compress.quantize.calibration import Range

log = logging.getLogger(__name__)

GATES = "ednas_fq_gates"


def _scale_zp(lo: float, hi: float) -> tuple[float, int]:
    """ORT's asymmetric uint8 parameters for the range [lo, hi] (which contains 0)."""
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def fake_quant_model(model: onnx.ModelProto, ranges: dict[str, Range], tensors: Sequence[str]) -> onnx.ModelProto:
    """Copy of `model` with a gated uint8 fake-quantizer on each of `tensors`; gate k
    (input GATES, shape [len(tensors)]) switches tensor k's quantization on."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits, nodes = [], []
    rename: dict[str, str] = {}
    for k, t in enumerate(tensors):
        scale, zp = _scale_zp(*ranges[t])
        p = f"fq{k}_"
        inits += [numpy_helper.from_array(np.array(scale, np.float32), p + "s"),
                  numpy_helper.from_array(np.array(zp, np.uint8), p + "z"),
                  numpy_helper.from_array(np.array([k], np.int64), p + "k")]
        out = p + "out"
        nodes += [
            helper.make_node("QuantizeLinear", [t, p + "s", p + "z"], [p + "q"]),
            helper.make_node("DequantizeLinear", [p + "q", p + "s", p + "z"], [p + "dq"]),
            helper.make_node("Sub", [p + "dq", t], [p + "d"]),
            helper.make_node("Gather", [GATES, p + "k"], [p + "g"]),
            helper.make_node("Mul", [p + "d", p + "g"], [p + "gd"]),
            helper.make_node("Add", [t, p + "gd"], [out]),
        ]
        rename[t] = out
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for o in graph.output:
        if o.name in rename:  # keep the output name: quantize it in place
            raise ValueError(f"cannot fake-quantize the graph output {o.name}")
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    graph.input.append(helper.make_tensor_value_info(GATES, TensorProto.FLOAT, [len(tensors)]))
    # topological order: fake-quant nodes must follow their producers
    from onnxruntime.quantization.onnx_model import ONNXModel

    ONNXModel(model).topological_sort()
    return model


def output_error(ref: np.ndarray, out: np.ndarray, num_scores: int) -> float:
    """Normalised squared error of the scores plus that of the box logits."""
    err = 0.0
    for part in (slice(0, num_scores), slice(num_scores, None)):
        r, o = ref[..., part], out[..., part]
        err += float(np.mean((o - r) ** 2) / (np.var(r) + 1e-12))
    return err


def tensor_sensitivity(
    prepared: str | Path, ranges: dict[str, Range], tensors: Sequence[str], inputs: np.ndarray,
    num_scores: int, threads: int | None = None,
) -> dict[str, float]:
    """Output error caused by quantizing each tensor alone (larger = more sensitive)."""
    from ednas.onnx_runtime import load_onnx, session

    sess = session(fake_quant_model(load_onnx(prepared), ranges, tensors), threads)
    in_name = next(i.name for i in sess.get_inputs() if i.name != GATES)
    off = np.zeros(len(tensors), np.float32)
    ref = np.concatenate([sess.run(None, {in_name: x[None], GATES: off})[0] for x in inputs])
    scores = {}
    for k, t in enumerate(tensors):
        gates = off.copy()
        gates[k] = 1.0
        out = np.concatenate([sess.run(None, {in_name: x[None], GATES: gates})[0] for x in inputs])
        scores[t] = output_error(ref, out, num_scores)
    log.info("sensitivity of %d tensors on %d images", len(tensors), len(inputs))
    return scores

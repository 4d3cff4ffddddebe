"""Empirical bias correction of a QDQ model (Nagel et al. 2019, "Data-Free Quantization", §4.2,
with the expectation taken on calibration images instead of from BatchNorm statistics).

Rounding weights and activations to 8 bits shifts the mean of each conv's output channels; the
shifts add up through the network (and the head's score logits feel them most). For every
quantized conv, the per-channel mean of (FP32 output - quantized output) over the
calibration images is added to its float bias, which ONNX Runtime folds into QLinearConv's
int32 bias: the INT8 graph and its speed are unchanged. Later convs see inputs that earlier
corrections changed, so the correction can be repeated (`passes`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ednas.onnx_runtime import load_onnx

log = logging.getLogger(__name__)


def _session(model: onnx.ModelProto, outputs: list[str], threads: int | None):
    from ednas.onnx_runtime import session, with_outputs

    return session(with_outputs(model, outputs), threads)


def _channel_means(model: onnx.ModelProto, tensors: list[str], inputs: np.ndarray,
                   threads: int | None) -> list[np.ndarray]:
    """Mean over images and pixels of each channel (axis 1) of each of `tensors`."""
    from ednas.compress.quantize.calibration import feed

    sess = _session(model, tensors, threads)
    sums: list[np.ndarray | float] = [0.0] * len(tensors)
    for x in inputs:
        values = sess.run(tensors, feed(sess, x))
        sums = [s + v.mean(axis=tuple(a for a in range(v.ndim) if a != 1)) for s, v in zip(sums, values)]
    return [s / len(inputs) for s in sums]


def quantized_convs(fp32: onnx.ModelProto, qdq: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(FP32 conv, QDQ conv) pairs, matched by node name, whose weight the QDQ model quantizes."""
    dq_outputs = {o for n in qdq.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    by_name = {n.name: n for n in qdq.graph.node if n.op_type == "Conv"}
    return [(n, by_name[n.name]) for n in fp32.graph.node
            if n.op_type == "Conv" and n.name in by_name and by_name[n.name].input[1] in dq_outputs]


def _add_to_bias(qdq: onnx.ModelProto, conv: onnx.NodeProto, shift: np.ndarray,
                 inits: dict[str, onnx.TensorProto]) -> None:
    """Add `shift` (C,) to the conv's bias: an int32 tensor behind a DequantizeLinear with scale
    input_scale * weight_scale (how ORT's QDQ stores it), or a float initializer."""
    bias = conv.input[2] if len(conv.input) > 2 else ""
    dq = next((n for n in qdq.graph.node if bias and bias in n.output), None)
    if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits and dq.input[1] in inits:
        values = numpy_helper.to_array(inits[dq.input[0]]).astype(np.int64)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        new = np.clip(values + np.round(shift / scale), -2**31, 2**31 - 1).astype(np.int32)
        inits[dq.input[0]].CopyFrom(numpy_helper.from_array(new, dq.input[0]))
    elif bias in inits:
        new = numpy_helper.to_array(inits[bias]).astype(np.float32) + shift.astype(np.float32)
        inits[bias].CopyFrom(numpy_helper.from_array(new, bias))
    else:
        _new_bias(qdq, conv, shift, inits)


def _new_bias(qdq: onnx.ModelProto, conv: onnx.NodeProto, shift: np.ndarray,
              inits: dict[str, onnx.TensorProto]) -> None:
    """Give a bias-less QDQ conv the int32 bias `shift`, scaled input_scale * weight_scale
    like the biases ORT writes (so it still fuses into QLinearConv)."""
    from onnx import helper

    producer = {o: n for n in qdq.graph.node for o in n.output}
    dq_x, dq_w = producer.get(conv.input[0]), producer.get(conv.input[1])
    if (dq_x is None or dq_w is None or dq_x.op_type != "DequantizeLinear" or dq_w.op_type != "DequantizeLinear"
            or dq_x.input[1] not in inits or dq_w.input[1] not in inits):
        log.debug("%s: no bias and no quantized input scale; left as is", conv.name)
        return
    scale = (numpy_helper.to_array(inits[dq_x.input[1]]).astype(np.float64)
             * numpy_helper.to_array(inits[dq_w.input[1]]).astype(np.float64)) * np.ones(len(shift))
    name = f"{conv.name}_bias_corrected"
    values = np.clip(np.round(shift / scale), -2**31, 2**31 - 1).astype(np.int32)
    for tensor in (numpy_helper.from_array(values, f"{name}_quantized"),
                   numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale")):
        qdq.graph.initializer.append(tensor)
        inits[tensor.name] = qdq.graph.initializer[-1]
    index = list(qdq.graph.node).index(conv)
    qdq.graph.node.insert(index, helper.make_node(
        "DequantizeLinear", [f"{name}_quantized", f"{name}_scale"], [name], name=f"{name}_dq", axis=0))
    while len(conv.input) < 3:
        conv.input.append("")
    conv.input[2] = name


def _with_probes(fp32: onnx.ModelProto, qdq: onnx.ModelProto,
                 pairs: list[tuple[onnx.NodeProto, onnx.NodeProto]]) -> tuple[onnx.ModelProto, list[str]]:
    """Copy of `qdq` where each quantized conv gets a float twin: the FP32 weights and bias
    applied to the float tensor the conv's input quantizer reads. The twin's output minus the
    conv's is the error this conv's own quantization (input and weights) adds, and only that:
    upstream errors reach both alike."""
    from onnx import helper

    model = onnx.ModelProto.FromString(qdq.SerializeToString())
    producer = {o: n for n in model.graph.node for o in n.output}
    fp32_producer = {o: n for n in fp32.graph.node for o in n.output}
    fp32_inits = {i.name: i for i in fp32.graph.initializer}
    have = {i.name for i in model.graph.initializer}
    probes = []
    for f_conv, q_conv in pairs:
        x = q_conv.input[0]
        dq = producer.get(x)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear":
            x = _float_twin(model, q.input[0], producer, fp32_producer, fp32_inits, have) or x
        weight = onnx.TensorProto()
        weight.CopyFrom(fp32_inits[f_conv.input[1]])
        weight.name = f"{q_conv.name}_probe_w"
        model.graph.initializer.append(weight)
        inputs = [x, weight.name]
        if len(f_conv.input) > 2 and f_conv.input[2]:  # the FP32 bias, not the (corrected) INT8 one
            bias = onnx.TensorProto()
            bias.CopyFrom(fp32_inits[f_conv.input[2]])
            bias.name = f"{q_conv.name}_probe_b"
            model.graph.initializer.append(bias)
            inputs.append(bias.name)
        probe = helper.make_node("Conv", inputs, [f"{q_conv.name}_probe"], name=f"{q_conv.name}_probe")
        probe.attribute.extend(q_conv.attribute)
        model.graph.node.append(probe)
        probes.append(probe.output[0])
    return model, probes


def _float_twin(model: onnx.ModelProto, x: str, producer: dict, fp32_producer: dict, fp32_inits: dict,
                have: set[str]) -> str | None:
    """The tensor a quantizer reads, with the FP32 model's meaning: ORT drops a Relu/Clip whose
    job the quantizer's range does (the conv then writes the activation's name), so the
    activation is put back for the probe. None when the two graphs disagree otherwise."""
    from onnx import helper

    mine, theirs = producer.get(x), fp32_producer.get(x)
    if mine is None or theirs is None or mine.op_type == theirs.op_type:
        return x
    if theirs.op_type not in ("Relu", "Clip", "LeakyRelu"):
        return None
    for name in theirs.input[1:]:
        if name and name not in have and name in fp32_inits:
            model.graph.initializer.append(fp32_inits[name])
            have.add(name)
    out = f"{x}_probe_act"
    if out not in producer:
        node = helper.make_node(theirs.op_type, [x, *theirs.input[1:]], [out], name=out)
        node.attribute.extend(theirs.attribute)
        model.graph.node.append(node)
        producer[out] = node
    return out


def correct_bias(qdq_path: str | Path, fp32_path: str | Path, inputs: np.ndarray, out: str | Path,
                 passes: int = 1, threads: int | None = None) -> tuple[Path, float]:
    """Write `qdq_path` with bias-corrected convs to `out`; returns it and the mean |shift|
    removed in the first pass, as a fraction of the mean |channel mean| of the conv outputs.

    Each conv is corrected for the shift its own quantization adds (see _with_probes), all
    convs at once: correcting each for the whole shift measured at its output would also
    correct again what the convs upstream are corrected for."""
    fp32, qdq = load_onnx(fp32_path), load_onnx(qdq_path)
    pairs = quantized_convs(fp32, qdq)
    inits = {i.name: i for i in qdq.graph.initializer}
    first = 0.0
    for step in range(passes if pairs else 0):
        probed, probes = _with_probes(fp32, qdq, pairs)
        means = _channel_means(probed, probes + [q.output[0] for _, q in pairs], inputs, threads)
        ref, got = means[: len(pairs)], means[len(pairs):]
        shifts = [r - g for r, g in zip(ref, got)]
        if step == 0:
            first = float(np.mean([np.abs(s).mean() / (np.abs(r).mean() + 1e-6) for s, r in zip(shifts, ref)]))
        for (_, conv), shift in zip(pairs, shifts):
            _add_to_bias(qdq, conv, shift, inits)
    onnx.save(qdq, str(out))
    log.info("bias correction of %d convs, %d pass(es): mean shift %.3f of the output scale", len(pairs),
             passes, first)
    return Path(out), first

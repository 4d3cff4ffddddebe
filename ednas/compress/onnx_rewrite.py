"""Exact FP32 graph rewrites that make a model quantize better and run faster in INT8.

`fold_gated_batchnorm`: kernel refine ends in BN(conv(x) * gate) with a one-channel spatial
gate. ONNX Runtime has no quantized BatchNormalization, so a QDQ model runs that BN in float
behind a DequantizeLinear, a QuantizeLinear and layout transposes, eight times per image.
Because the gate has one channel, BN's per-channel scale commutes with the product:

    s * (conv(x; W, b) * g) + t  =  conv(x; s W, s b) * g + t

so the scale folds into the conv and only a per-channel Add of t is left, which quantizes.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import numpy_helper

log = logging.getLogger(__name__)


def _attr(node: onnx.NodeProto, name: str, default: float) -> float:
    for a in node.attribute:
        if a.name == name:
            return a.f
    return default


def _channels_of_gate(model: onnx.ModelProto, name: str) -> int | None:
    """Channel count of tensor `name` from shape inference (None when unknown)."""
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        if vi.name == name:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[1].HasField("dim_value"):
                return dims[1].dim_value
    return None


def fold_gated_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Fold every BatchNormalization(Mul(Conv(...), one-channel gate)) as described above;
    returns the rewritten model (a copy) and the number of BNs folded."""
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop, folded = [], 0
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        mul = producer.get(bn.input[0])
        if mul is None or mul.op_type != "Mul" or len(consumers.get(mul.output[0], [])) != 1:
            continue
        conv_in = [i for i in mul.input if i in producer and producer[i].op_type == "Conv"
                   and len(consumers[i]) == 1 and producer[i].input[1] in inits]
        if len(conv_in) != 1:
            continue
        gate = [i for i in mul.input if i != conv_in[0]]
        if len(gate) != 1 or _channels_of_gate(model, gate[0]) != 1:
            continue
        if not all(i in inits for i in bn.input[1:5]):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        s = gamma / np.sqrt(var + _attr(bn, "epsilon", 1e-5))
        t = beta - mean * s
        conv = producer[conv_in[0]]
        w = numpy_helper.to_array(inits[conv.input[1]])
        if w.shape[0] != s.shape[0]:
            continue
        w_name = f"{conv.input[1]}_bnfold{folded}"
        graph.initializer.append(numpy_helper.from_array((w * s.reshape(-1, 1, 1, 1)).astype(w.dtype), w_name))
        conv.input[1] = w_name
        if len(conv.input) > 2 and conv.input[2]:
            b = numpy_helper.to_array(inits[conv.input[2]])
            b_name = f"{conv.input[2]}_bnfold{folded}"
            graph.initializer.append(numpy_helper.from_array((b * s).astype(b.dtype), b_name))
            conv.input[2] = b_name
        t_name = f"{bn.name or bn.output[0]}_shift"
        graph.initializer.append(numpy_helper.from_array(t.reshape(1, -1, 1, 1).astype(np.float32), t_name))
        add = onnx.helper.make_node("Add", [mul.output[0], t_name], [bn.output[0]], name=f"{bn.name}_add")
        graph.node.insert(list(graph.node).index(bn), add)
        drop.append(bn)
        folded += 1
    for bn in drop:
        graph.node.remove(bn)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    if folded:
        log.info("folded %d gated BatchNormalization nodes into their convs", folded)
    return model, folded

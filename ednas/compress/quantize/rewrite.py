"""Exact FP32 graph rewrites that make a model quantize better and run faster in INT8.

ONNX Runtime runs a QDQ model's convs as QLinearConv in NHWC; everything else between them
is a separate, mostly single-threaded INT8 kernel (or float behind DequantizeLinear,
QuantizeLinear and layout transposes). Each rewrite below removes such a kernel or lets a
conv take ORT's fast symmetric path, without changing what the model computes:

- `fold_gated_batchnorm`: kernel refine ends in BN(conv(x) * gate) with a one-channel spatial
  gate. Because the gate has one channel, BN's per-channel scale commutes with the product,

      s * (conv(x; W, b) * g) + t  =  conv(x; s W, s b) * g + t,

  so the scale folds into the conv. The shift t becomes a 1x1 depthwise conv with unit
  weights and bias t: in INT8 it runs as a vectorised QLinearConv that also absorbs the
  following ReLU6, where an Add with a broadcast (1, C, 1, 1) constant runs one short span
  per pixel.
- `channels_last_head_output`: the NanoDet-Plus head output reshapes each level's
  (N, C, H, W) to (N, C, HW), concatenates the levels on the last axis and transposes to
  (N, sum HW, C), with a sigmoid on the C_score score channels (per level in the released
  ONNX, on the joined tensor in ednas' export). Transposing each level to (N, HW, C) first
  is the same arithmetic; in NHWC INT8 those transposes cancel against the conv layout. Each
  level's last conv is also split into a score conv and a box conv: the score logits
  (about -15..2) and the box logits (about -33..8) then get an INT8 scale each instead of
  sharing one 2.5x coarser scale, and the sigmoid runs once on the joined scores.
- `pad_input_channels`: a conv that reads the 3-channel image cannot use ORT's symmetric
  INT8 conv kernels (input channels must be a multiple of 4). A zero channel on the input
  and zero weights for it leave the sum unchanged (ort_backend then moves the Pad behind
  the input's QuantizeLinear, into uint8).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)

CONV_CHANNEL_MULTIPLE = 4  # MLAS symmetric INT8 conv: input channels % 4 == 0


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _channels_of(model: onnx.ModelProto, name: str) -> int | None:
    """Channel count (dim 1) of a 4-D tensor from shape inference (None when unknown)."""
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        if vi.name == name:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[1].HasField("dim_value"):
                return dims[1].dim_value
    return None


def drop_unused_constants(graph: onnx.GraphProto) -> None:
    """Remove initializers and Constant nodes that nothing reads any more."""
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.node.remove(node)
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Values of the initializers and Constant nodes."""
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return values


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node that writes it."""
    return {o: n for n in graph.node for o in n.output}


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it."""
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def fold_gated_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Fold every BatchNormalization(Mul(Conv(...), one-channel gate)) as described above;
    returns the rewritten model (a copy) and the number of BNs folded."""
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer, readers = producers(graph), consumers(graph)
    folded = 0
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        mul = producer.get(bn.input[0])
        if mul is None or mul.op_type != "Mul" or len(readers.get(mul.output[0], [])) != 1:
            continue
        conv_in = [i for i in mul.input if i in producer and producer[i].op_type == "Conv"
                   and len(readers[i]) == 1 and producer[i].input[1] in inits]
        if len(conv_in) != 1:
            continue
        gate = [i for i in mul.input if i != conv_in[0]]
        if len(gate) != 1 or _channels_of(model, gate[0]) != 1:
            continue
        if not all(i in inits for i in bn.input[1:5]):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        s = gamma / np.sqrt(var + float(_attr(bn, "epsilon", 1e-5)))
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
        name = bn.name or bn.output[0]
        channels = s.shape[0]
        graph.initializer.extend([
            numpy_helper.from_array(np.ones((channels, 1, 1, 1), np.float32), f"{name}_unit"),
            numpy_helper.from_array(t.astype(np.float32), f"{name}_shift"),
        ])
        shift = helper.make_node("Conv", [mul.output[0], f"{name}_unit", f"{name}_shift"], [bn.output[0]],
                                 name=f"{name}_shift", group=channels, kernel_shape=[1, 1])
        graph.node.insert(list(graph.node).index(bn), shift)
        graph.node.remove(bn)
        folded += 1
    drop_unused_constants(graph)
    if folded:
        log.info("folded %d gated BatchNormalization nodes into their convs", folded)
    return model, folded


def _level_scores(producer: dict[str, onnx.NodeProto], consts: dict[str, np.ndarray], y: str
                  ) -> tuple[str, list[onnx.NodeProto], int] | None:
    """(x, nodes, score channels) when `y` = Concat([Sigmoid(a), b], axis 1) with a, b =
    Split(x, axis 1) (the released model's per-level score sigmoid); None otherwise."""
    joined = producer.get(y)
    if joined is None or joined.op_type != "Concat" or _attr(joined, "axis", None) != 1 or len(joined.input) != 2:
        return None
    sigmoid = producer.get(joined.input[0])
    split = producer.get(sigmoid.input[0]) if sigmoid is not None and sigmoid.op_type == "Sigmoid" else None
    if (split is None or split.op_type != "Split" or _attr(split, "axis", 0) != 1 or len(split.input) < 2
            or split.input[1] not in consts or list(split.output) != [sigmoid.input[0], joined.input[1]]):
        return None
    return split.input[0], [joined, sigmoid, split], int(consts[split.input[1]][0])


def _output_scores(readers: dict[str, list[onnx.NodeProto]], consts: dict[str, np.ndarray], y: str,
                   channels: int) -> tuple[str, list[onnx.NodeProto], int] | None:
    """(output, nodes, score channels) when (N, A, C) tensor `y` is only read by
    Concat([Sigmoid(y[..., :k]), y[..., k:]], last axis) (ednas' own export); None otherwise."""
    slices = readers.get(y, [])
    if len(slices) != 2 or any(n.op_type != "Slice" or len(n.input) < 4 or not all(i in consts for i in n.input[1:4])
                               or (len(n.input) > 4 and consts.get(n.input[4], np.ones(1))[0] != 1)
                               or int(consts[n.input[3]][0]) not in (2, -1) for n in slices):
        return None
    first, second = sorted(slices, key=lambda n: int(consts[n.input[1]][0]))
    k = int(consts[first.input[2]][0])
    if int(consts[first.input[1]][0]) != 0 or int(consts[second.input[1]][0]) != k or consts[second.input[2]][0] < channels:
        return None
    sigmoid = readers.get(first.output[0], [])
    concat = readers.get(sigmoid[0].output[0], []) if len(sigmoid) == 1 and sigmoid[0].op_type == "Sigmoid" else []
    if (len(concat) != 1 or concat[0].op_type != "Concat" or _attr(concat[0], "axis", None) not in (2, -1)
            or list(concat[0].input) != [sigmoid[0].output[0], second.output[0]]
            or readers.get(second.output[0]) != concat):
        return None
    return concat[0].output[0], [first, second, sigmoid[0], concat[0]], k


@dataclass
class _HeadTail:
    levels: list[str]  # per-level head outputs (N, C, H, W)
    channels: int  # C: score channels, then box channels
    scores: int | None  # score channels (sigmoid) when known
    old: list[onnx.NodeProto]  # the nodes the rewrite replaces
    out: str  # the tensor the rewrite produces: (N, sum HW, C)


def _head_tail(graph: onnx.GraphProto) -> _HeadTail | None:
    """The head output pattern described above; None when absent."""
    consts = _constants(graph)
    producer, readers = producers(graph), consumers(graph)
    for tr in [n for n in graph.node if n.op_type == "Transpose" and list(_attr(n, "perm", [])) == [0, 2, 1]]:
        cat = producer.get(tr.input[0])
        if cat is not None and cat.op_type == "Concat" and _attr(cat, "axis", None) == 2:
            flats, old = list(cat.input), [tr, cat]
        else:  # a single level
            flats, old = [tr.input[0]], [tr]
        levels, channels, scores = [], set(), set()
        for flat in flats:
            reshape = producer.get(flat)
            if reshape is None or reshape.op_type != "Reshape" or reshape.input[1] not in consts:
                break
            shape = consts[reshape.input[1]]
            if len(shape) != 3 or shape[1] <= 0:
                break
            found = _level_scores(producer, consts, reshape.input[0])
            x, nodes, k = found if found is not None else (reshape.input[0], [], None)
            levels.append(x)
            channels.add(int(shape[1]))
            scores.add(k)
            old += [reshape, *nodes]
        else:
            if len(channels) != 1 or len(scores) != 1:
                continue
            out, (k,) = tr.output[0], scores
            if k is None and (after := _output_scores(readers, consts, tr.output[0], *channels)) is not None:
                out, nodes, k = after
                old += nodes
            inner = {o for n in old for o in n.output} - {out, tr.output[0]}  # Slices read tr twice
            if any(len(readers.get(o, [])) != 1 for o in inner):
                continue
            return _HeadTail(levels, channels.pop(), k, old, out)
    return None


def _splittable_conv(graph: onnx.GraphProto, x: str) -> onnx.NodeProto | None:
    """The dense conv with constant weights (and bias) that writes `x`; None otherwise."""
    conv = producers(graph).get(x)
    consts = {i.name for i in graph.initializer}
    has_bias = len(conv.input) > 2 and bool(conv.input[2]) if conv is not None else False
    if (conv is None or conv.op_type != "Conv" or conv.input[1] not in consts or _attr(conv, "group", 1) != 1
            or (has_bias and conv.input[2] not in consts)):
        return None
    return conv


def _split_conv(graph: onnx.GraphProto, conv: onnx.NodeProto, k: int, tag: str) -> tuple[str, str]:
    """Replace `conv` by one conv for its output channels [:k] and one for [k:]; returns their
    outputs `{tag}_scores`, `{tag}_boxes`."""
    consts = {i.name: i for i in graph.initializer}
    w = numpy_helper.to_array(consts[conv.input[1]])
    b = numpy_helper.to_array(consts[conv.input[2]]) if len(conv.input) > 2 and conv.input[2] else None
    outs = []
    for part, rows in (("scores", slice(0, k)), ("boxes", slice(k, None))):
        name = f"{tag}_{part}"
        graph.initializer.append(numpy_helper.from_array(w[rows], f"{name}_w"))
        inputs = [conv.input[0], f"{name}_w"]
        if b is not None:
            graph.initializer.append(numpy_helper.from_array(b[rows], f"{name}_b"))
            inputs.append(f"{name}_b")
        node = helper.make_node("Conv", inputs, [name], name=name)
        node.attribute.extend(conv.attribute)
        graph.node.insert(list(graph.node).index(conv), node)
        outs.append(name)
    graph.node.remove(conv)
    return outs[0], outs[1]


def channels_last_head_output(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """Rewrite the head output (per level reshape to (N, C, HW), concat, transpose, score
    sigmoid) as described above; returns (model copy, whether it matched)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    tail = _head_tail(graph)
    if tail is None:
        return model, False
    old_ids = {id(n) for n in tail.old}
    last = max(i for i, n in enumerate(graph.node) if id(n) in old_ids)  # every level exists here
    before = [n for n in graph.node[:last] if id(n) not in old_ids]
    after = list(graph.node[last + 1:])
    del graph.node[:]
    graph.node.extend(before)
    parts: dict[str, tuple[int, list[str]]] = {"head": (tail.channels, tail.levels)}
    convs = [_splittable_conv(graph, x) for x in tail.levels]
    if tail.scores is not None and all(convs):  # all levels or none: a half-split graph has no input
        split = [_split_conv(graph, conv, tail.scores, f"head{i}") for i, conv in enumerate(convs)]
        parts = {"scores": (tail.scores, [s[0] for s in split]),
                 "boxes": (tail.channels - tail.scores, [s[1] for s in split])}
    nodes, joined = [], {}
    for part, (channels, levels) in parts.items():
        graph.initializer.append(numpy_helper.from_array(np.array([0, -1, channels], np.int64), f"{part}_nhwc_shape"))
        for i, x in enumerate(levels):  # (N, c, H, W) -> (N, HW, c)
            nodes += [helper.make_node("Transpose", [x], [f"{part}_nhwc{i}"], name=f"{part}_transpose{i}",
                                       perm=[0, 2, 3, 1]),
                      helper.make_node("Reshape", [f"{part}_nhwc{i}", f"{part}_nhwc_shape"], [f"{part}_flat{i}"],
                                       name=f"{part}_reshape{i}")]
        joined[part] = tail.out if tail.scores is None else f"{part}_all"
        nodes.append(helper.make_node("Concat", [f"{part}_flat{i}" for i in range(len(levels))], [joined[part]],
                                      name=f"{part}_concat", axis=1))
    if tail.scores is not None:
        if "head" in joined:  # convs not splittable: split the joined tensor
            graph.initializer.append(numpy_helper.from_array(
                np.array([tail.scores, tail.channels - tail.scores], np.int64), "head_split"))
            nodes.append(helper.make_node("Split", [joined["head"], "head_split"], ["scores_all", "boxes_all"],
                                          name="head_split", axis=2))
        nodes += [helper.make_node("Sigmoid", ["scores_all"], ["scores_prob"], name="scores_sigmoid"),
                  helper.make_node("Concat", ["scores_prob", "boxes_all"], [tail.out], name="head_output", axis=2)]
    graph.node.extend(nodes + after)
    drop_unused_constants(graph)
    log.info("head output rewritten channels-last (%d levels, %s)", len(tail.levels), ", ".join(parts))
    return model, True


def pad_input_channels(model: onnx.ModelProto, multiple: int = CONV_CHANNEL_MULTIPLE) -> tuple[onnx.ModelProto, int]:
    """Zero-pad the channels of every dense conv that reads a graph input to `multiple`;
    returns (model copy, number of convs padded)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    inputs = {i.name for i in graph.input if i.name not in inits}
    padded, pads = 0, set()  # pads: Pad outputs already made (two convs may read one input)
    for conv in [n for n in graph.node if n.op_type == "Conv" and n.input[0] in inputs]:
        if conv.input[1] not in inits or _attr(conv, "group", 1) != 1:
            continue
        w = numpy_helper.to_array(inits[conv.input[1]])
        extra = -w.shape[1] % multiple
        if w.ndim != 4 or extra == 0:
            continue
        name = f"{conv.input[0]}_pad{w.shape[1] + extra}"
        graph.initializer.append(numpy_helper.from_array(
            np.concatenate([w, np.zeros_like(w[:, :extra])], 1), f"{conv.input[1]}_padded"))
        if name not in pads:
            graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64),
                                                             f"{name}_pads"))
            graph.node.insert(0, helper.make_node("Pad", [conv.input[0], f"{name}_pads"], [name], name=name,
                                                  mode="constant"))
            pads.add(name)
        conv.input[0], conv.input[1] = name, f"{conv.input[1]}_padded"
        padded += 1
    drop_unused_constants(graph)
    return model, padded


def rewrite_for_int8(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """All exact rewrites above, in order; returns the model and what applied (each rewrite
    is a no-op where its pattern is absent)."""
    applied = []
    model, folded = fold_gated_batchnorm(model)
    if folded:
        applied.append(f"{folded} gated BatchNorms folded")
    model, matched = channels_last_head_output(model)
    if matched:
        applied.append("head output channels-last, score/box convs split")
    model, padded = pad_input_channels(model)
    if padded:
        applied.append(f"input channels of {padded} conv(s) padded to {CONV_CHANNEL_MULTIPLE}")
    return model, applied

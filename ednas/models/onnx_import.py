"""Load the weights of a released NanoDet-family ONNX (BatchNorm folded) into a Detector.

The model is run once with pre-hooks that record, in execution order, every weight-carrying
unit (a conv with the BN that follows it, a kernel-refine conv, a BN that could not be folded),
and traced to ONNX, whose node order is that same execution order. Node order in a file is not
reliable (simplifiers reorder independent branches), so both graphs are then walked the same
way, depth-first from the output with inputs in order, and paired node by node; each pair is
checked by shapes and conv attributes. A folded conv loads into conv + an identity-initialised
BN, so the PyTorch model keeps its trainable form.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ednas.errors import ModelMismatchError
from ednas.models.detector import Detector
from ednas.models.kernel_refine import KernelRefineConv
from ednas.onnx_runtime import load_onnx, random_feeds, session, sigmoid_feeds
from ednas.models.layers import ConvBNAct, set_bn_affine

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """One ONNX node's worth of weights on the PyTorch side."""

    kind: str  # "conv" | "kr_dw" | "kr_gate" | "bn"
    name: str  # module name in the Detector
    module: nn.Module
    bn: nn.BatchNorm2d | None = None  # BN folded into this conv in the ONNX

    def describe(self) -> str:
        if self.kind == "bn":
            return f"BatchNormalization({self.module.num_features})"
        conv = self.module.conv if isinstance(self.module, KernelRefineConv) else self.module
        shape = (1, conv.in_channels, 1, 1) if self.kind == "kr_gate" else tuple(conv.weight.shape)
        return f"Conv{list(shape)}"


@dataclass
class OnnxNode:
    op: str
    name: str
    arrays: list[np.ndarray]  # initializer inputs in order (weight, bias / BN params)
    attrs: dict
    index: int  # position in graph.node

    def describe(self) -> str:
        return f"{self.op}{list(self.arrays[0].shape)}" if self.arrays else self.op


def model_slots(model: Detector) -> list[Slot]:
    """Weight-carrying units of the inference model in execution order."""
    names = {m: n for n, m in model.named_modules()}
    folded_bn: dict[nn.Module, nn.BatchNorm2d] = {}
    unfolded_bn: set[nn.Module] = set()
    inside_kr: set[nn.Module] = set()
    for m in model.modules():
        if isinstance(m, ConvBNAct) and isinstance(m.bn, nn.BatchNorm2d):
            if isinstance(m.conv, KernelRefineConv):
                unfolded_bn.add(m.bn)
            else:
                folded_bn[m.conv] = m.bn
        if isinstance(m, KernelRefineConv):
            inside_kr.update(m.modules())
            inside_kr.discard(m)

    slots: list[Slot] = []

    def record(module: nn.Module, _inputs) -> None:
        if module in inside_kr:
            return
        name = names[module]
        if isinstance(module, KernelRefineConv):
            slots.extend([Slot("kr_dw", name, module), Slot("kr_gate", name, module)])
        elif isinstance(module, nn.Conv2d):
            slots.append(Slot("conv", name, module, folded_bn.get(module)))
        elif module in unfolded_bn:
            slots.append(Slot("bn", name, module))

    hooks = [m.register_forward_pre_hook(record) for m in model.inference_modules().modules()
             if isinstance(m, (nn.Conv2d, KernelRefineConv, nn.BatchNorm2d))]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            s = model.arch.input_size
            model(torch.zeros(1, 3, s, s))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return slots


def onnx_nodes(model_proto) -> list[OnnxNode]:
    """Conv and BatchNormalization nodes of the graph, in graph order, with their weights."""
    from onnx import helper, numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model_proto.graph.initializer}
    for node in model_proto.graph.node:  # exporters share equal constants through Identity
        if node.op_type == "Identity" and node.input[0] in inits:
            inits[node.output[0]] = inits[node.input[0]]
    nodes = []
    for index, node in enumerate(model_proto.graph.node):
        if node.op_type not in ("Conv", "BatchNormalization"):
            continue
        arrays = [inits[i] for i in node.input[1:] if i in inits]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        nodes.append(OnnxNode(node.op_type, node.name or node.output[0], arrays, attrs, index))
    return nodes


def canonical_order(model_proto, nodes: list[OnnxNode]) -> list[OnnxNode]:
    """`nodes` in post-order of a depth-first walk from the graph outputs, inputs in order:
    an order fixed by the data flow alone, whatever the order of nodes in the file."""
    graph = model_proto.graph
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output}
    wanted = {n.index: n for n in nodes}
    seen: set[int] = set()
    order: list[OnnxNode] = []
    for out in graph.output:
        if out.name not in producer:
            continue
        stack = [(producer[out.name], False)]
        while stack:
            i, expanded = stack.pop()
            if expanded:
                if i in wanted:
                    order.append(wanted[i])
                continue
            if i in seen:
                continue
            seen.add(i)
            stack.append((i, True))
            inputs = [producer[t] for t in graph.node[i].input if t in producer]
            stack.extend((j, False) for j in reversed(inputs) if j not in seen)
    return order


def trace_onnx(model: Detector):
    """The model traced to an in-memory ONNX graph as the releases are exported: eval mode,
    BN folded into convs by the exporter, kernel-refine gates frozen into 1x1 convs."""
    import copy
    import io
    import warnings

    import onnx

    s = model.arch.input_size
    traced = copy.deepcopy(model).eval()
    for m in traced.modules():
        if isinstance(m, KernelRefineConv):
            m.fuse()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(traced, (torch.zeros(1, 3, s, s),), buffer, opset_version=13, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _conv_matches(conv: nn.Conv2d, node: OnnxNode, shape: tuple[int, ...]) -> bool:
    if node.op != "Conv" or not node.arrays or tuple(node.arrays[0].shape) != shape:
        return False
    strides = tuple(node.attrs.get("strides", [1, 1]))
    return node.attrs.get("group", 1) == conv.groups and strides == tuple(conv.stride)


def _matches(slot: Slot, node: OnnxNode) -> bool:
    if slot.kind == "bn":
        return node.op == "BatchNormalization" and node.arrays[0].shape[0] == slot.module.num_features
    if slot.kind == "kr_gate":
        conv = slot.module.conv
        return (node.op == "Conv" and len(node.arrays) == 2
                and tuple(node.arrays[0].shape) == (1, conv.in_channels, 1, 1))
    conv = slot.module.conv if slot.kind == "kr_dw" else slot.module
    if not _conv_matches(conv, node, tuple(conv.weight.shape)):
        return False
    has_bias = len(node.arrays) > 1
    expects_bias = slot.bn is not None or getattr(conv, "bias", None) is not None
    return has_bias == expects_bias


@torch.no_grad()
def _load(slot: Slot, node: OnnxNode, where: str) -> None:
    t = [torch.from_numpy(np.array(a, dtype=np.float32)) for a in node.arrays]
    if slot.kind == "bn":
        bn = slot.module
        bn.weight.copy_(t[0]), bn.bias.copy_(t[1]), bn.running_mean.copy_(t[2]), bn.running_var.copy_(t[3])
        bn.eps = float(node.attrs.get("epsilon", 1e-5))
    elif slot.kind == "kr_dw":
        slot.module.conv.weight.copy_(t[0])
    elif slot.kind == "kr_gate":
        # the ONNX gate weight is BN1's scale times the kernel sums: recover that scale
        sums = slot.module.conv.weight.sum(dim=(2, 3)).flatten()  # (C,)
        w = t[0].flatten()
        scale = (w @ sums) / (sums @ sums)
        if (w - scale * sums).abs().max() > 1e-4 * w.abs().max():
            raise ModelMismatchError(
                f"{where}: node {node.name} is not a kernel-refine gate of {slot.name} "
                "(its weights are not a multiple of the depthwise kernel sums)"
            )
        set_bn_affine(slot.module.gate_bn, scale.reshape(1), t[1].reshape(1))
    else:
        conv: nn.Conv2d = slot.module
        conv.weight.copy_(t[0])
        if slot.bn is not None:
            set_bn_affine(slot.bn, torch.ones_like(t[1]), t[1])
        elif conv.bias is not None:
            conv.bias.copy_(t[1])


def import_onnx(model: Detector, path: str | Path) -> None:
    """Load the weights of the ONNX model at `path` into `model` (in place)."""
    proto = load_onnx(path)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) == 4 and dims[2] and dims[2] != model.arch.input_size:
        log.warning("%s was exported at %d px, the recipe says %d px", path, dims[2], model.arch.input_size)
    slots = model_slots(model)
    own_proto = trace_onnx(model)
    own_nodes = onnx_nodes(own_proto)
    if len(own_nodes) != len(slots) or not all(map(_matches, slots, own_nodes)):
        raise RuntimeError("internal error: the traced graph does not follow the module order")
    slot_of = {node.index: slot for node, slot in zip(own_nodes, slots)}
    slots = [slot_of[node.index] for node in canonical_order(own_proto, own_nodes)]
    nodes = canonical_order(proto, onnx_nodes(proto))
    for i, slot in enumerate(slots):
        if i >= len(nodes):
            raise ModelMismatchError(
                f"{path}: the ONNX graph ends before layer {slot.name} ({slot.describe()}); "
                "it is a smaller model than the recipe's: check `recipe`"
            )
        if not _matches(slot, nodes[i]):
            raise ModelMismatchError(
                f"{path}: layer {slot.name} expects {slot.describe()} but ONNX node {nodes[i].name} "
                f"is {nodes[i].describe()}: the graph does not match the recipe (check `recipe`)"
            )
    if len(nodes) > len(slots):
        raise ModelMismatchError(
            f"{path}: the ONNX graph has {len(nodes) - len(slots)} more conv/BN layers than the recipe's "
            f"model (first: {nodes[len(slots)].name}); check `recipe`"
        )
    # gates last: a gate's BN scale is recovered from its depthwise kernel, loaded before it
    for slot, node in sorted(zip(slots, nodes), key=lambda pair: pair[0].kind == "kr_gate"):
        _load(slot, node, str(path))
    log.info("loaded %d ONNX layers from %s", len(slots), path)


def import_and_check(model: Detector, path: str | Path) -> dict[str, float]:
    """`import_onnx`, then both models on one random input: the largest absolute differences
    of the class scores and of the box logits ({"scores", "logits"}; float32 noise when the
    import is right) and "file_logits" (1.0 when the file's class outputs are logits, as in
    NanoDet-Plus-m's ncnn rebuild: its scores are compared after the sigmoid the model applies)."""
    import_onnx(model, path)
    model.eval()
    sess = session(path)
    feeds = random_feeds(sess)
    expected = sess.run(None, feeds)[0]
    c = model.arch.num_classes
    file_logits = not sigmoid_feeds(load_onnx(path), sess.get_outputs()[0].name)
    if file_logits:
        log.debug("%s: its class outputs are logits; the checkpoint outputs their sigmoid", path)
        expected[..., :c] = 1 / (1 + np.exp(-expected[..., :c]))
    with torch.no_grad():
        got = model.inference(torch.from_numpy(next(iter(feeds.values())))).numpy()
    return {"scores": float(np.abs(got[..., :c] - expected[..., :c]).max()),
            "logits": float(np.abs(got[..., c:] - expected[..., c:]).max()),
            "file_logits": float(file_logits)}

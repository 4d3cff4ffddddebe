"""ONNX model preparation for INT8: contract check, opset conversion, ORT pre-processing, and
the graph facts the quantizer needs (input size, the output tail that must stay FP32).

Per-channel QDQ needs opset >= 13 (older opsets quantize but fail to load), so older models
are converted with `onnx.version_converter` first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnx

from ednas.errors import ModelMismatchError
from ednas.onnx_runtime import load_onnx

log = logging.getLogger(__name__)

MIN_OPSET = 13  # per-channel DequantizeLinear (attribute `axis`) exists from opset 13

# ops that only rearrange / squash the head's conv outputs into the released tensor
TAIL_OPS = frozenset({"Sigmoid", "Split", "Concat", "Reshape", "Transpose", "Slice", "Flatten",
                      "Squeeze", "Unsqueeze", "Identity"})


@dataclass(frozen=True)
class Contract:
    """Names and shapes of the single input and single output (e.g. data [1,3,S,S])."""

    input_name: str
    input_shape: tuple[int | str, ...]
    output_name: str
    output_shape: tuple[int | str, ...]

    @property
    def input_size(self) -> int:
        return int(self.input_shape[2])


def _shape(value: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def contract_of(model: onnx.ModelProto, source: str = "model") -> Contract:
    """The model's contract; anything but one [N,3,S,S] input with fixed S and one output
    raises ModelMismatchError."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    shape = _shape(inputs[0]) if len(inputs) == 1 else ()
    if len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) or shape[2] <= 0 or shape[2] != shape[3]:
        found = ", ".join(f"{i.name} {list(_shape(i))}" for i in inputs) or "none"
        raise ModelMismatchError(f"{source}: expected one 4-D image input [N, 3, S, S] with a fixed S, "
                                 f"found {found}; give a detector ONNX (e.g. from ednas export)")
    elem = inputs[0].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise ModelMismatchError(f"{source}: input {inputs[0].name} is {onnx.TensorProto.DataType.Name(elem)}, not a "
                                 "float32 image tensor [N, 3, S, S]; give the FP32 detector ONNX")
    if len(model.graph.output) != 1:
        raise ModelMismatchError(f"{source}: expected one output, found {len(model.graph.output)}")
    out = model.graph.output[0]
    return Contract(inputs[0].name, shape, out.name, _shape(out))


def opset_of(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def convert_opset(model: onnx.ModelProto, target: int = MIN_OPSET) -> onnx.ModelProto:
    """`model` at opset >= `target` (returned unchanged when already there)."""
    current = opset_of(model)
    if current >= target:
        return model
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, target)
    except Exception as exc:
        raise ModelMismatchError(f"cannot convert the model from opset {current} to {target} ({exc})") from None
    log.info("converted opset %d -> %d", current, target)
    return converted


def prepare(model: onnx.ModelProto, work_dir: str | Path, rewrite: bool = True) -> tuple[Path, list[str]]:
    """Opset conversion, `quant_pre_process` (shape inference, ORT graph optimisations), then
    (unless `rewrite` is off) the exact rewrites of `rewrite`; returns the path of the
    prepared model in `work_dir` and the rewrites that applied."""
    from onnxruntime.quantization import quant_pre_process

    from ednas.compress.quantize.rewrite import rewrite_for_int8

    work_dir = Path(work_dir)
    raw = work_dir / "opset.onnx"
    onnx.save(convert_opset(model), str(raw))
    optimized = work_dir / "optimized.onnx"
    quant_pre_process(str(raw), str(optimized), skip_symbolic_shape=True)
    out = work_dir / "prepared.onnx"
    prepared, applied = rewrite_for_int8(onnx.load(str(optimized))) if rewrite else (onnx.load(str(optimized)), [])
    onnx.save(prepared, str(out))
    return out, applied


def tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes between the head's last convs and the output (Split, Sigmoid, Concat, Reshape,
    Transpose...). They must stay FP32: the output mixes 0-1 scores and +-37 logits, and one
    8-bit scale for both destroys the scores."""
    from ednas.compress.quantize.rewrite import producers

    producer = producers(model.graph)
    tail: dict[str, None] = {}
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in tail or node.op_type not in TAIL_OPS:
            continue
        tail[node.name] = None
        stack.extend(node.input)
    return list(tail)


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every unnamed node a unique name (nodes_to_exclude works by name)."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    return model


def check_contract(path: str | Path, expected: Contract) -> None:
    """The written model must keep the input/output names and shapes of the original."""
    got = contract_of(load_onnx(path), str(path))
    if got != expected:
        raise ModelMismatchError(f"{path}: quantized model changed the contract ({got} != {expected})")



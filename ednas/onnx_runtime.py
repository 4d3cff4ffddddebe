"""ONNX files and ONNX Runtime sessions, one way each: load a model (a one-line error for a
missing, empty, truncated or non-ONNX file), open a CPU session (threads, spinning, graph
optimization), feed it random inputs.

Imports no torch and nothing of ednas but its errors, so `ednas profile --bundle` copies this
file beside `latency/runner.py` as part of the remote runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

try:
    from ednas.errors import InputError
except ImportError:  # copied into a latency bundle, without the package
    class InputError(Exception):  # type: ignore[no-redef]
        """A model file that cannot be loaded."""

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort

Optimization = Literal["all", "extended", "basic", "disable"]


def load_onnx(path: str | Path) -> "onnx.ModelProto":
    """onnx.load with one-line errors for a missing, empty, truncated or non-ONNX file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such ONNX file (give the path of an .onnx model)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (was the export or copy interrupted?); give a complete .onnx model")
    try:
        proto = onnx.load(str(path))
    except Exception:  # protobuf DecodeError and friends
        raise InputError(f"{path}: not an ONNX model or truncated (onnx could not parse it); "
                         "give a complete .onnx model") from None
    if not proto.graph.node or not proto.graph.input:
        raise InputError(f"{path}: holds no graph (not an ONNX model, or truncated); give a complete .onnx model")
    return proto


def session(model: "str | Path | onnx.ModelProto", threads: int | None = None, spin: bool = False,
            optimization: Optimization = "all", sequential: bool = True) -> "ort.InferenceSession":
    """A CPU InferenceSession of an ONNX file or an in-memory model.

    `threads`: intra-op threads (None: ONNX Runtime's default, one per core); inter-op is 1.
    `spin` off: idle workers sleep instead of spin-waiting, which on a machine shared with
    other work keeps 2-thread timings from becoming 3-5x slower and bimodal.
    A file ONNX Runtime cannot load raises InputError naming it.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if sequential else ort.ExecutionMode.ORT_PARALLEL
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[optimization]
    opts.log_severity_level = 3
    if not isinstance(model, (str, Path)):
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    path = Path(model)
    if not path.is_file():
        raise InputError(f"{path}: no such ONNX file (give the path of an .onnx model)")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: ONNX Runtime cannot load it ({reason})") from None


def with_outputs(model: "onnx.ModelProto", names: "list[str]") -> "onnx.ModelProto":
    """A copy of `model` that also outputs the tensors `names` (to read activations)."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known)
    return model


def random_feeds(sess: "ort.InferenceSession", seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float32 inputs for every input of `sess` (symbolic dimensions as 1)."""
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
            for i in sess.get_inputs()}



# ops that move, select or re-encode values without computing new ones: a graph output's
# values were computed by the first other node met walking back through these
_CARRIERS = {"Concat", "Reshape", "Transpose", "Split", "Slice", "Flatten", "Squeeze", "Unsqueeze",
             "Identity", "Gather", "Cast", "QuantizeLinear", "DequantizeLinear"}


def sigmoid_feeds(model: "onnx.ModelProto", output: str) -> bool:
    """True when a Sigmoid (or HardSigmoid) computes some of the values of graph output `output`
    (through ops that only move values): whether a detector's class outputs are probabilities
    or logits, read from the graph before anything is run."""
    producer = {name: node for node in model.graph.node for name in node.output}
    stack, seen = [output], set()
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if node is None or name in seen:
            continue
        seen.add(name)
        if node.op_type in ("Sigmoid", "HardSigmoid"):
            return True
        if node.op_type in _CARRIERS:
            stack.extend(node.input if node.op_type == "Concat" else node.input[:1])
    return False

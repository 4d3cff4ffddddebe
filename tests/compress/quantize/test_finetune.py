"""Quantization-aware fine-tuning on a tiny detector made in code: the torch interpreter
runs the FP32 and QDQ graphs as ONNX Runtime does, and fine-tuning lowers the output error
while changing nothing but the integers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ednas.compress.quantize.calibration import collect_stats, compute_ranges
from ednas.compress.quantize.finetune import (FinetuneConfig, QdqGraph, UnsupportedGraph, finetune_qdq,
                                              unsupported_ops)
from ednas.compress.quantize.plain import build_qdq
from ednas.compress.quantize.prepare import name_nodes, prepare, tail_nodes
from ednas.compress.quantize.sensitivity import output_error
from ednas.cpu import int8_weights
from ednas.onnx_runtime import load_onnx
from test_job import NUM_CLASSES, SIZE, TinyDetector, _export  # same folder, on sys.path


# this CPU's weight format: ONNX Runtime's U8S8 kernels saturate 8-bit weights without VNNI, so
# on such a CPU only 7-bit weights run as the interpreter computes them
REDUCE = int8_weights().reduce_range
WEIGHTS = (-64, 64) if REDUCE else (-127, 127)


def _images(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (a blurred noise field per channel), like normalised photos."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((n, 3, SIZE // 4, SIZE // 4)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """(prepared FP32 model, its plain QDQ model, calibration images)."""
    import torch

    work = tmp_path_factory.mktemp("ft")
    torch.manual_seed(0)
    model = name_nodes(load_onnx(_export(TinyDetector(), work / "tiny.onnx")))
    prepared, _ = prepare(model, work)
    x = _images(8)
    ranges = compute_ranges(collect_stats(prepared, x, 1), "mse")
    qdq = build_qdq(prepared, ranges, tail_nodes(load_onnx(prepared)), REDUCE, None, work / "q.onnx", 1)
    return prepared, qdq, x


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    from ednas.onnx_runtime import session

    sess = session(path, 1)
    return np.concatenate([sess.run(None, {"data": xi[None]})[0] for xi in x])


def _torch(path: Path, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return QdqGraph(load_onnx(path), WEIGHTS)(torch.from_numpy(x))[0].numpy()


def test_interpreter_runs_the_graphs_like_onnx_runtime(built) -> None:
    prepared, qdq, x = built
    np.testing.assert_allclose(_torch(prepared, x), _ort(prepared, x), atol=1e-5)
    fp32, ort_q, torch_q = _ort(prepared, x), _ort(qdq, x), _torch(qdq, x)
    quant_error = np.abs(ort_q - fp32).mean()
    assert quant_error > 0
    # the same rounding, up to float ties: far closer to ORT's INT8 output than INT8 is to FP32
    assert np.abs(torch_q - ort_q).mean() < 0.1 * quant_error


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in load_onnx(path).graph.initializer}


@pytest.mark.parametrize("learn_ranges", [False, True])
def test_finetune_lowers_the_output_error_and_keeps_the_graph(built, tmp_path: Path, learn_ranges: bool) -> None:
    prepared, qdq, x = built
    config = FinetuneConfig(steps=60, batch=4, lr=1e-3, learn_ranges=learn_ranges)
    out = finetune_qdq(qdq, prepared, x, tmp_path / "ft.onnx", NUM_CLASSES, reduce_range=REDUCE, config=config)
    fp32 = _ort(prepared, x)
    assert output_error(fp32, _ort(out, x), NUM_CLASSES) < output_error(fp32, _ort(qdq, x), NUM_CLASSES)
    old, new = load_onnx(qdq), load_onnx(out)
    assert [(n.op_type, list(n.input), list(n.output)) for n in old.graph.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in new.graph.node]
    a, b = _initializers(qdq), _initializers(out)
    assert a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape for k in a)
    changed = [k for k in a if not np.array_equal(a[k], b[k])]
    int8 = [b[k] for k in changed if b[k].dtype == np.int8]
    assert int8 and all(np.abs(w).max() <= 127 for w in int8)
    scales = [k for k in changed if b[k].dtype == np.float32 and k.endswith("scale")]
    assert bool(scales) == learn_ranges  # without learn_ranges only the integers move
    # every int32 bias still has scale = input scale x weight scale, as ONNX Runtime needs
    graph = QdqGraph(new, (-127, 127))
    assert graph.bias_scale
    for bias, (bias_scale, x_scale, weight) in graph.bias_scale.items():
        np.testing.assert_allclose(b[bias_scale], b[x_scale] * graph.scales[weight][0].numpy(), rtol=1e-6)


def test_reduce_range_keeps_seven_bit_weights(built, tmp_path: Path) -> None:
    prepared, qdq, x = built
    out = finetune_qdq(qdq, prepared, x, tmp_path / "ft7.onnx", NUM_CLASSES, reduce_range=True,
                       config=FinetuneConfig(steps=5, batch=4, lr=1e-2))
    weights = [numpy_helper.to_array(i) for i in load_onnx(out).graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert weights and all(np.abs(w).max() <= 64 for w in weights)


def test_unknown_operator_is_refused_in_one_line(built) -> None:
    from onnx import helper

    model = load_onnx(built[1])
    model.graph.node.append(helper.make_node("Erf", ["output"], ["erf"], name="erf"))
    assert unsupported_ops(model) == ["Erf"]
    with pytest.raises(UnsupportedGraph, match="cannot run Erf nodes"):
        QdqGraph(model, (-127, 127))

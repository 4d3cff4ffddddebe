"""INT8 units are the model `ednas quantize` ships: built by ednas.compress.quantize.plain (exact
rewrites, Pad in uint8, FP32 output tail) with the weight bits the CPU's flags choose."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import ednas.compress.quantize.plain as plain
from ednas.cpu import CpuInfo
from ednas.latency.export import export_unit
from ednas.latency.units import arch_units


def unit_of(space, kind, kr=None):
    for _, unit in arch_units(space.base):
        if unit.kind == kind and (kr is None or dict(unit.params).get("kr") == kr):
            return unit
    raise LookupError(kind)


def int8_weights(model: onnx.ModelProto) -> np.ndarray:
    values = [numpy_helper.to_array(i).ravel() for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    return np.concatenate(values)


@pytest.mark.parametrize("flags, limit", [({"avx2"}, 64), ({"avx2", "avx512_vnni"}, 127)])
def test_int8_unit_goes_through_the_quantize_path(tiny_space, tmp_path, monkeypatch, flags, limit) -> None:
    monkeypatch.setattr("ednas.cpu.cpu_info", lambda *a: CpuInfo("Test CPU", frozenset(flags)))
    calls = []
    real = plain.build_plain_int8
    monkeypatch.setattr(plain, "build_plain_int8", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    stem = onnx.load(str(export_unit(unit_of(tiny_space, "stem"), tmp_path / "stem.onnx", "int8")))
    assert calls == [limit == 64]  # reduce_range: 7-bit weights without VNNI
    assert np.abs(int8_weights(stem).astype(int)).max() == limit  # symmetric per channel: the largest weight
    assert any(n.op_type == "Pad" and n.name.endswith("_uint8") for n in stem.graph.node)  # pads_into_uint8
    assert {n.op_type for n in stem.graph.node} >= {"QuantizeLinear", "DequantizeLinear", "Conv"}


def test_int8_kr_block_is_rewritten_and_runs(tiny_space, tmp_path) -> None:
    unit = unit_of(tiny_space, "block", kr=True)
    path = export_unit(unit, tmp_path / "kr.onnx", "int8")
    model = onnx.load(str(path))
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)  # fold_gated_batchnorm
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros(s, np.float32) for i, s in zip(sess.get_inputs(), unit.inputs)}
    assert sess.run(None, feeds)[0].size > 0


def test_int8_tail_stays_fp32(tiny_space, tmp_path) -> None:
    unit = unit_of(tiny_space, "tail")
    model = onnx.load(str(export_unit(unit, tmp_path / "tail.onnx", "int8")))
    assert not {n.op_type for n in model.graph.node} & {"QuantizeLinear", "DequantizeLinear"}

"""Bias correction leaves a smaller per-channel mean error than it found, keeps the INT8 graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ednas.compress.quantize import calibration as calib
from ednas.compress.quantize.bias_correction import correct_bias, quantized_convs
from ednas.compress.quantize.prepare import name_nodes, prepare
from ednas.onnx_runtime import load_onnx
from ednas.compress.quantize.ort_backend import quantize_qdq


def test_bias_correction_reduces_the_mean_shift(tmp_path: Path, calib_dir: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.ReLU(),
                        nn.Conv2d(8, 16, 1, bias=False), nn.ReLU(), nn.Conv2d(16, 4, 1)).eval()
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(tmp_path / "m.onnx"), input_names=["data"],
                      output_names=["output"], opset_version=13, dynamo=False)
    prepared, _ = prepare(name_nodes(load_onnx(tmp_path / "m.onnx")), tmp_path, rewrite=False)
    inputs = calib.load_batch(calib.list_images(calib_dir), 32)
    ranges = calib.compute_ranges(calib.collect_stats(prepared, inputs), "minmax")
    qdq = quantize_qdq(prepared, tmp_path / "q.onnx", ranges, reduce_range=False)
    fixed, before = correct_bias(qdq, prepared, inputs, tmp_path / "bc.onnx")
    _, after = correct_bias(fixed, prepared, inputs, tmp_path / "bc2.onnx")
    assert before > 0 and after < 0.5 * before
    a, b = onnx.load(str(qdq)), onnx.load(str(fixed))
    ops = [n.op_type for n in a.graph.node if n.op_type != "DequantizeLinear"]
    assert ops == [n.op_type for n in b.graph.node if n.op_type != "DequantizeLinear"]  # same INT8 graph
    assert all(len(n.input) == 3 for n in b.graph.node if n.op_type == "Conv")  # the bias-less conv got one
    assert len(quantized_convs(onnx.load(str(prepared)), b)) == 4
    assert np.isfinite(after)

"""quantize_qdq: the input's zero-channel Pad runs on uint8 behind the input's QuantizeLinear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from ednas.compress.quantize.rewrite import pad_input_channels
from ednas.compress.quantize.calibration import collect_stats, compute_ranges
from ednas.compress.quantize.ort_backend import quantize_qdq


def test_input_pad_moves_into_uint8(tmp_path: Path) -> None:
    torch.manual_seed(0)
    fp32 = tmp_path / "m.onnx"
    torch.onnx.export(nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 1)).eval(),
                      torch.zeros(1, 3, 16, 16), str(fp32), input_names=["x"], output_names=["y"],
                      opset_version=13, dynamo=False)
    padded = tmp_path / "padded.onnx"
    onnx.save(pad_input_channels(onnx.load(str(fp32)))[0], str(padded))
    inputs = np.random.default_rng(0).uniform(-1, 1, (4, 3, 16, 16)).astype(np.float32)
    ranges = compute_ranges(collect_stats(padded, inputs, 1), "minmax")
    int8 = onnx.load(str(quantize_qdq(padded, tmp_path / "int8.onnx", ranges)))
    producer = {o: n for n in int8.graph.node for o in n.output}
    pads = [n for n in int8.graph.node if n.op_type == "Pad"]
    assert len(pads) == 1 and producer[pads[0].input[0]].op_type == "QuantizeLinear"
    assert pads[0].input[2] == producer[pads[0].input[0]].input[2]  # pads with the zero point
    run = lambda m: ort.InferenceSession(m.SerializeToString() if isinstance(m, onnx.ModelProto) else str(m)).run(
        None, {"x": inputs[:1]})[0]
    ref = run(fp32)
    assert np.abs(run(int8) - ref).max() < 0.05 * np.abs(ref).max()

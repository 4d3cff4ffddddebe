"""fold_gated_batchnorm: exact on the kernel-refine pattern, and leaves anything else alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from ednas.compress.onnx_rewrite import fold_gated_batchnorm


class Gated(nn.Module):
    """BN(depthwise(x) * sigmoid(gate(x))): the tail of a KR block; `gate_channels` > 1 breaks
    the pattern (the BN scale no longer commutes with the product)."""

    def __init__(self, gate_channels: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=bias)
        self.gate = nn.Conv2d(8, gate_channels, 1)
        self.bn = nn.BatchNorm2d(8)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(-2, 2)
            self.bn.bias.uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.dw(x) * torch.sigmoid(self.gate(x))))


def _export(module: nn.Module, path: Path) -> onnx.ModelProto:
    torch.manual_seed(0)
    torch.onnx.export(module.eval(), torch.zeros(1, 8, 12, 12), str(path), input_names=["x"],
                      output_names=["y"], opset_version=13, dynamo=False)
    return onnx.load(str(path))


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


@pytest.mark.parametrize("bias", [False, True])
def test_fold_is_exact_and_removes_the_batchnorm(tmp_path: Path, bias: bool) -> None:
    model = _export(Gated(bias=bias), tmp_path / "m.onnx")
    folded, n = fold_gated_batchnorm(model)
    assert n == 1
    assert not [node for node in folded.graph.node if node.op_type == "BatchNormalization"]
    onnx.checker.check_model(folded)
    x = np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x), _run(model, x), atol=1e-5)


def test_multichannel_gate_is_left_alone(tmp_path: Path) -> None:
    model = _export(Gated(gate_channels=8), tmp_path / "m.onnx")
    folded, n = fold_gated_batchnorm(model)
    assert n == 0
    assert [node.op_type for node in folded.graph.node].count("BatchNormalization") == 1

"""The exact INT8-preparing rewrites: each keeps the output and leaves other graphs alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from ednas.compress.quantize.rewrite import channels_last_head_output, fold_gated_batchnorm, pad_input_channels


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


def _export(module: nn.Module, path: Path, channels: int = 8) -> onnx.ModelProto:
    torch.manual_seed(0)
    torch.onnx.export(module.eval(), torch.zeros(1, channels, 12, 12), str(path), input_names=["x"],
                      output_names=["y"], opset_version=13, dynamo=False)
    return onnx.load(str(path))


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


def _ops(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


@pytest.mark.parametrize("bias", [False, True])
def test_fold_is_exact_and_removes_the_batchnorm(tmp_path: Path, bias: bool) -> None:
    model = _export(Gated(bias=bias), tmp_path / "m.onnx")
    folded, n = fold_gated_batchnorm(model)
    assert n == 1
    assert "BatchNormalization" not in _ops(folded) and "Add" not in _ops(folded)  # the shift is a 1x1 dw conv
    onnx.checker.check_model(folded)
    x = np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x), _run(model, x), atol=1e-5)


def test_multichannel_gate_is_left_alone(tmp_path: Path) -> None:
    model = _export(Gated(gate_channels=8), tmp_path / "m.onnx")
    folded, n = fold_gated_batchnorm(model)
    assert n == 0
    assert [node.op_type for node in folded.graph.node].count("BatchNormalization") == 1


class TwoLevelHead(nn.Module):
    """Two head levels ending like the released model (`sigmoid_per_level`: split, sigmoid,
    concat per level, then reshape/concat/transpose) or like ednas' own export (reshape,
    concat, transpose, then the sigmoid on the first channels of the last axis)."""

    def __init__(self, sigmoid_per_level: bool, last_relu: bool = False) -> None:
        super().__init__()
        self.sigmoid_per_level = sigmoid_per_level
        # last_relu: the second level ends in a ReLU, not a conv, so no level's conv may split
        self.levels = nn.ModuleList([nn.Conv2d(8, 6, 1), nn.Sequential(nn.Conv2d(8, 6, 3, 2, 1), nn.ReLU())
                                     if last_relu else nn.Conv2d(8, 6, 3, 2, 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = []
        for conv in self.levels:
            y = conv(x)  # (1, 6, H, W)
            if self.sigmoid_per_level:
                scores, boxes = y.split([4, 2], dim=1)
                y = torch.cat([scores.sigmoid(), boxes], dim=1)
            flat.append(y.reshape(1, 6, -1))
        y = torch.cat(flat, dim=2).transpose(1, 2)  # (1, A, 6)
        if not self.sigmoid_per_level:
            y = torch.cat([y[..., :4].sigmoid(), y[..., 4:]], dim=-1)
        return y


@pytest.mark.parametrize("sigmoid_per_level", [True, False])
def test_head_output_channels_last_is_exact(tmp_path: Path, sigmoid_per_level: bool) -> None:
    model = _export(TwoLevelHead(sigmoid_per_level), tmp_path / "m.onnx")
    rewritten, matched = channels_last_head_output(model)
    assert matched
    onnx.checker.check_model(rewritten)
    ops = _ops(rewritten)
    assert ops.count("Sigmoid") == 1  # once on the joined tensor
    assert ops.count("Conv") == 4  # each level's conv split: scores and boxes get their own INT8 scale
    assert all(list(n.attribute[0].ints) == [0, 2, 3, 1] for n in rewritten.graph.node if n.op_type == "Transpose")
    x = np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(_run(rewritten, x), _run(model, x))


def test_head_rewrite_leaves_other_graphs_alone(tmp_path: Path) -> None:
    model = _export(Gated(), tmp_path / "m.onnx")
    rewritten, matched = channels_last_head_output(model)
    assert not matched and _ops(rewritten) == _ops(model)


def test_pad_input_channels_is_exact(tmp_path: Path) -> None:
    model = _export(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU()), tmp_path / "m.onnx", channels=3)
    padded, n = pad_input_channels(model)
    assert n == 1 and _ops(padded)[0] == "Pad"
    weights = {i.name: i for i in padded.graph.initializer}
    conv = next(node for node in padded.graph.node if node.op_type == "Conv")
    assert list(weights[conv.input[1]].dims) == [8, 4, 3, 3]
    x = np.random.default_rng(0).standard_normal((1, 3, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(_run(padded, x), _run(model, x), atol=1e-6)
    assert pad_input_channels(padded)[1] == 0  # already a multiple of 4


def test_head_convs_split_for_all_levels_or_none(tmp_path: Path) -> None:
    model = _export(TwoLevelHead(sigmoid_per_level=True, last_relu=True), tmp_path / "m.onnx")
    rewritten, matched = channels_last_head_output(model)
    assert matched and _ops(rewritten).count("Conv") == 2 and "Split" in _ops(rewritten)
    onnx.checker.check_model(rewritten)
    x = np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(_run(rewritten, x), _run(model, x))


def test_two_convs_on_one_input_share_one_pad(tmp_path: Path) -> None:
    class TwoStems(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, 1, 1), nn.Conv2d(3, 8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(x)

    model = _export(TwoStems(), tmp_path / "m.onnx", channels=3)
    padded, n = pad_input_channels(model)
    assert n == 2 and _ops(padded).count("Pad") == 1
    onnx.checker.check_model(padded)
    x = np.random.default_rng(0).standard_normal((1, 3, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(_run(padded, x), _run(model, x), atol=1e-5)

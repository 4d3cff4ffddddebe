"""Activation ranges: every method on a known histogram, and the Sigmoid-input exception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ednas.compress.quantize.calibration import (
    METHODS, NUM_BINS, SIGMOID_SATURATION, TensorStats, collect_stats, compute_ranges)


def _stats(values: np.ndarray, sigmoid_input: bool = False) -> TensorStats:
    lo, hi = float(values.min()), float(values.max())
    return TensorStats(lo, hi, np.histogram(values, NUM_BINS, (lo, hi))[0], sigmoid_input)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_ranges_contain_zero_and_stay_within_the_data(method: str) -> None:
    values = np.random.default_rng(0).standard_normal(100_000) * 2 + 1
    lo, hi = compute_ranges({"t": _stats(values)}, method)["t"]
    assert values.min() <= lo <= 0 <= hi <= values.max()


def test_sigmoid_inputs_keep_their_high_end_up_to_saturation() -> None:
    """Score logits: a long low tail (-30) and rare high values (+2) that decide the ranking."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-10, 2, 100_000), [2.0]])
    for method in METHODS:
        lo, hi = compute_ranges({"t": _stats(values, sigmoid_input=True)}, method)["t"]
        assert (lo, hi) == (-SIGMOID_SATURATION, 2.0)
    assert compute_ranges({"t": _stats(values)}, "mse")["t"][1] < 2.0  # what mse alone would do


def test_collect_stats_marks_sigmoid_inputs(tmp_path: Path) -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.a(x).reshape(1, 4, -1)).flatten(1) * self.b(x).flatten(1)

    path = tmp_path / "g.onnx"
    torch.onnx.export(Gate().eval(), torch.zeros(1, 3, 8, 8), str(path), input_names=["x"], output_names=["y"],
                      opset_version=13, dynamo=False)
    stats = collect_stats(path, np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    marked = {name for name, s in stats.items() if s.sigmoid_input}
    assert len(marked) == 2  # the conv output and its reshape, both read only on the way to the sigmoid

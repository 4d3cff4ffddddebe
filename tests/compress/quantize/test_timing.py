"""time_models: one timing per candidate, all against the same interleaved reference."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ednas.compress.quantize.timing import time_models, time_pair


def _export(module: nn.Module, path: Path) -> Path:
    torch.onnx.export(module.eval(), torch.zeros(1, 3, 32, 32), str(path), input_names=["x"], output_names=["y"],
                      opset_version=13, dynamo=False)
    return path


def test_round_robin_timings(tmp_path: Path) -> None:
    small = _export(nn.Conv2d(3, 4, 1), tmp_path / "small.onnx")
    big = _export(nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(12)]), tmp_path / "big.onnx")
    timings = time_models(big, {"small": small, "same": big}, threads=1, runs=20, warmup=2)
    assert set(timings) == {"small", "same"}
    assert timings["small"].runs == 20 and timings["small"].reference_ms == timings["same"].reference_ms
    assert timings["small"].speedup > 1.5  # a 1x1 conv against twelve 3x3 convs
    assert timings["small"].speedup_p10 <= timings["small"].speedup <= timings["small"].speedup_p90
    assert timings["small"].candidate_p10_ms <= timings["small"].candidate_ms
    assert time_pair(big, small, threads=1, runs=5).runs == 5

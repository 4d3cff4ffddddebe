"""Activation equalization on a detector made in code whose channels span 1 to 1/100 of each
other: it rescales only tensors that convs alone read, computes the same function, keeps
ReLU6 channels under the clip, and lowers the 8-bit output error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ednas.compress.quantize.calibration import collect_stats, compute_ranges
from ednas.compress.quantize.equalize import (CLIP_HEADROOM, channel_ranges, channel_scales, equalize_file,
                                              sites)
from ednas.compress.quantize.plain import build_qdq
from ednas.compress.quantize.prepare import name_nodes, prepare, tail_nodes
from ednas.compress.quantize.sensitivity import output_error
from ednas.onnx_runtime import load_onnx, session
from test_finetune import _images  # same folder, on sys.path
from test_job import NUM_CLASSES, _export


class Uneven(nn.Module):
    """conv-LeakyReLU-depthwise-ReLU6-conv-ReLU, a residual Add, a Clip(-1, 1), the released tail.
    The two equalizable tensors are made uneven the way trained networks are: their channels
    scaled 1 to 1/100 by the producing conv and scaled back by the reading one (nearly the
    same function: the weak channels matter as much as the strong ones)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.1))  # read by the depthwise: a site
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.ReLU6())  # read by the 1x1: a site
        self.pw = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU())  # read by a conv and the Add: not a site
        self.res = nn.Conv2d(16, 16, 3, 1, 1)  # read by the Add: not a site
        self.mid = nn.Conv2d(16, 16, 1)  # through Clip(-1, 1), not homogeneous: not a site
        self.head = nn.Conv2d(16, NUM_CLASSES + 32, 1)  # read by the tail: not a site
        with torch.no_grad():
            for conv, reader, depthwise in ((self.stem[0], self.dw[0], True), (self.dw[0], self.pw[0], False)):
                gain = torch.logspace(0, -2, 8)[torch.randperm(8)]
                conv.weight.mul_(gain[:, None, None, None])
                conv.bias.mul_(gain)
                reader.weight.div_(gain[:, None, None, None] if depthwise else gain[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(self.stem(x)))
        y = y + self.res(y)
        y = self.head(torch.clamp(self.mid(y), -1, 1))
        cls, reg = y.split([NUM_CLASSES, 32], dim=1)
        return torch.cat([cls.sigmoid(), reg], dim=1).flatten(2).transpose(1, 2)


@pytest.fixture(scope="module")
def uneven(tmp_path_factory) -> tuple[Path, np.ndarray]:
    work = tmp_path_factory.mktemp("eq")
    torch.manual_seed(0)
    prepared, _ = prepare(name_nodes(load_onnx(_export(Uneven(), work / "uneven.onnx"))), work)
    return prepared, _images(16)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = session(path, 1)
    return np.concatenate([sess.run(None, {"data": xi[None]})[0] for xi in x])


def test_sites_are_conv_outputs_that_only_convs_read(uneven) -> None:
    prepared, _ = uneven
    found = sites(load_onnx(prepared))
    assert [(s.tensor.split("/")[-1], s.top, [r.op_type for r in s.readers]) for s in found] == [
        ("LeakyRelu_output_0", float("inf"), ["Conv"]), ("Clip_output_0", 6.0, ["Conv"])]


def test_equalization_keeps_the_function_and_lowers_the_8bit_error(uneven, tmp_path: Path) -> None:
    prepared, x = uneven
    equalized, count = equalize_file(prepared, x[:8], tmp_path / "eq.onnx", threads=1)
    assert count == 2
    held_out = x[8:]  # not the images the channel ranges came from
    fp32 = _run(prepared, held_out)
    np.testing.assert_allclose(_run(equalized, held_out), fp32, rtol=1e-4, atol=1e-4)

    tensors = [s.tensor for s in sites(load_onnx(prepared))]
    for before, after in zip(channel_ranges(prepared, tensors, x[:8]).values(),
                             channel_ranges(equalized, tensors, x[:8]).values()):
        spread = [float((hi - lo).max() / np.median(hi - lo)) for lo, hi in (before, after)]
        assert spread[1] < spread[0] / 2

    def int8_error(model: Path) -> float:
        ranges = compute_ranges(collect_stats(model, x[:8], 1), "minmax")
        qdq = build_qdq(model, ranges, tail_nodes(load_onnx(model)), False, None, tmp_path / f"{model.stem}_q.onnx", 1)
        return output_error(fp32, _run(qdq, held_out), NUM_CLASSES)

    assert int8_error(equalized) < 0.5 * int8_error(prepared)  # 7x lower when written


def test_relu6_channels_stay_under_the_clip(uneven, tmp_path: Path) -> None:
    prepared, x = uneven
    equalized, _ = equalize_file(prepared, x[:8], tmp_path / "eq.onnx", max_gain=1000.0, threads=1)
    relu6 = next(s.tensor for s in sites(load_onnx(prepared)) if s.top == 6.0)
    before = channel_ranges(prepared, [relu6], x[:8])[relu6][1]
    after = channel_ranges(equalized, [relu6], x[:8])[relu6][1]
    assert after.max() <= 6 / CLIP_HEADROOM + 1e-4  # so held-out images rarely meet the clip
    assert (after >= before - 1e-6).all() and (after > 1.5 * before).any()  # amplified, never shrunk


def test_channel_scales_cap_the_gain_and_the_clip() -> None:
    lo, hi = np.array([-1.0, 0.0, 0.0, 0.0]), np.array([3.0, 1.0, 0.5, 0.0])  # spans 4, 1, 0.5, 0 (dead)
    np.testing.assert_allclose(1 / channel_scales(lo, hi, max_gain=4.0), [1, 4, 4, 4])
    np.testing.assert_allclose(1 / channel_scales(lo, hi, max_gain=100.0), [1, 4, 8, 100])
    # under a ReLU6 a channel may grow until its maximum reaches 6 / CLIP_HEADROOM, never shrinks
    capped = 1 / channel_scales(np.zeros(3), np.array([6.0, 3.0, 1.0]), top=6.0, max_gain=100.0)
    np.testing.assert_allclose(capped, [1, max(2 / CLIP_HEADROOM, 1), 6 / CLIP_HEADROOM])

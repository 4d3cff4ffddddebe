"""ednas quantize on a tiny detector-shaped model made in code (fast, CPU)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from ednas.compress.quantize import QuantizeConfig, quantize
from ednas.compress.quantize_model import contract_of, convert_opset, opset_of, tail_nodes
from ednas.compress.quantize_search import AccuracyBoundError
from ednas.errors import InputError, ModelMismatchError

quantize_mod = importlib.import_module("ednas.compress.quantize")  # the module, not the function

SIZE = 32
NUM_CLASSES = 4


class TinyDetector(nn.Module):
    """Conv body + one head conv, then the released tail: split, sigmoid, concat, reshape."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.ReLU6(),
            nn.Conv2d(8, 16, 1), nn.LeakyReLU(0.1),
        )
        self.head = nn.Conv2d(16, NUM_CLASSES + 32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x))  # (1, C+32, H, W)
        cls, reg = y.split([NUM_CLASSES, 32], dim=1)
        y = torch.cat([cls.sigmoid(), reg], dim=1).flatten(2)  # (1, C+32, A)
        return y.transpose(1, 2)  # (1, A, C+32)


def _export(module: nn.Module, path: Path, opset: int = 13, shape=(1, 3, SIZE, SIZE)) -> Path:
    torch.manual_seed(0)
    torch.onnx.export(module.eval(), (torch.randn(*shape),), str(path), input_names=["data"],
                      output_names=["output"], opset_version=opset, dynamo=False)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return _export(TinyDetector(), tmp_path_factory.mktemp("m") / "tiny.onnx", opset=11)


FAST = QuantizeConfig(num_calib=6, sens_images=2, timing_runs=3, threads=1)


def _run(model: Path, out: Path) -> np.ndarray:
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32) * 0.5
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]


def test_quantize_keeps_contract_and_output(tiny: Path, calib_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.int8.onnx"
    summary = quantize(tiny, calib_dir, out, config=FAST)
    q = onnx.load(str(out))
    assert contract_of(q) == contract_of(onnx.load(str(tiny)))
    assert opset_of(q) >= 13
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the tail (sigmoid etc.) stays float: no Q/DQ touches the output tensor
    assert set(summary["fp32_nodes"]) >= set(tail_nodes(q)) - {""}
    ref, got = _run(tiny, tiny), _run(out, out)
    assert got.shape == ref.shape
    assert np.abs(got - ref).mean() < 0.1 * np.abs(ref).mean() + 1e-3
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["latency"]["speedup"] > 0 and saved["calibration"]["images"] == 6
    # the tiny detector's 3-channel stem conv and its one-level output tail are rewritten
    assert len(saved["calibration"]["exact_rewrites"]) == 2


def test_opset_conversion(tiny: Path) -> None:
    model = onnx.load(str(tiny))
    assert opset_of(model) == 11
    assert opset_of(convert_opset(model)) >= 13


def test_accuracy_aware_unreachable_writes_nothing(tiny: Path, calib_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_evaluator(images, ann, threads):
        return [], lambda path: 0.5 if Path(path).name == "prepared.onnx" else 0.1

    monkeypatch.setattr(quantize_mod, "_evaluator", fake_evaluator)
    out = tmp_path / "never.onnx"
    with pytest.raises(AccuracyBoundError, match="not reachable"):
        quantize(tiny, calib_dir, out, "imgs", "ann.json", config=FAST)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_accuracy_aware_reachable(tiny: Path, calib_dir: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize_mod, "_evaluator", lambda i, a, t: ([], lambda path: 0.5))
    out = tmp_path / "ok.onnx"
    summary = quantize(tiny, calib_dir, out, "imgs", "ann.json", config=FAST)
    assert summary["drop_points"] == 0 and out.exists()


def test_bad_input_shape(calib_dir: Path, tmp_path: Path) -> None:
    flat = _export(nn.Linear(12, 4), tmp_path / "flat.onnx", shape=(1, 12))
    out = tmp_path / "x.onnx"
    with pytest.raises(ModelMismatchError, match="4-D input"):
        quantize(flat, calib_dir, out, config=FAST)
    assert not out.exists()


def test_empty_calibration_dir(tiny: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        quantize(tiny, empty, tmp_path / "x.onnx", config=FAST)


def test_cli_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ednas.cli import main

    assert main(["quantize", str(tmp_path / "missing.onnx"), "--calib", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such ONNX file" in err


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get("EDNAS_TEST_WEIGHTS") and os.environ.get("EDNAS_TEST_COCO")),
                    reason="set EDNAS_TEST_WEIGHTS (released ONNX) and EDNAS_TEST_COCO (coco-train128 dir)")
def test_released_model_accuracy_aware(tmp_path: Path) -> None:
    coco = Path(os.environ["EDNAS_TEST_COCO"])
    out = tmp_path / "s.int8.onnx"
    summary = quantize(os.environ["EDNAS_TEST_WEIGHTS"], coco / "images", out, coco / "images",
                       coco / "annotations" / "instances_train128.json", QuantizeConfig(max_drop=1.0))
    assert summary["drop_points"] <= 1.0 and summary["speedup"] > 1.0

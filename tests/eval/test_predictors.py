"""ONNX Runtime and PyTorch predictors: input checks, fixed and dynamic batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ednas.errors import InputError
from ednas.eval.predictors import OnnxPredictor, TorchPredictor


def test_dynamic_and_fixed_batch_give_the_same_outputs(tiny_onnx):
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    dynamic, fixed = OnnxPredictor(tiny_onnx()), OnnxPredictor(tiny_onnx(batch=1), threads=1)
    assert dynamic.input_size == fixed.input_size == 64
    assert (dynamic.fixed_batch, fixed.fixed_batch) == (None, 1)
    out = dynamic(x)
    assert out.shape == (3, 85, 38) and out.dtype == np.float32
    np.testing.assert_allclose(fixed(x), out, rtol=1e-5)
    fixed_two = OnnxPredictor(tiny_onnx(batch=2))
    np.testing.assert_allclose(fixed_two(x), out, rtol=1e-5)  # last chunk padded


def test_model_with_the_wrong_input_is_a_one_line_error(tiny_onnx, tmp_path):
    path = tiny_onnx(input_shape=["N", 3, "H", "W"])
    with pytest.raises(InputError, match=r"expected one input of shape \[N, 3, S, S\]") as err:
        OnnxPredictor(path)
    assert "data ['N', 3, 'H', 'W']" in str(err.value) and "\n" not in str(err.value)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    with pytest.raises(InputError, match="ONNX Runtime cannot load it"):
        OnnxPredictor(bad)
    with pytest.raises(InputError, match="no such ONNX file"):
        OnnxPredictor(tmp_path / "missing.onnx")


def test_batch_of_the_wrong_shape(tiny_onnx):
    predictor = OnnxPredictor(tiny_onnx())
    with pytest.raises(InputError, match=r"expected a batch of shape \(N, 3, 64, 64\), got \(1, 3, 32, 32\)"):
        predictor(np.zeros((1, 3, 32, 32), np.float32))


def test_torch_predictor_calls_inference_without_grad():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def inference(self, x):
            return (x.mean((1, 2, 3)) * self.scale)[:, None, None].expand(-1, 85, 38)

    predictor = TorchPredictor(Model(), input_size=64)
    out = predictor(np.ones((2, 3, 64, 64), np.float32))
    assert isinstance(out, np.ndarray) and out.shape == (2, 85, 38) and np.allclose(out, 1)
    assert not predictor.model.training


def test_released_onnx_contract(released_onnx):
    predictor = OnnxPredictor(released_onnx, threads=1)
    assert (predictor.input_size, predictor.fixed_batch) == (320, 1)
    out = predictor(np.zeros((2, 3, 320, 320), np.float32))
    assert out.shape == (2, 2125, 112)
    assert ((out[..., :80] >= 0) & (out[..., :80] <= 1)).all()  # sigmoid scores


def test_torch_predictor_runs_detectors_and_captured_modules_alike():
    """One torch predictor: a detector through `inference`, a captured module (no `inference`,
    traced for batch 1) called image by image; both give the same numbers."""
    from ednas.arch import NeckArch
    from ednas.arch.zoo import get_arch
    from ednas.models import build_model

    torch.manual_seed(0)
    arch = get_arch("enhanced_nanodet_s").replace(input_size=64, neck=NeckArch(width=32))
    model = build_model(arch).eval()

    class Captured(torch.nn.Module):  # what torch.export hands back: a forward, nothing else
        def forward(self, x):
            assert x.shape[0] == 1
            return model.inference(x)

    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    whole, per_image = TorchPredictor(model), TorchPredictor(Captured(), 64, per_image=True)
    assert whole.input_size == 64
    np.testing.assert_allclose(per_image(x), whole(x), rtol=1e-4, atol=1e-5)

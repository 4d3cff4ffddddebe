"""Export, BN fusion and ONNX import (synthetic weights; the released model when available)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ednas.errors import InputError, ModelMismatchError
from ednas.models import build_model
from ednas.models.export import export_onnx
from ednas.models.onnx_import import import_onnx
from ednas.arch.zoo import get_arch


def _random_model(name: str, size: int = 128):
    torch.manual_seed(0)
    model = build_model(get_arch(name).replace(input_size=size))
    with torch.no_grad():  # non-trivial BN statistics so that folding is really exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _ort(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _random_model("enhanced_nanodet_s")
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "s.onnx")
    return model, path


def test_fuse_keeps_outputs():
    model = _random_model("enhanced_nanodet_s")
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        before = model.inference(x)
        after = model.fuse().inference(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    # only the BNs behind the 8 kernel-refine gates stay (the gate multiplies in between)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) and m.num_features > 1 for m in model.modules()) == 8


def test_export_contract_and_outputs(exported):
    model, path = exported
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 13
    assert [i.name for i in proto.graph.input] == ["data"]
    assert [o.name for o in proto.graph.output] == ["output"]
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        expected = model.inference(torch.from_numpy(x)).numpy()
    got = _ort(path, x)
    assert got.shape == expected.shape == (1, 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2, 112)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_import_round_trip(exported):
    model, path = exported
    fresh = build_model(model.arch)
    import_onnx(fresh, path)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval().inference(x), model.inference(x), rtol=1e-4, atol=1e-4)


def test_import_refuses_other_architecture(exported):
    _, path = exported
    other = build_model(get_arch("nanodet_plus_m").replace(input_size=128))
    with pytest.raises(ModelMismatchError, match=r"layer backbone\.conv1\.conv expects Conv\[24, 3, 3, 3\]") as exc:
        import_onnx(other, path)
    assert "\n" not in str(exc.value)


def test_import_refuses_changed_width(exported):
    _, path = exported
    arch = get_arch("enhanced_nanodet_s").replace(input_size=128)
    narrow = arch.replace(neck=arch.neck.__class__(width=64))
    with pytest.raises(ModelMismatchError, match=r"layer fpn\.reduce_layers\.\d\.conv expects Conv\[64, "):
        import_onnx(build_model(narrow), path)


def test_import_rejects_non_onnx(tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_text("not a model")
    with pytest.raises(InputError, match="not an ONNX model"):
        import_onnx(build_model(get_arch("enhanced_nanodet_s")), bogus)
    with pytest.raises(InputError, match="no such ONNX file"):
        import_onnx(build_model(get_arch("enhanced_nanodet_s")), tmp_path / "missing.onnx")


def test_released_weights_reproduce_released_outputs(released_onnx):
    model = build_model(get_arch("enhanced_nanodet_s"))
    import_onnx(model, released_onnx)
    x = np.random.default_rng(1).standard_normal((2, 3, 320, 320)).astype(np.float32)
    expected = np.concatenate([_ort(released_onnx, x[i:i + 1]) for i in range(2)])
    with torch.no_grad():
        got = model.eval().inference(torch.from_numpy(x)).numpy()
    assert np.abs(got[..., :80] - expected[..., :80]).max() <= 1e-4
    assert np.abs(got[..., 80:] - expected[..., 80:]).max() <= 1e-3

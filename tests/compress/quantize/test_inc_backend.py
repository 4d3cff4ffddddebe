"""`ednas quantize --backend inc`: the error paths (fast) and Intel Neural Compressor end to end
on a narrow Enhanced NanoDet_s at 64 px with random weights (slow, needs `ednas[inc]`)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from ednas.compress.quantize.job import QuantizeConfig, quantize
from ednas.compress.quantize.inc_backend import BackendUnavailableError, require_inc
from ednas.compress.quantize.prepare import contract_of
from ednas.errors import InputError
from ednas.eval.predictors import Predictor

from ednas.compress.quantize import job as quantize_mod
inc_mod = importlib.import_module("ednas.compress.quantize.inc_backend")

SIZE = 64
RECIPE = f"model:\n  arch: enhanced_nanodet_s\n  input_size: {SIZE}\n  neck: {{width: 32}}\n"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "tiny_s.yml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def fp32_onnx(recipe: Path, tmp_path_factory) -> Path:
    """The recipe's model with random weights, exported like a release (BN folded)."""
    import torch

    from ednas.recipe import load_model
    from ednas.models.export import export_onnx

    torch.manual_seed(0)
    _, model = load_model(str(recipe))
    return export_onnx(model.eval(), tmp_path_factory.mktemp("onnx") / "tiny_s.onnx")


@pytest.fixture
def inc_installed() -> None:
    try:
        require_inc()
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))


def _config(recipe: Path | None) -> QuantizeConfig:
    return QuantizeConfig(backend="inc", recipe=str(recipe) if recipe else None, num_calib=3, threads=1,
                          timing_runs=3)


def test_missing_extra_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "neural_compressor.torch.quantization", None)  # import fails
    out = tmp_path / "x.onnx"
    with pytest.raises(BackendUnavailableError, match=r"pip install 'ednas\[inc\]'.*`recipe`") as exc:
        quantize(tmp_path / "m.onnx", tmp_path, out, config=_config(tmp_path / "r.yml"))
    assert "\n" not in str(exc.value) and not out.exists()


def test_needs_recipe(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ednas.cli import main

    assert main(["quantize", str(tmp_path / "m.onnx"), "--calib", str(tmp_path), "--backend", "inc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--recipe NAME" in err


def test_rejects_ort_only_calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inc_mod, "require_inc", lambda: None)  # the check comes before INC is used
    inputs = np.zeros((1, 3, SIZE, SIZE), np.float32)
    with pytest.raises(InputError, match="`backend` inc supports minmax, entropy"):
        inc_mod.quantize_inc(tmp_path / "m.onnx", "enhanced_nanodet_s", inputs, None, tmp_path, "percentile")


def _check_int8(fp32: Path, out: Path) -> None:
    import onnxruntime as ort

    q = onnx.load(str(out))
    assert contract_of(q) == contract_of(onnx.load(str(fp32)))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in q.graph.node}
    x = np.random.default_rng(1).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    ref, got = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
                for p in (fp32, out))
    assert got.shape == ref.shape and np.isfinite(got).all()


@pytest.mark.slow
def test_inc_end_to_end(inc_installed: None, fp32_onnx: Path, recipe: Path, calib_dir: Path,
                        tmp_path: Path) -> None:
    out = tmp_path / "tiny_s.int8.onnx"
    summary = quantize(fp32_onnx, calib_dir, out, config=_config(recipe))
    _check_int8(fp32_onnx, out)
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["backend"] == "inc" and saved["calibration"]["method"] == "minmax"
    assert summary["speedup"] > 0 and saved["calibration"]["images"] == 3


@pytest.mark.slow
def test_inc_accuracy_aware(inc_installed: None, fp32_onnx: Path, recipe: Path, calib_dir: Path,
                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    from test_accuracy_search import gt_and_perfect  # same folder, on sys.path

    from ednas.eval.bootstrap import PerImageAP

    gt, perfect = gt_and_perfect(8)

    def score(model: Path | Predictor) -> PerImageAP:  # INC scores torch modules, ednas the ONNX files
        if isinstance(model, Predictor):
            assert model(np.zeros((2, 3, SIZE, SIZE), np.float32)).shape[0] == 2
        seen.append(type(model).__name__)
        return PerImageAP(gt, perfect, list(range(8)))

    monkeypatch.setattr(quantize_mod, "_evaluator", lambda i, a, t: ([], score))
    out = tmp_path / "tuned.onnx"
    summary = quantize(fp32_onnx, calib_dir, out, "imgs", "ann.json", config=_config(recipe))
    _check_int8(fp32_onnx, out)
    assert summary["drop_points"] == 0 and summary["drop_ci95"] == [0, 0]
    assert len(summary["inc_torch_maps"]["trials"]) == 1
    assert seen.count("TorchPredictor") == 2  # INC's FP32 baseline + one trial that meets the bound

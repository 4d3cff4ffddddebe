"""ednas quantize on a tiny detector-shaped model made in code (fast, CPU)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from ednas.compress.quantize.job import QuantizeConfig, quantize
from ednas.compress.quantize.prepare import contract_of, convert_opset, opset_of, tail_nodes
from ednas.compress.quantize.accuracy_search import AccuracyBoundError
from ednas.errors import InputError, ModelMismatchError
from ednas.eval.bootstrap import PerImageAP
from test_accuracy_search import gt_and_perfect  # same folder, on sys.path

from ednas.compress.quantize import equalize, job as quantize_mod

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


FAST = QuantizeConfig(num_calib=6, sens_images=2, timing_runs=3, threads=1, finetune_steps=5, adaround_iters=5)


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
    assert saved["calibration"]["equalized_tensors"] > 0  # of conv-LeakyReLU-dw-ReLU6-conv-LeakyReLU-head


def test_no_equalize(tiny: Path, calib_dir: Path, tmp_path: Path) -> None:
    summary = quantize(tiny, calib_dir, tmp_path / "plain.onnx", config=replace(FAST, equalize=False))
    assert summary["calibration"]["equalized_tensors"] == 0


def test_opset_conversion(tiny: Path) -> None:
    model = onnx.load(str(tiny))
    assert opset_of(model) == 11
    assert opset_of(convert_opset(model)) >= 13


class _Annotated:
    """Stands in for the annotated CocoDataset: 8 images named like the calibration JPEGs."""

    def __init__(self) -> None:
        self.gt, self.perfect = gt_and_perfect(8)
        for im in self.gt["images"]:
            im["file_name"] = f"{im['id']}.jpg"  # calib_dir holds 0.jpg .. 5.jpg

    def __len__(self) -> int:
        return 8

    def coco_gt(self) -> dict:
        return self.gt


def _fake_evaluator(int8_results: list[dict], scored: list[str]):
    """`_evaluator` replacement: FP32 (prepared.onnx) detects everything, INT8 models give
    `int8_results`; `scored` records the model files evaluated."""
    data = _Annotated()

    def score(path: Path) -> PerImageAP:
        scored.append(Path(path).name)
        results = data.perfect if Path(path).name == "prepared.onnx" else int8_results
        return PerImageAP(data.gt, results, list(range(8)))

    return lambda images, ann, threads: (data, score)


def test_accuracy_aware_unreachable_writes_nothing(tiny: Path, calib_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize_mod, "_evaluator", _fake_evaluator([], []))
    out = tmp_path / "never.onnx"
    with pytest.raises(AccuracyBoundError, match="not reachable"):
        quantize(tiny, calib_dir, out, "imgs", "ann.json", config=FAST)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_accuracy_aware_reachable_cross_validated(tiny: Path, calib_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    scored: list[str] = []
    monkeypatch.setattr(quantize_mod, "_evaluator", _fake_evaluator(_Annotated().perfect, scored))
    equalized_on: list[int] = []
    real = equalize.equalize_file
    monkeypatch.setattr(equalize, "equalize_file",
                        lambda p, x, *a, **k: equalized_on.append(len(x)) or real(p, x, *a, **k))
    out = tmp_path / "ok.onnx"
    summary = quantize(tiny, calib_dir, out, "imgs", "ann.json", config=FAST)
    assert equalized_on == [3, 3, 6]  # each fold on its own calibration images, the shipped model on all
    assert summary["drop_points"] == 0 and summary["drop_ci95"] == [0, 0] and out.exists()
    held = summary["held_out"]
    assert held["folds"] == 2 and held["images"] == 8 and len(held["per_fold"]) == 2
    # a grid of percentile/mse x bias correction per fold; calibration images 0-5 are annotated
    # images too, so each fold calibrates on the 3 the other fold checks: 2 x 4 models + 4 shipped
    assert sum(n.startswith("cand") for n in scored) == 12
    assert summary["cpu"]["target"] in ("avx2", "vnni")


def test_target_cpu_sets_weight_bits(tiny: Path, calib_dir: Path, tmp_path: Path) -> None:
    for target, bits in (("avx2", "7-bit"), ("vnni", "8-bit")):
        out = tmp_path / f"{target}.onnx"
        summary = quantize(tiny, calib_dir, out, config=replace(FAST, target_cpu=target))
        assert summary["cpu"]["reduce_range"] == (target == "avx2") and bits in summary["calibration"][
            "per_channel_weights"]


def test_bad_input_shape(calib_dir: Path, tmp_path: Path) -> None:
    flat = _export(nn.Linear(12, 4), tmp_path / "flat.onnx", shape=(1, 12))
    out = tmp_path / "x.onnx"
    with pytest.raises(ModelMismatchError, match="4-D image input"):
        quantize(flat, calib_dir, out, config=FAST)
    assert not out.exists()


def test_input_not_a_float_image(calib_dir: Path, tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["data"], ["output"], to=TensorProto.FLOAT)], "ids",
        [helper.make_tensor_value_info("data", TensorProto.INT64, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])])
    path = tmp_path / "ids.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(ModelMismatchError, match="INT64, not a float32 image tensor"):
        quantize(path, calib_dir, tmp_path / "x.onnx", config=FAST)


def test_already_int8_model(tiny: Path, calib_dir: Path, tmp_path: Path) -> None:
    once = tmp_path / "once.onnx"
    quantize(tiny, calib_dir, once, config=FAST)
    with pytest.raises(InputError, match="already quantized .*give the FP32 model"):
        quantize(once, calib_dir, tmp_path / "twice.onnx", config=FAST)


def test_negative_max_drop(tiny: Path, calib_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="`max_drop` -0.5"):
        quantize(tiny, calib_dir, tmp_path / "x.onnx", "imgs", "ann.json", config=replace(FAST, max_drop=-0.5))


def test_no_decodable_calibration_image(tiny: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="none of its 1 image files could be decoded"):
        quantize(tiny, broken, tmp_path / "x.onnx", config=FAST)


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
                       coco / "annotations" / "instances_train128.json", QuantizeConfig(max_drop=1.5))
    assert summary["drop_ci95"][1] <= 1.5 and summary["held_out"]["images"] == 128 and summary["speedup"] > 1.0


def test_undecodable_calibration_images_are_skipped(tiny: Path, calib_dir: Path, tmp_path: Path) -> None:
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(calib_dir, mixed)
    (mixed / "zz_broken.jpg").write_bytes(b"not a jpeg")
    summary = quantize(tiny, mixed, tmp_path / "x.onnx", config=replace(FAST, num_calib=10))
    assert summary["calibration"]["images"] == 6


def test_finetune_always_without_images(tiny: Path, calib_dir: Path, tmp_path: Path) -> None:
    plain, tuned = tmp_path / "plain.onnx", tmp_path / "tuned.onnx"
    quantize(tiny, calib_dir, plain, config=FAST)
    summary = quantize(tiny, calib_dir, tuned, config=replace(FAST, finetune="always"))
    assert summary["recipe"].endswith("fine-tuned") and summary["finetune"]["steps"] == 5
    assert contract_of(onnx.load(str(tuned))) == contract_of(onnx.load(str(plain)))
    assert [n.op_type for n in onnx.load(str(tuned)).graph.node] == [n.op_type for n in onnx.load(str(plain)).graph.node]
    with pytest.raises(InputError, match="`finetune` 'sometimes'"):
        quantize(tiny, calib_dir, tmp_path / "x.onnx", config=replace(FAST, finetune="sometimes"))


def test_finetune_always_refuses_a_graph_it_cannot_run(calib_dir: Path, tmp_path: Path) -> None:
    """GELU exports Erf, which the fine-tuning interpreter lacks: `always` is refused in one
    line and writes nothing; `auto` leaves fine-tuning out of the search."""
    from ednas.compress.quantize.finetune import UnsupportedGraph

    class Gelu(TinyDetector):
        def __init__(self) -> None:
            super().__init__()
            self.body[1] = nn.GELU()

    model = _export(Gelu(), tmp_path / "gelu.onnx")
    out = tmp_path / "x.onnx"
    with pytest.raises(UnsupportedGraph, match="`finetune` always: .*cannot run Erf nodes"):
        quantize(model, calib_dir, out, config=replace(FAST, finetune="always"))
    assert not out.exists() and not out.with_suffix(".json").exists()
    from ednas.compress.quantize.prepare import name_nodes, prepare

    auto = replace(FAST, finetune="auto")
    for module, mode in ((Gelu(), "off"), (TinyDetector(), "auto")):
        work = tmp_path / mode
        work.mkdir()
        prepared, _ = prepare(name_nodes(onnx.load(str(_export(module, work / "m.onnx")))), work)
        assert quantize_mod._recovery_mode(auto, "finetune", prepared) == mode


def test_holdout_scores_the_shipped_model_on_images_apart(tiny: Path, calib_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """--holdout: FP32 and the shipped INT8 model scored on images that neither calibrated nor
    chose it (the paired drop with its interval in the summary); images shared with the
    calibration or selection set, or a holdout without annotations, are refused before any work."""
    import shutil

    fake = _fake_evaluator(_Annotated().perfect, [])

    def evaluator(images, ann, threads):  # the holdout's json names its own files
        data, score = fake(images, ann, threads)
        if Path(str(images)).name == "apart":
            data = _Annotated()
            for im in data.gt["images"]:
                im["file_name"] = f"holdout{im['id']}.jpg"
        return data, score

    monkeypatch.setattr(quantize_mod, "_evaluator", evaluator)
    apart = tmp_path / "apart"
    apart.mkdir()
    for k, f in enumerate(sorted(calib_dir.iterdir())):
        shutil.copyfile(f, apart / f"holdout{k}.jpg")
    for images, ann in ((None, None), ("imgs", "ann.json")):
        out = tmp_path / f"h{images}.onnx"
        summary = quantize(tiny, calib_dir, out, images, ann, FAST, apart, "holdout.json")
        h = summary["holdout"]
        assert (h["count"], h["drop_points"], h["drop_ci95"]) == (8, 0, [0, 0]) and h["fp32_map"] == h["int8_map"]
        assert json.loads(out.with_suffix(".json").read_text())["holdout"]["images"] == str(apart)
    for holdout, ann, needle in ((calib_dir, "h.json", "shares 6 images with `calib`"),
                                 (apart, None, "`holdout` needs both")):
        out = tmp_path / "refused.onnx"
        with pytest.raises(InputError, match=needle):
            quantize(tiny, calib_dir, out, config=FAST, holdout=holdout, holdout_ann=ann)
        assert not out.exists() and not out.with_suffix(".json").exists()


def test_adaround_always_without_images(tiny: Path, calib_dir: Path, tmp_path: Path) -> None:
    summary = quantize(tiny, calib_dir, tmp_path / "ar.onnx", config=replace(FAST, adaround="always"))
    assert summary["recipe"].endswith("rounding learned") and summary["adaround"]["iters"] == 5
    with pytest.raises(InputError, match="`adaround_iters` 0"):
        quantize(tiny, calib_dir, tmp_path / "x.onnx", config=replace(FAST, adaround_iters=0))

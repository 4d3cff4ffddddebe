"""The accuracy-aware search on made-up detections: it accepts a level only when the upper end
of the held-out drop's interval is within the bound, says how many images would show it when
the set is too small, and reports drops on images that did not choose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import onnx

from ednas.compress.quantize.accuracy_search import (AccuracyBoundError, Builder, Built, Fold, Recipe, fallback_nodes,
                                                    levels, quantized_tensors, search)
from ednas.compress.quantize.prepare import name_nodes
from ednas.eval.bootstrap import PerImageAP, paired_drop

NUM_IMAGES = 24


def gt_and_perfect(n: int = NUM_IMAGES, seed: int = 0) -> tuple[dict, list[dict]]:
    """n images with two boxes of two categories each, and detections that hit all of them."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(n):
        images.append({"id": i, "file_name": f"{i:03d}.jpg", "width": 100, "height": 100})
        for cat in (1, 2):
            box = rng.uniform(0, 50, 2).tolist() + rng.uniform(10, 40, 2).tolist()
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
            results.append({"image_id": i, "category_id": cat, "bbox": box, "score": float(rng.uniform(0.3, 1))})
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    return {"images": images, "annotations": anns, "categories": categories}, results


GT, PERFECT = gt_and_perfect()
IDS = list(range(NUM_IMAGES))
FOLDS = [Fold((0,), np.arange(NUM_IMAGES) % 2 != k, np.arange(NUM_IMAGES) % 2 == k) for k in (0, 1)]
SHIPPED = Fold((0,), np.ones(NUM_IMAGES, bool), np.zeros(NUM_IMAGES, bool))


def degraded(keep: float, seed: int = 1, images: np.ndarray | None = None) -> PerImageAP:
    """PERFECT with each detection (on `images`, all when None) kept with probability `keep`."""
    rng = np.random.default_rng(seed)
    hit = np.ones(NUM_IMAGES, bool) if images is None else images
    return PerImageAP(GT, [d for d in PERFECT if not hit[d["image_id"]] or rng.random() < keep], IDS)


class FakeBuilder:
    """Scores per (recipe, fold calibration) given up front; no ONNX involved."""

    def __init__(self, scores: dict[Recipe, PerImageAP]) -> None:
        self.scores, self.built = scores, []

    def build(self, calib: tuple[int, ...], recipe: Recipe) -> Built:
        self.built.append(recipe)
        return Built(Path("none.onnx"), recipe, [], [], self.scores[recipe])

    def sensitive(self, calib: tuple[int, ...], method: str) -> list[str]:
        return ["t0", "t1"]


FP32 = PerImageAP(GT, PERFECT, IDS)
PLAIN = Recipe("percentile", False)


def test_refuses_a_candidate_whose_interval_exceeds_max_drop() -> None:
    cand = degraded(0.93)
    held = paired_drop(FP32, [cand, cand], [f.check for f in FOLDS])
    assert held.low < held.value < held.high
    between = (held.value + held.high) / 2  # the point drop is within, its upper end is not
    builder = FakeBuilder({PLAIN: cand, Recipe("percentile", False, 1): cand, Recipe("percentile", False, 2): cand})
    shown = rf"cannot be shown on {NUM_IMAGES} annotated images.*about \d+ images"
    with pytest.raises(AccuracyBoundError, match=shown):
        search(builder, FP32, FOLDS, SHIPPED, [PLAIN], between, max_fallback=2)
    assert builder.built.count(Recipe("percentile", False, 2)) == 2  # it tried the fallback levels first
    with pytest.raises(AccuracyBoundError, match="not reachable"):
        search(builder, FP32, FOLDS, SHIPPED, [PLAIN], held.value / 2, max_fallback=0)
    result = search(builder, FP32, FOLDS, SHIPPED, [PLAIN], held.high + 0.01, max_fallback=0)
    assert result.held_out == held and result.shipped.recipe == PLAIN


def test_headline_is_the_drop_on_images_that_did_not_choose() -> None:
    """Recipe A is perfect on the odd images and broken on the even ones, B the reverse: each
    fold chooses the recipe that is perfect on its choosing images and is caught out on its
    checked images, which the drop on the choosing images (0) would hide."""
    odd, even = np.arange(NUM_IMAGES) % 2 == 1, np.arange(NUM_IMAGES) % 2 == 0
    a, b = Recipe("percentile", False), Recipe("mse", False)
    builder = FakeBuilder({a: degraded(0.0, images=even), b: degraded(0.0, images=odd),
                           Recipe("percentile", False, 1): FP32, Recipe("mse", False, 1): FP32})
    result = search(builder, FP32, FOLDS, SHIPPED, [a, b], 0.5, max_fallback=1)
    level0 = next(t for t in result.tried if t.get("level") == 0)
    assert level0["held_out_drop"] == pytest.approx(100.0)  # fold 0 chose b (perfect on odd), checked on even
    chosen = [t for t in result.tried if t.get("fold") in ("0", "1")]
    assert min(t["drop_on_choosing_images"] for t in chosen) == 0.0
    assert result.held_out.value == 0 and result.held_out.high == 0  # level 1 keeps FP32 where it matters
    assert result.shipped.recipe.fallback == 1


def test_choice_follows_output_error_not_map_noise() -> None:
    """Where the output error against FP32 is measured, it decides: the recipe closer to FP32
    wins even when the other one's mAP happens to be better on the choosing images."""
    close, lucky = Recipe("percentile", True), Recipe("mse", False)

    class ErrorBuilder(FakeBuilder):
        def build(self, calib: tuple[int, ...], recipe: Recipe) -> Built:
            built = super().build(calib, recipe)
            built.output_error = 0.01 if recipe == close else 0.02
            return built

    builder = ErrorBuilder({lucky: FP32, close: degraded(0.9)})
    result = search(builder, FP32, FOLDS, SHIPPED, [lucky, close], 100.0, max_fallback=0)
    assert result.fold_recipes == [close, close] and result.shipped.recipe == close


def test_finetuning_is_tried_before_keeping_tensors_fp32() -> None:
    """Fine-tuning costs no speed, so it comes before the fallback levels; the shipped model
    is the fine-tuned one, with no tensor in FP32."""
    tuned = Recipe("percentile", False, finetune=True)
    builder = FakeBuilder({PLAIN: degraded(0.5), tuned: FP32, Recipe("percentile", False, 1, True): FP32})
    result = search(builder, FP32, FOLDS, SHIPPED, [PLAIN], 0.5, max_fallback=1, finetune="auto")
    assert result.shipped.recipe == tuned and result.fold_recipes == [tuned, tuned]
    assert all(r.fallback == 0 for r in builder.built)
    assert [(t["level"], t["finetune"]) for t in result.tried if "held_out_drop" in t] == [(0, False), (0, True)]
    assert str(tuned) == "percentile, fine-tuned"
    always = search(FakeBuilder(builder.scores), FP32, FOLDS, SHIPPED, [PLAIN], 100.0, max_fallback=1,
                    finetune="always")
    assert always.shipped.recipe == tuned  # the grid's level is skipped, though it would pass 100 points


def test_learned_rounding_comes_before_finetuning_and_fallback_builds_on_the_last(caplog) -> None:
    """Both recoveries are free in speed: learned rounding (the cheaper) is tried after the
    grid, then fine-tuning; tensors kept FP32 come on top of the last recovery. Each level is
    logged as progress, and what the images can show is said after the first fold."""
    rounded, tuned = Recipe("percentile", False, adaround=True), Recipe("percentile", False, finetune=True)
    assert [str(level) for level in levels(2, "auto", "auto")] == [
        "grid", "rounding learned", "fine-tuned", "fine-tuned, 1 tensors FP32", "fine-tuned, 2 tensors FP32"]
    assert [str(level) for level in levels(1, "off", "always")] == ["rounding learned", "rounding learned, 1 tensors FP32"]
    builder = FakeBuilder({PLAIN: degraded(0.5), rounded: degraded(0.6), tuned: FP32})
    with caplog.at_level("INFO", logger="ednas.compress.quantize.accuracy_search"):
        result = search(builder, FP32, FOLDS, SHIPPED, [PLAIN], 0.5, max_fallback=0, finetune="auto",
                        adaround="auto")
    assert result.shipped.recipe == tuned
    assert [t["fixes"] for t in result.tried if "held_out_drop" in t] == ["grid", "rounding learned", "fine-tuned"]
    assert str(rounded) == "percentile, rounding learned"
    text = caplog.text
    assert "all 24 annotated images give an interval of about +-" in text and "cannot be shown even for no drop" in text
    assert "level 1 of 3 (grid)" in text and "at most 2 more" in text and "level 3 of 3 (fine-tuned)" in text


def test_fallback_keeps_the_tensor_and_its_convs_float_in_onnx_runtime(tmp_path):
    """The candidates are the tensors the QDQ model quantizes (a conv's output under a ReLU6 is
    not: the quantizer folds the clip into the range); keeping a ReLU6 output FP32 leaves its
    conv FP32 too, and ONNX Runtime runs those convs in float instead of re-quantizing them
    itself (one weight scale per tensor) as it does a float conv between DQ and Q."""
    import onnxruntime as ort
    import torch
    from torch import nn

    from ednas.compress.quantize.calibration import collect_stats, compute_ranges
    from ednas.compress.quantize.ort_backend import quantize_qdq

    torch.manual_seed(0)
    fp32 = tmp_path / "m.onnx"
    torch.onnx.export(nn.Sequential(nn.Conv2d(4, 16, 3, 1, 1), nn.ReLU6(), nn.Conv2d(16, 16, 1), nn.ReLU6(),
                                    nn.Conv2d(16, 8, 1)).eval(),
                      torch.zeros(1, 4, 16, 16), str(fp32), input_names=["x"], output_names=["y"],
                      opset_version=13, dynamo=False)
    model = name_nodes(onnx.load(str(fp32)))
    onnx.save(model, str(fp32))
    inputs = np.random.default_rng(0).uniform(-1, 1, (4, 4, 16, 16)).astype(np.float32)
    ranges = compute_ranges(collect_stats(fp32, inputs, 1), "minmax")
    plain = onnx.load(str(quantize_qdq(fp32, tmp_path / "plain.onnx", ranges)))
    clips = [n for n in model.graph.node if n.op_type == "Clip"]
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized = quantized_tensors(plain)
    assert clips[0].output[0] in quantized and convs[1].output[0] not in quantized  # the folded ReLU6

    stats = {(0, 1, 2, 3): collect_stats(fp32, inputs, 1)}
    builder = Builder(fp32, stats, inputs, [], None, tmp_path, num_scores=4, reduce_range=False)
    ranked = builder.sensitive((0, 1, 2, 3), "minmax")  # the image and the two ReLU6 outputs, no conv output
    assert sorted(ranked) == sorted(["x", clips[0].output[0], clips[1].output[0]])

    keep = fallback_nodes(model, [clips[0].output[0]])
    assert set(keep) == {convs[0].name, clips[0].name, convs[1].name}
    int8 = quantize_qdq(fp32, tmp_path / "fallback.onnx", ranges, keep)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "as_run.onnx")
    ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    as_run = onnx.load(str(tmp_path / "as_run.onnx"))
    assert sum(n.op_type == "QLinearConv" for n in as_run.graph.node) == 1  # the last conv only
    assert not [i.name for i in as_run.graph.initializer if i.name.endswith("_weight_q")]  # none re-quantized

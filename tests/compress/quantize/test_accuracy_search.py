"""The accuracy-aware search on made-up detections: it accepts a level only when the upper end
of the held-out drop's interval is within the bound, says how many images would show it when
the set is too small, and reports drops on images that did not choose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ednas.compress.quantize.accuracy_search import AccuracyBoundError, Built, Fold, Recipe, search
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

"""The evaluator: perfect predictions score 1.0; conversion to COCO results; shape checks."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from ednas.data.coco import CocoDataset
from ednas.errors import ModelMismatchError
from ednas.eval.coco_eval import evaluate, to_coco_results
from ednas.eval.predictors import Predictor
from ednas.models.decode import Detections, make_priors

STRIDES = (8, 16, 32, 64)
REG_MAX = 7


class OraclePredictor(Predictor):
    """Emits, image by image in dataset order, an output that decodes to the ground truth:
    each box gets a free prior inside it, its class score 0.9 and side distributions whose
    expectation is the exact distance (mass split between the two neighbouring bins)."""

    def __init__(self, dataset: CocoDataset, input_size: int, drop_last_box: bool = False) -> None:
        self.input_size = input_size
        self.priors = make_priors((input_size, input_size), STRIDES).numpy()  # (A, 3)
        self.num_classes = len(dataset.class_names)
        self.targets = []
        for rec in dataset.records:
            scale = np.array([rec.width, rec.height] * 2) / input_size
            boxes = rec.boxes / scale
            self.targets.append((boxes[:-1] if drop_last_box else boxes, rec.labels))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.full((len(batch), len(self.priors), self.num_classes + 4 * (REG_MAX + 1)), -30.0, np.float32)
        out[..., : self.num_classes] = 0.0
        for n in range(len(batch)):
            boxes, labels = self.targets.pop(0)
            free = np.ones(len(self.priors), bool)
            for box, label in zip(boxes, labels):
                px, py, s = self.priors.T
                dist = np.stack([px - box[0], py - box[1], box[2] - px, box[3] - py], 1) / s[:, None]
                a = np.flatnonzero(free & (dist >= 0).all(1) & (dist <= REG_MAX).all(1))[0]
                free[a] = False
                out[n, a, label] = 0.9
                for side, d in enumerate(dist[a]):
                    lo = min(int(np.floor(d)), REG_MAX - 1)
                    bins = out[n, a, self.num_classes + side * (REG_MAX + 1):][: REG_MAX + 1]
                    bins[lo], bins[lo + 1] = np.log(max(lo + 1 - d, 1e-12)), np.log(max(d - lo, 1e-12))
        return out


def test_perfect_predictions_give_map_one(boxes_set):
    ds = CocoDataset(*boxes_set)
    result = evaluate(OraclePredictor(ds, 64), ds, strides=STRIDES, reg_max=REG_MAX, batch_size=3, progress=False)
    assert result["mAP"] == pytest.approx(1.0) and result["AP50"] == pytest.approx(1.0)
    assert result["AP75"] == pytest.approx(1.0) and result["images"] == 4
    assert result["per_class"][:2] == [("a", pytest.approx(1.0)), ("b", pytest.approx(1.0))]
    assert result["per_class"][2] == ("c", None)  # no ground truth


def test_a_missed_box_lowers_the_score(boxes_set):
    ds = CocoDataset(*boxes_set)
    result = evaluate(OraclePredictor(ds, 64, drop_last_box=True), ds, strides=STRIDES, progress=False)
    assert 0.3 < result["mAP"] < 1.0


def test_detections_become_coco_results():
    det = Detections(torch.tensor([[10.0, 20.0, 40.0, 80.0]]), torch.tensor([0.75]), torch.tensor([1]))
    assert to_coco_results(det, 42, [5, 9]) == [
        {"image_id": 42, "category_id": 9, "bbox": [10.0, 20.0, 30.0, 60.0], "score": 0.75}
    ]


def test_output_that_does_not_fit_the_recipe(boxes_set):
    ds = CocoDataset(*boxes_set)

    class WrongClasses(Predictor):
        input_size = 64

        def __call__(self, batch):
            return np.zeros((len(batch), 85, 80 + 32), np.float32)

    with pytest.raises(ModelMismatchError, match=r"expected \(N, 85, 35\)"):
        evaluate(WrongClasses(), ds, strides=STRIDES, progress=False)


def _coco128_subset(coco128, n):
    from ednas.data.classes import COCO_CLASSES

    ds = CocoDataset(coco128 / "images", coco128 / "annotations" / "instances_train128.json", COCO_CLASSES)
    ds.records = ds.records[:n]
    return ds


def test_released_onnx_on_a_few_coco_images(coco128, released_onnx):
    from ednas.eval.predictors import OnnxPredictor

    ds = _coco128_subset(coco128, 8)
    result = evaluate(OnnxPredictor(released_onnx, threads=1), ds, progress=False)
    assert result["images"] == 8 and 0.2 < result["mAP"] < 0.8


@pytest.mark.slow
def test_released_onnx_reproduces_the_reference(coco128, released_onnx):
    """The acceptance number (also benchmarks/eval_released.py): mAP 36.3, AP50 51.3."""
    from ednas.eval.predictors import OnnxPredictor

    result = evaluate(OnnxPredictor(released_onnx), _coco128_subset(coco128, 128), progress=False)
    assert result["mAP"] == pytest.approx(0.363, abs=0.003)
    assert result["AP50"] == pytest.approx(0.513, abs=0.003)


def test_evaluate_model_takes_the_settings_of_the_architecture(boxes_set):
    """evaluate_model = evaluate with strides/reg_max from the architecture (the predictor's
    own, given, or the recipe's) and pre-processing from the recipe; with `interval`, plus the
    bootstrap interval."""
    import dataclasses

    from ednas.arch.zoo import get_arch
    from ednas.eval.coco_eval import evaluate_model
    from ednas.recipe import DataConfig, Recipe

    ds = CocoDataset(*boxes_set)
    base = get_arch("enhanced_nanodet_s")
    arch = dataclasses.replace(base, head=dataclasses.replace(base.head, reg_max=REG_MAX), input_size=64)
    assert arch.strides == tuple(STRIDES)
    def oracle() -> OraclePredictor:  # answers each image once
        return OraclePredictor(ds, 64, drop_last_box=True)

    expected = evaluate(oracle(), ds, strides=STRIDES, reg_max=REG_MAX, progress=False)
    assert evaluate_model(oracle(), ds, arch=arch, progress=False)["mAP"] == expected["mAP"]
    recipe = Recipe("r", arch.replace(num_classes=3), DataConfig(class_names=("a", "b", "c")))
    result = evaluate_model(oracle(), ds, recipe, interval=True, progress=False)
    assert result["mAP"] == expected["mAP"] and result["mAP_interval"].images == 4
    with pytest.raises(ValueError, match="give arch"):
        evaluate_model(oracle(), ds)


def test_a_zero_size_box_is_ignored_not_a_miss(boxes_set, caplog):
    """No detection can overlap a box of zero width: scored as an ignore region (one warning),
    perfect predictions of the other boxes still give mAP 1 (issue 30: it counted as a miss)."""
    images, ann = boxes_set
    gt = json.loads(ann.read_text())
    gt["annotations"].append({"id": 99, "image_id": 100, "category_id": 5, "bbox": [10, 10, 0, 20], "area": 0})
    ann.write_text(json.dumps(gt))
    ds = CocoDataset(images, ann)
    with caplog.at_level(logging.WARNING):
        result = evaluate(OraclePredictor(ds, 64), ds, strides=STRIDES, reg_max=REG_MAX, progress=False)
        evaluate(OraclePredictor(ds, 64), ds, strides=STRIDES, reg_max=REG_MAX, progress=False)
    assert result["mAP"] == pytest.approx(1.0) and result["per_class"][0] == ("a", pytest.approx(1.0))
    said = [r.getMessage() for r in caplog.records if "zero width" in r.getMessage()]
    assert len(said) == 1 and "1 boxes" in said[0] and "annotation id 99" in said[0]


class _Blind(Predictor):
    """Detects nothing: every class score 0 (ednas models output sigmoid scores)."""

    def __init__(self, input_size: int, channels: int) -> None:
        self.input_size, self.channels = input_size, channels

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        priors = len(make_priors((self.input_size, self.input_size), STRIDES))
        return np.zeros((len(batch), priors, self.channels), np.float32)


def test_no_detections_score_0_where_there_is_ground_truth_and_undefined_where_not(boxes_set):
    images, ann = boxes_set
    blind = _Blind(64, 3 + 4 * (REG_MAX + 1))
    result = evaluate(blind, CocoDataset(images, ann), strides=STRIDES, reg_max=REG_MAX, progress=False)
    assert result["mAP"] == 0.0 and result["AP50"] == 0.0
    areas = [a["area"] for a in json.loads(ann.read_text())["annotations"]]
    for metric, (low, high) in {"APs": (0, 32**2), "APm": (32**2, 96**2), "APl": (96**2, 1e9)}.items():
        assert result[metric] == (0.0 if any(low <= a < high for a in areas) else -1.0), metric  # none: undefined
    assert {result["APs"], result["APm"], result["APl"]} == {0.0, -1.0}  # the set has both cases
    assert result["per_class"][2] == ("c", None)
    gt = json.loads(ann.read_text())
    ann.write_text(json.dumps({**gt, "annotations": []}))
    result = evaluate(blind, CocoDataset(images, ann), strides=STRIDES, reg_max=REG_MAX, progress=False)
    assert all(result[m] == -1.0 for m in ("mAP", "AP50", "AP75", "APs", "APm", "APl"))

"""mAP re-accumulated from per-image matches equals COCOeval, for unit, subset and repeated
images; intervals and paired drops behave (tiny COCO set made in code)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from ednas.eval.bootstrap import Estimate, PerImageAP, map_interval, paired_drop, resample
from ednas.eval.coco_eval import coco_metrics

CATS = [1, 2, 3]


def synthetic(num_images: int = 16, seed: int = 0, noise: float = 6.0) -> tuple[dict, list[dict], list[int]]:
    """Ground truth of 1-4 boxes per image, detections = jittered boxes with random scores,
    some misses, some false positives and a wrong class now and then."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(num_images):
        images.append({"id": 100 + i, "file_name": f"{i:03d}.jpg", "width": 200, "height": 200})
        for _ in range(rng.integers(1, 5)):
            x, y, w, h = rng.uniform(0, 120, 2).tolist() + rng.uniform(20, 80, 2).tolist()
            cat = int(rng.choice(CATS))
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": cat, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0})
            if rng.random() < 0.8:
                jit = rng.normal(0, noise, 4)
                wrong = rng.random() < 0.1
                results.append({"image_id": 100 + i, "category_id": int(rng.choice(CATS)) if wrong else cat,
                                "bbox": [x + jit[0], y + jit[1], max(w + jit[2], 2), max(h + jit[3], 2)],
                                "score": float(rng.uniform(0.05, 1))})
        for _ in range(rng.integers(0, 3)):
            results.append({"image_id": 100 + i, "category_id": int(rng.choice(CATS)),
                            "bbox": rng.uniform(0, 150, 2).tolist() + [30.0, 30.0],
                            "score": float(rng.uniform(0, 0.6))})
    gt = {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in CATS]}
    return gt, results, [im["id"] for im in images]


def coco_map(gt: dict, results: list[dict], ids: list[int]) -> float:
    return coco_metrics(gt, results, ids, CATS, [f"c{c}" for c in CATS])["mAP"]


def test_unit_weights_equal_cocoeval() -> None:
    gt, res, ids = synthetic()
    assert PerImageAP(gt, res, ids).map() == pytest.approx(coco_map(gt, res, ids), abs=1e-12)


def test_one_iou_threshold_equals_cocoeval_ap50() -> None:
    gt, res, ids = synthetic(noise=12.0)
    ap50 = PerImageAP(gt, res, ids, iou=0.5).map()
    assert ap50 == pytest.approx(coco_metrics(gt, res, ids, CATS, [f"c{c}" for c in CATS])["AP50"], abs=1e-12)
    assert ap50 > PerImageAP(gt, res, ids).map()


def test_map_interval_stays_on_the_map_scale() -> None:
    """An mAP near zero: the reflected interval would reach below 0; it is cut at 0."""
    gt, res, ids = synthetic(num_images=24)
    hits = [r for r in res if r["image_id"] == ids[0]]  # detections on one image of 24: mAP ~1.7
    est = map_interval(PerImageAP(gt, hits, ids))
    assert est.low == 0.0 < est.value <= est.high <= 100.0  # reflected, the low end was -1.5


def test_subset_weights_equal_cocoeval_on_the_subset() -> None:
    gt, res, ids = synthetic()
    ap = PerImageAP(gt, res, ids)
    keep = ids[::3]
    mask = np.isin(ap.image_ids, keep).astype(float)
    assert ap.map(mask[None])[0] == pytest.approx(coco_map(gt, res, keep), abs=1e-12)


def test_repeated_images_equal_cocoeval_on_copies() -> None:
    gt, res, ids = synthetic(seed=3)
    ap = PerImageAP(gt, res, ids)
    counts = np.random.default_rng(1).integers(0, 3, len(ids))
    gt2, res2, ids2 = copy.deepcopy(gt), [], []
    next_id = 10_000
    for image_id, k in zip(ap.image_ids, counts):
        for copy_k in range(k):
            new = image_id if copy_k == 0 else next_id
            next_id += 1
            ids2.append(new)
            if copy_k:
                gt2["images"].append({**next(im for im in gt["images"] if im["id"] == image_id), "id": new})
                gt2["annotations"] += [{**a, "id": next_id * 10 + j, "image_id": new}
                                       for j, a in enumerate(gt["annotations"]) if a["image_id"] == image_id]
            res2 += [{**d, "image_id": new} for d in res if d["image_id"] == image_id]
    assert ap.map(counts[None].astype(float))[0] == pytest.approx(coco_map(gt2, res2, ids2), abs=1e-12)


def test_many_resamples_match_one_by_one() -> None:
    gt, res, ids = synthetic()
    ap = PerImageAP(gt, res, ids)
    weights = resample(len(ids), n=80)
    together = ap.map(weights)
    alone = np.array([ap.map(w[None])[0] for w in weights[:5]])
    assert np.array_equal(together[:5], alone)


def test_interval_contains_point_and_identical_models_pair_to_zero() -> None:
    gt, res, ids = synthetic(num_images=24)
    ap = PerImageAP(gt, res, ids)
    est = map_interval(ap, n=200)
    assert est.low < est.value < est.high and est.images == 24
    same = paired_drop(ap, [PerImageAP(gt, res, ids)], [np.ones(24, bool)], n=200)
    assert same.value == 0 and same.low == 0 and same.high == 0


def test_paired_drop_of_a_worse_model_and_folds() -> None:
    gt, res, ids = synthetic(num_images=24)
    worse = [d for k, d in enumerate(res) if k % 4]  # a quarter of the detections lost
    ref, cand = PerImageAP(gt, res, ids), PerImageAP(gt, worse, ids)
    full = paired_drop(ref, [cand], [np.ones(24, bool)], n=300)
    assert full.value > 0 and full.low < full.value < full.high
    halves = [np.arange(24) % 2 == k for k in (0, 1)]
    folded = paired_drop(ref, [cand, cand], halves, n=300)
    per_half = [paired_drop(ref, [cand], [h], n=300).value for h in halves]
    assert folded.value == pytest.approx(np.mean(per_half)) and folded.images == 24


def test_images_needed_scales_as_inverse_square() -> None:
    est = Estimate(0.2, -0.4, 0.8, 100)  # half-width 0.6 above the point, 0.3 of room to 0.5
    assert est.images_needed(0.5) == 400
    assert est.images_needed(1.0) == 100  # already shown
    assert est.images_needed(0.1) is None  # the point itself is above the bound

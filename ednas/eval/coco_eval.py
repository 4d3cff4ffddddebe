"""COCO mAP of a Predictor on a DetectionDataset, with the released pre- and post-processing.

Pipeline: `data.preprocess` (resize, normalise) -> Predictor -> `models.decode.postprocess`
(score > 0.05, class-wise NMS at IoU 0.6, at most 100 per image, boxes mapped back to the
original image) -> COCO results (xywh, original category ids) -> pycocotools COCOeval.
Metrics are fractions; pycocotools' -1 (undefined: no ground truth, or none of that size) is
passed through, also where there are no detections.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ednas.data.dataset import DetectionDataset
from ednas.data.preprocess import MEAN_BGR, STD_BGR, Scale, normalize, resize
from ednas.errors import DataError, ModelMismatchError
from ednas.eval.predictors import Predictor
from ednas.models.decode import Detections, make_priors, postprocess

log = logging.getLogger(__name__)

METRICS = ("mAP", "AP50", "AP75", "APs", "APm", "APl")  # the first six COCOeval stats


def evaluate(
    predictor: Predictor, dataset: DetectionDataset, class_names: Sequence[str] | None = None,
    strides: Sequence[int] = (8, 16, 32, 64), reg_max: int = 7, batch_size: int = 8,
    progress: bool = True, keep_ratio: bool = False,
    mean: Sequence[float] = MEAN_BGR, std: Sequence[float] = STD_BGR,
) -> dict[str, Any]:
    """COCO metrics of `predictor` on `dataset`.

    Returns {"mAP", "AP50", "AP75", "APs", "APm", "APl"} as fractions plus "per_class", a list
    of (class name, AP or None when the class has no ground truth), and "images", the number
    of images scored (unreadable ones are skipped, see `dataset.skipped`).
    """
    class_names = tuple(class_names or dataset.class_names)
    if len(class_names) != len(dataset.category_ids):
        raise DataError(
            f"{dataset.source}: {len(dataset.category_ids)} categories but {len(class_names)} "
            "class names; the recipe's class names must match the annotation categories"
        )
    results, image_ids = [], []
    batches = _batches(dataset, predictor.input_size, batch_size, keep_ratio, mean, std)
    with tqdm(total=len(dataset), desc="eval", unit="img", disable=not progress) as bar:
        for batch, scales, ids in batches:
            output = predictor(batch)
            dets = decode_output(output, predictor.input_size, strides, len(class_names), reg_max, scales)
            for det, image_id in zip(dets, ids):
                results.extend(to_coco_results(det, image_id, dataset.category_ids))
            image_ids.extend(ids)
            bar.update(len(ids))
    if dataset.skipped:
        log.warning("%d of %d images could not be read and were not scored",
                    len(dataset.skipped), len(dataset) + len(dataset.skipped))
    metrics = coco_metrics(dataset.coco_gt(), results, image_ids, dataset.category_ids, class_names)
    return {**metrics, "images": len(image_ids)}


def evaluate_model(
    model: Any, dataset: DetectionDataset, recipe: Any = None, arch: Any = None, interval: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """`evaluate` (or, with `interval`, `bootstrap.evaluate_with_interval`) of a torch detector or
    a Predictor, with the settings its description fixes: strides and reg_max from `arch`
    (default: the model's own, else the recipe's), class names and pre-processing (keep_ratio,
    mean, std) from `recipe` (default: the dataset's classes and the released pre-processing).
    Other keyword arguments (batch_size, progress) are passed on."""
    from ednas.eval.predictors import as_predictor

    arch = arch or getattr(model, "arch", None) or (recipe.model if recipe is not None else None)
    if arch is None:
        raise ValueError("evaluate_model: give arch (or a recipe) for a predictor without an architecture")
    settings: dict[str, Any] = {"strides": arch.strides, "reg_max": arch.head.reg_max}
    class_names = None
    if recipe is not None:
        data = recipe.data
        settings.update(keep_ratio=data.keep_ratio, mean=data.mean, std=data.std)
        class_names = recipe.class_names
    settings.update(kwargs)
    predictor = as_predictor(model)
    if interval:
        from ednas.eval.bootstrap import evaluate_with_interval

        return evaluate_with_interval(predictor, dataset, class_names, **settings)
    return evaluate(predictor, dataset, class_names, **settings)


def decode_output(
    output: np.ndarray, input_size: int, strides: Sequence[int], num_classes: int, reg_max: int,
    scales: Sequence[Scale],
) -> list[Detections]:
    """Predictor output -> detections per image in original-image pixels (shape-checked)."""
    channels = num_classes + 4 * (reg_max + 1)
    priors = len(make_priors((input_size, input_size), strides))
    if output.ndim != 3 or output.shape[1:] != (priors, channels):
        raise ModelMismatchError(
            f"model output {tuple(output.shape)} does not fit {num_classes} classes, reg_max {reg_max} "
            f"and strides {tuple(strides)} at input {input_size} (expected (N, {priors}, {channels})); "
            "check the recipe"
        )
    with torch_threads(1):
        return postprocess(
            torch.from_numpy(output), (input_size, input_size), strides, num_classes, reg_max, scales
        )


def to_coco_results(det: Detections, image_id: int, category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Detections of one image (x1y1x2y2, contiguous labels) -> COCO result dicts (xywh, ids)."""
    boxes = det.boxes.tolist()
    return [
        {
            "image_id": image_id, "category_id": category_ids[label],
            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score,
        }
        for (x1, y1, x2, y2), score, label in zip(boxes, det.scores.tolist(), det.labels.tolist())
    ]


def coco_metrics(
    gt: dict[str, Any], results: list[dict[str, Any]], image_ids: Sequence[int],
    category_ids: Sequence[int], class_names: Sequence[str],
) -> dict[str, Any]:
    """Run COCOeval (its printing goes to the debug log) on the images in `image_ids`."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with _quiet():
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
    scored = set(image_ids)
    has_gt = {a["category_id"] for a in gt["annotations"]
              if not a.get("iscrowd", 0) and a["image_id"] in scored}
    if not results:
        log.warning("no detections above the score threshold: every AP with ground truth is 0")
        per_class = [(n, 0.0 if c in has_gt else None) for c, n in zip(category_ids, class_names)]
        return {**_without_detections(gt, scored), "per_class": per_class}
    with _quiet():
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = {m: float(v) for m, v in zip(METRICS, evaluator.stats)}
    # precision: (IoU thresholds, recall points, categories, area ranges, max dets)
    precision = evaluator.eval["precision"]
    cat_index = {c: k for k, c in enumerate(evaluator.params.catIds)}
    per_class = []
    for cat, name in zip(category_ids, class_names):
        p = precision[:, :, cat_index[cat], 0, -1]
        p = p[p > -1]
        per_class.append((name, float(p.mean()) if p.size else None))
    return {**metrics, "per_class": per_class}


# COCOeval's area ranges (px^2) of APs, APm, APl
_AREAS = {"APs": (0, 32**2), "APm": (32**2, 96**2), "APl": (96**2, float("inf"))}


def _without_detections(gt: dict[str, Any], scored: set[int]) -> dict[str, float]:
    """The metrics of no detections: 0 where there is ground truth to miss, COCOeval's -1
    (undefined) where there is none (no box at all, or none of that size)."""
    areas = [a.get("area", a["bbox"][2] * a["bbox"][3]) for a in gt["annotations"]
             if not a.get("iscrowd", 0) and a["image_id"] in scored]
    out = {m: 0.0 if areas else -1.0 for m in ("mAP", "AP50", "AP75")}
    for metric, (low, high) in _AREAS.items():
        out[metric] = 0.0 if any(low <= a < high for a in areas) else -1.0
    return out


def _batches(
    dataset: DetectionDataset, size: int, batch_size: int, keep_ratio: bool,
    mean: Sequence[float], std: Sequence[float],
) -> Iterator[tuple[np.ndarray, list[Scale], list[int]]]:
    """Pre-processed batches (N, 3, S, S) with each image's Scale and id."""
    imgs, scales, ids = [], [], []
    for sample in dataset:
        resized, scale = resize(sample.img, size, keep_ratio)
        imgs.append(normalize(resized, mean, std))
        scales.append(scale)
        ids.append(sample.meta["id"])
        if len(imgs) == batch_size:
            yield np.stack(imgs), scales, ids
            imgs, scales, ids = [], [], []
    if imgs:
        yield np.stack(imgs), scales, ids


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch with `n` intra-op threads, restoring the previous count. Small-tensor work
    (decoding, NMS) runs on 1: with more, each tiny op pays thread hand-off, which on a busy
    CPU made NMS 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Capture pycocotools' prints and pass them to the debug log."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    text = buffer.getvalue().strip()
    if text:
        log.debug("pycocotools:\n%s", text)

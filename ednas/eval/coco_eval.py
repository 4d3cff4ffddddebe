"""COCO mAP of a Predictor on a DetectionDataset, with the released pre- and post-processing.

Pipeline: a Codec's `encode` (for ednas models `data.preprocess`: resize, normalise) ->
Predictor -> the Codec's `decode` (score > 0.05, class-wise NMS at IoU 0.6, at most 100 per
image, boxes mapped back to the original image) -> COCO results (xywh, original category
ids) -> pycocotools COCOeval.
Metrics are fractions; pycocotools' -1 (undefined: no ground truth, or none of that size) is
passed through, also where there are no detections.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from ednas.data.dataset import DetectionDataset
from ednas.data.preprocess import MEAN_BGR, STD_BGR
from ednas.errors import DataError
from ednas.eval.codec import Codec, NanoDetCodec, decode_output, torch_threads  # noqa: F401  (import point)
from ednas.eval.predictors import Predictor, as_predictor
from ednas.models.decode import Detections

log = logging.getLogger(__name__)

METRICS = ("mAP", "AP50", "AP75", "APs", "APm", "APl")  # the first six COCOeval stats


def evaluate(
    predictor: Predictor, dataset: DetectionDataset, class_names: Sequence[str] | None = None,
    strides: Sequence[int] = (8, 16, 32, 64), reg_max: int = 7, batch_size: int = 8,
    progress: bool = True, keep_ratio: bool = False,
    mean: Sequence[float] = MEAN_BGR, std: Sequence[float] = STD_BGR, codec: Codec | None = None,
) -> dict[str, Any]:
    """COCO metrics of `predictor` on `dataset`.

    `codec`: how the predictor reads images and what its output means (default: the predictor's
    own `codec`, else a NanoDetCodec of strides, reg_max, keep_ratio, mean and std).
    Returns {"mAP", "AP50", "AP75", "APs", "APm", "APl"} as fractions plus "per_class", a list
    of (class name, AP or None when the class has no ground truth), and "images", the number
    of images scored (unreadable ones are skipped, see `dataset.skipped`).
    """
    class_names = check_class_names(dataset, class_names)
    codec = codec or codec_of(predictor, len(class_names), strides, reg_max, keep_ratio, mean, std)
    results, image_ids = [], []
    with tqdm(total=len(dataset), desc="eval", unit="img", disable=not progress) as bar:
        for batch, placements, ids in batches(dataset, codec, batch_size):
            dets = codec.decode(predictor(batch), placements)
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
    A predictor that carries its own `codec` (a peer detector) needs neither; its class names
    are the codec's. Other keyword arguments (batch_size, progress) are passed on."""
    predictor = as_predictor(model)
    settings: dict[str, Any] = {}
    class_names = recipe.class_names if recipe is not None else None
    if getattr(predictor, "codec", None) is not None:
        class_names = class_names or predictor.codec.class_names
    else:
        arch = arch or getattr(model, "arch", None) or (recipe.model if recipe is not None else None)
        if arch is None:
            raise ValueError("evaluate_model: give arch (or a recipe) for a predictor without an architecture")
        settings.update(strides=arch.strides, reg_max=arch.head.reg_max)
        if recipe is not None:
            data = recipe.data
            settings.update(keep_ratio=data.keep_ratio, mean=data.mean, std=data.std)
    settings.update(kwargs)
    if interval:
        from ednas.eval.bootstrap import evaluate_with_interval

        return evaluate_with_interval(predictor, dataset, class_names, **settings)
    return evaluate(predictor, dataset, class_names, **settings)


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


def check_class_names(dataset: DetectionDataset, class_names: Sequence[str] | None) -> tuple[str, ...]:
    """The class names to score with (default: the dataset's), refused when their count is not
    the annotation's category count."""
    names = tuple(class_names or dataset.class_names)
    if len(names) != len(dataset.category_ids):
        raise DataError(
            f"{dataset.source}: {len(dataset.category_ids)} categories but {len(names)} "
            "class names; the recipe's class names must match the annotation categories"
        )
    return names


def codec_of(predictor: Predictor, num_classes: int, strides: Sequence[int] = (8, 16, 32, 64),
             reg_max: int = 7, keep_ratio: bool = False, mean: Sequence[float] = MEAN_BGR,
             std: Sequence[float] = STD_BGR) -> Codec:
    """The predictor's own codec (a peer detector's), else the NanoDet codec of these settings."""
    own = getattr(predictor, "codec", None)
    if own is not None:
        return own
    return NanoDetCodec(predictor.input_size, num_classes, strides, reg_max, keep_ratio, mean, std)


def batches(dataset: DetectionDataset, codec: Codec, batch_size: int
            ) -> Iterator[tuple[np.ndarray, list[Any], list[int]]]:
    """Encoded batches (N, 3, S, S) with each image's placement and id."""
    imgs, placements, ids = [], [], []
    for sample in dataset:
        x, placement = codec.encode(sample.img)
        imgs.append(x)
        placements.append(placement)
        ids.append(sample.meta["id"])
        if len(imgs) == batch_size:
            yield np.stack(imgs), placements, ids
            imgs, placements, ids = [], [], []
    if imgs:
        yield np.stack(imgs), placements, ids


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Capture pycocotools' prints and pass them to the debug log."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    text = buffer.getvalue().strip()
    if text:
        log.debug("pycocotools:\n%s", text)

"""COCO mAP with its uncertainty: a bootstrap over images, and paired differences of models.

On a few hundred images one mAP moves by a point or more when the images change, so a
number without its interval cannot show (or refute) a half-point bound. `PerImageAP` runs
pycocotools' matching (`COCOeval.evaluate`) once and keeps, per category, every detection's
score, match and image; the AP of any weighting of the images (a bootstrap resample, a fold,
a held-out half) is then re-accumulated in numpy, all resamples at once, instead of running
COCOeval again. With unit weights it equals COCOeval's mAP (tests/eval/test_bootstrap.py).

A resample that draws an image k times counts its detections and ground truth k times; that
is COCOeval on the resampled list up to the order of tied scores.
A *paired* drop resamples the same images for both models, so the image-to-image spread that
both share cancels: only where the models differ is left.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from ednas.data.dataset import DetectionDataset
from ednas.data.preprocess import MEAN_BGR, STD_BGR
from ednas.eval.codec import Codec
from ednas.eval.coco_eval import batches, check_class_names, coco_metrics, codec_of, to_coco_results
from ednas.eval.predictors import Predictor

log = logging.getLogger(__name__)

RESAMPLES = 1000  # bootstrap resamples, the usual count for 95% intervals (fixed seed: reproducible)
LEVEL = 0.95  # confidence level of every interval
_CHUNK = 50  # resamples re-accumulated together (bounds memory: chunk x IoUs x detections)


@dataclass
class _Category:
    """One category's detections over all images, sorted by score as COCOeval sorts them."""

    image: np.ndarray  # (D,) image index of each detection
    tp: np.ndarray  # (T, D) float: matched and not ignored, per IoU threshold
    fp: np.ndarray  # (T, D) float: unmatched and not ignored
    gt: np.ndarray  # (I,) non-ignored ground truth boxes per image


class PerImageAP:
    """COCO box mAP (area all, 100 detections) of one model's results, for any image weights."""

    def __init__(self, gt: dict[str, Any], results: list[dict[str, Any]], image_ids: Sequence[int],
                 iou: float | None = None) -> None:
        """`iou`: one IoU threshold (e.g. 0.5: AP50) instead of COCO's 0.50:0.95."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        self.image_ids = sorted(image_ids)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(results) if results else COCO()
            evaluator = COCOeval(coco_gt, coco_dt, "bbox")
            evaluator.params.imgIds = self.image_ids
            # categories without a ground-truth box are left out of the mean under every weighting
            # (below): not matching them at all gives the same mAP, far sooner on a person-only set
            evaluator.params.catIds = sorted({a["category_id"] for a in gt.get("annotations", [])}) or \
                evaluator.params.catIds
            if iou is not None:
                evaluator.params.iouThrs = np.array([iou])
            evaluator.evaluate()
        p = evaluator.params
        self.rec_thresholds = np.asarray(p.recThrs)  # (R,)
        num_iou, num_img, num_area = len(p.iouThrs), len(p.imgIds), len(p.areaRng)
        self.categories: list[_Category] = []
        for k in range(len(p.catIds)):
            base = k * num_area * num_img  # area range "all" is index 0
            cells = [(i, e) for i, e in enumerate(evaluator.evalImgs[base:base + num_img]) if e is not None]
            gt_count = np.zeros(num_img)
            for i, e in cells:
                gt_count[i] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
            if not gt_count.any():
                continue  # COCOeval leaves it out of the mean (-1) under every weighting
            scores = np.concatenate([np.asarray(e["dtScores"], float) for _, e in cells] or [np.zeros(0)])
            image = np.concatenate([np.full(len(e["dtScores"]), i) for i, e in cells] or [np.zeros(0, int)])
            match = np.concatenate([np.asarray(e["dtMatches"]).reshape(num_iou, -1) for _, e in cells], axis=1)
            ignore = np.concatenate([np.asarray(e["dtIgnore"]).reshape(num_iou, -1) for _, e in cells], axis=1)
            order = np.argsort(-scores, kind="mergesort")
            match, ignore = match[:, order] > 0, ignore[:, order].astype(bool)
            self.categories.append(_Category(image[order].astype(int), (match & ~ignore).astype(float),
                                             (~match & ~ignore).astype(float), gt_count))

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def map(self, weights: np.ndarray | None = None) -> np.ndarray | float:
        """mAP (fraction) for image weights (I,) or (B, I); unit weights when None."""
        if weights is None:
            return float(self.map(np.ones((1, self.num_images)))[0])
        weights = np.atleast_2d(np.asarray(weights, float))
        return np.concatenate([self._map(weights[s:s + _CHUNK]) for s in range(0, len(weights), _CHUNK)])

    def _map(self, weights: np.ndarray) -> np.ndarray:
        """(B,) mAP: COCOeval.accumulate for each weight row, all rows at once."""
        total, count = np.zeros(len(weights)), np.zeros(len(weights))
        thresholds = self.rec_thresholds
        for cat in self.categories:
            npig = weights @ cat.gt  # (B,)
            present = npig > 0
            num_iou, num_det = cat.tp.shape
            if num_det == 0:
                count += present
                continue
            w = weights[:, cat.image][:, None, :]  # (B, 1, D)
            tps, fps = np.cumsum(cat.tp * w, axis=2), np.cumsum(cat.fp * w, axis=2)  # (B, T, D)
            recall = tps / np.where(present, npig, 1.0)[:, None, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                precision = np.nan_to_num(tps / (tps + fps))
            precision = np.maximum.accumulate(precision[..., ::-1], axis=2)[..., ::-1]
            idx = _first_reaching(recall.reshape(len(weights) * num_iou, num_det), thresholds)  # (B*T, R)
            hit = idx < num_det
            q = np.where(hit, np.take_along_axis(precision.reshape(-1, num_det), np.minimum(idx, num_det - 1),
                                                 axis=1), 0.0)
            ap = q.reshape(len(weights), num_iou, -1).mean(axis=(1, 2))  # (B,)
            total += np.where(present, ap, 0.0)
            count += present
        return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _first_reaching(recall: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(rows, R): per row of the non-decreasing `recall` (rows, D), the first index whose
    recall reaches each threshold (np.searchsorted(row, thresholds, 'left'), as COCOeval),
    for all rows at once and with exact float comparisons: each recall is first turned into
    the number of thresholds it reaches, then rows are searched together on those integers
    shifted by row."""
    rows, num_det = recall.shape
    reached = np.searchsorted(thresholds, recall, side="right")  # (rows, D) in 0..R, non-decreasing
    span = len(thresholds) + 1
    shift = (np.arange(rows) * span)[:, None]
    wanted = np.arange(len(thresholds))[None, :]  # threshold r is reached where reached > r
    idx = np.searchsorted((reached + shift).ravel(), (wanted + shift).ravel(), side="right")
    return idx.reshape(rows, -1) - (np.arange(rows) * num_det)[:, None]


def resample(num_images: int, among: np.ndarray | None = None, n: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(n, num_images) bootstrap weights: each row draws len(among) images with replacement from
    `among` (a boolean mask or indices; all images when None); the rest weigh 0."""
    idx = np.arange(num_images) if among is None else np.asarray(among)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(idx), (n, len(idx)))
    weights = np.zeros((n, num_images))
    np.add.at(weights, (np.arange(n)[:, None], idx[draws]), 1.0)
    return weights


@dataclass(frozen=True)
class Estimate:
    """A number in points (mAP or a drop) with its bootstrap interval and the images behind it."""

    value: float
    low: float
    high: float
    images: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{self.value:.2f} (95% CI {self.low:.2f} to {self.high:.2f}, {self.images} images)"

    def images_needed(self, bound: float) -> int | None:
        """Images for the upper end to reach `bound` at this point value (width ~ 1/sqrt(n));
        None when the point value itself is above the bound (no set size shows it)."""
        margin = bound - self.value
        if margin <= 0:
            return None
        if self.high <= bound:
            return self.images
        return int(np.ceil(round(self.images * ((self.high - self.value) / margin) ** 2, 6)))


def _interval(point: float, samples: np.ndarray, images: int) -> Estimate:
    """The basic (reverse percentile) bootstrap interval, 2 * point - percentiles: resampled
    mAP runs high (a resample misses rare, low-AP categories, which then leave the mean), and
    this interval corrects that shift where the plain percentile one would carry it."""
    tail = (1 - LEVEL) / 2 * 100
    q_low, q_high = np.percentile(samples, [tail, 100 - tail])
    return Estimate(point, float(2 * point - q_high), float(2 * point - q_low), images)


def map_interval(model: PerImageAP, n: int = RESAMPLES, seed: int = 0) -> Estimate:
    """mAP in points with its bootstrap interval over the images."""
    samples = model.map(resample(model.num_images, n=n, seed=seed)) * 100
    est = _interval(model.map() * 100, samples, model.num_images)
    # the reflected interval of an mAP near 0 (or 100) can leave the scale; an mAP cannot
    return Estimate(est.value, max(est.low, 0.0), min(est.high, 100.0), est.images)


def paired_drop(reference: PerImageAP, models: Sequence[PerImageAP], folds: Sequence[np.ndarray],
                n: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Mean over folds of (reference mAP - models[k] mAP) on fold k's images, in points, with a
    paired bootstrap interval: each fold's images are resampled within the fold, the same
    draw for both models. One fold of all images gives the plain paired drop."""
    return paired_drops(reference, models, folds, n, seed)[0]


def paired_drops(reference: PerImageAP, models: Sequence[PerImageAP], folds: Sequence[np.ndarray],
                 n: int = RESAMPLES, seed: int = 0) -> tuple[Estimate, list[Estimate]]:
    """`paired_drop` and, from the same resamples, each fold's own drop."""
    if len(models) != len(folds):
        raise ValueError("one model per fold")
    points, samples, per_fold = [], [], []
    for k, (model, fold) in enumerate(zip(models, folds)):
        if model.image_ids != reference.image_ids:
            raise ValueError("paired drop needs both models scored on the same images")
        fold = np.asarray(fold, bool)
        whole = fold[None].astype(float)
        points.append((reference.map(whole)[0] - model.map(whole)[0]) * 100)
        weights = resample(reference.num_images, fold, n, seed + k)
        samples.append((reference.map(weights) - model.map(weights)) * 100)
        per_fold.append(_interval(points[-1], samples[-1], int(fold.sum())))
    mean = _interval(float(np.mean(points)), np.mean(samples, axis=0), sum(e.images for e in per_fold))
    return mean, per_fold


def predict_results(predictor: Predictor, dataset: DetectionDataset, class_names: Sequence[str] | None = None,
                    strides: Sequence[int] = (8, 16, 32, 64), reg_max: int = 7, batch_size: int = 8,
                    keep_ratio: bool = False, mean: Sequence[float] = MEAN_BGR, std: Sequence[float] = STD_BGR,
                    progress: bool = False, codec: Codec | None = None) -> tuple[list[dict[str, Any]], list[int]]:
    """COCO results (original ids, xywh) of `predictor` on `dataset` and the ids of the images
    scored, with the same pre- and post-processing as `coco_eval.evaluate` (`codec` as there)."""
    class_names = check_class_names(dataset, class_names)
    codec = codec or codec_of(predictor, len(class_names), strides, reg_max, keep_ratio, mean, std)
    results: list[dict[str, Any]] = []
    image_ids: list[int] = []
    with tqdm(total=len(dataset), desc="eval", unit="img", disable=not progress) as bar:
        for batch, placements, ids in batches(dataset, codec, batch_size):
            for det, image_id in zip(codec.decode(predictor(batch), placements), ids):
                results.extend(to_coco_results(det, image_id, dataset.category_ids))
            image_ids.extend(ids)
            bar.update(len(ids))
    return results, image_ids


def evaluate_with_interval(predictor: Predictor, dataset: DetectionDataset,
                           class_names: Sequence[str] | None = None, progress: bool = True,
                           **kwargs: Any) -> dict[str, Any]:
    """`coco_eval.evaluate`'s metrics plus "mAP_interval": an Estimate of mAP in points."""
    class_names = tuple(class_names or dataset.class_names)
    results, image_ids = predict_results(predictor, dataset, class_names, progress=progress, **kwargs)
    if dataset.skipped:
        log.warning("%d of %d images could not be read and were not scored",
                    len(dataset.skipped), len(dataset) + len(dataset.skipped))
    gt = dataset.coco_gt()
    metrics = coco_metrics(gt, results, image_ids, dataset.category_ids, class_names)
    return {**metrics, "images": len(image_ids), "mAP_interval": map_interval(PerImageAP(gt, results, image_ids))}

"""Box decoding shared by training, evaluation and inference (PyTorch and ONNX paths alike).

The head predicts, per prior point, `num_classes` class scores and for each box side a
distribution over `reg_max + 1` bins (General Focal Loss). The prior of cell (x, y) at stride
s is the point (x*s, y*s); a side's distance is the expectation of its distribution times s.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F


class Detections(NamedTuple):
    """Detections of one image: boxes (K, 4) as x1y1x2y2, scores (K,), labels (K,)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


def featmap_sizes(input_hw: tuple[int, int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """Feature map (h, w) of each level: stride-2 convs with padding round up."""
    h, w = input_hw
    return [(math.ceil(h / s), math.ceil(w / s)) for s in strides]


def make_priors(input_hw: tuple[int, int], strides: Sequence[int]) -> torch.Tensor:
    """Prior points of all levels, (A, 3) as (x, y, stride), in the head's output order."""
    rows = []
    for (h, w), s in zip(featmap_sizes(input_hw, strides), strides):
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        stride = torch.full((h * w,), float(s))
        rows.append(torch.stack([xs.flatten() * float(s), ys.flatten() * float(s), stride], 1))
    return torch.cat(rows)


def integral(reg_logits: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(..., 4*(reg_max+1)) distribution logits -> (..., 4) expected distances in bins."""
    probs = F.softmax(reg_logits.reshape(*reg_logits.shape[:-1], 4, reg_max + 1), dim=-1)
    project = torch.arange(reg_max + 1, dtype=probs.dtype, device=probs.device)
    return probs @ project


def distance2bbox(
    points: torch.Tensor, distance: torch.Tensor, max_hw: tuple[int, int] | None = None
) -> torch.Tensor:
    """Points (..., 2) and side distances (..., 4: l, t, r, b) -> boxes (..., 4) x1y1x2y2."""
    x1 = points[..., 0] - distance[..., 0]
    y1 = points[..., 1] - distance[..., 1]
    x2 = points[..., 0] + distance[..., 2]
    y2 = points[..., 1] + distance[..., 3]
    if max_hw is not None:
        h, w = max_hw
        x1, x2 = x1.clamp(0, w), x2.clamp(0, w)
        y1, y2 = y1.clamp(0, h), y2.clamp(0, h)
    return torch.stack([x1, y1, x2, y2], -1)


def bbox2distance(points: torch.Tensor, bbox: torch.Tensor, max_dis: float | None = None) -> torch.Tensor:
    """Inverse of distance2bbox: boxes (..., 4) seen from points (..., 2) -> (..., 4)."""
    left = points[..., 0] - bbox[..., 0]
    top = points[..., 1] - bbox[..., 1]
    right = bbox[..., 2] - points[..., 0]
    bottom = bbox[..., 3] - points[..., 1]
    dist = torch.stack([left, top, right, bottom], -1)
    if max_dis is not None:
        dist = dist.clamp(min=0, max=max_dis - 0.01)
    return dist


def decode(
    output: torch.Tensor, priors: torch.Tensor, num_classes: int, reg_max: int,
    input_hw: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference output (N, A, C + 4*(R+1)) with sigmoid scores -> scores (N, A, C), boxes (N, A, 4)."""
    scores = output[..., :num_classes]
    dist = integral(output[..., num_classes:], reg_max) * priors[:, 2:3]  # (N, A, 4) pixels
    boxes = distance2bbox(priors[:, :2], dist, max_hw=input_hw)
    return scores, boxes


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of boxes a (M, 4) and b (N, 4) -> (M, N)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_keep: int | None = None
) -> torch.Tensor:
    """Greedy NMS; returns kept indices sorted by decreasing score (at most `max_keep`).

    One IoU row per kept box (not the full pairwise matrix): thousands of candidates cost
    O(kept * candidates), and stopping at `max_keep` bounds the work per image. The loop runs
    in numpy, whose per-call cost on these small arrays is a fraction of torch's (the same
    float32 arithmetic, so the same boxes are kept).
    """
    b = boxes.detach().cpu().numpy()
    order = np.argsort(-scores.detach().cpu().numpy(), kind="stable")
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best, order = order[0], order[1:]
        keep.append(best)
        lt = np.maximum(b[best, :2], b[order, :2])
        rb = np.minimum(b[best, 2:], b[order, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / np.maximum(area[best] + area[order] - inter, np.float32(1e-9))
        order = order[iou <= iou_threshold]
    return torch.as_tensor(np.asarray(keep, np.int64), device=boxes.device)


def multiclass_nms(
    boxes: torch.Tensor, scores: torch.Tensor, score_thr: float = 0.05,
    iou_thr: float = 0.6, max_det: int = 100,
) -> Detections:
    """Class-wise NMS of one image: boxes (A, 4), scores (A, C) -> at most max_det detections."""
    idx, labels = (scores > score_thr).nonzero(as_tuple=True)
    cand_boxes, cand_scores = boxes[idx], scores[idx, labels]
    if len(cand_scores) == 0:
        return Detections(boxes.new_zeros((0, 4)), scores.new_zeros(0), labels.new_zeros(0))
    # offset boxes per class so that one NMS call never suppresses across classes
    offset = labels.to(boxes.dtype)[:, None] * (cand_boxes.max() + 1)
    keep = nms(cand_boxes + offset, cand_scores, iou_thr, max_keep=max_det)
    return Detections(cand_boxes[keep], cand_scores[keep], labels[keep])


def postprocess(
    output: torch.Tensor, input_hw: tuple[int, int], strides: Sequence[int], num_classes: int,
    reg_max: int, scales: Sequence[tuple[float, float]] | None = None,
    score_thr: float = 0.05, iou_thr: float = 0.6, max_det: int = 100,
) -> list[Detections]:
    """Inference output (N, A, C + 4*(R+1)) -> detections per image.

    `scales[i]` = (sx, sy) maps image i's boxes from the network input back to the original
    image (original size / input size); boxes are then clipped to the original image.
    """
    priors = make_priors(input_hw, strides).to(output.device, output.dtype)
    scores, boxes = decode(output, priors, num_classes, reg_max, input_hw)
    results = []
    for i in range(output.shape[0]):
        det = multiclass_nms(boxes[i], scores[i], score_thr, iou_thr, max_det)
        if scales is not None:
            sx, sy = scales[i]
            b = det.boxes * det.boxes.new_tensor([sx, sy, sx, sy])
            b[:, 0::2] = b[:, 0::2].clamp(0, input_hw[1] * sx)
            b[:, 1::2] = b[:, 1::2].clamp(0, input_hw[0] * sy)
            det = Detections(b, det.scores, det.labels)
        results.append(det)
    return results

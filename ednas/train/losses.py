"""The three losses of NanoDet-Plus (General Focal Loss family), element-wise and unreduced.

Weighting and normalisation (by the number of positives, or by the predicted quality of the
positives) belong to the head loss in `ednas.train.loss`; here each function returns one
value per row so that it can be checked by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quality_focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, beta: float = 2.0
) -> torch.Tensor:
    """Quality Focal Loss (Li et al. 2020), summed over classes.

    logits (P, C) raw class logits; labels (P,) the class of each positive, C (or any value
    outside 0..C-1) for background; scores (P,) the soft target of the positives (the IoU of
    the predicted box with its ground truth). Returns (P,).

    Every class is pushed towards 0 with a focal factor sigmoid^beta; the labelled class of a
    positive is pushed towards its score with factor |score - sigmoid|^beta.
    """
    prob = logits.sigmoid()  # (P, C)
    loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    loss = loss * prob.pow(beta)  # (P, C) background term for every class
    num_classes = logits.shape[1]
    pos = ((labels >= 0) & (labels < num_classes)).nonzero(as_tuple=True)[0]  # (Np,)
    if len(pos):
        cls = labels[pos].long()
        target = scores[pos].to(logits.dtype)
        pos_logits = logits[pos, cls]  # (Np,)
        factor = (target - prob[pos, cls]).abs().pow(beta)
        pos_loss = F.binary_cross_entropy_with_logits(pos_logits, target, reduction="none") * factor
        loss = loss.index_put((pos, cls), pos_loss)
    return loss.sum(dim=1)


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution Focal Loss: logits (P, R+1) over bins 0..R, target (P,) a real distance
    in [0, R). Cross-entropy to the two bins around the target, weighted by proximity, so the
    distribution concentrates on them. Returns (P,)."""
    left = target.long()  # (P,) floor, since target >= 0
    right = left + 1
    w_left = right.to(target.dtype) - target
    w_right = target - left.to(target.dtype)
    return (
        F.cross_entropy(logits, left, reduction="none") * w_left
        + F.cross_entropy(logits, right, reduction="none") * w_right
    )


def giou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 - generalised IoU of aligned box pairs (P, 4) x1y1x2y2 -> (P,)."""
    lt = torch.maximum(pred[:, :2], target[:, :2])
    rb = torch.minimum(pred[:, 2:], target[:, 2:])
    overlap = (rb - lt).clamp(min=0).prod(dim=1)
    area_p = (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(dim=1)
    area_t = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(dim=1)
    union = (area_p + area_t - overlap).clamp(min=eps)
    iou = overlap / union
    enclose_lt = torch.minimum(pred[:, :2], target[:, :2])
    enclose_rb = torch.maximum(pred[:, 2:], target[:, 2:])
    enclose = (enclose_rb - enclose_lt).clamp(min=0).prod(dim=1).clamp(min=eps)
    return 1 - (iou - (enclose - union) / enclose)

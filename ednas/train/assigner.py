"""Dynamic Soft Label Assigner (NanoDet-Plus): which prior points learn which ground truth.

Candidates are the priors whose point lies inside some ground-truth box (centre prior). For
each candidate/gt pair the cost is a soft-label classification cost (the focal BCE of the
predicted class probabilities against a one-hot label scaled by the IoU of the predicted box)
plus `iou_factor * -log(IoU)`. Each gt takes its `k` cheapest candidates, `k` = the sum of
its `topk` best IoUs (at least 1, as in OTA / YOLOX SimOTA); a prior claimed by several gts
keeps the cheapest one.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ednas.models.decode import box_iou


class Assignment(NamedTuple):
    """The result for one image's A priors."""

    gt_index: torch.Tensor  # (A,) long: index of the assigned gt, -1 for background
    iou: torch.Tensor  # (A,) IoU of each positive's predicted box with its gt, 0 elsewhere

    @property
    def pos(self) -> torch.Tensor:
        """(Np,) indices of the positive priors."""
        return (self.gt_index >= 0).nonzero(as_tuple=True)[0]


class DynamicSoftLabelAssigner:
    """Assigner with the NanoDet-Plus defaults (top-k 13, IoU cost factor 3)."""

    def __init__(self, topk: int = 13, iou_factor: float = 3.0) -> None:
        self.topk = topk
        self.iou_factor = iou_factor

    @torch.no_grad()
    def assign(
        self, scores: torch.Tensor, priors: torch.Tensor, boxes: torch.Tensor,
        gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
    ) -> Assignment:
        """scores (A, C) predicted probabilities (after sigmoid), priors (A, 3) as (x, y,
        stride), boxes (A, 4) decoded predictions, gt_boxes (K, 4), gt_labels (K,)."""
        num_priors = priors.shape[0]
        gt_index = torch.full((num_priors,), -1, dtype=torch.long, device=priors.device)
        iou_out = priors.new_zeros(num_priors)
        if len(gt_boxes) == 0 or num_priors == 0:
            return Assignment(gt_index, iou_out)

        points = priors[:, None, :2]  # (A, 1, 2)
        deltas = torch.cat([points - gt_boxes[None, :, :2], gt_boxes[None, :, 2:] - points], -1)  # (A, K, 4)
        valid = (deltas.min(dim=-1).values > 0).any(dim=1)  # (A,) inside at least one gt
        if not valid.any():
            return Assignment(gt_index, iou_out)

        valid_boxes, valid_scores = boxes[valid], scores[valid]  # (V, 4), (V, C)
        ious = box_iou(valid_boxes, gt_boxes)  # (V, K)
        iou_cost = -torch.log(ious + 1e-7)

        onehot = F.one_hot(gt_labels.long(), scores.shape[-1]).to(scores.dtype)  # (K, C)
        soft_label = onehot[None] * ious[..., None]  # (V, K, C)
        pred = valid_scores[:, None, :].expand_as(soft_label)  # (V, K, C)
        cls_cost = F.binary_cross_entropy(pred, soft_label, reduction="none")
        cls_cost = (cls_cost * (soft_label - pred).abs().pow(2.0)).sum(dim=-1)  # (V, K)

        cost = cls_cost + self.iou_factor * iou_cost  # (V, K)
        matched_gt, matched = self._dynamic_k_matching(cost, ious)  # (V,), (V,) bool
        valid_idx = valid.nonzero(as_tuple=True)[0][matched]
        gt_index[valid_idx] = matched_gt[matched]
        iou_out[valid_idx] = ious[matched.nonzero(as_tuple=True)[0], matched_gt[matched]]
        return Assignment(gt_index, iou_out)

    def _dynamic_k_matching(self, cost: torch.Tensor, ious: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cost, ious (V, K) -> (matched gt per candidate (V,), candidate is positive (V,))."""
        num_valid, num_gt = cost.shape
        topk = min(self.topk, num_valid)
        dynamic_k = ious.topk(topk, dim=0).values.sum(0).int().clamp(min=1)  # (K,)
        max_k = int(dynamic_k.max())
        cheapest = cost.topk(max_k, dim=0, largest=False).indices  # (max_k, K)
        take = torch.arange(max_k, device=cost.device)[:, None] < dynamic_k[None]  # (max_k, K)
        matching = torch.zeros_like(cost, dtype=torch.bool)
        gt_cols = torch.arange(num_gt, device=cost.device).expand(max_k, num_gt)
        matching[cheapest[take], gt_cols[take]] = True  # (V, K)
        # a candidate claimed by several gts goes to its cheapest gt overall (as NanoDet-Plus)
        claims = matching.sum(dim=1)  # (V,)
        matched_gt = torch.where(claims > 1, cost.argmin(dim=1), matching.int().argmax(dim=1))  # (V,)
        return matched_gt, claims > 0

"""The NanoDet-Plus head loss: decode, assign, then QFL + GIoU + DFL on the head (and the
auxiliary head, with the same assignment).

Assignment uses the auxiliary head's predictions when they are given (the assign guidance
module: a bigger head sees the targets chosen by better predictions early in training), the
main head's otherwise. Normalisation follows NanoDet-Plus: QFL is averaged over the number of
positives, GIoU and DFL are weighted per positive by its predicted max class score and
averaged over the sum of those weights; both averages are taken across all processes.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist

from ednas.models.decode import bbox2distance, distance2bbox, integral, make_priors
from ednas.recipe import TrainConfig
from ednas.train.assigner import Assignment, DynamicSoftLabelAssigner
from ednas.train.losses import distribution_focal_loss, giou_loss, quality_focal_loss


def _global_mean(value: float, device: torch.device) -> float:
    """Mean of a scalar over the processes of a distributed run (itself otherwise)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor(value, dtype=torch.float32, device=device)
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()


class NanoDetPlusLoss:
    """Callable: (out, gt_boxes, gt_labels, aux_out) -> (total loss, {name: detached part})."""

    def __init__(
        self, num_classes: int, reg_max: int, strides: Sequence[int], cfg: TrainConfig | None = None
    ) -> None:
        cfg = cfg or TrainConfig()
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.strides = tuple(strides)
        self.cfg = cfg
        self.assigner = DynamicSoftLabelAssigner(cfg.assigner_topk, cfg.assigner_iou_factor)
        self._priors: dict[tuple, torch.Tensor] = {}

    def priors(self, input_hw: tuple[int, int], device: torch.device) -> torch.Tensor:
        """(A, 3) prior points (x, y, stride), cached per input size and device."""
        key = (tuple(input_hw), str(device))
        if key not in self._priors:
            self._priors[key] = make_priors(input_hw, self.strides).to(device)
        return self._priors[key]

    def decode(self, out: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
        """Raw logits (N, A, C + 4(R+1)) -> predicted boxes (N, A, 4) in pixels (unclipped)."""
        dist_px = integral(out[..., self.num_classes:], self.reg_max) * priors[:, 2:3]  # (N, A, 4)
        return distance2bbox(priors[:, :2], dist_px)

    def __call__(
        self, out: torch.Tensor, gt_boxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
        input_hw: tuple[int, int], aux_out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """out, aux_out (N, A, C + 4(R+1)) raw logits; gt_boxes[i] (K_i, 4) x1y1x2y2 in input
        pixels; gt_labels[i] (K_i,). Returns the total loss and its parts."""
        priors = self.priors(input_hw, out.device)  # (A, 3)
        boxes = self.decode(out, priors)  # (N, A, 4)
        guide = out if aux_out is None else aux_out
        guide_boxes = boxes if aux_out is None else self.decode(aux_out, priors)
        assignments = [
            self.assigner.assign(
                guide[i, :, : self.num_classes].detach().sigmoid(), priors, guide_boxes[i].detach(),
                gt_boxes[i].to(out.device, out.dtype), gt_labels[i].to(out.device),
            )
            for i in range(out.shape[0])
        ]
        targets = self._targets(assignments, priors, gt_boxes, gt_labels)
        total, parts = self._loss(out, boxes, targets)
        if aux_out is not None:
            aux_total, aux_parts = self._loss(aux_out, guide_boxes, targets)
            total = total + aux_total
            parts.update({f"aux_{k}": v for k, v in aux_parts.items()})
        return total, parts

    @torch.no_grad()
    def _targets(
        self, assignments: list[Assignment], priors: torch.Tensor,
        gt_boxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Per-prior targets of the whole batch, flattened to (N*A, ...)."""
        num_priors = priors.shape[0]
        labels, scores, boxes, dists = [], [], [], []
        for a, gtb, gtl in zip(assignments, gt_boxes, gt_labels):
            pos = a.pos  # (Np,)
            gi = a.gt_index[pos]
            lab = torch.full((num_priors,), self.num_classes, dtype=torch.long, device=priors.device)
            box = priors.new_zeros(num_priors, 4)
            dis = priors.new_zeros(num_priors, 4)
            if len(pos):
                gtb = gtb.to(priors.device, priors.dtype)
                lab[pos] = gtl.to(priors.device)[gi].long()
                box[pos] = gtb[gi]
                dis[pos] = bbox2distance(priors[pos, :2], gtb[gi]) / priors[pos, 2:3]
            labels.append(lab)
            scores.append(a.iou)
            boxes.append(box)
            dists.append(dis.clamp(min=0, max=self.reg_max - 0.1))
        return {
            "labels": torch.cat(labels),  # (N*A,) num_classes = background
            "scores": torch.cat(scores),  # (N*A,) IoU soft targets
            "boxes": torch.cat(boxes),  # (N*A, 4) gt boxes of positives
            "dists": torch.cat(dists),  # (N*A, 4) gt side distances in bins
        }

    def _loss(
        self, out: torch.Tensor, boxes: torch.Tensor, t: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg, c = self.cfg, self.num_classes
        cls_logits = out[..., :c].reshape(-1, c)  # (N*A, C)
        reg_logits = out[..., c:].reshape(-1, 4 * (self.reg_max + 1))  # (N*A, 4(R+1))
        boxes = boxes.reshape(-1, 4)  # (N*A, 4)
        pos = ((t["labels"] >= 0) & (t["labels"] < c)).nonzero(as_tuple=True)[0]  # (Np,)

        num_pos = max(_global_mean(float(len(pos)), out.device), 1.0)
        qfl = quality_focal_loss(cls_logits, t["labels"], t["scores"], cfg.qfl_beta).sum() / num_pos
        if len(pos):
            weight = cls_logits[pos].detach().sigmoid().max(dim=1).values  # (Np,)
            norm = max(_global_mean(weight.sum().item(), out.device), 1.0)
            giou = (giou_loss(boxes[pos], t["boxes"][pos]) * weight).sum() / norm
            dfl = distribution_focal_loss(
                reg_logits[pos].reshape(-1, self.reg_max + 1), t["dists"][pos].reshape(-1)
            )  # (Np*4,)
            dfl = (dfl * weight.repeat_interleave(4)).sum() / (4.0 * norm)
        else:
            # keep the graph connected (DDP needs every parameter to get a gradient)
            giou = dfl = reg_logits.sum() * 0.0
            _global_mean(0.0, out.device)  # match the all-reduce of processes with positives
        qfl, giou, dfl = cfg.qfl_weight * qfl, cfg.giou_weight * giou, cfg.dfl_weight * dfl
        parts = {"qfl": qfl.detach(), "giou": giou.detach(), "dfl": dfl.detach()}
        return qfl + giou + dfl, parts

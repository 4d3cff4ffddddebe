"""Knowledge distillation from a teacher detector (e.g. the model before pruning).

Both models emit raw logits (N, A, C + 4*(R+1)) over the same priors. The student learns
  - the teacher's class probabilities (soft BCE with a quality-focal factor |p_s - p_t|^beta,
    so confident disagreements dominate, normalised by the teacher's total confidence), and
  - the teacher's box-side distributions (KL divergence at temperature T, "localization
    distillation"), weighted per prior by the teacher's best class score so that only
    priors the teacher considers objects matter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class DistillLoss:
    def __init__(self, num_classes: int, reg_max: int, cls_weight: float = 1.0, reg_weight: float = 1.0,
                 temperature: float = 10.0, beta: float = 2.0) -> None:
        self.num_classes = num_classes
        self.bins = reg_max + 1
        self.cls_weight = cls_weight
        self.reg_weight = reg_weight
        self.temperature = temperature
        self.beta = beta

    def __call__(self, student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.num_classes
        teacher = teacher.detach()
        t_prob = teacher[..., :c].sigmoid()  # (N, A, C)
        s_logit = student[..., :c]
        focal = (s_logit.sigmoid() - t_prob).abs().pow(self.beta)
        weight = t_prob.max(dim=-1).values  # (N, A) how much the teacher believes in an object
        norm = weight.sum().clamp(min=1.0)
        cls = (F.binary_cross_entropy_with_logits(s_logit, t_prob, reduction="none") * focal).sum() / norm

        T = self.temperature
        shape = (*student.shape[:-1], 4, self.bins)
        s_reg = F.log_softmax(student[..., c:].reshape(shape) / T, dim=-1)
        t_reg = F.softmax(teacher[..., c:].reshape(shape) / T, dim=-1)
        kl = F.kl_div(s_reg, t_reg, reduction="none").sum(-1).mean(-1) * T * T  # (N, A)
        reg = (kl * weight).sum() / norm
        cls, reg = self.cls_weight * cls, self.reg_weight * reg
        return cls + reg, {"kd_cls": cls.detach(), "kd_reg": reg.detach()}

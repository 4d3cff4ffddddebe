"""Learning-rate schedule of NanoDet-Plus: linear warm-up, then cosine annealing to a floor.

The rate is a pure function of the optimizer step, so resuming only needs the step count.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer


class WarmupCosine:
    """lr(step) = cosine from `base_lr` to `min_lr` over `total_steps`, multiplied during the
    first `warmup_steps` by a factor rising linearly from `warmup_ratio` to 1."""

    def __init__(
        self, optimizer: Optimizer, base_lr: float, min_lr: float, total_steps: int,
        warmup_steps: int = 500, warmup_ratio: float = 1e-4,
    ) -> None:
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.min_lr = min_lr
        self.total_steps = max(total_steps, 1)
        self.warmup_steps = warmup_steps
        self.warmup_ratio = warmup_ratio
        self.step_count = 0  # steps taken so far

    def lr_at(self, step: int) -> float:
        progress = min(step / self.total_steps, 1.0)
        lr = self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        if step < self.warmup_steps:
            lr *= self.warmup_ratio + (1 - self.warmup_ratio) * step / self.warmup_steps
        return lr

    def apply(self) -> float:
        """Set the rate of the coming optimizer step; returns it."""
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self) -> None:
        self.step_count += 1

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])

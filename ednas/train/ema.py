"""Exponential moving average of a model's weights (the weights that are evaluated and saved)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """Keeps `model` = a frozen copy whose floating-point state (parameters and BN statistics)
    tracks the trained model with decay `decay * (1 - exp(-updates / warmup))`: the ramp lets
    short runs (and the first steps of long ones) follow the fast-moving weights instead of
    staying near the initialisation."""

    def __init__(self, model: nn.Module, decay: float = 0.9998, warmup: float = 2000.0) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0

    def current_decay(self) -> float:
        if self.warmup <= 0:
            return self.decay
        return self.decay * (1 - math.exp(-self.updates / self.warmup))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        source = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.lerp_(source[name].detach(), 1 - d)
            else:
                value.copy_(source[name])

    def state_dict(self) -> dict:
        return {"updates": self.updates, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["model"])
